"""Time to quality: PSNR against wall seconds for each projection recipe, on the shipped model, in one run.

Targets: held-out faces of the built-in cartoon-face dataset, plus one out-of-domain photo (scikit-image's
astronaut, centre-cropped). Every recipe uses the same loss — the shipped discriminator's features + MSE (the
offline loss; ``ProjectionSettings.with_discriminator_features``) — and runs on all targets as one batch (each
image follows the trajectory it would alone with Adam), so the seconds are the same kind for every recipe.

Writes ``time_to_quality.png`` (median PSNR of the faces against seconds, one curve per recipe) and prints a table:
seconds until the median face PSNR first reaches the paper recipe's final median minus 0.2 dB, the final median
PSNR and SSIM of the faces, and the astronaut's final PSNR.

Usage: python benchmarks/time_to_quality.py [--quick] [--faces 8] [--out docs/time_to_quality.png] [--json OUT]
       [--recipe 'NAME:lr=0.05,lr_rampdown=0.25,num_steps=300' ...] [--only-extra]
``--quick`` (a few minutes): 4 faces, the paper recipe cut to 1000 steps and the others to 300.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from wplus.io.images import center_crop_resize, pil_to_tensor
from wplus.io.plot import Panel, draw_panels
from wplus.losses import DiscriminatorFeatures
from wplus.metrics import ssim
from wplus.progress import progress
from wplus.projection import PRESETS, project, resolve_settings
from wplus.shipped import load_shipped_discriminator, load_shipped_generator
from wplus.train.quality import held_out_faces


def astronaut(resolution: int) -> torch.Tensor | None:
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        return None
    return pil_to_tensor(center_crop_resize(Image.fromarray(data.astronaut()), resolution))


def parse_recipe(text: str) -> tuple[str, dict]:
    """'NAME:preset=fast,lr=0.05,num_steps=300' -> (NAME, {...}); values are read as JSON where they parse."""
    name, _, rest = text.partition(":")
    fields = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value
    return name, fields


def recipes(quick: bool, extra: list[str], only_extra: bool, paper: bool = True) -> dict[str, object]:
    long, short = (1000, 300) if quick else (5000, 1000)
    out = {"paper (image2stylegan)": resolve_settings("image2stylegan", num_steps=long)} if paper else {}
    if not only_extra:
        out["nvidia"] = resolve_settings("nvidia", num_steps=short)
        out["course"] = resolve_settings("course", num_steps=short)
        if "fast" in PRESETS:
            out["fast"] = resolve_settings("fast")
    for text in extra:
        name, fields = parse_recipe(text)
        out[name] = resolve_settings(fields.pop("preset", None), **fields)
    return {k: s.with_discriminator_features() for k, s in out.items()}


def run(name: str, settings, G, loss, targets: torch.Tensor) -> dict:
    with progress(settings.total_steps, desc=f"  {name}", unit="step") as bar:
        t0 = time.perf_counter()
        r = project(G, targets, loss=loss, settings=settings, callback=lambda st: bar.update(1))
        seconds = time.perf_counter() - t0
    return {"result": r, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--faces", type=int, default=None)
    ap.add_argument("--out", default="bench_out/time_to_quality.png")
    ap.add_argument("--json", default=None)
    ap.add_argument("--recipe", action="append", default=[], help="more: 'NAME:field=value,...' (ablations)")
    ap.add_argument("--only-extra", action="store_true", help="the paper recipe and --recipe ones only")
    ap.add_argument("--goal", type=float, default=None, help="the goal PSNR from an earlier run; skips the paper run")
    args = ap.parse_args()
    n = args.faces or (4 if args.quick else 8)
    G = load_shipped_generator()
    loss = DiscriminatorFeatures(load_shipped_discriminator())
    faces = held_out_faces(1000, n, G.img_resolution)
    extra = astronaut(G.img_resolution)
    targets = faces if extra is None else torch.cat([faces, extra])
    print(f"{n} held-out faces{' + astronaut' if extra is not None else ''}, {G.img_resolution} px, loss dfeat+mse")
    rows, curves, astro_curves = [], {}, {}
    runs = {
        name: run(name, s, G, loss, targets)
        for name, s in recipes(args.quick, args.recipe, args.only_extra, paper=args.goal is None).items()
    }
    if args.goal is None:
        paper = next(iter(runs))
        goal = statistics.median(float(p) for p in runs[paper]["result"].history["psnr"][-1, :n]) - 0.2
    else:
        goal = args.goal
    for name, out in runs.items():
        r = out["result"]
        med = r.history["psnr"][:, :n].quantile(0.5, dim=1)  # the middle two averaged, as statistics.median
        secs = r.step_seconds.tolist()
        reached = next((secs[i] for i, v in enumerate(med.tolist()) if v >= goal), None)
        final = [float(x) for x in torch.tensor([m["psnr"] for m in r.metrics])]
        ssims = ssim(r.images[:n], faces).tolist()
        rows.append(
            {
                "recipe": name,
                "steps": r.metrics[0]["steps"],
                "seconds": round(out["seconds"], 1),
                "seconds_to_goal": None if reached is None else round(reached, 1),
                "median_psnr": round(statistics.median(final[:n]), 2),
                "min_psnr": round(min(final[:n]), 2),
                "median_ssim": round(statistics.median(ssims), 3),
                "astronaut_psnr": round(final[n], 2) if extra is not None else None,
                # How far from w_avg the faces' codes went (editability falls with it): median |w - w_avg|.
                "median_w_dist": round(statistics.median(m["w_dist_from_avg"] for m in r.metrics[:n]), 2),
            }
        )
        curves[name] = (secs, med.tolist())
        if extra is not None:
            astro_curves[name] = r.history["psnr"][:, n].tolist()
    print(f"\ngoal: median face PSNR {goal:.2f} dB (the paper recipe's final median - 0.2)")
    print(
        f"{'recipe':<24}{'steps':>6}{'seconds':>9}{'to goal':>9}{'PSNR':>8}{'min':>7}{'SSIM':>7}{'astro':>7}"
        f"{'|w-avg|':>9}"
    )
    for row in rows:
        to_goal = "-" if row["seconds_to_goal"] is None else f"{row['seconds_to_goal']:.1f}"
        astro = "-" if row["astronaut_psnr"] is None else f"{row['astronaut_psnr']:.2f}"
        print(
            f"{row['recipe']:<24}{row['steps']:>6}{row['seconds']:>9.1f}{to_goal:>9}{row['median_psnr']:>8.2f}"
            f"{row['min_psnr']:>7.2f}{row['median_ssim']:>7.3f}{astro:>7}{row['median_w_dist']:>9.2f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    draw_panels(
        [Panel("median PSNR of the faces", "seconds", "dB", curves)],
        args.out,
        size=(720, 420),
        purpose="the benchmark's figure",
    )
    print(f"wrote {args.out}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"goal_psnr": goal, "rows": rows, "curves": curves, "astronaut": astro_curves})
        )


if __name__ == "__main__":
    main()
