"""Edit discovery on a CPU: how long SeFa, PCA and InterFaceGAN fitting take, whether --variant rosinality agrees
with rosinality's own computation, and what the directions found on the shipped model do (docs/editing.md).

Timing:
- SeFa on a random FFHQ-sized config-f StyleGAN2 (1024 px, 18 ws, 512-wide styles): target 1 s.
- ``--variant rosinality`` against a direct computation written from EDITING.md's account of
  ``closed_form_factorization.py`` (the ``g_ema`` keys with 'modulation' and 'weight' but not 'to_rgbs', stacked,
  ``torch.svd(W).V``), on the same generator written in rosinality's layout: |cos| of the top 10 (target >= 0.9999).
- PCA of 100 000 w of the shipped model (cartoon-faces-64): target 30 s.
- Sampling 20 000 seeded codes of the shipped model and fitting a boundary to planted scores (w·n + noise): target
  60 s for the fit; the cosine to the planted normal says whether it found it.

Measuring, with the attribute probe (wplus.models.attribute_probe) on the shipped model:
- (a) InterFaceGAN directions fitted here from the probe's scores of ``--fit-codes`` samples for smile, glasses,
  long hair (the probability of hair style 2), jaw, eye size and head width, plain and conditioned on the other
  five (project_out); their validation accuracy and leakage matrix: the probe's mean change of every attribute per
  unit strength, in spreads of that attribute over ``--eval-codes`` other samples (``--directions`` measures given
  direction files instead, named by file stem). Target: smile >= 95 % validation accuracy; the conditioned
  direction moves each conditioned attribute by at most half of what the plain one does per unit of its own change.
- (b) the top ``--components`` SeFa and PCA components: the attribute each moves most, and the runner-up.
- (c) the smile from SeFa and PCA (the component that moves the probe's smile most, with its sign), InterFaceGAN
  and the shipped jointly projected pairs: share of the squared pixel change inside the box holding every drawn
  face's mouth, and the probe's smile change per unit of RMS image change.
- (d) seconds of each method.
Strength 1 is one standard deviation of the sampled w along the direction (the shipped file: its own strength 1).

Usage: python benchmarks/edit_directions.py [--samples 100000] [--codes 20000] [--repeat 5] [--fit-codes 2000]
       [--eval-codes 100] [--directions DIR_OR_FILES ...] [--json-out F.json] [--figures docs/] [--no-timing]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wplus import directions as D
from wplus.formats import _testing as W
from wplus.loading import load_generator
from wplus.models.attribute_probe import flat_scores, load_probe
from wplus.models.stylegan2 import StyleGAN2Config, random_generator
from wplus.shipped import shipped_smile_direction_path


def timed(fn, repeat: int = 1):
    """(result of the last call, seconds of the first call, median seconds of the calls)."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, times[0], statistics.median(times)


def rosinality_direct(path: Path) -> torch.Tensor:
    """rosinality's computation as EDITING.md describes it, on the file itself: V [w_dim, w_dim], columns."""
    g_ema = torch.load(path, map_location="cpu", weights_only=True)["g_ema"]
    modulate = {k: v for k, v in g_ema.items() if "modulation" in k and "to_rgbs" not in k and "weight" in k}
    return torch.svd(torch.cat(list(modulate.values()), 0)).V


