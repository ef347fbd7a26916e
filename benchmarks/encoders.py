"""Encoders on the shipped model: one pass against optimisation, and the encoder as a start for `fast`.

Targets: held-out faces of the built-in cartoon-face dataset (seeds from ``HELD_OUT_SEED_BASE + 1000``, the faces
``benchmarks/time_to_quality.py`` uses) plus scikit-image's astronaut (out of domain) when scikit-image is there.
Every projection uses the offline loss of the time-to-quality benchmark (the shipped discriminator's features + MSE).

Measures:
1. encoder alone: median / min PSNR and SSIM of ``G(encoder(x))``; milliseconds per image (batch of 1, and
   per image in a batch of 64) on this machine's CPU with the threads it was given.
2. time to quality: median face PSNR against seconds for ``fast`` from w_avg and from the encoder's code (the
   encoder's pass counted in the seconds); seconds to the paper recipe's 5000-step median (``--goal``, default
   32.55 - 0.2 dB, docs/time_to_quality.md) and the ratio to that recipe's 852.7 s.
3. editability: the shipped smile direction applied at strength +-1 to the encoder's codes and to the `fast`
   codes: the share of the squared pixel change inside the mouth box (``face_part_mask``), the smile moved per unit
   strength, and the codes' distance from w_avg.
4. with ``--training RUN/metrics.json ...``: the training curve (held-out PSNR against steps), phases in order.

Usage: python benchmarks/encoders.py [--encoder FILE] [--faces 8] [--steps 600] [--figures docs/] [--json OUT]
       [--training RUN1/metrics.json RUN2/metrics.json] [--quick]
``--quick``: 4 faces, 150 steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from wplus.edits.directions import load_direction
from wplus.edits.measure import attribute_response, face_part_mask
from wplus.encoders import load_encoder, shipped_encoder_path
from wplus.losses import DiscriminatorFeatures
from wplus.metrics import psnr, ssim
from wplus.models.attribute_probe import load_probe
from wplus.progress import progress
from wplus.projection import project, resolve_settings
from wplus.shipped import (
    SHIPPED_MODEL,
    load_shipped_discriminator,
    load_shipped_generator,
    shipped_smile_direction_path,
)
from wplus.train.quality import held_out_faces

PAPER_SECONDS = 852.7  # docs/time_to_quality.md: the paper recipe's 5000 steps on the 2-core CPU
PAPER_MEDIAN = 32.55


def astronaut(resolution: int) -> torch.Tensor | None:
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        return None
    from wplus.io.images import center_crop_resize, pil_to_tensor

    return pil_to_tensor(center_crop_resize(Image.fromarray(data.astronaut()), resolution))


def encoder_alone(G, enc, faces: torch.Tensor, extra: torch.Tensor | None) -> dict:
    with torch.no_grad():
        ws = enc.encode(faces)
        recon = G.synthesis(ws, noise_mode="const")
        p, s = psnr(recon, faces).tolist(), ssim(recon, faces).tolist()
        one = faces[:1]
        enc.encode(one)  # warm-up
        t0 = time.perf_counter()
        for _ in range(20):
            enc.encode(one)
        ms_one = (time.perf_counter() - t0) / 20 * 1000
        batch = held_out_faces(2000, 64, G.img_resolution)
        t0 = time.perf_counter()
        enc.encode(batch)
        ms_batch = (time.perf_counter() - t0) / 64 * 1000
        t0 = time.perf_counter()
        G.synthesis(enc.encode(one), noise_mode="const")
        ms_render = (time.perf_counter() - t0) * 1000
        out = {
            "faces": len(faces),
            "median_psnr": round(statistics.median(p), 2),
            "min_psnr": round(min(p), 2),
            "median_ssim": round(statistics.median(s), 3),
            "ms_per_image": round(ms_one, 1),
            "ms_per_image_batch64": round(ms_batch, 2),
            "ms_encode_and_render": round(ms_render, 1),
            "median_w_dist": round(float((ws - G.mapping.w_avg).flatten(1).norm(dim=1).median()), 2),
        }
        if extra is not None:
            out["astronaut_psnr"] = round(float(psnr(G.synthesis(enc.encode(extra), noise_mode="const"), extra)), 2)
    return out, ws


def run_fast(G, loss, targets, steps: int, init: str, enc) -> dict:
    s = resolve_settings("fast", num_steps=steps, init=init).with_discriminator_features()
    with progress(steps, desc=f"  fast from {init}", unit="step") as bar:
        t0 = time.perf_counter()
        r = project(G, targets, loss=loss, settings=s, encoder=enc, callback=lambda st: bar.update(1))
        seconds = time.perf_counter() - t0
    return {"result": r, "seconds": seconds}


def smile_response(G, codes: torch.Tensor, probe, direction, mask) -> dict:
    r = attribute_response(G, direction, probe, codes, [-1.0, 1.0], mask=mask)
    i = r.names.index("smile")
    return {
        "mouth_box_share": round(float(r.mask_share.mean()), 3),
        "smile_per_strength": round(float((r.delta[1, i] - r.delta[0, i]) / 2), 3),
        "image_rms_per_strength": round(float(r.image_change.mean()), 3),
    }


def figures(folder: Path, curves: dict, training: list[dict], boundaries: list[int], goal: float) -> list[Path]:
    from wplus.io.plot import pyplot

    plt = pyplot("the benchmark's figures")

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=name)
    ax.axhline(goal, color="grey", ls="--", lw=0.8, label=f"goal {goal:.2f} dB (paper 5000 steps - 0.2)")
    ax.set_xlabel("seconds (this machine)")
    ax.set_ylabel("median face PSNR (dB)")
    ax.set_title("fast: from w_avg and from the encoder")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(folder / "encoders_time_to_quality.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    if training:
        ev = training
        fig, ax = plt.subplots(figsize=(6, 3.6))
        steps = [e["step"] for e in ev]
        if "real_psnr" in ev[0]:
            ax.plot(steps, [e["real_psnr"] for e in ev], marker="o", label="held-out drawn faces")
        ax.plot(steps, [e["val_psnr"] for e in ev], marker="s", label="generator samples (validation)")
        ax.axhline(26.0, color="grey", ls="--", lw=0.8, label="target 26 dB")
        for b in boundaries:
            ax.axvline(b, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("training step (dotted: next phase)")
        ax.set_ylabel("median PSNR of G(E(x)) (dB)")
        ax.set_title("encoder training on 2 shared CPU cores")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(folder / "encoder_training.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", type=Path, default=None, help="encoder file (default: the shipped one)")
    ap.add_argument("--faces", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="fast's steps (default 600; --quick 150)")
    ap.add_argument("--goal", type=float, default=PAPER_MEDIAN - 0.2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-projection", action="store_true", help="encoder-only figures and editability of E(x)")
    ap.add_argument("--training", type=Path, nargs="*", default=[], help="runs' metrics.json (phases, in order)")
    ap.add_argument("--figures", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    n = args.faces or (4 if args.quick else 8)
    steps = args.steps or (150 if args.quick else 600)
    G = load_shipped_generator()
    enc = load_encoder(args.encoder or shipped_encoder_path(SHIPPED_MODEL))
    faces = held_out_faces(1000, n, G.img_resolution)
    extra = astronaut(G.img_resolution)
    report: dict = {"faces": n, "threads": torch.get_num_threads(), "encoder": str(args.encoder or "shipped")}

    alone, enc_ws = encoder_alone(G, enc, faces, extra)
    report["encoder_alone"] = alone
    print(f"encoder alone on {n} held-out faces: {json.dumps(alone)}", flush=True)

    curves, fast_ws = {}, None
    if not args.skip_projection:
        loss = DiscriminatorFeatures(load_shipped_discriminator())
        targets = faces if extra is None else torch.cat([faces, extra])
        report["fast"] = {}
        for init in ("mean", "encoder"):
            out = run_fast(G, loss, targets, steps, init, enc)
            r = out["result"]
            med = r.history["psnr"][:, :n].quantile(0.5, dim=1)
            secs = r.step_seconds.tolist()
            reached = next((secs[i] for i, v in enumerate(med.tolist()) if v >= args.goal), None)
            final = [float(m["psnr"]) for m in r.metrics]
            name = "fast from w_avg" if init == "mean" else "fast from the encoder"
            at = {k: round(float(med[k - 1]), 2) for k in (10, 25, 50, 100, 150, 300, 600) if k <= len(med)}
            row = {
                "steps": steps,
                "seconds": round(out["seconds"], 1),
                "seconds_to_goal": None if reached is None else round(reached, 1),
                "step_to_goal": next((i + 1 for i, v in enumerate(med.tolist()) if v >= args.goal), None),
                "median_psnr": round(statistics.median(final[:n]), 2),
                "median_ssim": round(statistics.median(ssim(r.images[:n], faces).tolist()), 3),
                "astronaut_psnr": round(final[n], 2) if extra is not None else None,
                "median_psnr_at_step": at,
                "median_w_dist": round(statistics.median(m["w_dist_from_avg"] for m in r.metrics[:n]), 2),
            }
            report["fast"][name] = row
            curves[name] = (secs, med.tolist())
            print(f"{name}: {json.dumps(row)}", flush=True)
            if init == "mean":
                fast_ws = r.ws[:n]

    probe = load_probe()
    direction = load_direction(shipped_smile_direction_path(), G)
    mask = face_part_mask("mouth", size=G.img_resolution)
    report["smile_edit"] = {"mouth_box_area": round(float(mask.mean()), 3),
                            "encoder codes": smile_response(G, enc_ws, probe, direction, mask)}  # fmt: skip
    if fast_ws is not None:
        report["smile_edit"]["fast codes (from w_avg)"] = smile_response(G, fast_ws, probe, direction, mask)
    print(f"smile edit: {json.dumps(report['smile_edit'])}", flush=True)

    training, boundaries, offset = [], [], 0
    for path in args.training:  # phases: each run's steps continue the previous run's
        ev = json.loads(path.read_text()).get("evals", [])
        training += [{**e, "step": e["step"] + offset} for e in ev]
        offset = training[-1]["step"] if training else offset
        boundaries.append(offset)
    report["training"] = training
    if args.figures is not None:
        for p in figures(args.figures, curves, training, boundaries[:-1], args.goal):
            print(f"wrote {p}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
