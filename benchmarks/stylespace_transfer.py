"""Part transfer in S on the shipped model (wplus style transfer): how clean and how strong it is.

PYTHONPATH=src python benchmarks/stylespace_transfer.py [--pairs 25] [--tune 5] [--json]

Targets and references are held-out generator samples (seeds from 100,000 up, never the catalogue's samples, which
come from RandomState(0)), rendered with the generator's const noise. For each part (mouth, eyes) and setting:

* ``psnr_outside``: PSNR (dB, images in [-1, 1]) of the result against the target's own render outside the part's
  box dilated by 2 px (the box of that part over 200 held-out drawn faces, ``face_part_mask``; eyes = both);
* ``mse_ratio``: inside the (undilated) box, MSE(result, reference) / MSE(target, reference): 1 = unchanged,
  0 = the reference's pixels;
* ``probe_moved``: how far the attribute probe's score (smile for the mouth, eye_size for the eyes) of the result
  moved from the target's towards the reference's, as a fraction of the way (least squares over the pairs:
  Σ(result − target)(reference − target) / Σ(reference − target)²; 0 = not at all, 1 = all the way);
* ``channels``: channels taken; ``seconds``: per transfer (selection + mixing, without the render).

:func:`measure` is what the lead calls; :func:`tune` sweeps the settings on the first ``--tune`` pairs and
:func:`main` reports the chosen ones on the remaining pairs.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import torch
import torch.nn.functional as F

from wplus.edits.measure import face_part_mask
from wplus.models.attribute_probe import load_probe
from wplus.seeds import ws_from_seed
from wplus.stylespace import render_styles, to_styles
from wplus.stylespace.parts import PartCatalogue, cached_catalogue, transfer_part

PROBE_ATTR = {"mouth": "smile", "eyes": "eye_size"}


def part_box(part: str, size: int, dilate: int = 0) -> torch.Tensor:
    names = ["left_eye", "right_eye"] if part == "eyes" else [part]
    m = torch.stack([face_part_mask(n, size=size) for n in names]).amax(0)
    if dilate:
        m = F.max_pool2d(m[None, None], 2 * dilate + 1, stride=1, padding=dilate)[0, 0]
    return m


@torch.no_grad()
def held_out_pairs(
    G: torch.nn.Module, n: int, first: int = 100_000, *, attribute: str | None = None, probe: Any = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """n (target, reference) W+ pairs from seeds first.. first+2n-1. With ``attribute``, the 2n samples are sorted by
    the probe's score and the i-th lowest is paired with the i-th highest (every pair differs in that attribute;
    alternate pairs swap roles so that targets are not all the low ones)."""
    ws = [ws_from_seed(G, first + i)[1] for i in range(2 * n)]
    if attribute is None:
        return [(ws[2 * i], ws[2 * i + 1]) for i in range(n)]
    probe = probe or load_probe()
    score = probe.predict(G.synthesis(torch.cat(ws), noise_mode="const").float())[attribute]
    order = score.argsort().tolist()
    lo, hi = order[:n], order[n:][::-1]
    return [(ws[a], ws[b]) if i % 2 == 0 else (ws[b], ws[a]) for i, (a, b) in enumerate(zip(lo, hi, strict=True))]


@torch.no_grad()
def measure(
    G: torch.nn.Module,
    cat: PartCatalogue | None,
    pairs: list[tuple[torch.Tensor, torch.Tensor]],
    part: str,
    *,
    probe: Any = None,
    effects: Any = None,
    min_share: float | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Transfer ``part`` from each pair's reference to its target; the figures described in the module docstring.
    Channels by the catalogue's contribution (``settings``: form, rho, eps), or with ``effects`` and ``min_share``
    by where their measured effect falls (``transfer --select effect``)."""
    from wplus.stylespace import Styles
    from wplus.stylespace.parts import effect_selection, mix_selected

    probe = probe or load_probe()
    size = G.img_resolution
    inside, outside = part_box(part, size) > 0, part_box(part, size, 2) == 0
    tgt = to_styles(G, torch.cat([t for t, _ in pairs]))
    ref = to_styles(G, torch.cat([r for _, r in pairs]))
    t0 = time.perf_counter()
    out, sel = [], None
    if effects is not None:
        sel = effect_selection(G, effects, part_box(part, size), min_share=float(min_share or 0.4))
        out = [mix_selected(tgt.select(i), ref.select(i), sel.mask) for i in range(len(pairs))]
        settings = {"select": "effect", "min_share": min_share}
    else:
        assert cat is not None
        for i in range(len(pairs)):
            s, sel = transfer_part(G, tgt.select(i), ref.select(i), cat, part, **settings)
            out.append(s)
    seconds = (time.perf_counter() - t0) / len(pairs)
    res = Styles.cat(out)
    it, ir, io = render_styles(G, tgt), render_styles(G, ref), render_styles(G, res)
    d_out = (io - it).square().mean(1)[:, outside].mean(1)
    psnr = (10 * torch.log10(4 / d_out.clamp_min(1e-12))).tolist()
    ratio = ((io - ir).square().mean(1)[:, inside].mean(1) / (it - ir).square().mean(1)[:, inside].mean(1)).tolist()
    attr = PROBE_ATTR.get(part)
    moved = math.nan
    if attr:
        pt, pr, po = (probe.predict(x.float())[attr].double() for x in (it, ir, io))
        gap = pr - pt
        moved = float(((po - pt) * gap).sum() / gap.square().sum())
    assert sel is not None
    med = lambda v: float(torch.tensor(v).median()) if v else math.nan  # noqa: E731
    return {
        "part": part,
        "pairs": len(pairs),
        "settings": settings,
        "channels": sel.count,
        "channels_per_layer": {k: len(v) for k, v in sel.per_layer().items()},
        "psnr_outside_mean": sum(psnr) / len(psnr),
        "psnr_outside_min": min(psnr),
        "pairs_psnr_ge_35": sum(p >= 35 for p in psnr),
        "mse_ratio_median": med(ratio),
        "probe_attribute": attr,
        "probe_moved": moved,
        "seconds_per_transfer": seconds,
    }