def timing(args: argparse.Namespace, cache: dict) -> None:
    """The speed figures of SeFa (config-f), the rosinality check, PCA and a boundary fit to planted scores."""
    start = time.perf_counter()
    G = random_generator(StyleGAN2Config(), w_avg_samples=100)  # config-f defaults: 1024 px, channel_base 32768
    print(f"random config-f generator: num_ws {G.num_ws}, built in {time.perf_counter() - start:.1f} s", flush=True)
    for variant in ("genforce", "rosinality"):
        r, first, median = timed(lambda v=variant: D.sefa(G, variant=v), args.repeat)
        channels = sum(a.weight.shape[0] for a in D.style_affines(G) if a.name in r.layer_names)
        print(f"SeFa {variant:10s}: {len(r.layer_names)} layers, {channels} channels -> {len(r.directions)} "
              f"directions; first call {first:.3f} s, median of {args.repeat} {median:.3f} s (target 1 s)",
              flush=True)  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        path = W.write_rosinality(G, Path(tmp) / "ffhq-f.pt", with_args=False)
        ours = D.sefa(load_generator(path), variant="rosinality", num=10).directions.double()
        ref = rosinality_direct(path)[:, :10].T.double()
    cos = (ours * ref).sum(1).abs() / (ours.norm(dim=1) * ref.norm(dim=1))
    print(
        f"rosinality variant vs the script's SVD on the .pt: |cos| of the top 10 min {float(cos.min()):.6f} "
        "(target >= 0.9999)",
        flush=True,
    )

    shipped = load_generator("cartoon-faces-64")
    r, seconds_pca, _ = timed(lambda: D.pca(shipped, num_samples=args.samples, num_components=80))
    cache["pca"] = (r, seconds_pca)
    print(
        f"PCA of {args.samples} w (cartoon-faces-64, w_dim {shipped.w_dim}): {seconds_pca:.1f} s (target 30 s), "
        f"80 components explain {100 * float(r.variance_ratio.sum()):.1f}%",
        flush=True,
    )

    codes, seconds, _ = timed(lambda: D.sample_codes(shipped, list(range(args.codes))))
    print(f"sampling {args.codes} seeded codes: {seconds:.1f} s", flush=True)
    w = codes.w.double().numpy()
    n = np.random.RandomState(0).randn(w.shape[1])
    n /= np.linalg.norm(n)
    scores = w @ n + 0.05 * (w @ n).std() * np.random.RandomState(1).randn(len(w))
    for ratio in (0.02, 0.2):  # InterFaceGAN's default, then ten times the codes per side
        b, seconds, _ = timed(lambda r=ratio: D.fit_boundary(w, scores, ratio=r))
        print(f"fit on {args.codes} codes (ratio {ratio}: {b.num_positive} per side): {seconds:.1f} s (target 60 s), "
              f"validation accuracy {b.val_accuracy:.3f}, cos to the planted normal {float((b.normal @ n)[0]):.3f}",
              flush=True)  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# Measuring directions with the attribute probe

# name -> the probe's column it is fitted on (hair: the probability of style 2, long, against everything else).
FITTED = {
    "smile": "smile",
    "glasses": "glasses",
    "hair_long": "hair_style_p2",
    "jaw": "jaw",
    "eye_size": "eye_size",
    "head_width": "head_width",
}
# The probe does not learn the brows (docs/attribute-probe.md): their columns are never reported.
UNLEARNT = ("brow_tilt", "brow_thickness")
STYLE_NAMES = {"hair_style_p0": "bald", "hair_style_p1": "short hair", "hair_style_p2": "long hair",
               "hair_style_p3": "fringe"}  # fmt: skip
EVAL_SEED_BASE = 1_000_000  # evaluation samples: seeds far from the fitting ones (0..fit_codes-1)


def label(col: str) -> str:
    return STYLE_NAMES.get(col, col)


@torch.no_grad()
def probe_columns(G: torch.nn.Module, probe: torch.nn.Module, w: torch.Tensor, batch: int = 100) -> dict:
    """The probe's flat float columns for w vectors [N, w_dim] rendered with constant noise."""
    cols: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(w), batch):
        ws = w[i : i + batch, None].expand(-1, G.num_ws, -1)
        for k, v in flat_scores(probe.predict(G.synthesis(ws, noise_mode="const"))).items():
            if torch.is_floating_point(v):
                cols.setdefault(k, []).append(v.float())
    return {k: torch.cat(v).numpy() for k, v in cols.items()}


def unit_sigma(vector: np.ndarray, w: np.ndarray) -> torch.Tensor:
    """The unit direction times the spread of the sampled w along it: strength 1 = one standard deviation."""
    u = vector.reshape(-1) / np.linalg.norm(vector)
    return torch.from_numpy((u * float((w @ u).std()))[None]).float()


