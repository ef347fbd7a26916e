"""``wplus render``: render saved codes (ours, NVIDIA's, the toolkit's, e4e / PTI / rosinality ``.pt``) to PNGs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from wplus.cli.common import one_line_errors
from wplus.cli.edit_common import EditContext, model_options
from wplus.cli.help import WplusCommand
from wplus.datasets.inputs import unique_names
from wplus.edits.render import latent_noise, render_latents
from wplus.errors import ConfigError
from wplus.io.images import save_image
from wplus.io.latents import Latent, save_latent
from wplus.models.stylegan2 import truncate


def _finite_psi(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"got {value}, expected a finite number such as 0.7", param_hint="--trunc")
    return value


@click.command("render", cls=WplusCommand)
@click.argument("latents", metavar="LATENT...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--index",
    type=click.IntRange(0),
    default=None,
    help="Render only code I of each file (0 = first) [default: every code; e4e's latents.pt holds one per image].",
)
@click.option(
    "--trunc",
    "truncation_psi",
    type=float,
    default=1.0,
    callback=_finite_psi,
    help="Truncation psi: w = w_avg + psi * (w - w_avg) on every row (1: the code as saved; 0: w_avg's image).",
)
@click.option(
    "--size",
    type=click.IntRange(8, 8192),
    default=None,
    help="Output side in pixels, resized with Lanczos [default: the model's resolution].",
)
@click.option(
    "--save-latents",
    is_flag=True,
    help="Also write each rendered code as <name>.npz (our format: editable by every edit command).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON record (render.json) on stdout.")
@one_line_errors
@model_options
def render_cmd(
    latents: tuple[Path, ...],
    index: int | None,
    truncation_psi: float,
    size: int | None,
    save_latents: bool,
    as_json: bool,
    ctx: EditContext,
) -> None:
    """Render every code of each LATENT file with the noise saved with it (the model's constant noise when none).

    LATENT: our latent.npz / .npy, NVIDIA's projected_w.npz, the toolkit's .npy [N, num_ws, w_dim], e4e / PTI
    latents.pt ([N, num_ws, w_dim] or {name: code}) or rosinality projector .pt files. Writes OUTDIR/<stem>.png
    (<stem>_<i>.png for files of several codes) and render.json (inputs and model with SHA-256, tuning, psi, size,
    outputs). A latent.npz that records another model's SHA-256 is rendered with a one-line warning.

    \b
    Examples:
      wplus render out/photo/latent.npz --model ffhq.safetensors --outdir renders/
      wplus render e4e/latents.pt --index 1 --trunc 0.7 --size 256 \\
          --model ffhq.safetensors --outdir renders/
      wplus render out/photo/latent.npz --tuning out/photo/tuning.safetensors \\
          --model ffhq.safetensors --outdir r/
    """
    names = unique_names(p.stem for p in latents)
    outputs: list[Path] = []
    rendered: list[dict[str, Any]] = []
    for path, name in zip(latents, names, strict=True):
        codes = ctx.load_all(path, "latent")
        picks = range(len(codes)) if index is None else [_check_index(index, len(codes), path)]
        for i in picks:
            stem = name if len(codes) == 1 else f"{name}_{i}"
            image = render_latents(ctx.G, [codes[i]], truncation_psi=truncation_psi, size=size)[0]
            png = save_image(image, ctx.outdir / f"{stem}.png")
            outputs.append(png)
            entry = {"input": str(path), "code": i, "source": codes[i].source, "output": str(png)}
            if save_latents:
                npz = _save_code(ctx, codes[i], truncation_psi, ctx.outdir / f"{stem}.npz")
                outputs.append(npz)
                entry["latent"] = str(npz)
            rendered.append(entry)
    params = {
        "index": index,
        "truncation_psi": truncation_psi,
        "size": size or ctx.G.img_resolution,
        "save_latents": save_latents,
        "rendered": rendered,
    }
    ctx.record("render", params, outputs, echo=as_json)


def _check_index(index: int, count: int, path: Path) -> int:
    if index >= count:
        raise ConfigError(f"--index {index}: {path} holds {count} code{'s' if count > 1 else ''} (0 to {count - 1})")
    return index


def _save_code(ctx: EditContext, code: Latent, psi: float, path: Path) -> Path:
    """The code as rendered (truncated) with the noise it was rendered with, for the rendering model."""
    ws = truncate(code.ws.to(ctx.G.w_avg.device), ctx.G.w_avg, psi).cpu()
    noise = [n.cpu() for n in latent_noise(code, ctx.G)]
    latent = Latent(ws=ws, space="w+", noise=noise, model_id=ctx.info.model_id, model_sha256=ctx.info.sha256,
                    source=code.source)  # fmt: skip
    return save_latent(path, latent, npy=False)
