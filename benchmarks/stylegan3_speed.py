"""StyleGAN3 speed: seconds per W+ projection step and peak memory at 256 px for T and R, beside StyleGAN2.

Each generator runs in its own subprocess, so that its peak resident memory (ru_maxrss) is its own; the ratios to
the StyleGAN2 256-px step (benchmarks/projection_speed.py's config) come from the same run. Random weights, VGG
perceptual + MSE loss, batch 1, fp32. Widths: T at channel_base 16384 / channel_max 512 and R at twice both (the
R rule of NVIDIA's train.py), the same channel_base as the StyleGAN2 figure.
Usage: python benchmarks/stylegan3_speed.py [--steps 3] [--models sg2,t,r] [--resolution 256] [--channel-base 16384]
       [--json OUT]
The 1024-px memory figure: --models t --resolution 1024 --channel-base 32768 --steps 1 (NVIDIA's FFHQ T widths).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from projection_speed import matmul_probe  # a sibling script (benchmarks/ is on sys.path)


def build(model: str, resolution: int, channel_base: int = 16384) -> torch.nn.Module:
    from wplus.models import stylegan2, stylegan3

    if model == "sg2":
        return stylegan2.random_generator(
            stylegan2.StyleGAN2Config(img_resolution=resolution, channel_base=channel_base), seed=0, w_avg_samples=1000
        )
    r = model == "r"
    cfg = stylegan3.StyleGAN3Config(
        img_resolution=resolution,
        channel_base=channel_base * (2 if r else 1),
        channel_max=512 * (2 if r else 1),
        conv_kernel=1 if r else 3,
        use_radial_filters=r,
    )
    return stylegan3.random_generator(cfg, seed=0, w_avg_samples=1000)


def run_one(model: str, resolution: int, steps: int, channel_base: int = 16384) -> dict:
    from wplus.losses import PerceptualLoss
    from wplus.models.vgg16 import random_vgg16
    from wplus.projection.project import project
    from wplus.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # what the wplus command does at start-up
    G = build(model, resolution, channel_base)
    loss = PerceptualLoss(random_vgg16(0))
    target = torch.rand(1, 3, resolution, resolution) * 2 - 1
    project(G, target, loss=loss, num_steps=1)  # warm-up
    stamps: list[float] = []
    t0 = time.perf_counter()
    project(G, target, loss=loss, num_steps=steps, callback=lambda _: stamps.append(time.perf_counter()))
    per_step = (stamps[-1] - stamps[0]) / (steps - 1) if steps > 1 else stamps[0] - t0
    with torch.no_grad():
        t = time.perf_counter()
        G.synthesis(G.w_avg.expand(1, G.num_ws, -1).contiguous())
        render = time.perf_counter() - t
    return dict(
        model=model,
        resolution=resolution,
        channel_base=channel_base,
        s_per_step=per_step,
        s_per_render=render,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--models", default="sg2,t,r")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument(
        "--channel-base", type=int, default=16384, help="T's and StyleGAN2's (R: twice); NVIDIA's FFHQ 1024-px T: 32768"
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.resolution, args.steps, args.channel_base)))
        return
    probe = matmul_probe()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 matmul probe: {probe:.1f} GFLOP/s")
    rows = {}
    for model in args.models.split(","):
        print(f"  measuring {model} at {args.resolution} px ...", file=sys.stderr, flush=True)
        cmd = [
            sys.executable,
            __file__,
            "--one",
            model,
            "--steps",
            str(args.steps),
            "--resolution",
            str(args.resolution),
            "--channel-base",
            str(args.channel_base),
        ]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        r = rows[model] = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{model:>4} {r['resolution']}px: {r['s_per_step']:.3f} s/W+ step, {r['s_per_render']:.3f} s/render, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    if "sg2" in rows:
        base = rows["sg2"]
        for model, r in rows.items():
            if model != "sg2":
                print(
                    f"{model:>4} / sg2: {r['s_per_step'] / base['s_per_step']:.2f}x time per step, "
                    f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x peak RSS"
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"probe_gflops": probe, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
