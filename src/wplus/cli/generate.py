"""``wplus generate``: render images (and their latents) from seeds."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from wplus.cli.common import (
    DEVICE_CHOICES,
    MODEL_HELP,
    err,
    one_line_errors,
    open_model,
    parse_int_ranges,
    resolve_device,
)
from wplus.io.images import save_image
from wplus.io.latents import Latent, save_latent


@click.command("generate")
@click.option(
    "--model",
    type=str,
    default=None,
    help=MODEL_HELP,
)
@click.option("--seeds", default="0-7", help="Seeds, e.g. '0-7,42'.")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, help="Truncation psi (0.7 is a common choice).")
@click.option("--trunc-cutoff", type=click.IntRange(1), default=None, help="Truncate only the first N layers.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const")
@click.option("--class", "class_idx", type=click.IntRange(0), default=None, help="Class label (conditional models).")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--save-latents", is_flag=True, help="Also write seedNNNN.npz latents (editable later).")
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@one_line_errors
def generate_cmd(
    model: str | None,
    seeds: str,
    truncation_psi: float,
    trunc_cutoff: int | None,
    noise_mode: str,
    class_idx: int | None,
    outdir: Path,
    save_latents: bool,
    device: str,
) -> None:
    """Render one image per seed: z ~ N(0, I) from the seed, then G.mapping and G.synthesis.

    \b
    Example:
      wplus generate --model ffhq.safetensors --seeds 0-7 --trunc 0.7 --outdir samples/
    """
    dev = resolve_device(device)
    info = open_model(model, device=dev)
    G = info.G
    c = None
    if G.c_dim:
        if class_idx is None or class_idx >= G.c_dim:
            raise click.BadParameter(f"this model is conditional with {G.c_dim} classes: pass --class 0..{G.c_dim - 1}")
        c = torch.zeros(1, G.c_dim, device=dev)
        c[0, class_idx] = 1
    for seed in parse_int_ranges(seeds):
        z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(seed)).to(dev)
        with torch.no_grad():
            ws = G.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=trunc_cutoff)
            img = G.synthesis(ws, noise_mode=noise_mode)
        path = save_image(img, outdir / f"seed{seed:04d}.png")
        if save_latents:
            noise = G.noise_maps() if noise_mode == "const" else []
            save_latent(
                outdir / f"seed{seed:04d}.npz",
                Latent(ws=ws, space="w", noise=noise, z=z, model_id=info.model_id, model_sha256=info.sha256),
                npy=False,
            )
        err(f"wrote {path}")
