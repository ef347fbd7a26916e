"""``wplus study``: Image2StyleGAN's tables and figures, one command each (the library is ``wplus.study``)."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import (
    DEVICE_CHOICES,
    MODEL_HELP_FALLBACK,
    echo_json,
    err,
    one_line_errors,
    open_model,
    resolve_device,
)
from wplus.cli.help import WplusCommand
from wplus.cli.projection_options import ProjectionChoice, projection_options
from wplus.errors import ConfigError

QUICK_STEPS = 50  # --quick without --steps
QUICK_PER_CLASS = 1
QUICK_ROUNDS = 2


@click.command("study", cls=WplusCommand)
@click.argument("name", metavar="NAME")
@click.argument("images", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--model", type=str, default=None, help=MODEL_HELP_FALLBACK)
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder of results.csv, results.md, figure.png, study.json and the finished units.")  # fmt: skip
@click.option("--quick", is_flag=True, help=f"Few images and steps ({QUICK_STEPS} unless --steps): a first look.")
@click.option("--per-class", type=click.IntRange(1), default=None,
              help="Default images per class (3; --quick: 1).")  # fmt: skip
@click.option("--rounds", type=click.IntRange(1), default=None, help="reembed: rounds (paper: 7; 3; --quick: 2).")
@click.option("--shift", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="transforms: shift as a fraction of the side [default: 140/1024 right, 160/1024 left].")  # fmt: skip
@click.option("--masks", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="defects: folder of STEM-eyes.png, STEM-nose.png, STEM-mouth.png masks of the IMAGES (without it, "
                   "an image `wplus align` made takes its regions from the landmarks in its STEM.json).")  # fmt: skip
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@projection_options
@one_line_errors
def study_cmd(
    name: str,
    images: tuple[Path, ...],
    model: str | None,
    outdir: Path,
    quick: bool,
    per_class: int | None,
    rounds: int | None,
    shift: float | None,
    masks: Path | None,
    device: str,
    as_json: bool,
    projection: ProjectionChoice,
) -> None:
    """Run one of Image2StyleGAN's studies (or all) and write its table and figure.

    NAME is classes (quality per class, Figs. 10, 20), transforms (Table 1),
    defects (Table 3), spaces (Table 2, Fig. 5), losses (Fig. 9), reembed
    (Fig. 11), noise (Fig. 16), resolution (Fig. 12) or all. IMAGES are
    folders (one class each) or files; without them the study uses
    held-out drawn faces, faces with attributes the shipped model never
    saw, and scikit-image's photographs (people, animals, objects).

    Each study writes results.csv, results.md, figure.png and study.json
    into OUTDIR (`all`: OUTDIR/NAME/). Every projection is kept in
    OUTDIR/units/ as it finishes: rerun the command to resume.

    \b
    Examples:
      wplus study classes --quick --outdir study/classes
      wplus study defects --model tiny.safetensors --steps 20 --outdir st/
      wplus study all --steps 1000 --outdir study/
    """
    from wplus.study import StudyContext, check_study, items_from_paths, run_study

    try:
        check_study(name)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from None
    from wplus.study.plotting import FIGURE_PURPOSE, pyplot

    pyplot(FIGURE_PURPOSE)  # every study draws a figure: a missing matplotlib is said before anything is projected
    dev = resolve_device(device)
    info = open_model(model, device=dev, fallback=True)
    if quick and "num_steps" not in projection.given:
        projection.settings = projection.settings.replace(num_steps=QUICK_STEPS)
    loss, _ = projection.loss(dev, info, notice=err)
    settings = projection.settings
    items = items_from_paths(list(images), info.G.img_resolution) if images else None
    D = None
    if "dfeat" in settings.terms:
        from wplus.formats.dispatch import load_discriminator_for

        D = load_discriminator_for(info.path, device=dev)
    vgg = getattr(getattr(loss, "perceptual", None), "vgg", None) if "perceptual" in settings.terms else None
    options: dict = {"masks": masks, "vgg_weights": projection.vgg_weights}
    if shift is not None:
        options.update(shift_right=shift, shift_left=shift)
    ctx = StudyContext(
        G=info.G,
        model={"path": str(info.path), "id": info.model_id, "sha256": info.sha256},
        loss=loss,
        loss_settings=settings,
        settings=settings,
        outdir=outdir,
        quick=quick,
        per_class=per_class or (QUICK_PER_CLASS if quick else 3),
        rounds=rounds or (QUICK_ROUNDS if quick else 3),
        discriminator=D,
        vgg=vgg,
        options=options,
    )
    done = run_study(name, ctx, items)
    if as_json:
        echo_json(done)
        return
    for study, d in done.items():
        folder = Path(d["files"][0]).parent
        click.echo(f"{study}: {d['projected']} projected, {d['reused']} reused, {d['seconds']:.1f} s -> {folder}/")
