"""StyleSpace localisation and attribute channels on the shipped model (cartoon-faces-64), on the CPU.

Parts (``--parts``, comma-separated):
- ``agree``: finite differences against the exact Jacobian column (forward-mode AD, the directional derivative
  along the channel's unit vector) for ``--agree-channels`` channels spread over the conv layers on 4 samples:
  per channel the Pearson correlation of the StyleSpace maps (mean |·| over RGB pooled to 32×32, all images), the
  mouth-box share of the squared change, and over the channels the Spearman correlation of those shares and the
  top-5 overlap; for central differences at k ∈ {0.5, 1, 2, 5} σ and a forward difference at 1 σ.
- ``time``: seconds of ``sample_effects`` over every conv channel (N samples, forward differences at k σ, the
  defaults), no cache; also the process's CPU seconds (over 2 threads: the wall time on 2 idle cores).
- ``heldout``: for mouth / left_eye / right_eye the top channel by the share rule and by StyleSpace's vote, edited
  by ±k·σ and ±5σ on ``--heldout`` other samples (seeds 1,000,000 on): share of the squared pixel change inside
  the box; the shipped W+ smile direction (strength ±1) on the same samples for comparison.
- ``find``: positives = the 10 most-smiling of ``--probe-samples`` samples by the attribute probe; the top 10
  channels of ``find_channels`` and each one's share of its edit inside the mouth box.

Usage: python benchmarks/stylespace_locate.py [--parts agree,time,heldout,find] [--samples 8] [--json-out F.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

from wplus.edits.measure import face_part_mask
from wplus.loading import load_generator
from wplus.stylespace import Styles, render_styles, sample_styles, style_layers, style_stats
from wplus.stylespace.locate import _Renderer, channel_effects, locate_region, sample_effects

MODEL = "cartoon-faces-64"
PARTS = ("mouth", "left_eye", "right_eye")
HELDOUT_SEED = 1_000_000


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def agreement(G, stats, mask, n_channels: int) -> dict:
    layers = style_layers(G)
    conv = [x for x in layers if x.modulates]
    rng = np.random.RandomState(0)
    chans = [(x, int(c)) for x in conv for c in rng.choice(x.channels, max(1, n_channels // len(conv)), False)]
    styles = sample_styles(G, 4, seed=123)
    # exact: forward-mode AD through the renderer (weights made differentiable so the plain ops run)
    G.requires_grad_(True)
    r = _Renderer(G, styles)
    pos = {x.name: i for i, x in enumerate(layers)}
    jmaps, jenergy = [], []
    t0 = time.perf_counter()
    for layer, c in chans:
        base = styles[layer.name].clone()
        tangent = torch.zeros_like(base)
        tangent[:, c] = float(stats.std[layer.name][0, c])  # per σ, like the differences
        with fwAD.dual_level():
            out = r.render_moved(pos[layer.name], fwAD.make_dual(base, tangent))
            jac = fwAD.unpack_dual(out).tangent.detach()
        jmaps.append(torch.nn.functional.avg_pool2d(jac, 2).abs().mean(1))
        e = jac.square().sum(1)
        jenergy.append(float((e * mask).sum() / e.sum()))
    t_jac = time.perf_counter() - t0
    G.requires_grad_(False)
    jmaps_t, jshare = torch.stack(jmaps), torch.tensor(jenergy)
    top5 = set(jshare.argsort(descending=True)[:5].tolist())
    out = {"channels": len(chans), "samples": 4, "jacobian_seconds": t_jac, "settings": {}}
    print(f"agreement on {len(chans)} conv channels x 4 samples (Jacobian: {t_jac:.1f} s)", flush=True)
    for mode, k in (("central", 0.5), ("central", 1.0), ("central", 2.0), ("central", 5.0), ("forward", 1.0)):
        t0 = time.perf_counter()
        eff = channel_effects(G, styles, stats, k=k, channels=chans, mode=mode)
        sec = time.perf_counter() - t0
        f = eff.maps.float().reshape(len(chans), -1) / k
        jf = jmaps_t.reshape(len(chans), -1)
        corr = torch.tensor([float(torch.corrcoef(torch.stack([a, b]))[0, 1]) for a, b in zip(f, jf, strict=True)])
        share = (eff.energy * mask_p(mask)).sum((1, 2)) / eff.energy.sum((1, 2))
        ftop5 = set(share.argsort(descending=True)[:5].tolist())
        row = {"seconds": sec, "map_corr_median": float(corr.median()), "map_corr_min": float(corr.min()),
               "share_abs_diff_median": float((share - jshare).abs().median()),
               "share_abs_diff_max": float((share - jshare).abs().max()),
               "share_spearman": spearman(share, jshare), "top5_overlap": len(top5 & ftop5)}  # fmt: skip
        out["settings"][f"{mode} k={k:g}"] = row
        print(f"  {mode:7s} k={k:<4g} map corr median {row['map_corr_median']:.4f} min {row['map_corr_min']:.4f}; "
              f"mouth share |diff| median {row['share_abs_diff_median']:.4f} max {row['share_abs_diff_max']:.4f}; "
              f"share Spearman {row['share_spearman']:.4f}; top-5 overlap {row['top5_overlap']}/5 ({sec:.1f} s)",
              flush=True)  # fmt: skip
    return out


def mask_p(mask: torch.Tensor, size: int = 32) -> torch.Tensor:
    return torch.nn.functional.adaptive_avg_pool2d(mask[None, None], size)[0, 0]


@torch.no_grad()
def edit_share(G, styles: Styles, stats, name: str, alpha: float, mask: torch.Tensor) -> float:
    """Share of the squared pixel change inside ``mask`` when channel ``name`` (L_C) moves by ±alpha·σ."""
    layers = style_layers(G)
    li, c = (int(x) for x in name.split("_"))
    layer = layers[li]
    base = render_styles(G, styles)
    inside = total = 0.0
    for sgn in (-1, 1):
        moved = styles.with_channel(layer.name, c, sgn * alpha * float(stats.std[layer.name][0, c]))
        sq = (render_styles(G, moved) - base).square().sum(1)
        inside += float((sq * mask).sum())
        total += float(sq.sum())
    return inside / total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="agree,time,heldout,find")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--k", type=float, default=1.0)
    ap.add_argument("--agree-channels", type=int, default=72)
    ap.add_argument("--heldout", type=int, default=32)
    ap.add_argument("--probe-samples", type=int, default=1000)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    parts = args.parts.split(",")
    torch.set_num_threads(int(os.environ.get("WPLUS_THREADS", "2")))
    from wplus.loading import file_sha256
    from wplus.shipped import shipped_generator_path

    G = load_generator(MODEL)
    sha = file_sha256(shipped_generator_path())
    stats = style_stats(G, model_sha256=sha)
    masks = {p: face_part_mask(p, size=G.img_resolution) for p in PARTS}
    report: dict = {"model": MODEL, "threads": torch.get_num_threads(), "load_avg_start": os.getloadavg()}
    for p, m in masks.items():
        report.setdefault("box_area", {})[p] = float(m.mean())
    if "agree" in parts:
        report["agreement"] = agreement(G, stats, masks["mouth"], args.agree_channels)
    eff = None
    if "time" in parts:
        t0 = time.perf_counter()
        last = [0.0]

        def cb(done: int, total: int) -> None:
            if time.perf_counter() - last[0] > 30:
                last[0] = time.perf_counter()
                print(f"  {done}/{total} channels, {last[0] - t0:.0f} s", flush=True)

        from wplus.stylespace.locate import effects_cache_path

        cached = effects_cache_path(sha, samples=args.samples, seed=0, k=args.k, size=32, channels="modulating-forward")
        cached.unlink(missing_ok=True)  # timed without the cache, then cached for `wplus style locate`
        cpu0 = time.process_time()
        eff, _ = sample_effects(G, samples=args.samples, k=args.k, stats=stats, model_sha256=sha, callback=cb)
        sec = time.perf_counter() - t0
        report["locate_seconds"] = sec
        report["locate_cpu_seconds"] = time.process_time() - cpu0  # / threads: the wall time on idle cores
        print(f"  CPU time {report['locate_cpu_seconds']:.0f} s over {torch.get_num_threads()} threads", flush=True)
        report["locate_channels"] = len(eff)
        print(f"effects of all {len(eff)} conv channels, N={args.samples}, k={args.k}: {sec:.0f} s "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
        t0 = time.perf_counter()
        locate_region(eff, masks["mouth"], others={p: masks[p] for p in PARTS[1:]})
        report["rank_seconds"] = time.perf_counter() - t0
        print(f"ranking for one region: {report['rank_seconds']:.2f} s", flush=True)
    if "heldout" in parts:
        if eff is None:
            eff, _ = sample_effects(G, samples=args.samples, k=args.k, stats=stats, model_sha256=sha)
        held = sample_styles(G, args.heldout, seed=HELDOUT_SEED)
        report["heldout"] = {}
        for p in PARTS:
            others = {q: masks[q] for q in PARTS if q != p}
            by_share = locate_region(eff, masks[p], others=others)
            by_vote = locate_region(eff, masks[p], others=others, rank_by="stylespace")
            rows = {}
            for label, ranking in (("share", by_share), ("stylespace", by_vote)):
                for top in ranking[:2]:
                    key = f"{label}#{top.rank} {top.name}"
                    rows[key] = {"located_share": top.share, "score": top.score, "localised": top.localised,
                                 **{f"heldout_share_{a:g}sigma": edit_share(G, held, stats, top.name, a, masks[p])
                                    for a in (args.k, 5.0)}}  # fmt: skip
                    r = rows[key]
                    print(f"  {p:9s} {key:22s} located share {r['located_share']:.3f} vote {r['score']:.2f} "
                          f"localised {r['localised']!s:5s} held-out share ±{args.k:g}σ "
                          f"{r[f'heldout_share_{args.k:g}sigma']:.3f}  ±5σ {r['heldout_share_5sigma']:.3f}",
                          flush=True)  # fmt: skip
            n_loc = sum(x.localised for x in by_share)
            rows["_localised_channels"] = n_loc
            print(f"  {p}: {n_loc} channels localised by StyleSpace's rule", flush=True)
            report["heldout"][p] = rows
        from wplus.edits.directions import load_direction
        from wplus.edits.measure import attribute_response
        from wplus.shipped import shipped_smile_direction_path

        d = load_direction(shipped_smile_direction_path(), G)
        ws = torch.from_numpy(np.stack([np.random.RandomState(HELDOUT_SEED + i).randn(G.z_dim)
                                        for i in range(args.heldout)]).astype(np.float32))  # fmt: skip
        with torch.no_grad():
            w = G.mapping(ws, None)
        resp = attribute_response(G, d, lambda x: {"mean": x.mean((1, 2, 3))}, w, [-1.0, 1.0], mask=masks["mouth"])
        report["wplus_smile_heldout_share"] = float(resp.mask_share.mean())
        print(f"  W+ smile direction (shipped), strength ±1, same samples: mouth-box share "
              f"{report['wplus_smile_heldout_share']:.3f}", flush=True)  # fmt: skip
    if "find" in parts:
        from wplus.models.attribute_probe import load_probe
        from wplus.stylespace.find import find_channels

        probe = load_probe(None)
        styles = sample_styles(G, args.probe_samples, seed=2_000_000)
        smiles = []
        with torch.no_grad():
            for i in range(0, styles.batch, 100):
                smiles.append(probe.predict(render_styles(G, styles.select(slice(i, i + 100))))["smile"].float())
        smile = torch.cat(smiles).reshape(-1)
        top = smile.argsort(descending=True)[:10]
        rows = find_channels(styles.select(top), stats, top=10)
        held = sample_styles(G, 16, seed=HELDOUT_SEED)
        out = []
        for r in rows:
            sh = edit_share(G, held, stats, r.name, 5.0, masks["mouth"])
            out.append({"name": r.name, "relevance": r.relevance, "mean_z": r.mean_z, "mouth_share_5sigma": sh})
            print(f"  find smile: {r.name:7s} relevance {r.relevance:.2f} mean z {r.mean_z:+.2f} "
                  f"mouth-box share of a ±5σ edit {sh:.3f}", flush=True)  # fmt: skip
        report["find_smile"] = {"positives_smile": [float(smile[i]) for i in top], "channels": out}
    report["load_avg_end"] = os.getloadavg()
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
