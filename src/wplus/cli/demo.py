"""``wplus demo``: the main job end to end on a real generator (``make demo``)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"))
@click.option(
    "--model", type=click.Path(path_type=Path), envvar="MODEL", default=None, help="Generator file (env MODEL)."
)
def demo_cmd(outdir: Path, model: Path | None) -> None:
    """Embed sample photos, then morph and mix them (needs a trained generator)."""
    raise click.ClickException(
        "the demo needs a trained generator and VGG-16 weights, and wplus does not ship one yet: run "
        "`wplus project IMAGE --model FILE --vgg-weights vgg16-397923af.pth --outdir out/` with your own "
        "checkpoint (our .safetensors format), or `wplus weights random` to try the pipeline on a random model"
    )
