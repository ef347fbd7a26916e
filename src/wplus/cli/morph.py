"""``wplus morph``: frames between two or more embedded images, as a strip, a GIF and an MP4."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import INPUT_FILE, FiniteFloatRange, one_line_errors
from wplus.cli.edit_common import EditContext, edit_options, scale_option
from wplus.cli.help import ImageInputCommand
from wplus.edits.morph import morph
from wplus.edits.render import pingpong as make_pingpong
from wplus.edits.render import render, save_frames, save_strip


@click.command("morph", cls=ImageInputCommand)
@click.argument("keys", nargs=-1, required=True, type=INPUT_FILE)
@click.option("--frames", type=click.IntRange(2), default=30, help="Frames along the whole path (ends included).")
@click.option("--mode", type=click.Choice(["linear", "slerp"]), default="linear", help="slerp: Z codes only.")
@click.option(
    "--interp-space",
    type=click.Choice(["auto", "w+", "z"]),
    default="auto",
    help="auto: in Z when every input carries a z (then mapped), else in W / W+.",
)
@click.option("--pingpong", is_flag=True, help="Play forwards then backwards (loops smoothly).")
@click.option("--fps", type=FiniteFloatRange(0, min_open=True), default=15.0)
@scale_option
@one_line_errors
@edit_options
def morph_cmd(
    keys: tuple[Path, ...],
    frames: int,
    mode: str,
    interp_space: str,
    pingpong: bool,
    fps: float,
    scale: int | None,
    ctx: EditContext,
) -> None:
    """Morph through KEYS (latent.npz / .npy files, or images, which are projected first): w = (1 - t)·w1 + t·w2.

    Writes OUTDIR/morph.png (a grid of up to 12 frames a row, each captioned with its t along the whole path and
    keyframes with their file name), morph.gif, morph.mp4 (with the video extra) and morph.json. Each frame is
    rendered with the keyframes' saved noise blended with the same weights, so the end frames are the inputs.

    \b
    Examples:
      wplus morph a/latent.npz b/latent.npz --model G.safetensors --outdir morph/
      wplus morph a.npz b.npz c.npz --frames 61 --pingpong \\
          --model G.safetensors --outdir morph/
    """
    if len(keys) < 2:
        raise click.UsageError("morph needs at least two inputs")
    codes = [ctx.load(p, f"key{i}") for i, p in enumerate(keys)]
    result = morph(ctx.G, codes, frames=frames, mode=mode, space=interp_space)
    images = render(ctx.G, result.ws, result.noise)
    k = ctx.scale(scale)
    captions = _captions(keys, result.positions)
    outputs = [save_strip(images, ctx.outdir / "morph.png", cols=min(len(images), 12), captions=captions, scale=k)]
    anim = make_pingpong(images) if pingpong else images
    outputs += save_frames(anim, ctx.outdir / "morph", fps=fps, strip=False, scale=k)
    params = {"frames": frames, "mode": mode, "interp_space": result.space, "pingpong": pingpong, "fps": fps,
              "scale": k}  # fmt: skip
    ctx.record("morph", params, outputs)


def _captions(keys: tuple[Path, ...], positions: list[tuple[int, float]]) -> list[str]:
    """'t=0.25' per frame (its place on the whole path, 0 first key, 1 last); keyframes add their file stem."""
    segments = len(keys) - 1
    out = []
    for seg, t in positions:
        text = f"t={(seg + t) / segments:.2f}"
        if t in (0.0, 1.0):
            text += f" {keys[seg + int(t)].stem}"
        out.append(text)
    return out
