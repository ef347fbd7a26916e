"""The studies of Image2StyleGAN, one function each, and the registry :data:`STUDIES`.

Each study takes a :class:`~wplus.study.core.StudyContext` and the images, runs its projections as resumable units,
and returns a :class:`~wplus.study.core.StudyResult` (rows, table, figure). The paper's numbers (FFHQ StyleGAN at
1024 px, VGG-16 loss, 5000 steps) are kept here beside the tables for the comparison in ``results.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wplus.io.images import pil_to_tensor, tensor_to_pil
from wplus.losses.perceptual import PAPER_LAYERS
from wplus.metrics import psnr as psnr_of
from wplus.metrics import ssim as ssim_of
from wplus.study.core import StudyContext, StudyResult, Unit, UnitResult, group_mean, markdown_table
from wplus.study.inputs import FACE_CLASSES, Item
from wplus.study.plotting import bar_chart
from wplus.study.regions import (
    DEFECTS,
    alignment_masks,
    average_face_masks,
    blank,
    defect_mask,
    masks_from_folder,
    part_masks,
)
from wplus.study.transforms import PAPER_SHIFT_LEFT, PAPER_SHIFT_RIGHT, table1_transforms

__all__ = ["Study", "STUDIES", "STUDY_ORDER", "PAPER"]

# The paper's numbers: L (x 1e5) and ||w* - w_avg|| (Tables 1-3).
PAPER: dict[str, dict[str, tuple[float, float]]] = {
    "transforms": {
        "translate_right": (0.782, 48.56),
        "translate_left": (0.406, 44.12),
        "zoom_out": (0.225, 38.04),
        "zoom_in": (0.718, 40.55),
        "rotate_90": (0.622, 47.21),
        "rotate_180": (0.599, 42.93),
    },
    "defects": {
        "none": (0.204, 29.19),
        "eyes": (0.271, 34.90),
        "nose": (0.311, 39.20),
        "mouth": (0.301, 37.04),
        "eyes+mouth": (0.233, 39.62),
        "eyes+nose+mouth": (0.285, 37.59),
    },
    "spaces": {  # Table 2 (W+): class, init
        "face/mean": (0.309, 30.67),
        "face/random": (0.351, 35.60),
        "cat/mean": (0.752, 70.86),
        "cat/random": (0.740, 70.97),
        "dog/mean": (0.922, 74.78),
        "dog/random": (0.845, 75.14),
        "painting/mean": (3.530, 103.61),
        "painting/random": (3.451, 105.29),
        "car/mean": (1.390, 82.53),
        "car/random": (1.269, 82.60),
    },
}

METRICS = ["loss", "w_dist", "psnr", "ssim"]


@dataclass(frozen=True)
class Study:
    name: str
    paper: str  # the table / figure it reproduces
    run: Callable[[StudyContext, list[Item]], StudyResult]
    classes: tuple[str, ...] | None  # default classes of the offline images (None: all)
    columns: tuple[str, ...]


def _metric_row(r: UnitResult) -> dict[str, Any]:
    m = r.metrics
    return {"loss": m["loss"], "w_dist": m["w_dist_from_avg"], "psnr": m["psnr"], "ssim": m["ssim"],
            "steps": m["steps"], "seconds": m["seconds"]}  # fmt: skip


@torch.no_grad()
def render(G: torch.nn.Module, ws: torch.Tensor) -> torch.Tensor:
    """The image [C, R, R] of a W+ code [num_ws, w_dim] with the generator's constant noise."""
    p = next(iter(G.parameters()))
    return G.synthesis(ws[None].to(p.device), noise_mode="const")[0].clamp(-1, 1).cpu()


@torch.no_grad()
def _loss_value(loss: torch.nn.Module, image: torch.Tensor, target: torch.Tensor, device: torch.device) -> float:
    prep = loss.prepare_target(target[None].to(device))
    return float(loss(image[None].to(device), prep)["total"][0])


