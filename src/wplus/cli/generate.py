"""``wplus generate``: render images (and their latents) from seeds."""

from __future__ import annotations

import math
from pathlib import Path

import click
import torch

from wplus.cli.common import (
    DEVICE_CHOICES,
    MODEL_HELP_FALLBACK,
    class_label,
    err,
    one_line_errors,
    open_model,
    parse_seeds,
    resolve_device,
)
from wplus.cli.help import WplusCommand
from wplus.cli.tuning_options import apply_tuning_file, tuning_file_option
from wplus.io.atomic import write_json
from wplus.io.images import save_image
from wplus.io.latents import Latent, save_latent
from wplus.models import stylegan3
from wplus.models.stylegan3 import MAX_TRANSFORM_SHIFT, make_transform
from wplus.seeds import ws_from_seed


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"got {value}, expected a finite number such as 0.7", param_hint="--trunc")
    return value


def _rotate(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"got {value}, expected a finite angle in degrees such as 15", param_hint="--rotate")
    return value


def _translate(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        x, y = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"got {value!r}, expected X,Y such as 0.1,-0.05", param_hint="--translate") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_TRANSFORM_SHIFT for v in (x, y)):
        raise click.BadParameter(
            f"got {value!r}, expected finite shifts within ±{MAX_TRANSFORM_SHIFT:g} (the image spans -0.5 to 0.5)",
            param_hint="--translate",
        )
    return x, y


@click.command("generate", cls=WplusCommand)
@click.option(
    "--model",
    type=str,
    default=None,
    help=MODEL_HELP_FALLBACK,
)
@click.option(
    "--seeds",
    default="0-7",
    callback=parse_seeds,
    help="Seeds, e.g. '0-7,42' (0 to 2**32-1). Seed s means z = np.random.RandomState(s).randn(1, z_dim), as in "
    "NVIDIA's generate.py: the same seed and model give the same face there and here.",
)
@click.option(
    "--trunc",
    "truncation_psi",
    type=float,
    default=1.0,
    callback=_finite,
    help="Truncation psi: w = w_avg + psi * (w - w_avg) (0.7 is a common choice).",
)
@click.option(
    "--trunc-cutoff",
    type=click.IntRange(1),
    default=None,
    help="Truncate only the first N ws [default: all of them; the first 8 for StyleGAN v1, as TF's Gs.run].",
)
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const")
@click.option(
    "--rotate",
    type=float,
    default=None,
    callback=_rotate,
    metavar="DEG",
    help="StyleGAN3 only: rotate the image by DEG degrees through the input transform (NVIDIA's gen_images.py).",
)
@click.option(
    "--translate",
    default=None,
    callback=_translate,
    metavar="X,Y",
    help="StyleGAN3 only: shift the image by X,Y in image units (the image spans -0.5 to 0.5), as gen_images.py.",
)
@click.option("--class", "class_idx", type=click.IntRange(0), default=None, help="Class label (conditional models).")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--save-latents", is_flag=True, help="Also write seedNNNN.npz latents (editable later).")
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@tuning_file_option
@one_line_errors
def generate_cmd(
    model: str | None,
    seeds: list[int],
    truncation_psi: float,
    trunc_cutoff: int | None,
    noise_mode: str,
    rotate: float | None,
    translate: tuple[float, float] | None,
    class_idx: int | None,
    outdir: Path,
    save_latents: bool,
    device: str,
    tuning_path: Path | None,
) -> None:
    """Render one image per seed: z from the seed (NVIDIA's convention), then G.mapping and G.synthesis.

    \b
    Examples:
      wplus generate --model G.safetensors --seeds 0-7 --trunc 0.7 --outdir s/
      wplus generate --model stylegan3-t-ffhqu-256 --seeds 0-3 \\
          --rotate 15 --translate 0.1,0 --outdir turned/
    """
    dev = resolve_device(device)
    info = open_model(model, device=dev, fallback=True)  # a look at a model: the shipped one will do
    G, tuning = apply_tuning_file(info.G, tuning_path)
    transform = None
    if rotate is not None or translate is not None:
        if not isinstance(G, stylegan3.Generator):
            flag = "--rotate" if rotate is not None else "--translate"
            raise click.BadParameter(
                f"needs a StyleGAN3 model (its Fourier-feature input can be turned and shifted); {info.model_id} is "
                f"a {G.config.arch}",
                param_hint=flag,
            )
        transform = make_transform(rotate or 0.0, translate or (0.0, 0.0)).to(dev)
    c = class_label(G, class_idx, dev)
    written: list[str] = []
    for seed in seeds:
        z, ws = ws_from_seed(G, seed, c=c, truncation_psi=truncation_psi, truncation_cutoff=trunc_cutoff)
        with torch.no_grad():
            kwargs = {} if transform is None else {"transform": transform}
            img = G.synthesis(ws, noise_mode=noise_mode, **kwargs)
        path = save_image(img, outdir / f"seed{seed:04d}.png")
        if save_latents:
            noise = G.noise_maps() if noise_mode == "const" else []
            save_latent(
                outdir / f"seed{seed:04d}.npz",
                Latent(ws=ws, space="w", noise=noise, z=z, model_id=info.model_id, model_sha256=info.sha256),
                npy=False,
            )
        err(f"wrote {path}")
        written.append(str(path))
    from wplus import __version__

    record = {
        "wplus_version": __version__,
        "command": "generate",
        "model": {"path": str(info.path), "id": info.model_id, "sha256": info.sha256},
        "tuning": tuning,
        "parameters": {"seeds": seeds, "truncation_psi": truncation_psi, "trunc_cutoff": trunc_cutoff,
                       "noise_mode": noise_mode, "rotate": rotate, "translate": translate, "class": class_idx},
        "outputs": written,
    }  # fmt: skip
    write_json(outdir / "generate.json", record)
