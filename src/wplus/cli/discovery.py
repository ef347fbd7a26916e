"""``wplus direction sefa | pca | fit``: find edit directions from the weights, from samples of W, or from scores."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import torch

from wplus.cli.common import DEVICE_CHOICES, INPUT_FILE, echo_json, err, one_line_errors, open_model, resolve_device
from wplus.cli.help import WplusCommand
from wplus.edits.crossover import parse_layers
from wplus.edits.directions import load_direction
from wplus.edits.discovery import SEFA_VARIANTS, fit_boundary, pca, sefa
from wplus.edits.discovery_io import (
    load_samples,
    load_scores,
    save_boundary,
    save_ganspace,
    save_interfacegan,
    save_pca,
    save_rosinality_factor,
    save_sefa,
)
from wplus.errors import ShapeError


def _npz_out(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    if value.suffix.lower() != ".npz":
        raise click.BadParameter(
            f"got {str(value)!r}, expected a path ending in .npz (ours; the community files go beside it with the "
            "same stem)",
            param_hint="--out",
        )
    return value


def _out_option(extra: str) -> Any:
    return click.option(
        "--out",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        callback=_npz_out,
        help=f"Our .npz file{extra}.",
    )


def _summary(as_json: bool, summary: dict[str, Any], written: list[Path]) -> None:
    for p in written:
        err(f"wrote {p}")
    if as_json:
        echo_json(summary)


_JSON = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")


@click.command("sefa", cls=WplusCommand)
@click.argument("model", type=str)
@_out_option("; with --format rosinality also <stem>.pt")
@click.option(
    "--layers",
    default=None,
    help="W+ rows whose style layers are factorised: '0-3', 'coarse', 'middle,fine' [default: every styled row].",
)
@click.option(
    "--variant",
    type=click.Choice(SEFA_VARIANTS),
    default="genforce",
    show_default=True,
    help="genforce: unit output channels, last ToRGB included; rosinality: closed_form_factorization.py's selection "
    "(convs and to_rgb1), no normalisation.",
)
@click.option("--num", type=click.IntRange(1), default=None, help="Directions kept [default: all].")
@click.option(
    "--format",
    "formats",
    type=click.Choice(["wplus", "rosinality"]),
    default="wplus",
    show_default=True,
    help="rosinality: also write <stem>.pt {'ckpt', 'eigvec' [w_dim, K]} for apply_factor.py.",
)
@_JSON
@one_line_errors
def sefa_cmd(
    model: str, out: Path, layers: str | None, variant: str, num: int | None, formats: str, as_json: bool
) -> None:
    """Closed-form factorization (SeFa): eigenvectors of MODEL's style-affine weights, largest eigenvalue first.

    MODEL is a generator as --model takes it elsewhere (StyleGAN2 in any format, StyleGAN v1, StyleGAN3). An edit
    along component K moves the W+ rows the factorised layers read (stored in the file):
    `wplus edit LATENT --direction OUT --component K --strength -3,0,3`.

    \b
    Examples:
      wplus direction sefa ffhq.pkl --out sefa.npz
      wplus direction sefa ffhq.pt --variant rosinality --format rosinality \\
          --out factor.npz
      wplus direction sefa cartoon-faces-64 --layers 0-3 --num 20 --out coarse.npz
    """
    info = open_model(model, device=torch.device("cpu"))
    rows = parse_layers(layers, info.G.num_ws) if layers else None
    start = time.perf_counter()
    r = sefa(info.G, layers=rows, variant=variant, num=num)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    meta = {"model_sha256": info.sha256, "model_id": info.model_id}
    written = [save_sefa(out, r, metadata=meta)]
    if formats == "rosinality":
        written.append(save_rosinality_factor(out.with_suffix(".pt"), r, ckpt=str(info.path)))
    top = [round(float(v), 4) for v in r.eigenvalues[:5]]
    err(f"SeFa ({variant}) of {len(r.layer_names)} layers reading rows {r.layers}: {len(r.directions)} directions, "
        f"top eigenvalues {top}, {seconds:.2f} s")  # fmt: skip
    summary = {"variant": variant, "layers": r.layers, "layer_names": r.layer_names, "num": len(r.directions),
               "eigenvalues": [float(v) for v in r.eigenvalues[:10]], "seconds": round(seconds, 3),
               "outputs": [str(p) for p in written]}  # fmt: skip
    _summary(as_json, summary, written)


@click.command("pca", cls=WplusCommand)
@click.argument("model", type=str)
@_out_option(" (with variance ratios); GANSpace/e4e's dict {mean, comp, std} goes to <stem>.pt")
@click.option(
    "--samples", type=click.IntRange(2, 10_000_000), default=100_000, show_default=True, help="w vectors for the PCA."
)
@click.option("--components", type=click.IntRange(1), default=80, show_default=True, help="Components kept (K).")
@click.option(
    "--std-samples",
    type=click.IntRange(2, 10_000_000),
    default=5_000,
    show_default=True,
    help="Fresh w vectors whose spread along each component becomes std (GANSpace: 5000).",
)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seeds the z draws.")
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@_JSON
@one_line_errors
def pca_cmd(
    model: str, out: Path, samples: int, components: int, std_samples: int, seed: int, device: str, as_json: bool
) -> None:
    """PCA of W (GANSpace): unit components of sampled w, and each one's std on fresh samples.

    Edit with `wplus edit LATENT --direction OUT --component K`: --strength s steps s·std; --set s moves the code
    to coordinate s·std (GANSpace's named edits, e.g. --set -20 --layers 4 for one row).

    \b
    Examples:
      wplus direction pca cartoon-faces-64 --out pca.npz
      wplus direction pca ffhq.pkl --samples 300000 --components 80 \\
          --out ffhq_pca.npz
    """
    info = open_model(model, device=resolve_device(device))
    start = time.perf_counter()
    r = pca(info.G, num_samples=samples, num_components=components, std_samples=std_samples, seed=seed)
    seconds = time.perf_counter() - start
    written = [save_pca(out, r, metadata={"model_sha256": info.sha256, "model_id": info.model_id}),
               save_ganspace(out.with_suffix(".pt"), r)]  # fmt: skip
    explained = float(r.variance_ratio.sum())
    err(f"PCA of {samples} w: {components} components explain {100 * explained:.1f}% of the variance, {seconds:.1f} s")
    summary = {"samples": samples, "components": components, "explained_variance": explained,
               "variance_ratio": [float(v) for v in r.variance_ratio[:10]], "std": [float(v) for v in r.std[:10]],
               "seconds": round(seconds, 2), "outputs": [str(p) for p in written]}  # fmt: skip
    _summary(as_json, summary, written)


@click.command("fit", cls=WplusCommand)
@click.argument("codes", type=INPUT_FILE)
@click.argument("scores", type=INPUT_FILE)
@_out_option("; InterFaceGAN's [1, dim] float64 boundary goes to <stem>.npy")
@click.option(
    "--ratio",
    type=click.FloatRange(0, min_open=True),
    default=0.02,
    show_default=True,
    help="Codes taken from each end of the score order: a fraction of N (<= 1) or a count (> 1), at most N/2.",
)
@click.option("--space", type=click.Choice(["w", "z"]), default="w", show_default=True, help="Which codes to fit.")
@click.option(
    "--condition",
    "conditions",
    multiple=True,
    type=INPUT_FILE,
    help="A boundary (.npy [1, dim] or our .npz) to project out; repeat for several.",
)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seeds the train/val shuffle.")
@_JSON
@one_line_errors
def fit_cmd(
    codes: Path,
    scores: Path,
    out: Path,
    ratio: float,
    space: str,
    conditions: tuple[Path, ...],
    seed: int,
    as_json: bool,
) -> None:
    """InterFaceGAN: a linear SVM between the best- and worst-scored CODES; its unit normal is the direction.

    CODES is codes.npz from `wplus sample` (or an .npy [N, dim]); SCORES is an .npy [N] in the same order or a CSV
    with the header 'seed,score' or 'index,score' (any scale; 0/1 labels work). 70% of each end trains
    scikit-learn's SVC(kernel='linear'), 30% validates.

    \b
    Examples:
      wplus sample cartoon-faces-64 --seeds 0-19999 --out samples/ --images
      wplus direction fit samples/codes.npz smile.csv --out smile.npz
      wplus direction fit samples/codes.npz glasses.npy --condition smile.npz \\
          --out glasses_c_smile.npz
    """
    x, seeds = load_samples(codes, space)
    y = load_scores(scores, codes_path=codes, num_codes=len(x), seeds=seeds)
    cond = []
    for path in conditions:
        v = load_direction(path).vector
        if v.shape[0] != 1 or v.shape[1] != x.shape[1]:
            raise ShapeError(
                f"{path}: condition has shape {list(v.shape)}, expected a boundary [1, {x.shape[1]}] "
                f"(the {space} codes of {codes})"
            )
        cond.append(v.double().numpy())
    start = time.perf_counter()
    b = fit_boundary(x, y, ratio=ratio, seed=seed, conditions=cond)
    seconds = time.perf_counter() - start
    meta = {"space": space, "codes": str(codes), "scores": str(scores), "conditions": [str(p) for p in conditions]}
    written = [save_boundary(out, b, metadata=meta), save_interfacegan(out.with_suffix(".npy"), b)]
    err(f"fitted on {b.num_train} codes, validated on {b.num_val} (of {b.num_codes}): validation accuracy "
        f"{b.val_accuracy:.3f}, {seconds:.1f} s")  # fmt: skip
    summary = {"val_accuracy": b.val_accuracy, "train_accuracy": b.train_accuracy,
               "remaining_accuracy": b.remaining_accuracy, "num_codes": b.num_codes, "per_side": b.num_positive,
               "num_train": b.num_train, "num_val": b.num_val, "conditions": len(conditions),
               "seconds": round(seconds, 2), "outputs": [str(p) for p in written]}  # fmt: skip
    _summary(as_json, summary, written)
