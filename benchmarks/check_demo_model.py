"""Quality bars of the shipped cartoon-face model (docs/demo-model.md); prints figures, exits 1 if a bar is missed.

PYTHONPATH=src python benchmarks/check_demo_model.py [--model G.safetensors --disc D.safetensors] [--steps 500]

With ``--save-direction FILE`` the smile direction it measured is also written (our direction format); this is how
the shipped ``wplus/assets/cartoon-faces-64-smile.npz`` was made (the command is in docs/demo-model.md).
``--faces 0`` skips the PSNR check. Progress goes to stderr (a line every few seconds when that is not a terminal).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from wplus.data.faces import HELD_OUT_SEED_BASE
from wplus.edits.directions import save_direction
from wplus.hub.download import sha256_file
from wplus.io.checkpoint import load_discriminator, load_native_generator
from wplus.io.images import image_grid, save_image, tensor_to_pil
from wplus.losses import DiscriminatorFeatures
from wplus.progress import progress
from wplus.projection.pairs import DELTA_LR
from wplus.shipped import shipped_discriminator_path, shipped_generator_path
from wplus.train.quality import CheckRun, projection_psnr, smile_fraction, smile_fraction_steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="G_ema.safetensors (default: the shipped model)")
    ap.add_argument("--disc", default=None, help="D.safetensors (default: the shipped discriminator)")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--faces", type=int, default=20, help="held-out faces for the PSNR check (0: skip it)")
    ap.add_argument("--pairs", type=int, default=24, help="neutral/smiling pairs the smile direction is averaged over")
    ap.add_argument("--others", type=int, default=8, help="faces the smile direction is applied to")
    ap.add_argument(
        "--smile-method",
        choices=["shared", "independent"],
        default="shared",
        help="project the pairs jointly with one shared offset (default) or each image alone",
    )
    ap.add_argument("--sheet", default=None, help="write the other faces before/after the smile direction to this PNG")
    ap.add_argument("--save-direction", default=None, help="write the measured smile direction to this .npz")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = args.model or shipped_generator_path()
    G = load_native_generator(model)
    loss = DiscriminatorFeatures(load_discriminator(args.disc or shipped_discriminator_path()))
    plan = CheckRun(num_steps=args.steps)
    total = plan.steps(args.faces) + smile_fraction_steps(args.pairs, args.others, method=args.smile_method, run=plan)
    with progress(total, desc="check_demo_model", unit="step") as bar:
        run = CheckRun(num_steps=args.steps, callback=lambda _: bar.update())
        t0 = time.perf_counter()
        scores = projection_psnr(G, loss, count=args.faces, run=run) if args.faces else []
        t1 = time.perf_counter()
        smile = smile_fraction(G, loss, num_pairs=args.pairs, num_faces=args.others, method=args.smile_method, run=run)
        t2 = time.perf_counter()
    out: dict = {}
    bars = {}
    if scores:
        median = statistics.median(scores)
        out |= {
            "psnr_median_db": round(median, 2),
            "psnr_min_db": round(min(scores), 2),
            "psnr_max_db": round(max(scores), 2),
            "psnr_seconds": round(t1 - t0, 1),
        }
        bars["psnr_median_ge_28"] = median >= 28
    out |= {
        "smile_fraction_mean": round(smile.mean, 3),
        "smile_fraction_min": round(min(smile.fractions), 3),
        "smile_mouth_change_mean": round(statistics.mean(smile.mouth_change), 2),
        "smile_seconds": round(t2 - t1, 1),
        "smile_pairs": args.pairs,
        "smile_method": args.smile_method,
        "smile_pair_psnr_median_db": round(statistics.median(smile.pair_psnr), 2),
        "steps": args.steps,
    }
    bars["smile_fraction_ge_0.7"] = smile.mean >= 0.7
    out["bars"] = bars
    if args.save_direction:
        meta = {
            "name": "smile",
            "method": "shared offset of jointly projected pairs"
            if args.smile_method == "shared"
            else "mean difference of independent projections",
            "num_pairs": args.pairs,
            "pairs": f"wplus.data.faces seeds {HELD_OUT_SEED_BASE + 1000}-{HELD_OUT_SEED_BASE + 999 + args.pairs}, "
            "smile=0.0 (before) and smile=1.0 (after)",
            "steps": args.steps,
            "delta_lr": DELTA_LR if args.smile_method == "shared" else None,
            "layers": None,
            "model_sha256": sha256_file(model),
            "mouth_box_fraction": out["smile_fraction_mean"],
            "mouth_box_fraction_faces": args.others,
            "made_by": "benchmarks/check_demo_model.py --save-direction (docs/demo-model.md)",
        }
        out["direction"] = str(save_direction(args.save_direction, smile.direction, metadata=meta))
    if args.sheet:
        tiles = [tensor_to_pil(img) for img in torch.cat([smile.before, smile.after])]
        save_image(image_grid(tiles, cols=args.others, pad=2), args.sheet)
    print(json.dumps(out, indent=2))
    return 0 if all(out["bars"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
