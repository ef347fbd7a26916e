"""``wplus direction``: build an attribute direction from pairs of latents or images, find directions (SeFa, PCA,
InterFaceGAN fitting: :mod:`wplus.cli.discovery`), inspect direction files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import torch

from wplus.cli.common import DIRECTION, INPUT_FILE, FiniteFloatRange, echo_json, err, one_line_errors
from wplus.cli.discovery import fit_cmd, pca_cmd, sefa_cmd
from wplus.cli.edit_common import EditContext, edit_options
from wplus.cli.help import ImageInputCommand, WplusGroup
from wplus.cli.projection_options import flag_of
from wplus.edits.crossover import parse_layers
from wplus.edits.directions import direction_from_pairs, load_direction, save_direction
from wplus.edits.render import save_strip
from wplus.errors import ConfigError, ImageError
from wplus.io.images import tensor_to_pil
from wplus.progress import progress
from wplus.projection.pairs import DELTA_LR, PairStep, project_pairs
from wplus.projection.settings import ProjectionSettings
from wplus.shipped import SHIPPED_MODEL, NamedDirection, named_directions
from wplus.text import plural

F = TypeVar("F", bound=Callable[..., Any])


def read_pairs_file(path: Path) -> list[tuple[Path, Path]]:
    """Lines 'NEUTRAL EXPRESSIVE' (whitespace or comma separated; '#' comments); paths relative to the file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read pairs file ({e})") from None
    pairs = []
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].replace(",", " ").split()
        if not text:
            continue
        if len(text) != 2:
            raise ConfigError(f"{path}:{n}: expected 'NEUTRAL EXPRESSIVE', got {line.strip()!r}")
        pairs.append((path.parent / text[0], path.parent / text[1]))
    return pairs


@click.group("direction", cls=WplusGroup)
def direction_group() -> None:
    """Attribute directions: find them (sefa, pca, fit), build them from pairs of latents or images, inspect files."""


direction_group.add_command(sefa_cmd)
direction_group.add_command(pca_cmd)
direction_group.add_command(fit_cmd)


def _pair_options(line: str, outputs: str) -> Callable[[F], F]:
    """--pairs-file (lines ``line``), --name (stem of ``outputs``) and --layers, shared by the from-* commands."""

    def decorate(fn: F) -> F:
        for option in (
            click.option("--layers", default=None, help="Rows the direction applies to by default (in its metadata)."),
            click.option("--name", default="direction", help=f"Output stem: {outputs}."),
            click.option(
                "--pairs-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help=f"Lines '{line}'."
            ),
        ):
            fn = option(fn)
        return fn

    return decorate


@direction_group.command("from-pairs", cls=ImageInputCommand)
@click.argument("latents", nargs=-1, type=INPUT_FILE)
@_pair_options("NEUTRAL EXPRESSIVE", "OUTDIR/<name>.npz and <name>.json")
@one_line_errors
@edit_options
def from_pairs_cmd(
    latents: tuple[Path, ...], pairs_file: Path | None, name: str, layers: str | None, ctx: EditContext
) -> None:
    """Mean of (EXPRESSIVE - NEUTRAL) over pairs: LATENTS are NEUTRAL1 EXPRESSIVE1 NEUTRAL2 EXPRESSIVE2 ...

    Writes OUTDIR/<name>.npz (key 'direction' [num_ws, w_dim] + JSON 'metadata') and <name>.json; use it with
    `wplus edit --direction OUTDIR/<name>.npz`.

    \b
    Examples:
      wplus direction from-pairs n1.npz s1.npz n2.npz s2.npz --name smile \\
          --model G.safetensors --outdir dirs/
      wplus direction from-pairs --pairs-file pairs.txt --model G.safetensors \\
          --outdir dirs/
    """
    pairs = _collect_pairs(latents, pairs_file, "LATENTS (NEUTRAL EXPRESSIVE)")
    neutral = [ctx.load(n, f"neutral{i}").ws for i, (n, _) in enumerate(pairs)]
    expressive = [ctx.load(e, f"expressive{i}").ws for i, (_, e) in enumerate(pairs)]
    vector = direction_from_pairs(neutral, expressive)
    rows = parse_layers(layers, ctx.G.num_ws) if layers else None
    meta = {
        "method": "mean of expressive - neutral",
        "num_pairs": len(pairs),
        "model_sha256": ctx.info.sha256,
        "layers": rows,
    }
    out = save_direction(ctx.outdir / f"{name}.npz", vector, metadata=meta)
    norms = [round(float(x), 6) for x in vector.norm(dim=-1)]
    ctx.record("direction from-pairs", {"num_pairs": len(pairs), "layers": rows, "row_norms": norms}, [out], name=name)


