"""``wplus mix``: style transfer by crossover, a style-mixing grid and a style video."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import INPUT_FILE, FiniteFloatRange, one_line_errors
from wplus.cli.edit_common import EditContext, edit_options, scale_option
from wplus.cli.help import ImageInputCommand
from wplus.edits.crossover import mix_styles, parse_layers, style_mixing_grid, style_morph
from wplus.edits.render import render, save_frames
from wplus.io.images import save_image
from wplus.io.latents import Latent, save_latent


@click.command("mix", cls=ImageInputCommand)
@click.argument("content", type=INPUT_FILE)
@click.argument("styles", nargs=-1, required=True, type=INPUT_FILE)
@click.option(
    "--layers",
    default="paper",
    help="Rows taken from the style code: ranges ('9-17') or names coarse, middle, fine, paper (last half), "
    "toolkit (7-17 of 18), all; combine with commas.",
)
@click.option("--content", "more_content", multiple=True, type=INPUT_FILE, help="More grid rows.")
@click.option("--video", is_flag=True, help="Also a video where the style morphs through STYLES (needs >= 2).")
@click.option("--frames", type=click.IntRange(2), default=60, help="Frames of the style video.")
@click.option("--fps", type=FiniteFloatRange(0, min_open=True), default=15.0)
@scale_option
@one_line_errors
@edit_options
def mix_cmd(
    content: Path,
    styles: tuple[Path, ...],
    layers: str,
    more_content: tuple[Path, ...],
    video: bool,
    frames: int,
    fps: float,
    scale: int | None,
    ctx: EditContext,
) -> None:
    """Give CONTENT the style rows of each STYLE (latents, or images projected first).

    Writes OUTDIR/mix.png (content rows x style columns, sources on the top row and left column, captioned with
    their file names), one latent per cell (mixed/c<i>_s<j>.npz, rendered with the content's noise),
    mix_video.gif/.mp4 with --video, and mix.json. Z codes are crossed over after mapping.

    \b
    Examples:
      wplus mix me/latent.npz painting/latent.npz --layers paper \\
          --model G.safetensors --outdir mix/
      wplus mix a.npz s1.npz s2.npz s3.npz --content b.npz --layers fine \\
          --video --model G.safetensors --outdir mix/
    """
    rows = parse_layers(layers, ctx.G.num_ws)
    content_paths = (content, *more_content)
    contents = [ctx.load(p, f"content{i}") for i, p in enumerate(content_paths)]
    style_codes = [ctx.load(p, f"style{j}") for j, p in enumerate(styles)]
    k = ctx.scale(scale)
    labels = ([p.stem for p in content_paths], [p.stem for p in styles])
    sheet, _ = style_mixing_grid(ctx.G, contents, style_codes, rows, labels=labels, scale=k)
    outputs = [save_image(sheet, ctx.outdir / "mix.png")]
    for i, c in enumerate(contents):
        for j, s in enumerate(style_codes):
            ws = mix_styles(c.ws, s.ws, rows)
            latent = Latent(ws=ws, space="w+", noise=c.noise, model_id=ctx.info.model_id, model_sha256=ctx.info.sha256)
            outputs.append(save_latent(ctx.outdir / "mixed" / f"c{i}_s{j}.npz", latent, npy=False))
    if video:
        if len(style_codes) < 2:
            raise click.UsageError("--video needs at least two STYLES to morph between")
        ws, noise = style_morph(ctx.G, contents[0], style_codes, rows, frames=frames)
        outputs += save_frames(render(ctx.G, ws, noise), ctx.outdir / "mix_video", fps=fps, strip=False, scale=k)
    params = {"layers": layers, "rows": rows, "video": video, "frames": frames, "fps": fps, "scale": k}
    ctx.record("mix", params, outputs)
