"""The model zoo: StyleGAN2 and StyleGAN3 checkpoints this field uses, each with the public page that documents it.

No public source we could check records SHA-256 digests for these generator files, so ``sha256`` is ``None`` and
the first download's digest is recorded and enforced afterwards (trust on first use, :mod:`wplus.hub.download`).
Sizes are left ``None`` for the same reason. Licences: NVIDIA's pretrained StyleGAN2 networks are released under
the NVIDIA Source Code License-NC / CC BY-NC 4.0 (non-commercial; see each source page).
"""

from __future__ import annotations

from wplus.hub.registry import WeightSpec, register

__all__ = ["ZOO_NAMES", "STYLEGAN3_NAMES"]

# Source pages (cited per entry below):
_ADA = "https://github.com/NVlabs/stylegan2-ada-pytorch#pretrained-networks"  # README "Pretrained networks"
_ADA_CDN = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
_SG3 = "https://github.com/NVlabs/stylegan3#additional-material"  # README: StyleGAN2 networks redistributed on NGC
_SG3_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
_SG3_NETS = "https://github.com/NVlabs/stylegan3#getting-started"  # README: "Pre-trained networks ... <MODEL>"
_SG2 = "https://github.com/NVlabs/stylegan2#pre-trained-networks"  # README "Pre-trained networks" (TF, config-f)
_SG2_CDN = "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/"
_NC = "LicenseRef-NVIDIA-Source-Code-License-NC"
_CC = "CC-BY-NC-4.0"


def _g(
    name: str, url: str, res: int, source: str, desc: str, fmt: str, licence: str, config: str, kind: str = "stylegan2"
) -> str:
    register(
        WeightSpec(
            name=name,
            filename=url.rsplit("/", 1)[1],
            urls=(url,),
            sha256=None,
            size=None,
            license=licence,
            source=source,
            description=desc,
            kind=kind,
            resolution=res,
            format=fmt,
            config=config,
        )
    )
    return name


ZOO_NAMES = [
    # stylegan3 repo: StyleGAN2 networks (flat synthesis kwargs, stylegan3's networks_stylegan2), NGC mirror.
    _g("stylegan2-ffhq-1024", _SG3_NGC + "stylegan2-ffhq-1024x1024.pkl", 1024, _SG3,
       "StyleGAN2 FFHQ 1024 px (stylegan3 repo)", "nvidia-pkl", _NC, "config-f, 8 mapping layers"),
    _g("stylegan2-ffhq-512", _SG3_NGC + "stylegan2-ffhq-512x512.pkl", 512, _SG3,
       "StyleGAN2 FFHQ 512 px (stylegan3 repo)", "nvidia-pkl", _NC, "stylegan2 cfg"),
    _g("stylegan2-ffhq-256", _SG3_NGC + "stylegan2-ffhq-256x256.pkl", 256, _SG3,
       "StyleGAN2 FFHQ 256 px (stylegan3 repo)", "nvidia-pkl", _NC, "stylegan2 cfg"),
    _g("stylegan2-afhqcat-512", _SG3_NGC + "stylegan2-afhqcat-512x512.pkl", 512, _SG3,
       "StyleGAN2 AFHQ cat 512 px (stylegan3 repo)", "nvidia-pkl", _NC, "stylegan2 cfg"),
    _g("stylegan2-afhqdog-512", _SG3_NGC + "stylegan2-afhqdog-512x512.pkl", 512, _SG3,
       "StyleGAN2 AFHQ dog 512 px (stylegan3 repo)", "nvidia-pkl", _NC, "stylegan2 cfg"),
    _g("stylegan2-afhqwild-512", _SG3_NGC + "stylegan2-afhqwild-512x512.pkl", 512, _SG3,
       "StyleGAN2 AFHQ wild 512 px (stylegan3 repo)", "nvidia-pkl", _NC, "stylegan2 cfg"),
    _g("stylegan2-metfaces-1024", _SG3_NGC + "stylegan2-metfaces-1024x1024.pkl", 1024, _SG3,
       "StyleGAN2 MetFaces 1024 px (stylegan3 repo)", "nvidia-pkl", _NC, "stylegan2 cfg"),
    _g("stylegan2-celebahq-256", _SG3_NGC + "stylegan2-celebahq-256x256.pkl", 256, _SG3,
       "StyleGAN2 CelebA-HQ 256 px (stylegan3 repo)", "nvidia-pkl", _NC, "stylegan2 cfg"),
    # stylegan2-ada-pytorch README (nested synthesis_kwargs, ADA training: conv_clamp 256, fp16 layers).
    _g("stylegan2-ada-ffhq-1024", _ADA_CDN + "ffhq.pkl", 1024, _ADA,
       "StyleGAN2-ADA FFHQ 1024 px (ffhq.pkl)", "nvidia-pkl", _NC, "paper1024"),
    _g("stylegan2-ada-metfaces-1024", _ADA_CDN + "metfaces.pkl", 1024, _ADA,
       "StyleGAN2-ADA MetFaces 1024 px (metfaces.pkl)", "nvidia-pkl", _NC, "paper1024, transfer from FFHQ"),
    _g("stylegan2-ada-afhqcat-512", _ADA_CDN + "afhqcat.pkl", 512, _ADA,
       "StyleGAN2-ADA AFHQ cat 512 px", "nvidia-pkl", _NC, "paper512"),
    _g("stylegan2-ada-afhqdog-512", _ADA_CDN + "afhqdog.pkl", 512, _ADA,
       "StyleGAN2-ADA AFHQ dog 512 px", "nvidia-pkl", _NC, "paper512"),
    _g("stylegan2-ada-afhqwild-512", _ADA_CDN + "afhqwild.pkl", 512, _ADA,
       "StyleGAN2-ADA AFHQ wild 512 px", "nvidia-pkl", _NC, "paper512"),
    # Original TF StyleGAN2 (config-f) networks: (G, D, Gs) pickles, version 4.
    _g("stylegan2-tf-ffhq-1024", _SG2_CDN + "stylegan2-ffhq-config-f.pkl", 1024, _SG2,
       "TF StyleGAN2 FFHQ 1024 px config-f (used by the projecting toolkit)", "tf-pkl", _CC, "config-f"),
    _g("stylegan2-tf-car-512", _SG2_CDN + "stylegan2-car-config-f.pkl", 512, _SG2,
       "TF StyleGAN2 LSUN Car config-f (512x384 content in a 512 px frame)", "tf-pkl", _CC, "config-f"),
    _g("stylegan2-tf-cat-256", _SG2_CDN + "stylegan2-cat-config-f.pkl", 256, _SG2,
       "TF StyleGAN2 LSUN Cat 256 px config-f", "tf-pkl", _CC, "config-f"),
    _g("stylegan2-tf-church-256", _SG2_CDN + "stylegan2-church-config-f.pkl", 256, _SG2,
       "TF StyleGAN2 LSUN Church 256 px config-f", "tf-pkl", _CC, "config-f"),
    _g("stylegan2-tf-horse-256", _SG2_CDN + "stylegan2-horse-config-f.pkl", 256, _SG2,
       "TF StyleGAN2 LSUN Horse 256 px config-f", "tf-pkl", _CC, "config-f"),
]  # fmt: skip

