"""Our pSp / e4e / ReStyle encoders against the original repositories' classes, on checkpoints our writer made.

Not part of the unit suite: it needs local mirrors (git directories) of eladrich/pixel2style2pixel,
omertov/encoder4editing and yuval-alaluf/restyle-encoder. Their encoder files are checked out into a temporary
folder outside this repository; their only foreign needs are rosinality's ``EqualLinear`` (a pure-PyTorch stand-in
with the same parameters and arithmetic is written there) and a ``torchvision`` import for the ResNet-34 variants
(stubbed: those classes are not used). Each released layout is written at full width (IR-SE50, 512-wide styles) by
``wplus.formats._testing_psp``, loaded by ``wplus.load_encoder`` and by the original class (``load_state_dict``
strict on the ``encoder.`` keys), and the codes are compared, with the originals' wrapper arithmetic (latent_avg
added by pSp/e4e when ``start_from_latent_avg``; ReStyle's loop as ``utils/inference_utils.py::run_on_batch``: the
average image first, then image || previous reconstruction, residuals added). ReStyle's decoder passes use our
generator on both sides (the original Generator needs CUDA ops), so the loop check covers the encoder and the loop
arithmetic, not the decoder.

    python benchmarks/encoder_originals.py \\
        --psp /work/.mirror/eladrich+pixel2style2pixel/repo \\
        --e4e /work/.mirror/omertov+encoder4editing/repo \\
        --restyle /work/.mirror/yuval-alaluf+restyle-encoder/repo [--resolution 1024] [--threads 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

import torch

from wplus.formats._testing_psp import write_psp_checkpoint
from wplus.formats.psp import load_encoder
from wplus.models.stylegan2 import StyleGAN2Config, random_generator

_EQUAL_LINEAR = '''"""Stand-in for rosinality's models/stylegan2/model.py: only EqualLinear (no activation path)."""
import math
import torch
import torch.nn.functional as F
from torch import nn