GRID = [{"form": "fraction", "rho": r, "eps": math.inf} for r in (0.05, 0.1, 0.2, 0.3, 0.5)] + [
    {"form": "ris", "rho": r, "eps": math.inf} for r in (0.5, 0.8, 0.9, 0.95)
]


def tune(G: torch.nn.Module, cat: PartCatalogue, pairs: list, part: str, grid: list | None = None) -> list[dict]:
    return [measure(G, cat, pairs, part, **g) for g in grid or GRID]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=25)
    ap.add_argument("--tune", type=int, default=5)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--layer", default="synthesis.b32.conv1")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from wplus.loading import load_generator_info

    info = load_generator_info("cartoon-faces-64", device=torch.device("cpu"))
    G = info.G
    t0 = time.perf_counter()
    cat, hit = cached_catalogue(G, model_sha256=info.sha256, k=args.k, layer=args.layer, samples=args.samples,
                                name_parts=True)  # fmt: skip
    build = time.perf_counter() - t0
    report: dict[str, Any] = {"catalogue": {"k": cat.k, "layer": cat.layer, "samples": cat.samples,
                                            "names": cat.names, "seconds": build, "cached": hit}}  # fmt: skip
    probe = load_probe()
    from wplus.stylespace.locate import sample_effects

    effects, _ = sample_effects(G, model_sha256=info.sha256)  # cached by `wplus style locate` (minutes when not)

    def show(tag: str, r: dict) -> None:
        how = (f"effect   share {r['settings']['min_share']:<4}" if r["settings"].get("select") == "effect"
               else f"{r['settings']['form']:<8} rho {r['settings']['rho']:<5}")  # fmt: skip
        print(f"{tag} {r['part']:<5} {how} ch {r['channels']:>4} "
              f"psnr {r['psnr_outside_mean']:.1f} (min {r['psnr_outside_min']:.1f}, {r['pairs_psnr_ge_35']}/"
              f"{r['pairs']} >= 35) ratio {r['mse_ratio_median']:.2f} moved {r['probe_moved']:.2f} "
              f"{r['seconds_per_transfer'] * 1e3:.1f} ms")  # fmt: skip

    for part in ("mouth", "eyes"):
        pairs = held_out_pairs(G, args.tune + args.pairs, attribute=PROBE_ATTR[part], probe=probe)
        tuning, held = pairs[: args.tune], pairs[args.tune :]
        rows = tune(G, cat, tuning, part)
        report[f"tune_{part}"] = rows
        for r in rows:
            show("tune", r)
        for form in ("fraction", "ris"):  # per form: the largest movement with a mean PSNR outside >= 35 dB
            ok = [r for r in rows if r["settings"]["form"] == form and r["psnr_outside_mean"] >= 35]
            if ok and held:
                best = max(ok, key=lambda r: r["probe_moved"])
                r = measure(G, cat, held, part, probe=probe, **best["settings"])
                report[f"held_{part}_{form}"] = r
                show("held", r)
        if held:  # channels by measured effect (transfer --select effect), at a few shares
            for share in (0.35, 0.4, 0.5):
                r = measure(G, None, held, part, probe=probe, effects=effects, min_share=share)
                report[f"held_{part}_effect_{share}"] = r
                show("held", r)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