# StyleGAN3 (alias-free) networks of the stylegan3 README, NGC: T = translation-equivariant config (3x3 convs),
# R = translation and rotation (1x1 convs, radial filters, doubled widths); "u" datasets are unaligned.
_SG3_DATA = {
    "ffhq": ("FFHQ (aligned)", 1024),
    "ffhqu": ("FFHQ-U (unaligned)", 1024),
    "metfaces": ("MetFaces (aligned)", 1024),
    "metfacesu": ("MetFaces-U (unaligned)", 1024),
    "afhqv2": ("AFHQv2 (cats, dogs, wild)", 512),
}
STYLEGAN3_NAMES = [
    _g(
        f"stylegan3-{cfg}-{data}-{res}",
        f"{_SG3_NGC}stylegan3-{cfg}-{data}-{res}x{res}.pkl",
        res,
        _SG3_NETS,
        f"StyleGAN3-{cfg.upper()} {desc} {res} px",
        "nvidia-pkl",
        _NC,
        f"stylegan3-{cfg}",
        kind="stylegan3",
    )
    for cfg in ("t", "r")
    for data, (desc, full_res) in _SG3_DATA.items()
    for res in ((full_res, 256) if data == "ffhqu" else (full_res,))
]
ZOO_NAMES += STYLEGAN3_NAMES

# NVIDIA's TorchScript VGG-16 of the ADA projector; SHA-256 as recorded in public code (qiuyu96/Carver).
register(
    WeightSpec(
        name="vgg16-nvidia-metrics",
        filename="vgg16.pt",
        urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt",),
        sha256="b437eb095feaeb0b83eb3fa11200ebca4548ee39a07fb944a417ddc516cc07c3",
        size=None,
        license=_NC,
        source="https://github.com/NVlabs/stylegan2-ada-pytorch/blob/main/projector.py",
        description="NVIDIA's TorchScript VGG-16 + LPIPS (projector.py); listed for provenance, not loaded by wplus",
        kind="vgg16-torchscript",
    )
)
