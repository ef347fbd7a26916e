"""How the attribute probe reads the shipped generator's samples (docs/attribute-probe.md); prints two tables.

PYTHONPATH=src python benchmarks/probe_on_generator.py [--samples 300] [--probe P.safetensors] [--json]

G's samples have no ground truth, so the check is one of consistency: (1) the distribution of each predicted
attribute over random samples next to the distribution the faces were drawn from (a generator that learnt its data
should reproduce it, and a probe that reads G's renders correctly should see it), with the share of confident
class predictions; (2) the shipped smile direction added to the same samples: how far each attribute moves, in
units of its spread over the samples (one row of a leakage matrix: smile should move most).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from wplus.edits.directions import apply_direction, load_direction
from wplus.io.checkpoint import load_native_generator
from wplus.models.attribute_probe import flat_scores, load_probe
from wplus.seeds import ws_from_seed
from wplus.shipped import shipped_generator_path, shipped_smile_direction_path

# What sample_attributes draws from (wplus.data.faces): uniform ranges and class shares.
DRAWN = {
    "smile": "U(-1, 1): mean 0, std 0.577",
    "jaw": "U(0, 1): mean 0.5, std 0.289",
    "brow_tilt": "U(-0.35, 0.35): mean 0, std 0.202",
    "eye_size": "U(0.035, 0.06): mean 0.0475, std 0.0072",
    "head_width": "U(0.27, 0.35): mean 0.31, std 0.023",
    "glasses": "25 % with glasses",
    "hair_style": "25 % each of bald, short, long, fringe",
}


@torch.no_grad()
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=300, help="generator seeds 0..N-1 (truncation 1)")
    ap.add_argument("--probe", default=None, help="probe file (default: the shipped one)")
    ap.add_argument("--strength", type=float, default=1.0, help="strength of the shipped smile direction")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    G = load_native_generator(shipped_generator_path())
    probe = load_probe(args.probe)
    direction = load_direction(shipped_smile_direction_path(), G)
    base, edited = [], []
    for seed in range(args.samples):
        _, ws = ws_from_seed(G, seed)
        pair = apply_direction(ws, direction, [0.0, args.strength])
        imgs = G.synthesis(pair, noise_mode="const")
        base.append(imgs[:1])
        edited.append(imgs[1:])
    pred = probe.predict(torch.cat(base))
    pred_e = probe.predict(torch.cat(edited))
    cols, cols_e = flat_scores(pred), flat_scores(pred_e)

    result: dict = {"samples": args.samples, "distribution": {}, "smile_direction": {}}
    for name in ("smile", "jaw", "brow_tilt", "eye_size", "head_width"):
        v = cols[name]
        result["distribution"][name] = {"mean": float(v.mean()), "std": float(v.std()), "drawn": DRAWN[name]}
    g = pred["glasses"]
    result["distribution"]["glasses"] = {
        "share": float((g > 0.5).float().mean()),
        "confident": float(((g < 0.1) | (g > 0.9)).float().mean()),
        "drawn": DRAWN["glasses"],
    }
    probs = pred["hair_style_probs"]
    result["distribution"]["hair_style"] = {
        "shares": [float((pred["hair_style"] == k).float().mean()) for k in range(4)],
        "confident": float((probs.max(1).values > 0.9).float().mean()),
        "drawn": DRAWN["hair_style"],
    }
    for name, v in cols.items():
        if name.startswith("hair_style"):
            continue
        spread = float(v.float().std()) or 1.0
        delta = cols_e[name].float() - v.float()
        mean = float(delta.mean())
        result["smile_direction"][name] = {"mean_delta": mean, "in_spreads": mean / spread}
    flips = (pred["hair_style"] != pred_e["hair_style"]).float().mean()
    result["smile_direction"]["hair_style_changed"] = float(flips)

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"probe on {args.samples} samples of the shipped generator (seeds 0..{args.samples - 1}, truncation 1)")
    for name, d in result["distribution"].items():
        figures = {k: v for k, v in d.items() if k != "drawn"}
        text = ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items())
        print(f"  {name:<11} {text:<52} drawn: {d['drawn']}")
    print(f"shipped smile direction, strength {args.strength}: mean change per attribute (and in sample spreads)")
    rows = sorted(
        ((k, v) for k, v in result["smile_direction"].items() if isinstance(v, dict)),
        key=lambda kv: -abs(kv[1]["in_spreads"]),
    )
    for name, d in rows:
        print(f"  {name:<15} {d['mean_delta']:+.4f}  ({d['in_spreads']:+.2f} spreads)")
    print(f"  hair_style changed on {result['smile_direction']['hair_style_changed']:.1%} of the samples")
    return 0


def _fmt(v: object) -> str:
    if isinstance(v, list):
        return "/".join(f"{x:.0%}" for x in v)
    return f"{v:.3g}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    sys.exit(main())
