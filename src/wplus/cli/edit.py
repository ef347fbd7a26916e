"""``wplus edit``: move an embedded image along an attribute direction (toolkit, InterFaceGAN, e4e, GANSpace, ours)."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import FiniteFloatRange, one_line_errors
from wplus.cli.edit_common import EditContext, edit_options, parse_floats
from wplus.cli.help import ImageInputCommand
from wplus.edits.crossover import parse_layers
from wplus.edits.directions import apply_direction, load_direction
from wplus.edits.render import latent_noise, render, save_frames
from wplus.io.latents import Latent, save_latent
from wplus.loading import file_sha256


@click.command("edit", cls=ImageInputCommand)
@click.argument("latent", type=click.Path(path_type=Path))
@click.option(
    "--direction",
    "direction_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Direction file: ours (.npz), toolkit .npy [18, 512], InterFaceGAN [1, 512] (.npy/.pt), e4e [1, 18, 512] "
    ".pt, GANSpace ffhq_pca.pt (with --component).",
)
@click.option("--strength", default="-3,0,3", help="Steps along the direction: '-3,0,3' or 'start:stop:count'.")
@click.option("--layers", default=None, help="Rows to edit (default: the file's own; toolkit 0-7, else all).")
@click.option("--component", type=click.IntRange(0), default=None, help="GANSpace component (step = strength·std).")
@click.option("--fps", type=FiniteFloatRange(0, min_open=True), default=5.0)
@one_line_errors
@edit_options
def edit_cmd(
    latent: Path,
    direction_path: Path,
    strength: str,
    layers: str | None,
    component: int | None,
    fps: float,
    ctx: EditContext,
) -> None:
    """Add strength × direction to LATENT (a latent, or an image projected first) in the chosen rows.

    Writes OUTDIR/edit.png (one frame per strength), edit.gif/.mp4, latents edit/s<k>.npz and edit.json.
    Z codes are edited after mapping.

    \b
    Examples:
      wplus edit me/latent.npz --direction smile.npy --strength -3,0,3 \\
          --layers coarse,middle --model G.safetensors --outdir e/
      wplus edit me.npz --direction ffhq_pca.pt --component 0 --strength -2:2:9 \\
          --layers 0-4 --model G.safetensors --outdir e/
    """
    steps = parse_floats(strength, "--strength")
    code = ctx.load(latent, "latent")
    d = load_direction(direction_path, ctx.G, component=component)
    rows = parse_layers(layers, ctx.G.num_ws) if layers else None
    ws = apply_direction(code.ws, d, steps, layers=rows)
    outputs = save_frames(render(ctx.G, ws, latent_noise(code, ctx.G)), ctx.outdir / "edit", fps=fps)
    for k, row in enumerate(ws):
        out = Latent(
            ws=row[None], space="w+", noise=code.noise, model_id=ctx.info.model_id, model_sha256=ctx.info.sha256
        )
        outputs.append(save_latent(ctx.outdir / "edit" / f"s{k:02d}.npz", out, npy=False))
    applied = rows if rows is not None else (d.layers if d.layers is not None else list(range(ctx.G.num_ws)))
    params = {
        "direction": {
            "path": str(direction_path),
            "sha256": file_sha256(direction_path),
            "kind": d.kind,
            "metadata": d.metadata,
        },
        "strength": steps,
        "layers": applied,
        "component": component,
    }
    ctx.record("edit", params, outputs)
