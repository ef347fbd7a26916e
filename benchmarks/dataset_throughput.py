"""Dataset throughput: images per hour of the local engine and of the Ray engine, and Ray's overhead as a ratio.

Eight 64 px targets (the shipped model's own samples, seeds 0-7) projected with the shipped generator
(cartoon-faces-64) and an offline loss (default: pixel MSE; --loss dfeat+mse uses the model's discriminator), once by
the local engine with one thread and once by the Ray engine with one actor of one CPU on a fresh local Ray instance,
so the difference is what Ray adds: starting the instance, the actor, loading the model in it, moving rows. Each
wall time counts everything from the planned run to the last folder written (model and loss loading included);
``--workers 2`` adds a Ray run with two actors (what the second core buys). Every run writes its own OUTDIR and
manifest, then the latents of both engines are compared.

Usage: python benchmarks/dataset_throughput.py [--steps 300] [--images 8] [--workers 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wplus.datasets.inputs import expand_inputs
from wplus.datasets.ray_engine import RayOptions, import_ray, run_ray
from wplus.datasets.runner import DatasetProjector, Preprocess, RunSpec, plan_run, run_local
from wplus.io.images import save_image
from wplus.loading import file_sha256
from wplus.projection.settings import resolve_settings
from wplus.runtime import tune_cpu_allocator
from wplus.shipped import SHIPPED_MODEL, load_shipped_generator, shipped_generator_path


def make_targets(folder: Path, count: int) -> None:
    G = load_shipped_generator()
    with torch.no_grad():
        for seed in range(count):
            z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed))
            save_image(G.synthesis(G.mapping(z, None), noise_mode="const"), folder / f"seed{seed:02d}.png")


def spec_for(steps: int, loss: str) -> RunSpec:
    path = shipped_generator_path()
    settings = resolve_settings(num_steps=steps, loss=loss)
    return RunSpec(str(path), SHIPPED_MODEL, file_sha256(path), settings, Preprocess(64), batch_size=1)


def run_local_engine(images: list, outdir: Path, spec: RunSpec) -> float:
    t0 = time.perf_counter()
    plan = plan_run(images, outdir, spec)
    projector = DatasetProjector.load(spec, torch.device("cpu"))
    outcomes = run_local(plan, projector)
    assert all(o.status == "done" for o in outcomes), [o.error for o in outcomes]
    return time.perf_counter() - t0


def run_ray_engine(images: list, outdir: Path, spec: RunSpec, workers: int) -> float:
    t0 = time.perf_counter()
    plan = plan_run(images, outdir, spec)
    outcomes = run_ray(plan, spec, RayOptions(workers=workers, cpus_per_worker=1), device="cpu")
    assert all(o.status == "done" for o in outcomes), [o.error for o in outcomes]
    return time.perf_counter() - t0


def max_latent_difference(a: Path, b: Path, names: list[str]) -> float:
    worst = 0.0
    for name in names:
        with np.load(a / name / "latent.npz") as x, np.load(b / name / "latent.npz") as y:
            worst = max(worst, float(np.abs(x["w"] - y["w"]).max()))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--loss", default="mse")
    ap.add_argument("--workers", type=int, default=0, help="also time a Ray run with this many actors (0: no)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import_ray()
    tune_cpu_allocator()  # as the wplus command does
    torch.set_num_threads(1)  # the local engine gets what one Ray actor of one CPU gets
    spec = spec_for(args.steps, args.loss)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_targets(root / "data", args.images)
        images = expand_inputs([root / "data"])
        names = [im.name for im in images]
        local = run_local_engine(images, root / "local", spec)
        rows.append(("local, 1 thread", local))
        ray1 = run_ray_engine(images, root / "ray1", spec, 1)
        rows.append(("ray, 1 actor x 1 CPU", ray1))
        diff = max_latent_difference(root / "local", root / "ray1", names)
        if args.workers > 1:
            rows.append(
                (f"ray, {args.workers} actors x 1 CPU", run_ray_engine(images, root / "rayN", spec, args.workers))
            )
    n = args.images
    print(f"{n} images at 64 px, {args.steps} steps, loss {args.loss}, shipped model, CPU")
    print(f"{'engine':<24} {'wall s':>8} {'images/hour':>12}")
    for name, wall in rows:
        print(f"{name:<24} {wall:>8.1f} {n * 3600 / wall:>12.0f}")
    overhead = ray1 / local - 1
    print(f"Ray overhead: {overhead:+.1%} of the local wall time ({ray1 - local:+.1f} s); latents differ by {diff:.1e}")
    if args.json:
        result = {
            "images": n,
            "steps": args.steps,
            "loss": args.loss,
            "walls": {name: wall for name, wall in rows},
            "ray_overhead_ratio": overhead,
            "max_latent_difference": diff,
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
