"""Fit the shipped model's named attribute directions with the attribute probe and write them into wplus/assets.

    python benchmarks/fit_shipped_directions.py                      # 20 000 samples, ratio 0.02, conditioning auto
    python benchmarks/fit_shipped_directions.py --assets /tmp/try    # a dry run elsewhere (copies the index first)

Samples seeded codes of cartoon-faces-64, renders them, scores every attribute with the probe
(``wplus.models.attribute_probe``), fits one InterFaceGAN boundary per attribute and keeps it plain or conditioned on
the others, whichever the edit test finds more selective (:func:`wplus.edits.attribute_fit.fit_attribute_directions`).
Writes ``cartoon-faces-64-<name>.npz`` per attribute (our direction format; the metadata holds the accuracies,
counts, conditions and the edit test) and updates ``cartoon-faces-64-directions.json``. Directions made otherwise
(the smile from jointly projected pairs) are kept; a fitted one with the same name is written as ``<name>-fit``.
Not part of ``make bench``: it writes package files.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from wplus.edits.attribute_fit import AttributeScores, FittedDirection, Scorer, fit_attribute_directions, score_samples
from wplus.edits.directions import load_direction
from wplus.edits.discovery_io import save_boundary
from wplus.errors import WplusError
from wplus.loading import file_sha256
from wplus.shipped import (
    SHIPPED_MODEL,
    NamedDirection,
    named_directions,
    shipped_generator_path,
    write_named_directions,
)

MADE_BY = "benchmarks/fit_shipped_directions.py"
DESCRIPTIONS = {
    "smile": "smile (positive) or frown (negative), fitted to the probe's smile score",
    "glasses": "adds glasses (negative: removes them)",
    "jaw": "squarer jaw (negative: a more oval chin)",
    "eye_size": "larger eyes (negative: smaller)",
    "head_width": "a wider head (negative: narrower)",
    "hair_style-bald": "towards no hair",
    "hair_style-short": "towards short hair",
    "hair_style-long": "towards long hair",
    "hair_style-fringe": "towards a fringe",
}


# What the probe reads well enough to fit a direction to (docs/attribute-probe.md): the brows are not learnt (R²
# 0.12 / 0.03), the colours and pose are not edits people ask for. hair_style is fitted one class against the rest,
# from its probabilities.
PROBE_ATTRIBUTES = ("smile", "glasses", "jaw", "eye_size", "head_width", "hair_style")


def probe_scorer(device: torch.device) -> Scorer:
    """The attribute probe as a scorer of :data:`PROBE_ATTRIBUTES`."""
    from wplus.models import attribute_probe

    probe = attribute_probe.load_probe().to(device).eval()

    def scorer(images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            p = probe.predict(images)
        return {name: p["hair_style_probs"] if name == "hair_style" else p[name] for name in PROBE_ATTRIBUTES}

    return scorer


def _ours(d: NamedDirection) -> bool:
    try:
        return load_direction(d.path).metadata.get("made_by") == MADE_BY
    except WplusError:
        return False


def write_assets(
    folder: Path, fitted: Sequence[FittedDirection], samples: AttributeScores, *, model_sha256: str, scorer_name: str
) -> list[NamedDirection]:
    """Write one direction file per fitted direction into ``folder`` and update the index there.

    Entries made by other methods stay (a fitted direction with the same name becomes ``<name>-fit``); earlier
    entries of this script are replaced.
    """
    keep = [d for d in named_directions(SHIPPED_MODEL) if not _ours(d)]
    taken = {d.name for d in keep}
    entries = list(keep)
    for f in fitted:
        name = f"{f.name}-fit" if f.name in taken else f.name
        file = f"{SHIPPED_MODEL}-{name}.npz"
        meta = {**f.metadata(), "name": name, "attribute": f.name, "model_sha256": model_sha256, "made_by": MADE_BY,
                "scorer": scorer_name, "num_samples": len(samples.seeds), "seeds": f"0-{len(samples.seeds) - 1}",
                "truncation_psi": samples.truncation_psi}  # fmt: skip
        save_boundary(folder / file, f.boundary, metadata=meta)
        how = f"InterFaceGAN SVM on {len(samples.seeds)} samples scored by {scorer_name}, val acc " + (
            f"{f.boundary.val_accuracy:.3f}; " + (f"conditioned on {', '.join(f.conditions)}" if f.conditions
                                                  else "not conditioned"))  # fmt: skip
        strength = (-round(3 * f.sigma, 2), round(3 * f.sigma, 2))
        desc = DESCRIPTIONS.get(f.name, f"the {scorer_name}'s {f.name} score")
        entries.append(NamedDirection(SHIPPED_MODEL, name, file, desc, strength, how))
    write_named_directions(folder, SHIPPED_MODEL, entries)
    return entries


def fit_and_write(
    G: torch.nn.Module,
    scorer: Scorer,
    folder: Path,
    *,
    num: int,
    ratio: float,
    condition: str,
    model_sha256: str,
    scorer_name: str,
    truncation_psi: float = 1.0,
    eval_seeds: Sequence[int] = range(10_000_000, 10_000_128),
    attributes: Sequence[str] | None = None,
) -> list[NamedDirection]:
    """Score ``num`` seeded samples, fit every attribute, write the assets: what ``main`` does, with any scorer."""
    t0 = time.perf_counter()
    samples = score_samples(G, scorer, range(num), truncation_psi=truncation_psi)
    print(f"scored {num} samples ({', '.join(samples.scores)}) in {time.perf_counter() - t0:.1f} s", flush=True)
    fitted = fit_attribute_directions(G, scorer, samples, attributes=attributes, ratio=ratio, condition=condition,
                                      eval_seeds=eval_seeds)  # fmt: skip
    for f in fitted:
        print(f"{f.name:20s} val acc {f.boundary.val_accuracy:.3f}  sigma {f.sigma:.3f}  {f.choice}")
    return write_assets(folder, fitted, samples, model_sha256=model_sha256, scorer_name=scorer_name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=20_000, help="samples to score (seeds 0..num-1)")
    ap.add_argument("--ratio", type=float, default=0.02, help="share (<= 1) or count of samples per side of a fit")
    ap.add_argument("--condition", choices=["auto", "none", "all"], default="auto")
    ap.add_argument("--trunc", type=float, default=1.0, help="truncation psi of the samples")
    ap.add_argument("--assets", type=Path, default=None, help="folder to write (default: wplus/assets itself)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    from wplus.shipped import load_shipped_generator

    device = torch.device(args.device)
    scorer = probe_scorer(device)
    here = shipped_generator_path().parent
    folder = args.assets or here
    if folder != here:  # a dry run: start from the shipped index and files
        folder.mkdir(parents=True, exist_ok=True)
        for p in here.glob(f"{SHIPPED_MODEL}-*.npz"):
            shutil.copy2(p, folder / p.name)
        shutil.copy2(here / f"{SHIPPED_MODEL}-directions.json", folder / f"{SHIPPED_MODEL}-directions.json")
    G = load_shipped_generator(device=device)
    entries = fit_and_write(G, scorer, folder, num=args.num, ratio=args.ratio, condition=args.condition,
                            model_sha256=file_sha256(shipped_generator_path()), scorer_name="attribute probe",
                            truncation_psi=args.trunc)  # fmt: skip
    print(f"wrote {len(entries)} named directions to {folder} (wplus direction list {SHIPPED_MODEL})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