def _collect_pairs(args: tuple[Path, ...], pairs_file: Path | None, what: str) -> list[tuple[Path, Path]]:
    if len(args) % 2:
        raise click.UsageError(f"{what} must come in pairs, got {plural(len(args), 'path')}")
    pairs = list(zip(args[::2], args[1::2], strict=True)) + (read_pairs_file(pairs_file) if pairs_file else [])
    if not pairs:
        raise click.UsageError("give the pairs as arguments or with --pairs-file")
    return pairs


# Settings project_pairs does not have: pairs are embedded in W+ from w_avg, with Adam at a constant rate.
_NOT_FOR_PAIRS = ("space", "init", "optimizer", "lr_rampup", "lr_rampdown", "w_noise", "latent_reg_weight",
                  "optimize_noise", "noise_init", "noise_reg_weight", "noise_steps", "noise_lr")  # fmt: skip


def _check_pair_settings(s: ProjectionSettings) -> None:
    """Refuse projection options that the joint pair projection would otherwise ignore."""
    default = ProjectionSettings()
    given = [flag_of(f) for f in _NOT_FOR_PAIRS if getattr(s, f) != getattr(default, f)]
    if given:
        raise ConfigError(
            f"direction from-images projects pairs into W+ from w_avg with Adam at a constant rate; "
            f"drop {', '.join(given)}"
        )


@direction_group.command("from-images", cls=ImageInputCommand)
@click.argument("images", nargs=-1, type=INPUT_FILE)
@_pair_options("BEFORE AFTER", "OUTDIR/<name>.npz, <name>.json, <name>_pairs.png")
@click.option(
    "--delta-lr",
    type=FiniteFloatRange(0, min_open=True),
    default=DELTA_LR,
    show_default=True,
    help="Adam learning rate of the shared offset (the codes use 0.01).",
)
@one_line_errors
@edit_options
def from_images_cmd(
    images: tuple[Path, ...],
    pairs_file: Path | None,
    name: str,
    layers: str | None,
    delta_lr: float,
    ctx: EditContext,
) -> None:
    """Project image pairs into W+ jointly, with one offset shared by all pairs, and save that offset.

    IMAGES are BEFORE1 AFTER1 BEFORE2 AFTER2 ... (e.g. neutral and smiling photos of the same people, aligned the
    same way). Every pair is embedded as codes w_i and w_i + delta; delta, the mean difference of the after and
    before codes, is written as a direction. It localises an attribute better than projecting each image alone and
    averaging (docs/demo-model.md). A pair with an unreadable file is skipped with a warning.

    \b
    Examples:
      wplus direction from-images n1.png s1.png n2.png s2.png --name smile \\
          --steps 500 --model G.safetensors --outdir d/
      wplus direction from-images --pairs-file pairs.txt --model G.safetensors \\
          --outdir dirs/
    """
    _check_pair_settings(ctx.settings)
    pairs = _collect_pairs(images, pairs_file, "IMAGES (BEFORE AFTER)")
    before, after, used, skipped, entries = [], [], [], [], []
    for i, (b, a) in enumerate(pairs):
        try:
            tb, ta = ctx.read_target(b), ctx.read_target(a)
        except ImageError as e:
            err(f"warning: skipping pair {i} ({b}, {a}): {e}")
            skipped.append({"pair": i, "before": str(b), "after": str(a), "error": str(e)})
            continue
        before.append(tb)
        after.append(ta)
        used.append(i)
        entries.append((ctx.add_input(b, f"before{i}", projected=True), ctx.add_input(a, f"after{i}", projected=True)))
    if not used:
        raise ConfigError(f"none of the {plural(len(pairs), 'pair')} could be read; see the warnings above")
    rows = parse_layers(layers, ctx.G.num_ws) if layers else None
    loss = ctx.projection_loss()
    s = ctx.settings
    steps = s.num_steps
    err(f"projecting {plural(len(used), 'pair')} jointly ({plural(steps, 'step')}, W+, shared offset)")
    bar = progress(steps, desc="pairs", unit="step")

    def on_step(st: PairStep) -> None:
        bar.update(1)
        bar.set_postfix({"loss": f"{st.loss:.4f}"}, refresh=False)

    try:
        r = project_pairs(
            ctx.G,
            torch.cat(before),
            torch.cat(after),
            loss=loss,
            num_steps=steps,
            lr=s.lr,
            betas=s.betas,
            eps=s.eps,
            w_avg_samples=s.w_avg_samples,
            delta_lr=delta_lr,
            callback=on_step,
        )
    finally:
        bar.close()
    pair_psnr = [[round(b, 2), round(a, 2)] for b, a in zip(r.psnr_before, r.psnr_after, strict=True)]
    for i, (pb, pa), (eb, ea) in zip(used, pair_psnr, entries, strict=True):
        b, a = pairs[i]
        eb["projection"], ea["projection"] = {"psnr": pb, "steps": steps}, {"psnr": pa, "steps": steps}
        err(f"projected {b.name}: psnr {pb:.2f} dB, {a.name}: psnr {pa:.2f} dB in {steps} steps (pair {i})")
    meta = {
        "method": "shared offset of jointly projected pairs",
        "num_pairs": len(used),
        "model_sha256": ctx.info.sha256,
        "layers": rows,
        "steps": steps,
        "delta_lr": delta_lr,
    }
    out = save_direction(ctx.outdir / f"{name}.npz", r.delta, metadata=meta)
    tiles = []
    for i in range(len(used)):
        for img in (before[i][0], r.images_before[i], after[i][0], r.images_after[i]):
            tiles.append(tensor_to_pil(img))
    sheet = save_strip(tiles, ctx.outdir / f"{name}_pairs.png", cols=4)
    params = {
        "num_pairs": len(used),
        "pairs_used": used,
        "skipped": skipped,
        "layers": rows,
        "delta_lr": delta_lr,
        "pair_psnr_db": pair_psnr,
        "final_loss": float(r.history["loss"][-1]) if steps else None,
        "seconds": round(r.seconds, 1),
        "row_norms": [round(float(x), 6) for x in r.delta.norm(dim=-1)],
    }
    ctx.record("direction from-images", params, [out, sheet], name=name)