def _two_panels(plt: Any, path: Any, labels: list[str], a: dict[str, list[float]], b: dict[str, list[float]],
                ylabels: tuple[str, str], title: str) -> None:  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    x = np.arange(len(labels))
    for ax, series, ylabel in zip(axes, (a, b), ylabels, strict=True):
        width = 0.8 / max(1, len(series))
        for k, (name, ys) in enumerate(series.items()):
            ax.bar(x + (k - (len(series) - 1) / 2) * width, ys, width, label=name)
        ax.set_xticks(x, labels, rotation=25, ha="right")
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _paper_rows(summary: list[dict[str, Any]], key: str, table: dict[str, tuple[float, float]]) -> None:
    for row in summary:
        paper = table.get(row[key])
        row["paper_L_x1e5"] = paper[0] if paper else ""
        row["paper_w_dist"] = paper[1] if paper else ""


def _loss_note(ctx: StudyContext) -> list[str]:
    if ctx.offline_loss:
        return [
            "loss: the model's discriminator features + MSE stand in for VGG-16 (not cached, no network); the "
            "paper's L is VGG-16 perceptual + MSE, so compare orderings and shapes, not the values"
        ]
    return []


# ---------------------------------------------------------------------------------------------------------- classes


def study_classes(ctx: StudyContext, items: list[Item]) -> StudyResult:
    """Embedding quality per class (Figs. 1, 10, 17) and the distances between the classes' codes (Fig. 20)."""
    results = ctx.project_units("classes", [Unit(it.name, it.image) for it in items])
    rows = [{"class": it.cls, "image": it.name, **_metric_row(r)} for it, r in zip(items, results, strict=True)]
    classes = list(dict.fromkeys(it.cls for it in items))
    codes = {c: [r.ws.flatten() for it, r in zip(items, results, strict=True) if it.cls == c] for c in classes}
    dist = np.zeros((len(classes), len(classes)))
    for i, a in enumerate(classes):
        for j, b in enumerate(classes):
            pairs = [float((x - y).norm()) for ii, x in enumerate(codes[a]) for jj, y in enumerate(codes[b])
                     if a != b or ii < jj]  # fmt: skip
            dist[i, j] = np.mean(pairs) if pairs else np.nan
    summary = group_mean(rows, ["class"], METRICS)
    md = [
        "Embedding quality per class (paper Figs. 1, 10, 17; Fig. 20 for the distances). `w_dist` is ‖w* − w̄‖.",
        "",
        markdown_table(summary, ["class", "n", *METRICS]),
        "",
        "Mean distance between the embedded codes (W+, flattened) of two images of the classes (the diagonal: "
        "within a class, NaN for a class of one image):",
        "",
        markdown_table(
            [{"class": a, **{b: dist[i, j] for j, b in enumerate(classes)}} for i, a in enumerate(classes)],
            ["class", *classes],
        ),  # fmt: skip
    ]
    curves: dict[str, np.ndarray] = {}
    for c in classes:
        hs = [r.history for it, r in zip(items, results, strict=True) if it.cls == c]
        n = min(len(h["loss"]) for h in hs)
        curves[c] = (np.asarray(hs[0]["step"][:n]), np.mean([h["loss"][:n] for h in hs], axis=0))

    def figure(plt: Any, path: Any) -> None:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for c, (x, y) in curves.items():
            a1.plot(x, y, label=c)
        a1.set_yscale("log")
        a1.set_xlabel("step")
        a1.set_ylabel("loss (mean over the class)")
        a1.set_title("loss against steps per class (Fig. 10)")
        a1.legend(fontsize=7)
        im = a2.imshow(dist, cmap="viridis")
        a2.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
        a2.set_yticks(range(len(classes)), classes)
        a2.grid(False)
        for i in range(len(classes)):
            for j in range(len(classes)):
                if np.isfinite(dist[i, j]):
                    a2.text(j, i, f"{dist[i, j]:.0f}", ha="center", va="center", color="w", fontsize=7)
        a2.set_title("distance between embedded codes (Fig. 20)")
        fig.colorbar(im, ax=a2)
        fig.tight_layout()
        fig.savefig(path, format="png")
        plt.close(fig)

    return StudyResult(rows, ["class", "image", *METRICS, "steps", "seconds"], "\n".join(md), figure,
                       _loss_note(ctx), {"distances": {"classes": classes, "matrix": dist.tolist()}})  # fmt: skip


# ------------------------------------------------------------------------------------------------------- transforms


