"""Registry entries for the released pSp, e4e and ReStyle FFHQ encoders (read with :func:`wplus.load_encoder`).

Google Drive ids are the ones linked from each repository's README (source page below). The authors publish no
checksums or sizes, so ``sha256`` and ``size`` are None: the first download is recorded and later ones are compared
against it (see :func:`wplus.hub.download.download`). Licences: the code of the three repositories is MIT; each file
also carries its decoder, rosinality's conversion of NVIDIA's StyleGAN2 FFHQ config-f weights, which NVIDIA released
under CC BY-NC 4.0 (non-commercial), so the files are listed under that licence. Each encoder is an IR-SE50 backbone
(initialised from TreB1eN's ArcFace IR-SE50, per the READMEs) trained on FFHQ, writing 18 W+ rows for 1024 px.
"""

from __future__ import annotations

from wplus.hub.registry import register_drive_file

__all__ = ["ENCODER_SPECS", "ENCODER_KIND"]

ENCODER_KIND = "psp-encoder"
_LICENSE = "CC-BY-NC-4.0"  # the bundled StyleGAN2 FFHQ decoder; the encoders' code is MIT

# (registry name, file name, Google Drive id, source page, encoder_type, description)
_ENTRIES = (
    ("psp-ffhq-encode", "psp_ffhq_encode.pt", "1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0",
     "https://github.com/eladrich/pixel2style2pixel#pretrained-models", "GradualStyleEncoder",
     "pSp FFHQ inversion encoder (GradualStyleEncoder, IR-SE50 + FPN, 18 styles) with its 1024 px decoder"),
    ("e4e-ffhq-encode", "e4e_ffhq_encode.pt", "1cUv_reLE6k3604or78EranS7XzuVMWeO",
     "https://github.com/omertov/encoder4editing#pretrained-models", "Encoder4Editing",
     "e4e FFHQ inversion encoder (Encoder4Editing: w0 + deltas, IR-SE50 + FPN) with its 1024 px decoder"),
    ("restyle-psp-ffhq", "restyle_psp_ffhq_encode.pt", "1sw6I2lRIB0MpuJkpc8F5BJiSZrc0hjfE",
     "https://github.com/yuval-alaluf/restyle-encoder#pretrained-models", "BackboneEncoder",
     "ReStyle over pSp, FFHQ (BackboneEncoder, 6-channel input, 5 refinement steps) with its 1024 px decoder"),
    ("restyle-e4e-ffhq", "restyle_e4e_ffhq_encode.pt", "1e2oXVeBPXMQoUoC_4TNwAWpOPpSEhE_e",
     "https://github.com/yuval-alaluf/restyle-encoder#pretrained-models", "ProgressiveBackboneEncoder",
     "ReStyle over e4e, FFHQ (ProgressiveBackboneEncoder, 6-channel input, 5 steps) with its 1024 px decoder"),
)  # fmt: skip

ENCODER_SPECS = tuple(
    register_drive_file(name, filename, drive_id, license=_LICENSE, source=source, description=description,
                        kind=ENCODER_KIND, resolution=1024, format="psp-pt", config=encoder_type)
    for name, filename, drive_id, source, encoder_type, description in _ENTRIES
)  # fmt: skip
