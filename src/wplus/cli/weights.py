"""``wplus weights``: make, fetch and inspect weight files."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import err, one_line_errors
from wplus.io.checkpoint import save_generator
from wplus.models.stylegan2 import StyleGAN2Config, count_parameters, random_generator


@click.group("weights")
def weights_group() -> None:
    """Create, download and inspect weight files."""


@weights_group.command("random")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--resolution", type=int, default=256, help="Output side in pixels (power of two).")
@click.option("--channel-base", type=click.IntRange(1), default=16384, help="channels(res) = min(base // res, max).")
@click.option("--channel-max", type=click.IntRange(1), default=512)
@click.option("--mapping-layers", type=click.IntRange(1), default=8)
@click.option("--w-dim", type=click.IntRange(1), default=512, help="Width of z and w.")
@click.option("--architecture", type=click.Choice(["skip", "orig", "resnet"]), default="skip")
@click.option("--noise-strength", type=float, default=0.0, help="Noise strength of every layer (0 at init).")
@click.option("--seed", type=int, default=0)
@one_line_errors
def random_cmd(
    out: Path,
    resolution: int,
    channel_base: int,
    channel_max: int,
    mapping_layers: int,
    w_dim: int,
    architecture: str,
    noise_strength: float,
    seed: int,
) -> None:
    """Write a randomly initialised StyleGAN2 generator to OUT (safetensors + JSON config; no pickle).

    For tests, benchmarks and bug reports: the same seed gives the same file.

    \b
    Example:
      wplus weights random --resolution 64 --channel-base 4096 tiny.safetensors
    """
    cfg = StyleGAN2Config(
        img_resolution=resolution,
        channel_base=channel_base,
        channel_max=channel_max,
        mapping_layers=mapping_layers,
        z_dim=w_dim,
        w_dim=w_dim,
        architecture=architecture,
    )
    G = random_generator(cfg, seed=seed, noise_strength=noise_strength)
    save_generator(G, out, metadata={"source": f"wplus weights random --seed {seed}"})
    err(f"wrote {out}: {resolution}px StyleGAN2, {count_parameters(G):,} parameters, num_ws={G.num_ws}")