def study_transforms(ctx: StudyContext, items: list[Item]) -> StudyResult:
    """Table 1: embedding translated, zoomed and rotated faces."""
    right, left = ctx.options.get("shift_right", PAPER_SHIFT_RIGHT), ctx.options.get("shift_left", PAPER_SHIFT_LEFT)
    tf = table1_transforms(right, left)
    units = [Unit(f"{it.name}@{t}", fn(it.image)) for t, fn in tf.items() for it in items]
    results = ctx.project_units("transforms", units)
    rows = []
    k = 0
    for t in tf:
        for it in items:
            rows.append({"class": it.cls, "image": it.name, "transform": t, **_metric_row(results[k])})
            k += 1
    summary = group_mean(rows, ["transform"], METRICS)
    _paper_rows(summary, "transform", PAPER["transforms"])
    side = ctx.G.img_resolution
    md = [
        f"Table 1: transformed faces (shift right {right:.3f} and left {left:.3f} of the side = "
        f"{round(side * right)} / {round(side * left)} px at {side} px; the paper's 140 / 160 px at 1024). "
        "Ours: mean final loss and ‖w* − w̄‖; the paper's L × 10⁵ and ‖w* − w̄‖ beside.",
        "",
        markdown_table(summary, ["transform", "n", *METRICS, "paper_L_x1e5", "paper_w_dist"]),
    ]
    labels = [r["transform"] for r in summary]

    def figure(plt: Any, path: Any) -> None:
        _two_panels(plt, path, labels, {"ours": [r["loss"] for r in summary]},
                    {"ours": [r["w_dist"] for r in summary], "paper": [r["paper_w_dist"] or 0 for r in summary]},
                    ("final loss", "‖w* − w̄‖"), "Table 1: transformed faces")  # fmt: skip

    return StudyResult(rows, ["class", "image", "transform", *METRICS, "steps", "seconds"], "\n".join(md), figure,
                       _loss_note(ctx), {"shift_right": right, "shift_left": left})  # fmt: skip


# ---------------------------------------------------------------------------------------------------------- defects


def item_regions(ctx: StudyContext, it: Item) -> tuple[dict[str, torch.Tensor], str]:
    """The eyes, nose and mouth masks of an image, and where they came from: a mask folder, a drawn face's boxes,
    the alignment landmarks of an image ``wplus align`` made (its ``STEM.json`` beside it), or the average face."""
    side = ctx.G.img_resolution
    masks_dir = ctx.options.get("masks")
    if it.path is not None and masks_dir is not None:
        from PIL import Image

        with Image.open(it.path) as im:
            size = im.size
        return masks_from_folder(masks_dir, it.path.stem, size, side), f"masks {masks_dir}"
    if it.attrs is not None:
        return part_masks(it.attrs, side), "the drawn face's boxes"
    if it.path is not None and (masks := alignment_masks(it.path, side)) is not None:
        return masks, "the alignment landmarks (the `wplus align` JSON beside the image)"
    if "_average" not in ctx.cache:
        ctx.cache["_average"] = average_face_masks(side)
    return ctx.cache["_average"], "the average drawn face's boxes (an aligned face)"


def study_defects(ctx: StudyContext, items: list[Item]) -> StudyResult:
    """Table 3: faces with the eyes, nose, mouth and their combinations blanked."""
    units, meta = [], []
    sources = set()
    for it in items:
        masks, source = item_regions(ctx, it)
        sources.add(source)
        for d in DEFECTS:
            m = defect_mask(masks, d)
            units.append(Unit(f"{it.name}@{d}", blank(it.image, m)))
            meta.append((it, d, float(m.mean())))
    results = ctx.project_units("defects", units)
    rows = [{"class": it.cls, "image": it.name, "defect": d, "blanked_fraction": f, **_metric_row(r)}
            for (it, d, f), r in zip(meta, results, strict=True)]  # fmt: skip
    summary = group_mean(rows, ["defect"], [*METRICS, "blanked_fraction"])
    _paper_rows(summary, "defect", PAPER["defects"])
    md = [
        "Table 3: defective faces (the parts blanked with the colour around them). Ours: mean final loss and "
        "‖w* − w̄‖; the paper's L × 10⁵ and ‖w* − w̄‖ beside.",
        "",
        markdown_table(summary, ["defect", "n", *METRICS, "blanked_fraction", "paper_L_x1e5", "paper_w_dist"]),
    ]
    labels = [r["defect"] for r in summary]

    def figure(plt: Any, path: Any) -> None:
        _two_panels(plt, path, labels, {"ours": [r["loss"] for r in summary]},
                    {"ours": [r["w_dist"] for r in summary], "paper": [r["paper_w_dist"] for r in summary]},
                    ("final loss", "‖w* − w̄‖"), "Table 3: defective faces")  # fmt: skip

    notes = [*_loss_note(ctx), f"regions from {'; '.join(sorted(sources))}"]
    return StudyResult(rows, ["class", "image", "defect", "blanked_fraction", *METRICS, "steps", "seconds"],
                       "\n".join(md), figure, notes)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------- spaces


