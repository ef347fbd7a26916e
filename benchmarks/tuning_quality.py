"""Pivotal tuning on the shipped model: PSNR / SSIM before and after, seconds, file size, editability, locality.

Targets: held-out faces of the built-in cartoon-face dataset plus scikit-image's astronaut (out of domain). Each is
projected into W+ (the ``fast`` preset, the W+-alone baseline) and, with ``--pivot w`` (the default, as PTI and
``wplus project --tune``), into W (the pivot: what ``wplus project --tune`` runs without ``--preset``, the library's
default recipe in W; ``--pivot-preset nvidia --pivot-steps 450`` is PTI's own); ``--pivot w+`` tunes around the W+
code itself. Then the generator is tuned around the pivot (``wplus.tune`` defaults unless overridden). Every run
uses the offline loss: the shipped discriminator's features + MSE.

Reported per image and as medians over the faces: PSNR of W+ alone, of the pivot and after tuning; seconds of
the tuning; the tuning file's size against the generator file's; editability — the shipped smile direction's
share of change inside the mouth box (benchmarks/check_demo_model.py's measure) on tuned renders against untuned
ones; locality — PSNR between G's and the tuned G's renders of 16 random codes. Writes a picture
(target | W+ | pivot | tuned | tuned + smile, one row per image).

Usage: python benchmarks/tuning_quality.py [--pivot w|w+] [--pivot-preset P --pivot-steps N] [--faces 4]
       [--no-astronaut] [--steps 350] [--rank 6] [--lr 1e-2] [--locality 0.1] [--locality-samples 2]
       [--pixel-weight 9] [--biases] [--out docs/tuning.png] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from time_to_quality import astronaut  # noqa: E402  (one owner of the out-of-domain target)

from wplus.data.faces import HELD_OUT_SEED_BASE, face_boxes, sample_attributes  # noqa: E402
from wplus.edits import load_direction  # noqa: E402
from wplus.io.images import image_grid, tensor_to_pil  # noqa: E402
from wplus.losses import DiscriminatorFeatures  # noqa: E402
from wplus.metrics import psnr, ssim  # noqa: E402
from wplus.projection import PRESETS, project, resolve_settings  # noqa: E402
from wplus.shipped import (  # noqa: E402
    load_shipped_discriminator,
    load_shipped_generator,
    shipped_generator_path,
    shipped_smile_direction_path,
)
from wplus.train.quality import held_out_faces  # noqa: E402
from wplus.tuning import PIVOT_SPACE, TuningSettings, save_tuning, tune  # noqa: E402


def mouth_share(G, ws, direction, box, res) -> float:
    with torch.no_grad():
        change = (G.synthesis(ws + direction) - G.synthesis(ws)).square().sum(1)[0]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    inside = float(change[max(0, y0) : min(res, y1), max(0, x0) : min(res, x1)].sum())
    return inside / max(float(change.sum()), 1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TuningSettings()
    ap.add_argument("--pivot", choices=["w", "w+"], default="w", help="w: PTI's (and --tune's default); w+: the code")
    ap.add_argument(
        "--pivot-preset",
        default="defaults",
        help="the W pivot's projection preset, in W ('defaults': the library's, as `project --tune`)",
    )
    ap.add_argument("--pivot-steps", type=int, default=0, help="the W pivot's projection steps (0: the preset's)")
    ap.add_argument("--faces", type=int, default=4)
    ap.add_argument("--no-astronaut", action="store_true", help="held-out faces only")
    ap.add_argument("--steps", type=int, default=defaults.num_steps)
    ap.add_argument("--rank", type=int, default=defaults.rank, help="0: full deltas")
    ap.add_argument("--lr", type=float, default=defaults.lr)
    ap.add_argument("--locality", type=float, default=defaults.locality_weight)
    ap.add_argument("--locality-samples", type=int, default=defaults.locality_samples)
    ap.add_argument("--pixel-weight", type=float, default=defaults.pixel_weight)
    ap.add_argument("--biases", action="store_true", help="also tune biases and the constant")
    ap.add_argument("--out", default="bench_out/tuning.png")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    G = load_shipped_generator()
    loss = DiscriminatorFeatures(load_shipped_discriminator())
    res = G.img_resolution
    faces = held_out_faces(1000, args.faces, res)
    extra = None if args.no_astronaut else astronaut(res)
    targets = faces if extra is None else torch.cat([faces, extra])
    names = [f"face {i}" for i in range(args.faces)] + (["astronaut"] if extra is not None else [])
    wplus_recipe = "fast" if "fast" in PRESETS else "image2stylegan"
    wplus_settings = resolve_settings(wplus_recipe, **({} if wplus_recipe == "fast" else {"num_steps": 1000}))
    pivot_name = "the W+ code" if args.pivot == "w+" else f"W ({args.pivot_preset}, {args.pivot_steps or 'its'} steps)"
    print(f"{len(names)} targets, {res} px; W+ alone: {wplus_recipe} ({wplus_settings.num_steps} steps); "
          f"pivot: {pivot_name}")  # fmt: skip
    plus = project(G, targets, loss=loss, settings=wplus_settings.with_discriminator_features())
    if args.pivot == "w+":
        pivot = plus
    else:
        preset = None if args.pivot_preset == "defaults" else args.pivot_preset
        steps = {"num_steps": args.pivot_steps} if args.pivot_steps else {}
        w_settings = resolve_settings(preset, space=PIVOT_SPACE, **steps).with_discriminator_features()
        pivot = project(G, targets, loss=loss, settings=w_settings)
    settings = TuningSettings(num_steps=args.steps, lr=args.lr, rank=args.rank or None, locality_weight=args.locality,
                              locality_samples=args.locality_samples,
                              pixel_weight=args.pixel_weight, biases=args.biases)  # fmt: skip
    direction = load_direction(shipped_smile_direction_path()).broadcast(G.num_ws, G.w_dim)[None]
    z = torch.randn(16, G.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        random_ws = G.mapping(z, None)
        random_renders = G.synthesis(random_ws)
    model_bytes = os.path.getsize(shipped_generator_path())
    rows, tiles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            target = targets[i : i + 1]
            latent = pivot.latent(i)
            t0 = time.perf_counter()
            t = tune(G, target, latent.ws, loss=loss, noise=latent.noise, **settings.kwargs())
            seconds = time.perf_counter() - t0
            Gt = t.apply(G, check=False)
            size = os.path.getsize(save_tuning(t, Path(tmp) / f"t{i}.safetensors"))
            with torch.no_grad():
                tuned = Gt.synthesis(latent.ws, noise=latent.noise)
                smiled = Gt.synthesis(latent.ws + direction, noise=latent.noise)
                locality = psnr(Gt.synthesis(random_ws), random_renders)
            row = {
                "image": name,
                "psnr_wplus": round(plus.metrics[i]["psnr"], 2),
                "psnr_pivot": round(pivot.metrics[i]["psnr"], 2),
                "psnr_tuned": round(float(psnr(tuned, target)[0]), 2),
                "ssim_wplus": round(plus.metrics[i]["ssim"], 3),
                "ssim_tuned": round(float(ssim(tuned, target)[0]), 3),
                "seconds": round(seconds, 1),
                "file_bytes": size,
                "file_share": round(size / model_bytes, 4),
                "locality_psnr_median": round(float(locality.median()), 2),
            }
            if i < args.faces:
                box = face_boxes(sample_attributes(HELD_OUT_SEED_BASE + 1000 + i), res)["mouth"]
                row["mouth_share_untuned"] = round(mouth_share(G, latent.ws, direction, box, res), 3)
                row["mouth_share_tuned"] = round(mouth_share(Gt, latent.ws, direction, box, res), 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
            tiles += [
                tensor_to_pil(x) for x in (target, plus.images[i : i + 1], pivot.images[i : i + 1], tuned, smiled)
            ]
    face_rows = rows[: args.faces]
    med = {k: statistics.median(r[k] for r in face_rows) for k in face_rows[0] if k != "image"}
    gain_plus = statistics.median(r["psnr_tuned"] - r["psnr_wplus"] for r in face_rows)
    print(f"\nfaces (median): W+ {med['psnr_wplus']:.2f} dB, pivot {med['psnr_pivot']:.2f}, "
          f"tuned {med['psnr_tuned']:.2f} (+{gain_plus:.2f} dB over W+), {med['seconds']:.1f} s per image")  # fmt: skip
    share = med["mouth_share_tuned"] / max(med["mouth_share_untuned"], 1e-12)
    print(f"smile mouth-box share: untuned {med['mouth_share_untuned']:.3f}, tuned {med['mouth_share_tuned']:.3f}"
          f" ({share:.0%}); locality PSNR median {med['locality_psnr_median']:.2f} dB; file {med['file_share']:.2%}"
          f" of the generator's ({int(med['file_bytes'])} bytes)")  # fmt: skip
    if extra is not None:
        a = rows[-1]
        gain = a["psnr_tuned"] - a["psnr_wplus"]
        print(f"astronaut: W+ {a['psnr_wplus']:.2f}, tuned {a['psnr_tuned']:.2f} (+{gain:.2f} dB)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    image_grid([im.resize((128, 128)) for im in tiles], cols=5).save(args.out)
    print(f"wrote {args.out} (columns: target, W+ alone, pivot, tuned, tuned + smile)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "pivot": args.pivot,
                    "settings": settings.kwargs(),
                    "rows": rows,
                    "faces_median": med,
                    "gain_over_wplus": gain_plus,
                },
                indent=2,
            )  # fmt: skip
        )


if __name__ == "__main__":
    main()
