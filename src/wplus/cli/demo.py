"""``wplus demo`` (``make demo``): embed faces into W+, morph them, mix styles and add a smile, offline."""

from __future__ import annotations

import time
from pathlib import Path

import click
import torch
from click.core import ParameterSource

from wplus.cli.common import DEVICE_CHOICES, err, one_line_errors, resolve_device
from wplus.cli.help import WplusCommand
from wplus.demo import DEMO_NAMES, astronaut_image, demo_targets, load_attribute_edits, load_shipped_smile, run_demo
from wplus.errors import OfflineError, WplusError
from wplus.loading import load_generator, resolve_model
from wplus.losses import DiscriminatorFeatures, PerceptualLoss
from wplus.progress import progress
from wplus.projection.project import ProjectionStep
from wplus.shipped import SHIPPED_MODEL, load_shipped_discriminator
from wplus.text import plural

D_LOSS_NAME = "shipped discriminator features + MSE (offline stand-in for VGG-16)"
MODEL_ENV = "WPLUS_MODEL"  # --model's environment variable (`make demo MODEL=...` passes MODEL on as --model)


@click.command("demo", cls=WplusCommand)
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"))
@click.option(
    "--model",
    type=str,
    envvar=MODEL_ENV,
    default=SHIPPED_MODEL,
    help=f"Generator file or registry name (env {MODEL_ENV}); the shipped cartoon-face model by default.",
)
@click.option("--vgg-weights", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--steps", type=click.IntRange(min=1), default=300, help="Projection steps.")
@click.option("--seed", type=int, default=0)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads (default: torch's).")
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@click.pass_context
@one_line_errors
def demo_cmd(
    ctx: click.Context,
    outdir: Path,
    model: str,
    vgg_weights: Path | None,
    steps: int,
    seed: int,
    threads: int | None,
    device: str,
) -> None:
    """Embed a few faces into W+, then write reconstructions, a morph GIF, a style-mixing grid, a smile strip and
    one contact sheet to OUTDIR. Needs no network: the shipped model, its discriminator and its smile direction are
    used. Progress goes to stderr (a line every few seconds when that is not a terminal).

    \b
    Examples:
      wplus demo --outdir demo_out
      WPLUS_MODEL=stylegan2-ffhq-256 wplus demo --vgg-weights vgg16-397923af.pth
    """
    if threads is not None:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    try:
        found = resolve_model(model, notice=err)
        path, shipped = found.path, found.shipped
        G = load_generator(path, device=dev)
    except WplusError as e:
        if ctx.get_parameter_source("model") != ParameterSource.ENVIRONMENT:
            raise
        line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise click.ClickException(f"{MODEL_ENV}={model} (environment variable): {line}; unset it or fix it") from None
    first = smile = None
    attribute_edits: list = []
    if shipped:
        loss = DiscriminatorFeatures(load_shipped_discriminator(device=dev)).to(dev)
        loss_name = D_LOSS_NAME
        smile = load_shipped_smile(G)
        attribute_edits = load_attribute_edits(G)
    else:
        first = astronaut_image()
        try:
            from wplus.models.vgg16 import load_vgg16

            loss = PerceptualLoss(load_vgg16(vgg_weights, device=dev)).to(dev)
            loss_name = "VGG-16 perceptual (Image2StyleGAN) + MSE"
        except OfflineError as e:
            err(f"VGG-16 weights unavailable ({str(e).splitlines()[0][:100]}); using pixel MSE only")
            loss = PerceptualLoss(None, perceptual_weight=0.0)
            loss_name = "pixel MSE only (no VGG-16 weights)"
    smile_name = "the shipped smile direction" if smile is not None else "one-pair expression transfer (the paper's)"
    click.echo(f"model: {path}\nloss: {loss_name}\nsmile: {smile_name}", err=True)
    if attribute_edits:
        err(f"attribute edits: {', '.join(a.name for a in attribute_edits)} (the shipped named directions)")
    err(f"projecting {len(DEMO_NAMES)} faces into W+ ({plural(steps, 'step')})")
    bar = progress(steps, desc="project", unit="step")

    def on_step(st: ProjectionStep) -> None:
        bar.update(1)
        bar.set_postfix({"psnr": f"{float(st.psnr.mean()):.1f}"}, refresh=False)

    t0 = time.perf_counter()
    try:
        targets = demo_targets(G.img_resolution, first=first)
        res = run_demo(G, loss, outdir, targets=targets, loss_name=loss_name, num_steps=steps, seed=seed,
                       smile=smile, attribute_edits=attribute_edits, callback=on_step)  # fmt: skip
    finally:
        bar.close()
    psnrs = ", ".join(f"{k} {v:.1f}" for k, v in res.psnr.items())
    click.echo(f"W+ reconstructions PSNR (dB): {psnrs}")
    click.echo(f"demo done in {time.perf_counter() - t0:.0f} s; contact sheet: {res.files['contact_sheet']}")
    click.echo(
        f"all results in {outdir}/ (reconstructions.png, morph.gif, style_mixing.png, expression.png; "
        "latents/*.npz and targets/*.png to try the other commands on)"
    )