class EqualLinear(nn.Module):
    def __init__(self, in_dim, out_dim, bias=True, bias_init=0, lr_mul=1, activation=None):
        super().__init__()
        assert activation is None
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init))
        self.scale, self.lr_mul = (1 / math.sqrt(in_dim)) * lr_mul, lr_mul

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)
'''
_TV_RESNET = "def resnet34(*args, **kwargs):\n    raise RuntimeError('stub: torchvision is not used here')\n"


def checkout(git_dir: Path, dest: Path) -> Path:
    """The repository's models/encoders/*.py under dest/, with the stand-ins beside them."""
    files = subprocess.run(["git", f"--git-dir={git_dir}", "ls-tree", "--name-only", "HEAD", "models/encoders/"],
                           check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    for f in files:
        if f.endswith(".py"):
            text = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{f}"], check=True,
                                  capture_output=True, text=True).stdout  # fmt: skip
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            (dest / f).write_text(text)
    for f, text in {
        "models/__init__.py": "",
        "models/stylegan2/__init__.py": "",
        "models/stylegan2/model.py": _EQUAL_LINEAR,
        "torchvision/__init__.py": "",
        "torchvision/models/__init__.py": "from torchvision.models.resnet import resnet34\n",
        "torchvision/models/resnet.py": _TV_RESNET,
    }.items():
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        (dest / f).write_text(text)
    return dest


class Original:
    """Import one repository's ``models.encoders`` package (and forget it afterwards)."""

    def __init__(self, root: Path):
        self.root = str(root)

    def __enter__(self) -> Original:
        sys.path.insert(0, self.root)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.path.remove(self.root)
        for name in [n for n in sys.modules if n.split(".")[0] in ("models", "torchvision")]:
            del sys.modules[name]

    @staticmethod
    def module(name: str):  # noqa: ANN205
        import importlib

        return importlib.import_module(name)


def original_net(flavour: str, roots: dict[str, Path], opts: dict, state: dict) -> torch.nn.Module:
    ns = Namespace(**opts)
    n = 2 * int(torch.tensor(opts.get("output_size", opts.get("stylegan_size"))).log2()) - 2
    if flavour in ("psp", "psp-w"):
        ns.n_styles = n  # pSp's psp.py sets it from output_size
        with Original(roots["psp"]):
            m = Original.module("models.encoders.psp_encoders")
            cls = m.GradualStyleEncoder if flavour == "psp" else m.BackboneEncoderUsingLastLayerIntoW
            net = cls(50, "ir_se", ns)
    elif flavour == "e4e":
        with Original(roots["e4e"]):
            net = Original.module("models.encoders.psp_encoders").Encoder4Editing(50, "ir_se", ns)
    else:
        with Original(roots["restyle"]):
            if flavour == "restyle-psp":
                net = Original.module("models.encoders.restyle_psp_encoders").BackboneEncoder(50, "ir_se", n, ns)
            elif flavour == "restyle-e4e":
                net = Original.module("models.encoders.restyle_e4e_encoders").ProgressiveBackboneEncoder(
                    50, "ir_se", n, ns
                )
            else:  # ReStyle over pSp's FPN encoder (fpn_encoders.GradualStyleEncoder, 6 input channels)
                net = Original.module("models.encoders.fpn_encoders").GradualStyleEncoder(50, "ir_se", n, ns)
    enc = {k[len("encoder.") :]: v.clone() for k, v in state.items() if k.startswith("encoder.")}
    net.load_state_dict(enc, strict=True)
    return net.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--psp", type=Path, required=True, help="git dir of eladrich/pixel2style2pixel")
    ap.add_argument("--e4e", type=Path, required=True, help="git dir of omertov/encoder4editing")
    ap.add_argument("--restyle", type=Path, required=True, help="git dir of yuval-alaluf/restyle-encoder")
    ap.add_argument("--resolution", type=int, default=1024, help="decoder resolution (W+ rows 2 log2 R - 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=3, help="ReStyle steps compared")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="wplus-originals-"))
    roots = {k: checkout(getattr(args, k), tmp / k) for k in ("psp", "e4e", "restyle")}
    # A thin decoder with the released code width (w_dim 512) and the asked number of rows.
    G = random_generator(StyleGAN2Config(img_resolution=args.resolution, z_dim=512, w_dim=512, channel_base=1024,
                                         channel_max=16, mapping_layers=2), seed=7, w_avg_samples=500)  # fmt: skip
    images = torch.rand(args.batch, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1
    print(f"codes of {args.batch} images, decoder {args.resolution} px ({G.num_ws} rows), {args.threads} threads")
    for flavour in ("psp", "psp-w", "e4e", "restyle-psp", "restyle-e4e", "restyle-fpn"):
        path = tmp / f"{flavour}.pt"
        write_psp_checkpoint(path, G, flavour, seed=5)
        ckpt = torch.load(path, weights_only=True, mmap=True)
        t0 = time.perf_counter()
        ours = load_encoder(path)
        t_load = time.perf_counter() - t0
        theirs = original_net(flavour, roots, ckpt["opts"], ckpt["state_dict"])
        latent_avg = ckpt["latent_avg"]
        with torch.no_grad():
            if not ours.iterations:
                t0 = time.perf_counter()
                mine = ours.encode(images)
                t_ours = time.perf_counter() - t0
                t0 = time.perf_counter()
                codes = theirs(images)
                t_theirs = time.perf_counter() - t0
                if codes.ndim == 2:  # pSp: a W code is broadcast over the rows
                    codes = codes[:, None].expand(-1, G.num_ws, -1)
                if ckpt["opts"].get("start_from_latent_avg"):
                    codes = codes + latent_avg.repeat(codes.shape[0], 1, 1)
                diffs = [(mine - codes).abs().max().item()]
            else:
                t0 = time.perf_counter()
                steps = ours.steps(images, args.iterations)
                t_ours = time.perf_counter() - t0
                avg = ours.pool(G.synthesis(latent_avg[None], noise_mode="const"))
                t0 = time.perf_counter()
                y_hat, latent, diffs = None, None, []
                for k in range(args.iterations):
                    x_input = torch.cat([images, avg.repeat(images.shape[0], 1, 1, 1) if k == 0 else y_hat], dim=1)
                    codes = theirs(x_input)
                    latent = codes + (latent_avg.repeat(codes.shape[0], 1, 1) if latent is None else latent)
                    y_hat = ours.pool(G.synthesis(latent, noise_mode="const"))
                    diffs.append((steps.ws[k] - latent).abs().max().item())
                t_theirs = time.perf_counter() - t0
        scale = (mine if not ours.iterations else steps.ws[-1]).abs().max().item()
        times = f"load {t_load:.1f} s, ours {t_ours:.2f} s, theirs {t_theirs:.2f} s"
        diff = " ".join(f"{d:.2e}" for d in diffs)
        name = f"{flavour:12s} {ours.arch.encoder_type:34s}"
        print(f"{name} max |ours - original| {diff}  (codes up to {scale:.2f}; {times})")
        del ours, theirs, ckpt
        path.unlink()


if __name__ == "__main__":
    main()