def random_weights(G: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """A copy of ``G`` with every weight redrawn from N(0, 1) (Fig. 5's generator with random weights)."""
    from wplus.models.stylegan2 import seeded_init_

    R = seeded_init_(copy.deepcopy(G), seed)
    with torch.no_grad():
        R.mapping.w_avg.copy_(R.mean_w(2000, seed=seed))
    return R.eval().requires_grad_(False)


SPACES = [("W", "w", "mean", "trained"), ("W", "w", "random", "trained"), ("W+", "w+", "mean", "trained"),
          ("W+", "w+", "random", "trained"), ("W+", "w+", "mean", "random")]  # fmt: skip


def study_spaces(ctx: StudyContext, items: list[Item]) -> StudyResult:
    """Table 2 and Fig. 5: W and W+, w̄ and random initialisation, a trained and a random generator."""
    rows = []
    notes = _loss_note(ctx)
    for label, space, init, gen in SPACES:
        s = ctx.settings.replace(space=space, init=init)
        G = ctx.G
        if gen == "random":
            if "_random_G" not in ctx.cache:
                ctx.cache["_random_G"] = random_weights(ctx.G)
            G = ctx.cache["_random_G"]
        results = ctx.project_units("spaces", [Unit(it.name, it.image) for it in items], settings=s, G=G,
                                    recipe_extra=[gen], desc=f"{label} {init} {gen}")  # fmt: skip
        for it, r in zip(items, results, strict=True):
            rows.append({"class": it.cls, "image": it.name, "space": label, "init": init, "generator": gen,
                         **_metric_row(r)})  # fmt: skip
    summary = group_mean(rows, ["class", "space", "init", "generator"], METRICS)
    md = [
        "Table 2 and Fig. 5: latent space × initialisation (w̄ or U[−1, 1]) × generator (trained, random weights). "
        "The paper's Table 2 (W+, L × 10⁵, ‖w* − w̄‖): face 0.309 / 30.67 (w̄) against 0.351 / 35.60 (random); "
        "cat 0.752 / 70.86 against 0.740 / 70.97; dog 0.922 / 74.78 against 0.845 / 75.14; car 1.390 / 82.53 "
        "against 1.269 / 82.60.",
        "",
        markdown_table(summary, ["class", "space", "init", "generator", "n", *METRICS]),
    ]
    # One group of bars per class, one bar per configuration (space, start, generator), in SPACES' order.
    classes = list(dict.fromkeys(r["class"] for r in summary))
    psnr = {(r["class"], r["space"], r["init"], r["generator"]): r["psnr"] for r in summary}
    series = {
        f"{label} {'w̄' if init == 'mean' else 'random'}{', random G' if gen == 'random' else ''}": [
            psnr.get((c, label, init, gen), float("nan")) for c in classes
        ]
        for label, _, init, gen in SPACES
    }

    def figure(plt: Any, path: Any) -> None:
        bar_chart(plt, path, classes, series, ylabel="PSNR (dB)", size=(max(7.0, 1.6 * len(classes)), 4.0),
                  title="Table 2 / Fig. 5: space × start × generator")  # fmt: skip

    return StudyResult(rows, ["class", "image", "space", "init", "generator", *METRICS, "steps", "seconds"],
                       "\n".join(md), figure, notes)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------- losses

LOSS_KINDS = ["mse", "conv3_2", "mse+conv3_2", "perceptual", "perceptual+mse"]
# Offline: the discriminator's blocks stand in for VGG's layers; block 2 (a quarter of the side, like conv3_2).
_DFEAT_OF = {"conv3_2": (2,), "perceptual": (0, 1, 2)}


def _ablation_loss(ctx: StudyContext, kind: str) -> torch.nn.Module:
    from wplus.losses.masked import ImageLoss
    from wplus.projection.settings import build_loss

    ls = ctx.loss_settings
    if not ctx.offline_loss:
        layers = ("conv3_2",) if "conv3_2" in kind else PAPER_LAYERS
        s = ls.replace(loss=kind, layers=layers, perceptual_weight=ls.perceptual_weight or 1.0,
                       mse_weight=ls.mse_weight or 1.0)  # fmt: skip
        return build_loss(s, vgg=ctx.vgg, vgg_weights=ctx.options.get("vgg_weights"), device=ctx.device)[0]
    mse = ls.mse_weight or 1.0
    if kind == "mse":
        return ImageLoss(None, perceptual_weight=0.0, mse_weight=mse).to(ctx.device)
    layers = _DFEAT_OF["conv3_2" if "conv3_2" in kind else "perceptual"]
    return ImageLoss(None, perceptual_weight=0.0, mse_weight=mse if "mse" in kind else 0.0,
                     discriminator=ctx.discriminator, dfeat_weight=ls.dfeat_weight or 1.0,
                     dfeat_layers=layers).to(ctx.device)  # fmt: skip


def study_losses(ctx: StudyContext, items: list[Item]) -> StudyResult:
    """Fig. 9: the loss ablation (MSE only, conv3_2 only, MSE + conv3_2, perceptual only, the full loss)."""
    rows = []
    for kind in LOSS_KINDS:
        loss = _ablation_loss(ctx, kind)
        results = ctx.project_units("losses", [Unit(it.name, it.image) for it in items], loss=loss,
                                    recipe_extra=[kind, ctx.offline_loss], desc=kind)  # fmt: skip
        for it, r in zip(items, results, strict=True):
            full = _loss_value(ctx.loss, render(ctx.G, r.ws), it.image, ctx.device)
            rows.append({"class": it.cls, "image": it.name, "loss_kind": kind, **_metric_row(r), "full_loss": full})
    summary = group_mean(rows, ["loss_kind"], ["psnr", "ssim", "full_loss", "w_dist"])
    md = [
        "Fig. 9: the loss ablation. `full_loss` is every result measured with the full loss (perceptual + MSE); "
        "the paper shows the full loss giving the best reconstructions (Fig. 9, visually).",
        "",
        markdown_table(summary, ["loss_kind", "n", "psnr", "ssim", "full_loss", "w_dist"]),
    ]
    notes = _loss_note(ctx)
    if ctx.offline_loss:
        notes.append("offline ablation: 'conv3_2' is the discriminator's block 2 (a quarter of the side, as conv3_2 "
                     "is), 'perceptual' its blocks 0-2")  # fmt: skip
    labels = [r["loss_kind"] for r in summary]

    def figure(plt: Any, path: Any) -> None:
        _two_panels(plt, path, labels, {"PSNR": [r["psnr"] for r in summary]},
                    {"full loss": [r["full_loss"] for r in summary]}, ("PSNR (dB)", "full loss of the result"),
                    "Fig. 9: loss ablation")  # fmt: skip

    return StudyResult(rows, ["class", "image", "loss_kind", *METRICS, "full_loss", "steps", "seconds"],
                       "\n".join(md), figure, notes)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------- reembed


def study_reembed(ctx: StudyContext, items: list[Item]) -> StudyResult:
    """Fig. 11: embed, render, embed the render again; quality and drift per round."""
    rows = []
    inputs = {it.name: it.image for it in items}
    previous: dict[str, torch.Tensor] = {}
    for k in range(ctx.rounds):
        results = ctx.project_units("reembed", [Unit(f"{it.name}@round{k}", inputs[it.name]) for it in items],
                                    desc=f"round {k + 1}")  # fmt: skip
        for it, r in zip(items, results, strict=True):
            image = render(ctx.G, r.ws)
            drift = float((r.ws - previous[it.name]).norm()) if it.name in previous else ""
            rows.append({"class": it.cls, "image": it.name, "round": k + 1, **_metric_row(r),
                         "psnr_original": float(psnr_of(image[None], it.image[None])[0]),
                         "ssim_original": float(ssim_of(image[None], it.image[None])[0]), "drift": drift})  # fmt: skip
            previous[it.name] = r.ws
            # The next round embeds the render as an 8-bit image, as a saved file would be: the paper re-embeds
            # images, and a float render differs in its last bits between thread counts, which would make a resumed
            # run see a new input and redo every later round.
            inputs[it.name] = pil_to_tensor(tensor_to_pil(image))[0].to(image.device)
    summary = group_mean(rows, ["round"], ["psnr", "psnr_original", "ssim_original", "w_dist", "drift"])
    md = [
        "Fig. 11: iterative embedding. `psnr` is against the round's input (the previous round's render), "
        "`psnr_original` against the original image, `drift` the distance from the previous round's code.",
        "",
        markdown_table(summary, ["round", "n", "psnr", "psnr_original", "ssim_original", "w_dist", "drift"]),
    ]

    def figure(plt: Any, path: Any) -> None:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        x = [r["round"] for r in summary]
        a1.plot(x, [r["psnr"] for r in summary], "o-", label="against the round's input")
        a1.plot(x, [r["psnr_original"] for r in summary], "s-", label="against the original")
        a1.set_xlabel("round")
        a1.set_ylabel("PSNR (dB)")
        a1.legend(fontsize=8)
        a2.plot(x, [r["w_dist"] for r in summary], "o-", label="‖w* − w̄‖")
        a2.plot(x[1:], [r["drift"] for r in summary[1:]], "s-", label="drift from the previous round")
        a2.set_xlabel("round")
        a2.legend(fontsize=8)
        for ax in (a1, a2):
            ax.set_xticks(x)  # rounds are whole numbers
        fig.suptitle("Fig. 11: re-embedding")
        fig.tight_layout()
        fig.savefig(path, format="png")
        plt.close(fig)

    return StudyResult(rows, ["class", "image", "round", *METRICS, "psnr_original", "ssim_original", "drift",
                              "steps", "seconds"], "\n".join(md), figure, _loss_note(ctx),
                       {"rounds": ctx.rounds})  # fmt: skip


# ------------------------------------------------------------------------------------------------------------ noise


def with_noise(G: torch.nn.Module, kind: str) -> torch.nn.Module:
    """A copy of ``G`` whose constant noise maps are ``kind``: 'const' (its own), 'zero', or 'random-N' (seed N)."""
    if kind == "const":
        return G
    R = copy.deepcopy(G)
    gen = torch.Generator().manual_seed(int(kind.split("-")[1]) if kind.startswith("random") else 0)
    with torch.no_grad():
        for layer in R.synthesis.noise_layers():
            n = layer.noise_const
            n.copy_(torch.zeros_like(n) if kind == "zero" else torch.randn(n.shape, generator=gen).to(n))
    return R


NOISES = ["const", "zero", "random-1", "random-2"]


def study_noise(ctx: StudyContext, items: list[Item]) -> StudyResult:
    """Fig. 16: the same images embedded under different constant noise maps, and one code rendered under each."""
    has_noise = hasattr(getattr(ctx.G, "synthesis", None), "noise_layers")
    kinds = NOISES if has_noise else ["const"]
    rows = []
    const_codes: dict[str, torch.Tensor] = {}
    strengths = [float(layer.noise_strength.abs()) for layer in ctx.G.synthesis.noise_layers()] if has_noise else [0.0]
    for kind in kinds:
        G = with_noise(ctx.G, kind)
        results = ctx.project_units("noise", [Unit(f"{it.name}@{kind}", it.image) for it in items], G=G,
                                    recipe_extra=[kind], desc=kind)  # fmt: skip
        for it, r in zip(items, results, strict=True):
            if kind == "const":
                const_codes[it.name] = r.ws
            code = const_codes[it.name]
            rendered = render(G, code)
            rows.append({"class": it.cls, "image": it.name, "noise": kind, **_metric_row(r),
                         "code_distance": float((r.ws - code).norm()),
                         "psnr_const_code": float(psnr_of(rendered[None], it.image[None])[0])})  # fmt: skip
    summary = group_mean(rows, ["noise"], ["psnr", "ssim", "w_dist", "code_distance", "psnr_const_code"])
    md = [
        "Fig. 16: embedding under different constant noises. `psnr` is each embedding's, `code_distance` its "
        "distance from the code found under the model's own noise, `psnr_const_code` that code rendered under this "
        "noise (how much the noise alone changes the image).",
        "",
        markdown_table(summary, ["noise", "n", "psnr", "ssim", "w_dist", "code_distance", "psnr_const_code"]),
    ]
    notes = [*_loss_note(ctx), f"noise strengths of the model's layers: mean {np.mean(strengths):.4g}, "
             f"max {max(strengths):.4g} (0: the noise maps change nothing)"]  # fmt: skip
    labels = [r["noise"] for r in summary]

    def figure(plt: Any, path: Any) -> None:
        _two_panels(plt, path, labels, {"embedded": [r["psnr"] for r in summary],
                                        "const code rendered": [r["psnr_const_code"] for r in summary]},
                    {"code distance": [r["code_distance"] for r in summary]}, ("PSNR (dB)", "‖w − w_const‖"),
                    "Fig. 16: different constant noises")  # fmt: skip

    return StudyResult(rows, ["class", "image", "noise", *METRICS, "code_distance", "psnr_const_code", "steps",
                              "seconds"], "\n".join(md), figure, notes)  # fmt: skip


# ------------------------------------------------------------------------------------------------------- resolution


def study_resolution(ctx: StudyContext, items: list[Item]) -> StudyResult:
    """Fig. 12: the perceptual loss on images resized to 256 px against the generator's own resolution."""
    from wplus.losses.masked import ImageLoss
    from wplus.models.vgg16 import random_vgg16

    side = ctx.G.img_resolution
    notes = []
    if ctx.vgg is None:
        vgg = random_vgg16(0, device=ctx.device)
        notes.append("offline: VGG-16 weights are not at hand, so the perceptual term reads a seeded random VGG-16 "
                     "(random features still measure structure; the ImageNet trunk is the paper's)")  # fmt: skip
    else:
        vgg = ctx.vgg
    rows = []
    big = ctx.settings.loss_resize or 256  # the paper's 256 unless --loss-resize says otherwise
    for label, resize in ((str(big), big), (f"native ({side})", None)):
        loss = ImageLoss(vgg, layers=PAPER_LAYERS, perceptual_weight=1.0, mse_weight=1.0, resize=resize).to(ctx.device)
        results = ctx.project_units("resolution", [Unit(it.name, it.image) for it in items], loss=loss,
                                    recipe_extra=[resize, ctx.vgg is None], desc=label)  # fmt: skip
        for it, r in zip(items, results, strict=True):
            rows.append({"class": it.cls, "image": it.name, "loss_resolution": label, **_metric_row(r)})
    summary = group_mean(rows, ["loss_resolution"], ["psnr", "ssim", "w_dist", "seconds"])
    md = [
        f"Fig. 12: the perceptual loss (VGG-16 + MSE) on images resized to {big} px against the generator's {side} px. "
        "The paper (1024 px) finds 256 better: VGG's receptive fields fit ImageNet-sized images.",
        "",
        markdown_table(summary, ["loss_resolution", "n", "psnr", "ssim", "w_dist", "seconds"]),
    ]
    labels = [r["loss_resolution"] for r in summary]

    def figure(plt: Any, path: Any) -> None:
        _two_panels(plt, path, labels, {"PSNR": [r["psnr"] for r in summary]},
                    {"SSIM": [r["ssim"] for r in summary]}, ("PSNR (dB)", "SSIM"),
                    "Fig. 12: perceptual-loss resolution")  # fmt: skip

    return StudyResult(rows, ["class", "image", "loss_resolution", *METRICS, "steps", "seconds"], "\n".join(md),
                       figure, notes)  # fmt: skip


_FACES = FACE_CLASSES
STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study("classes", "Figs. 1, 10, 17, 20", study_classes, None, ("class", "image", *METRICS)),
        Study("transforms", "Table 1, Fig. 2", study_transforms, _FACES, ("transform", *METRICS)),
        Study("defects", "Table 3, Fig. 3", study_defects, _FACES, ("defect", "blanked_fraction", *METRICS)),
        Study("spaces", "Table 2, Fig. 5", study_spaces, ("faces", "people", "animals", "objects"),
              ("space", "init", "generator", *METRICS)),
        Study("losses", "Fig. 9", study_losses, _FACES, ("loss_kind", *METRICS, "full_loss")),
        Study("reembed", "Fig. 11", study_reembed, _FACES, ("round", *METRICS, "psnr_original", "drift")),
        Study("noise", "Fig. 16", study_noise, _FACES, ("noise", *METRICS, "code_distance", "psnr_const_code")),
        Study("resolution", "Fig. 12", study_resolution, _FACES, ("loss_resolution", *METRICS)),
    )
}  # fmt: skip
STUDY_ORDER: Sequence[str] = tuple(STUDIES)