def fit_directions(G, probe, args, report: dict) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """(a) InterFaceGAN boundaries from probe scores, plain and conditioned on the other five; timings."""
    t0 = time.perf_counter()
    codes = D.sample_codes(G, list(range(args.fit_codes)))
    w = codes.w.double().numpy()
    cols = probe_columns(G, probe, codes.w)
    t_score = time.perf_counter() - t0
    print(f"scored {args.fit_codes} samples with the probe (render + probe): {t_score:.1f} s", flush=True)
    normals, fits, t_fit = {}, {}, {}
    for name, col in FITTED.items():
        b, t_fit[name], _ = timed(lambda c=col: D.fit_boundary(w, cols[c], ratio=args.ratio))
        normals[name], fits[name] = b.normal, b
    out: dict[str, torch.Tensor] = {}
    rows = {}
    for name, col in FITTED.items():
        others = [normals[o] for o in FITTED if o != name]
        cond = D.project_out(normals[name], others)
        out[name] = unit_sigma(normals[name], w)
        out[f"{name}|others"] = unit_sigma(cond, w)
        b = fits[name]
        rows[name] = {"column": col, "val_accuracy": b.val_accuracy, "train_accuracy": b.train_accuracy,
                      "per_side": b.num_positive, "fit_seconds": t_fit[name],
                      "cos_plain_conditioned": float(np.abs(normals[name] @ cond.T)[0, 0])}  # fmt: skip
        print(f"  {name:<10} ({col}): val accuracy {b.val_accuracy:.3f} (train {b.train_accuracy:.3f}, "
              f"{b.num_positive} per side), SVC fit {t_fit[name]:.2f} s, |cos| plain vs conditioned "
              f"{rows[name]['cos_plain_conditioned']:.3f}", flush=True)  # fmt: skip
    report["fits"] = rows
    report["seconds"]["interfacegan_scoring"] = t_score
    report["seconds"]["interfacegan_fit_per_attribute"] = statistics.mean(t_fit.values())
    return out, w


