"""``wplus expression``: expression transfer w = w1 + λ·(w3 − w2) with the paper's clean-up, as a strength sweep."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import INPUT_FILE, FiniteFloatRange, one_line_errors
from wplus.cli.edit_common import EditContext, edit_options, parse_floats, scale_option
from wplus.cli.help import ImageInputCommand
from wplus.edits.expression import clean_difference, expression_transfer
from wplus.edits.render import latent_noise, render, save_frames
from wplus.io.latents import Latent, save_latent


@click.command("expression", cls=ImageInputCommand)
@click.argument("target", type=INPUT_FILE)
@click.argument("neutral", type=INPUT_FILE)
@click.argument("expressive", type=INPUT_FILE)
@click.option("--strength", default="0:1:5", help="λ values: '1', '-1,0,1,2' or a sweep 'start:stop:count'.")
@click.option("--threshold", type=FiniteFloatRange(0), default=1.0, help="Rows of w3 - w2 below this are zeroed.")
@click.option(
    "--norm",
    type=click.Choice(["l2", "rms"]),
    default="l2",
    help="Row measure: l2 = ||row||_2 (paper's reading), rms = ||row||_2 / sqrt(w_dim).",
)
@click.option(
    "--normalize",
    type=click.Choice(["none", "global", "rows"]),
    default="none",
    help="Scale the cleaned difference: none, global (unit Frobenius norm) or rows (unit norm per kept row).",
)
@click.option("--fps", type=FiniteFloatRange(0, min_open=True), default=5.0)
@scale_option
@one_line_errors
@edit_options
def expression_cmd(
    target: Path,
    neutral: Path,
    expressive: Path,
    strength: str,
    threshold: float,
    norm: str,
    normalize: str,
    fps: float,
    scale: int | None,
    ctx: EditContext,
) -> None:
    """Move TARGET's expression by NEUTRAL -> EXPRESSIVE (latents, or images projected first).

    w = w1 + λ·clean(w3 - w2): rows ("channels") of the difference whose norm is below --threshold are zeroed
    (Image2StyleGAN 4.3, threshold 1 with the L2 norm). Writes OUTDIR/expression.png (one frame per λ, captioned),
    expression.gif/.mp4, latents expression/s<k>.npz (target's noise) and expression.json (kept rows, row norms).

    \b
    Example:
      wplus expression me.npz neutral.npz smile.npz --strength 0:1.5:7 \\
          --model G.safetensors --outdir expr/
    """
    lambdas = parse_floats(strength, "--strength")
    w1, w2, w3 = ctx.load(target, "target"), ctx.load(neutral, "neutral"), ctx.load(expressive, "expressive")
    cleaned = clean_difference(w3.ws - w2.ws, threshold=threshold, norm=norm, normalize=normalize)
    ws = expression_transfer(w1.ws, w2.ws, w3.ws, strength=lambdas, threshold=threshold, norm=norm, normalize=normalize)
    noise = latent_noise(w1, ctx.G)
    captions = [f"lambda={x:g}" for x in lambdas]
    outputs = save_frames(
        render(ctx.G, ws, noise), ctx.outdir / "expression", fps=fps, captions=captions, scale=ctx.scale(scale)
    )
    for k, row in enumerate(ws):
        latent = Latent(
            ws=row[None], space="w+", noise=w1.noise, model_id=ctx.info.model_id, model_sha256=ctx.info.sha256
        )
        outputs.append(save_latent(ctx.outdir / "expression" / f"s{k:02d}.npz", latent, npy=False))
    params = {
        "strength": lambdas,
        "threshold": threshold,
        "norm": norm,
        "normalize": normalize,
        "scale": ctx.scale(scale),
        "kept_rows": [i for i, k in enumerate(cleaned.kept.tolist()) if k],
        "row_norms": [round(float(x), 6) for x in cleaned.norms],
    }
    ctx.record("expression", params, outputs)
