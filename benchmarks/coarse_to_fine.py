"""Coarse to fine: the cost of a W+ step that renders only up to 64 or 128 px, against a full step, in one run.

Random-weight StyleGAN2 generators at 256 and 1024 px (FFHQ-sized channels), targets rendered by the generator
itself, the paper's loss (VGG-16 perceptual + MSE, random VGG weights: the cost is the same) at its 256 px loss
resolution for full steps; coarse steps run it at the coarse side. Every figure is the median of the timed steps
after one warm-up step; the ratio is coarse / full.

Usage: python benchmarks/coarse_to_fine.py [--steps 3] [--resolutions 256,1024] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from projection_speed import CONFIGS  # noqa: E402  (one owner of the benchmark generators' shapes)

from wplus.losses import PerceptualLoss  # noqa: E402
from wplus.models.stylegan2 import StyleGAN2Config, random_generator  # noqa: E402
from wplus.models.vgg16 import random_vgg16  # noqa: E402
from wplus.progress import progress  # noqa: E402
from wplus.projection import project  # noqa: E402
from wplus.runtime import tune_cpu_allocator  # noqa: E402


def step_seconds(G, target, loss, steps: int, coarse: int | None, bar) -> float:
    """Median seconds of ``steps`` W+ steps after a warm-up step (all coarse when ``coarse`` is set)."""
    options = {"coarse_resolution": coarse, "coarse_fraction": 1.0} if coarse else {}
    stamps: list[float] = []

    def on_step(_: object) -> None:
        stamps.append(time.perf_counter())
        bar.update()

    t0 = time.perf_counter()
    project(G, target, loss=loss, num_steps=steps + 1, callback=on_step, **options)
    deltas = [b - a for a, b in zip([t0, *stamps], stamps, strict=False)][1:]
    return statistics.median(deltas)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--resolutions", default="256,1024")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    tune_cpu_allocator()  # as the wplus command does
    loss = PerceptualLoss(random_vgg16(0))
    rows = []
    for res in (int(r) for r in args.resolutions.split(",")):
        G = random_generator(StyleGAN2Config(**CONFIGS[res]), seed=0, w_avg_samples=1000)
        with torch.no_grad():
            target = G.synthesis(G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1)), None))
        coarse_sides = [c for c in (64, 128) if c < res]
        with progress((args.steps + 1) * (1 + len(coarse_sides)), desc=f"  {res} px", unit="step") as bar:
            full = step_seconds(G, target, loss, args.steps, None, bar)
            for c in coarse_sides:
                t = step_seconds(G, target, loss, args.steps, c, bar)
                rows.append({"resolution": res, "coarse": c, "full_s": full, "coarse_s": t, "ratio": t / full})
    print(f"{'generator':>10}{'coarse':>8}{'full step':>11}{'coarse step':>13}{'ratio':>8}")
    for r in rows:
        print(f"{r['resolution']:>8}px{r['coarse']:>6}px{r['full_s']:>10.2f}s{r['coarse_s']:>12.2f}s{r['ratio']:>8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
