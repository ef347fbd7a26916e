"""What bf16 costs in quality: PSNR after the 'fast' recipe, fp32 against bf16, and the render difference of one code.

On the shipped cartoon-faces-64 model with held-out drawn faces and time_to_quality.py's offline loss (the shipped
discriminator's features + MSE), the 'fast' recipe (optionally cut to ``--steps``) runs once per precision on the
same batch, fp32 and bf16 in turn (``--rounds`` times), so their seconds share the load. The render difference is
max |G(w) in bf16 autocast - G(w) in fp32| over mapped random codes (images in [-1, 1]), at 64 px and on a random
256-px generator. bf16 on a CPU without native bf16 runs emulated here (WPLUS_ALLOW_EMULATED_BF16=1).

Usage: python benchmarks/bf16_quality.py [--faces 3] [--steps 600] [--rounds 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from wplus.losses import DiscriminatorFeatures
from wplus.precision import ALLOW_EMULATED_ENV, autocast, cpu_bf16_support
from wplus.projection import project, resolve_settings
from wplus.shipped import load_shipped_discriminator, load_shipped_generator
from wplus.train.quality import held_out_faces


def render_difference(G: torch.nn.Module, n: int = 4, seed: int = 0) -> float:
    """max |bf16 render - fp32 render| of the same codes."""
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ws = G.mapping(z, None)
        a = G.synthesis(ws, noise_mode="const")
        with autocast("bf16"):
            b = G.synthesis(ws, noise_mode="const").float()
    return float((a - b).abs().max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="cut 'fast' to this many steps (default: its 600)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ[ALLOW_EMULATED_ENV] = "1"
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_bf16_support()}")
    G = load_shipped_generator()
    loss = DiscriminatorFeatures(load_shipped_discriminator())
    faces = held_out_faces(1000, args.faces, G.img_resolution)
    s = resolve_settings("fast").with_discriminator_features()
    if args.steps is not None:
        s = s.replace(num_steps=args.steps)
    out: dict = {"faces": args.faces, "steps": s.num_steps, "runs": []}
    for _ in range(args.rounds):
        for prec in ("fp32", "bf16"):
            t = time.perf_counter()
            r = project(G, faces, loss=loss, settings=s.replace(precision=prec))
            seconds = time.perf_counter() - t
            psnrs = [m["psnr"] for m in r.metrics]
            out["runs"].append({"precision": prec, "seconds": seconds, "psnr": psnrs})
            print(f"fast {s.num_steps} steps, {prec}: PSNR {' '.join(f'{p:.2f}' for p in psnrs)} dB "
                  f"(mean {sum(psnrs) / len(psnrs):.2f}), {seconds:.1f} s", flush=True)  # fmt: skip
    from wplus.models.stylegan2 import StyleGAN2Config, random_generator

    out["render_diff_64"] = render_difference(G)
    config = StyleGAN2Config(img_resolution=256, channel_base=16384)
    G256 = random_generator(config, seed=0, noise_strength=0.1, w_avg_samples=1000)
    out["render_diff_256"] = render_difference(G256, n=2)
    print(f"max |bf16 - fp32| render of the same code: 64 px {out['render_diff_64']:.4f}, "
          f"256 px (random) {out['render_diff_256']:.4f} (images in [-1, 1])")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
