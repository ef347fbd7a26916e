"""``wplus`` command group."""

from __future__ import annotations

import logging

import click

from wplus.cli.align import align_cmd, paste_cmd
from wplus.cli.demo import demo_cmd
from wplus.cli.direction import direction_group
from wplus.cli.edit import edit_cmd
from wplus.cli.encode import encode_cmd
from wplus.cli.encoder import encoder_group
from wplus.cli.env import env_cmd
from wplus.cli.expression import expression_cmd
from wplus.cli.generate import generate_cmd
from wplus.cli.help import WplusGroup
from wplus.cli.manifest import manifest_cmd
from wplus.cli.mix import mix_cmd
from wplus.cli.morph import morph_cmd
from wplus.cli.probe import probe_group
from wplus.cli.project import project_cmd
from wplus.cli.render import render_cmd
from wplus.cli.sample import sample_cmd
from wplus.cli.serve import serve_cmd
from wplus.cli.study import study_cmd
from wplus.cli.style import style_group
from wplus.cli.style_locate import style_group as _locate  # noqa: F401  (registers locate, find)
from wplus.cli.style_parts import style_group as _parts  # noqa: F401  (registers parts, transfer)
from wplus.cli.train import train_cmd
from wplus.cli.tune import tune_cmd
from wplus.cli.weights import weights_group
from wplus.runtime import set_cpu_threads, tune_cpu_allocator


@click.group(cls=WplusGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="wplus", message="wplus %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log library messages to stderr.")
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    default=None,
    envvar="WPLUS_THREADS",
    show_envvar=True,
    help="CPU threads for torch (default: one per core). Fewer than the cores helps on a machine shared with others.",
)
def cli(verbose: bool, threads: int | None) -> None:
    """Embed photographs into StyleGAN's Z, W and W+ latent spaces (Image2StyleGAN) and edit them.

    \b
    Examples:
      wplus weights random --resolution 64 tiny.safetensors
      wplus project photo.jpg --model tiny.safetensors --steps 500 --outdir out/
      wplus generate --model tiny.safetensors --seeds 0-7 --outdir samples/
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    tune_cpu_allocator()  # reuse freed activations instead of page-faulting them in again each step (runtime.py)
    if threads is not None:
        set_cpu_threads(threads)


cli.add_command(project_cmd)
cli.add_command(encode_cmd)
cli.add_command(manifest_cmd)
cli.add_command(generate_cmd)
cli.add_command(render_cmd)
cli.add_command(sample_cmd)
cli.add_command(weights_group)
cli.add_command(env_cmd)
cli.add_command(demo_cmd)
cli.add_command(align_cmd)
cli.add_command(paste_cmd)
cli.add_command(morph_cmd)
cli.add_command(mix_cmd)
cli.add_command(expression_cmd)
cli.add_command(edit_cmd)
cli.add_command(direction_group)
cli.add_command(style_group)
cli.add_command(train_cmd)
cli.add_command(probe_group)
cli.add_command(encoder_group)
cli.add_command(tune_cmd)
cli.add_command(serve_cmd)
cli.add_command(study_cmd)


def main() -> None:
    cli(prog_name="wplus")
