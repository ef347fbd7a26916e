"""``wplus edit``: move an embedded image along an attribute direction (toolkit, InterFaceGAN, e4e, GANSpace, SeFa,
ours), by a step (--strength) or to a coordinate along a PCA component (--set)."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import DIRECTION, INPUT_FILE, FiniteFloatRange, one_line_errors
from wplus.cli.edit_common import EditContext, edit_options, parse_floats, scale_option
from wplus.cli.help import ImageInputCommand
from wplus.edits.crossover import parse_layers
from wplus.edits.directions import apply_direction, load_direction, move_to_coordinate
from wplus.edits.render import latent_noise, render, save_frames
from wplus.io.latents import Latent, save_latent
from wplus.loading import file_sha256


@click.command("edit", cls=ImageInputCommand)
@click.argument("latent", type=INPUT_FILE)
@click.option(
    "--direction",
    "direction_path",
    required=True,
    type=DIRECTION,
    help="A shipped model's named direction MODEL:NAME (`wplus direction list cartoon-faces-64`), or a direction "
    "file: ours (.npz), toolkit .npy [18, 512], InterFaceGAN [1, 512] (.npy/.pt), e4e [1, 18, 512] "
    ".pt; with --component: GANSpace ffhq_pca.pt, rosinality's SeFa .pt, `wplus direction sefa/pca` .npz.",
)
@click.option(
    "--strength",
    default=None,
    help="Steps along the direction: '-3,0,3' or 'start:stop:count' (PCA: in std) [default: -3,0,3].",
)
@click.option(
    "--set",
    "set_to",
    default=None,
    help="PCA files only, instead of --strength: move the rows TO coordinate s·std along the component, GANSpace's "
    "named edits (e.g. --set -20 --layers 4).",
)
@click.option(
    "--layers", default=None, help="Rows to edit (default: the file's own; toolkit 0-7, SeFa its layers', else all)."
)
@click.option(
    "--component", type=click.IntRange(0), default=None, help="Component of a GANSpace / SeFa / PCA file (0 = first)."
)
@click.option("--fps", type=FiniteFloatRange(0, min_open=True), default=5.0)
@scale_option
@one_line_errors
@edit_options
def edit_cmd(
    latent: Path,
    direction_path: Path | str,
    strength: str | None,
    set_to: str | None,
    layers: str | None,
    component: int | None,
    fps: float,
    scale: int | None,
    ctx: EditContext,
) -> None:
    """Add strength × direction to LATENT (a latent, or an image projected first) in the chosen rows.

    Writes OUTDIR/edit.png (one frame per strength, captioned s=...), edit.gif/.mp4, latents edit/s<k>.npz and
    edit.json. Z codes are edited after mapping.

    \b
    Examples:
      wplus edit me/latent.npz --direction smile.npy --strength -3,0,3 \\
          --layers coarse,middle --model G.safetensors --outdir e/
      wplus edit me.npz --direction ffhq_pca.pt --component 0 --strength -2:2:9 \\
          --layers 0-4 --model G.safetensors --outdir e/
      wplus edit me.npz --direction ffhq_pca.pt --component 46 --set -20 \\
          --layers 4 --model stylegan2-ffhq-1024 --outdir smile/
      wplus edit me.npz --direction cartoon-faces-64:smile --strength -1:2:7 \\
          --model cartoon-faces-64 --outdir s/
    """
    if strength is not None and set_to is not None:
        raise click.UsageError("give --strength (a step) or --set (a target coordinate), not both")
    steps = parse_floats(set_to, "--set") if set_to is not None else parse_floats(strength or "-3,0,3", "--strength")
    code = ctx.load(latent, "latent")
    d = load_direction(direction_path, ctx.G, component=component, model_sha256=ctx.info.sha256,
                       model_id=ctx.info.model_id)  # fmt: skip
    direction_file = Path(d.source) if isinstance(direction_path, str) else direction_path
    rows = parse_layers(layers, ctx.G.num_ws) if layers else None
    if set_to is not None:
        ws = move_to_coordinate(code.ws, d, steps, layers=rows)
    else:
        ws = apply_direction(code.ws, d, steps, layers=rows)
    frames = render(ctx.G, ws, latent_noise(code, ctx.G))
    captions = [f"{'set' if set_to is not None else 's'}={s:g}" for s in steps]
    outputs = save_frames(frames, ctx.outdir / "edit", fps=fps, captions=captions, scale=ctx.scale(scale))
    for k, row in enumerate(ws):
        out = Latent(
            ws=row[None], space="w+", noise=code.noise, model_id=ctx.info.model_id, model_sha256=ctx.info.sha256
        )
        outputs.append(save_latent(ctx.outdir / "edit" / f"s{k:02d}.npz", out, npy=False))
    applied = rows if rows is not None else (d.layers if d.layers is not None else list(range(ctx.G.num_ws)))
    params = {
        "direction": {
            "path": str(direction_file),
            "named": direction_path if isinstance(direction_path, str) else None,
            "sha256": file_sha256(direction_file),
            "kind": d.kind,
            "metadata": d.metadata,
        },
        "strength": None if set_to is not None else steps,
        "set": steps if set_to is not None else None,
        "layers": applied,
        "component": component,
        "scale": ctx.scale(scale),
    }
    ctx.record("edit", params, outputs)