@direction_group.command("info")
@click.argument("path", type=DIRECTION)
@click.option("--component", type=click.IntRange(0), default=None, help="GANSpace component.")
@one_line_errors
def info_cmd(path: Path | str, component: int | None) -> None:
    """Print what a direction file (or a named direction, MODEL:NAME) holds: kind, shape, default rows, row norms."""
    d = load_direction(path, component=component)
    norms = [round(float(x), 6) for x in d.vector.norm(dim=-1)]
    echo_json(
        {
            "path": d.source,
            "kind": d.kind,
            "shape": list(d.vector.shape),
            "layers": d.layers,
            "row_norms": norms,
            "metadata": d.metadata,
        }
    )


@direction_group.command("list")
@click.argument("model", default=SHIPPED_MODEL)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@one_line_errors
def list_cmd(model: str, as_json: bool) -> None:
    """The named directions of a shipped MODEL (default cartoon-faces-64): use one as `--direction MODEL:NAME`.

    Prints each one's name, description, file, recommended strengths, validation accuracy (fitted directions) and
    how it was made.

    \b
    Examples:
      wplus direction list cartoon-faces-64
      wplus direction list cartoon-faces-64 --json
    """
    rows = [_listed(d) for d in named_directions(model)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"{model} has no named directions yet")
        return
    for r in rows:
        acc = "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.3f}"
        low, high = r["strength"]
        click.echo(f"{r['spec']}  strength {low:g}..{high:g}  val acc {acc}  {r['file']}")
        click.echo(f"    {r['description']}")
        if r["method"]:
            click.echo(f"    made by: {r['method']}")


def _listed(d: NamedDirection) -> dict[str, Any]:
    """One named direction as ``direction list`` shows it: the index entry plus what its file's metadata measured."""
    meta = load_direction(d.spec).metadata
    acc = meta.get("val_accuracy")
    return {"spec": d.spec, **d.to_json(), "path": str(d.path),
            "val_accuracy": None if acc is None else float(acc),
            "conditions": meta.get("conditions", [])}  # fmt: skip