def given_directions(paths: list[str], G) -> dict[str, torch.Tensor | D.Direction]:
    """``--directions``: files or folders of direction files (.npz/.npy/.pt), named by file stem."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(f for f in p.iterdir() if f.suffix in (".npz", ".npy", ".pt")) if p.is_dir() else [p]
    return {f.stem: D.load_direction(f, G) for f in files}


def own_column(name: str) -> str | None:
    """The attribute a direction is meant to move, read from its name (a fitted name or a file stem)."""
    stem = name.split("|")[0].lower()
    for key, col in FITTED.items():
        if stem.startswith(key) or key in stem or (key == "hair_long" and "hair" in stem):
            return col
    return None


def component_table(resp: dict, prefix: str, k: int, cols: list[str]) -> list[dict]:
    """(b) For each component: the attribute it moves most (|response|) and the runner-up."""
    rows = []
    for i in range(k):
        r = resp[f"{prefix}{i}"]
        m = r.response.mean(0)
        se = r.stderr.mean(0)
        idx = [r.names.index(c) for c in cols]
        order = sorted(idx, key=lambda j: -abs(float(m[j])))
        top, second = order[0], order[1]
        rows.append({"component": i, "top": r.names[top], "top_value": float(m[top]), "top_se": float(se[top]),
                     "second": r.names[second], "second_value": float(m[second]),
                     "smile": float(m[r.names.index("smile")])})  # fmt: skip
    return rows


def measure(args: argparse.Namespace, cache: dict) -> dict:
    G = load_generator("cartoon-faces-64")
    probe = load_probe()
    report: dict = {"settings": {k: v for k, v in vars(args).items() if k != "directions"}, "seconds": {}}
    report["settings"]["directions"] = args.directions

    # (a) the directions to measure
    if args.directions:
        dirs: dict = given_directions(args.directions, G)
        w_fit = D.sample_codes(G, list(range(args.fit_codes))).w.double().numpy()
        print(f"measuring {len(dirs)} given direction files: {', '.join(dirs)}", flush=True)
    else:
        print(f"fitting InterFaceGAN directions on {args.fit_codes} probe-scored samples (ratio {args.ratio})",
              flush=True)  # fmt: skip
        dirs, w_fit = fit_directions(G, probe, args, report)
    shipped = D.load_direction(shipped_smile_direction_path(), G)
    dirs["joint pairs (shipped)"] = shipped

    # (b) SeFa and PCA components, each scaled to one sampled standard deviation
    sefa, t_sefa, _ = timed(lambda: D.sefa(G, num=args.components), 3)
    report["seconds"]["sefa"] = t_sefa
    if "pca" in cache:
        pca, t_pca = cache["pca"]
    else:
        pca, t_pca, _ = timed(lambda: D.pca(G, num_samples=args.samples, num_components=args.components))
    report["seconds"]["pca"] = t_pca
    report["settings"]["pca_samples"] = pca.num_samples
    for i in range(args.components):
        dirs[f"sefa{i}"] = D.Direction(unit_sigma(sefa.directions[i].double().numpy(), w_fit), "sefa", sefa.layers)
        dirs[f"pca{i}"] = (pca.components[i] * pca.std[i])[None]

    # one pass: every direction on the same evaluation samples
    eval_w = D.sample_codes(G, list(range(EVAL_SEED_BASE, EVAL_SEED_BASE + args.eval_codes))).w
    mask = D.face_part_mask("mouth", size=G.img_resolution)
    t0 = time.perf_counter()
    resp = D.attribute_responses(G, dirs, probe, eval_w, [-args.strength, args.strength], mask=mask)
    t_measure = time.perf_counter() - t0
    report["seconds"]["measure_all"] = t_measure
    print(f"measured {len(dirs)} directions on {args.eval_codes} samples at strengths ±{args.strength}: "
          f"{t_measure:.0f} s", flush=True)  # fmt: skip
    names0 = next(iter(resp.values())).names
    cols = [c for c in names0 if c not in UNLEARNT]
    report["columns"] = cols
    report["mouth_box_area"] = float(mask.mean())

    # the leakage matrix
    matrix_names = [n for n in dirs if not n.startswith(("sefa", "pca"))]
    report["leakage"] = {}
    for n in matrix_names:
        m, se = resp[n].response.mean(0), resp[n].stderr.mean(0)
        report["leakage"][n] = {c: float(m[names0.index(c)]) for c in cols}
        report["leakage"][n]["_se"] = {c: float(se[names0.index(c)]) for c in cols}
    print_leakage(report, matrix_names)
    if not args.directions:
        report["conditioned_target"] = conditioned_target(report)

    # (b)
    report["components"] = {"sefa": component_table(resp, "sefa", args.components, cols),
                            "pca": component_table(resp, "pca", args.components, cols)}  # fmt: skip
    for method, rows in report["components"].items():
        print(f"{method.upper()} top {args.components} (1 σ of sampled w; change in spreads): "
              "component: top attribute, runner-up", flush=True)  # fmt: skip
        for r in rows:
            print(
                f"  {r['component']:>2}: {label(r['top']):<13} {r['top_value']:+.2f} ± {r['top_se']:.2f}   "
                f"{label(r['second']):<13} {r['second_value']:+.2f}   (smile {r['smile']:+.2f})",
                flush=True,
            )

    # (c) the smile by method
    smile = {}
    for method in ("sefa", "pca"):
        best = max(report["components"][method], key=lambda r: abs(r["smile"]))
        sign = 1.0 if best["smile"] > 0 else -1.0
        smile[f"{method.upper()} {best['component']}{'+' if sign > 0 else '-'}"] = (f"{method}{best['component']}",
                                                                                   sign)  # fmt: skip
    fitted_labels = {"smile": "InterFaceGAN", "smile|others": "InterFaceGAN conditioned"}
    for n in matrix_names:
        if own_column(n) == "smile" and n != "joint pairs (shipped)":
            smile[n if args.directions else fitted_labels.get(n, n)] = (n, 1.0)
    smile["joint pairs (shipped)"] = ("joint pairs (shipped)", 1.0)
    report["smile_methods"] = {}
    i_smile = names0.index("smile")
    i_mw = names0.index("mouth_width")
    print("smile by method (strength ±1, the sign that raises the smile; the mouth box is "
          f"{100 * float(mask.mean()):.1f} % of the pixels):", flush=True)  # fmt: skip
    for label_, (n, sign) in smile.items():
        r = resp[n]
        d_smile = sign * float((r.delta[1, i_smile] - r.delta[0, i_smile]) / 2)  # natural units per unit strength
        rms = float(r.image_change.mean())
        row = {"direction": n, "sign": sign, "mouth_box_share": float(r.mask_share.mean()),
               "smile_per_strength": d_smile, "smile_in_spreads": sign * float(r.response.mean(0)[i_smile]),
               "image_rms_per_strength": rms, "smile_per_image_rms": d_smile / rms,
               "mouth_width_in_spreads": sign * float(r.response.mean(0)[i_mw])}  # fmt: skip
        report["smile_methods"][label_] = row
        print(f"  {label_:<34} mouth box {100 * row['mouth_box_share']:5.1f} %   smile {d_smile:+.3f} "
              f"({row['smile_in_spreads']:+.2f} spreads)   RMS image change {rms:.3f}   smile per RMS "
              f"{row['smile_per_image_rms']:+.2f}   mouth width {row['mouth_width_in_spreads']:+.2f} spreads",
              flush=True)  # fmt: skip

    # (d)
    sec = report["seconds"]
    sec["joint_pairs_recorded"] = 2006.0  # docs/demo-model.md: the shipping command, not re-run here (slow)
    print(f"seconds on this CPU: SeFa {sec['sefa']:.3f}; PCA of {pca.num_samples} w {sec['pca']:.1f}; "
          + (f"InterFaceGAN {sec['interfacegan_scoring']:.1f} to render and score {args.fit_codes} samples + "
             f"{sec['interfacegan_fit_per_attribute']:.2f} per attribute's SVC; " if "interfacegan_scoring" in sec
             else "")
          + "joint pairs 2006 (recorded in docs/demo-model.md for 8 pairs x 200 steps plus 8 faces, not re-run)",
          flush=True)  # fmt: skip
    report["_responses"] = resp
    report["_directions"] = dirs
    report["_eval_w"] = eval_w
    report["_smile"] = smile
    return report


def print_leakage(report: dict, names: list[str]) -> None:
    own_cols = list(FITTED.values())
    show = own_cols + [c for c in ("mouth_width", "shift_x", "shift_y", "roll") if c not in own_cols]
    print("leakage: mean change per unit strength, in spreads over the samples (rows: directions)", flush=True)
    print("  " + " " * 26 + "".join(f"{label(c)[:10]:>11}" for c in show) + "   largest other", flush=True)
    for n in names:
        row = report["leakage"][n]
        rest = [c for c in report["columns"] if c not in show]
        other = max(rest, key=lambda c: abs(row[c]))
        print(f"  {n[:26]:<26}" + "".join(f"{row[c]:+11.2f}" for c in show)
              + f"   {label(other)} {row[other]:+.2f}", flush=True)  # fmt: skip


def conditioned_target(report: dict) -> dict:
    """Per fitted attribute: each other attribute's change per unit change of its own, plain vs conditioned."""
    out = {}
    for name, col in FITTED.items():
        plain, cond = report["leakage"][name], report["leakage"][f"{name}|others"]
        rows = {}
        for other, ocol in FITTED.items():
            if other == name:
                continue
            rp, rc = plain[ocol] / plain[col], cond[ocol] / cond[col]
            noise = abs(plain[ocol]) < 2 * plain["_se"][ocol]  # the plain leak itself is within 2 standard errors
            rows[other] = {"plain": rp, "conditioned": rc, "met": abs(rc) <= 0.5 * abs(rp), "plain_in_noise": noise}
        out[name] = rows
        met = sum(r["met"] for r in rows.values())
        text = ", ".join(f"{o} {r['plain']:+.2f}->{r['conditioned']:+.2f}{'' if r['met'] else ' (missed)'}"
                         f"{' (plain leak in noise)' if r['plain_in_noise'] else ''}"
                         for o, r in rows.items())  # fmt: skip
        print(f"  {name} conditioned: {met}/{len(rows)} at most half of the plain leak per unit {name}: {text}",
              flush=True)  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------------------------------
# Figures (matplotlib, the `plot` extra): imported only with --figures


def draw_figures(report: dict, folder: Path) -> None:
    """docs/editing-leakage.png (plain vs conditioned, per unit change of the own attribute) and
    docs/editing-smile.png (the smile by method, each scaled to the same smile change)."""
    from wplus.io.plot import pyplot

    plt = pyplot("the benchmark's figures")

    folder.mkdir(parents=True, exist_ok=True)
    cols = report["columns"]
    groups = [[n for n in report["leakage"] if "|" not in n and n != "joint pairs (shipped)"],
              [n for n in report["leakage"] if "|" in n]]  # fmt: skip
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(len(groups), 1, figsize=(13, 2.2 + 0.45 * max(len(g) for g in groups) * len(groups)),
                             squeeze=False)  # fmt: skip
    for ax, rows in zip(axes[:, 0], groups, strict=True):
        data = []
        for n in rows:
            own = own_column(n)
            scale = report["leakage"][n][own] if own else 1.0
            data.append([report["leakage"][n][c] / scale for c in cols])
        im = ax.imshow(np.array(data), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xticks(range(len(cols)), [label(c) for c in cols], rotation=60, ha="right", fontsize=8)
        for y, row in enumerate(data):
            for x, v in enumerate(row):
                if abs(v) >= 0.05:
                    ax.text(x, y, f"{v:.1f}", ha="center", va="center", fontsize=6.5,
                            color="white" if abs(v) > 0.6 else "black")  # fmt: skip
        ax.set_title("conditioned on the other five" if "|" in rows[0] else "plain InterFaceGAN directions",
                     fontsize=10)  # fmt: skip
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    fig.suptitle("Change of each attribute per unit change of the direction's own attribute (in sample spreads)",
                 fontsize=11)  # fmt: skip
    fig.tight_layout()
    fig.savefig(folder / "editing-leakage.png", dpi=110)
    plt.close(fig)

    # the smile by method: every method scaled so that the probe's mean smile change equals the shipped direction's
    G = load_generator("cartoon-faces-64")
    methods = report["smile_methods"]
    target = methods["joint pairs (shipped)"]["smile_per_strength"]
    faces = report["_eval_w"][:5]
    cols_img = [("sample", None, 0.0)]
    for name, row in methods.items():
        cols_img.append((name, row["direction"], row["sign"] * target / row["smile_per_strength"]))
    fig, axes = plt.subplots(len(faces), len(cols_img), figsize=(1.6 * len(cols_img), 1.7 * len(faces) + 0.6),
                             squeeze=False)  # fmt: skip
    dirs = report["_directions"]
    with torch.no_grad():
        for j, (name, dname, strength) in enumerate(cols_img):
            ws = faces[:, None].expand(-1, G.num_ws, -1)
            if dname is not None:
                ws = torch.cat([D.apply_direction(w[None], dirs[dname], strength) for w in ws])
            imgs = G.synthesis(ws, noise_mode="const").clamp(-1, 1).add(1).div(2).permute(0, 2, 3, 1).numpy()
            for i in range(len(faces)):
                ax = axes[i, j]
                ax.imshow(imgs[i], interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            title = name if dname is None else f"{name}\n(strength {strength:+.2f})"
            axes[0, j].set_title(title, fontsize=7.5)
    fig.suptitle(f"Smile by method, each scaled to the same probe smile change ({target:+.2f})", fontsize=10)
    fig.tight_layout()
    fig.savefig(folder / "editing-smile.png", dpi=110)
    plt.close(fig)
    print(f"wrote {folder / 'editing-leakage.png'} and {folder / 'editing-smile.png'}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000, help="w vectors for the PCA")
    ap.add_argument("--codes", type=int, default=20_000, help="codes for the planted boundary fit")
    ap.add_argument("--repeat", type=int, default=5, help="SeFa runs (the median is reported)")
    ap.add_argument("--fit-codes", type=int, default=2000, help="probe-scored samples for the InterFaceGAN fits")
    ap.add_argument("--ratio", type=float, default=0.05, help="share of the fit codes taken from each end")
    ap.add_argument("--eval-codes", type=int, default=100, help="other samples every direction is measured on")
    ap.add_argument("--strength", type=float, default=1.0, help="measure at -s and +s (in sampled σ)")
    ap.add_argument("--components", type=int, default=10, help="SeFa and PCA components in the table")
    ap.add_argument("--directions", nargs="+", default=None, help="measure these direction files (or folders)")
    ap.add_argument("--json-out", type=Path, default=None, help="write every figure here")
    ap.add_argument("--figures", type=Path, default=None, help="draw the figures into this folder (matplotlib)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-timing", action="store_true", help="skip the config-f / planted-fit timings")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    start = time.perf_counter()
    cache: dict = {}
    if not args.no_timing:
        timing(args, cache)
    report = measure(args, cache)
    report["seconds"]["benchmark"] = time.perf_counter() - start
    if args.figures:
        draw_figures(report, args.figures)
    if args.json_out:
        public = {k: v for k, v in report.items() if not k.startswith("_")}
        args.json_out.write_text(json.dumps(public, indent=2, default=str))
        print(f"wrote {args.json_out}", flush=True)
    print(f"total {report['seconds']['benchmark']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
