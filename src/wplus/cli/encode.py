"""``wplus encode``: W+ codes from a released pSp / e4e / ReStyle encoder, one folder per image as ``wplus project``.

The encoder file carries its decoder, which renders the codes unless ``--model`` names another generator. The codes
(``latent.npz``) record the generator they belong to: the encoder file (its SHA-256; the file is also a ``--model``
for ``wplus render``) or the ``--model`` file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import torch

from wplus.cli.common import DEVICE_CHOICES, echo_json, err, one_line_errors, resolve_device
from wplus.cli.help import WplusCommand
from wplus.errors import CheckpointError, ConfigError, WplusError
from wplus.text import plural

ENCODER_HELP = (
    "A pSp, e4e or ReStyle checkpoint (.pt) or a registered name: psp-ffhq-encode, e4e-ffhq-encode, "
    "restyle-psp-ffhq, restyle-e4e-ffhq (`wplus weights list`)."
)


def resolve_encoder(name: str) -> tuple[Path, str]:
    """(file, id) of ``--encoder``: an existing file, or a registered encoder fetched into the cache."""
    from wplus.hub import REGISTRY, fetch
    from wplus.hub.zoo_encoders import ENCODER_KIND

    path = Path(name)
    if path.is_file():
        return path, path.stem
    spec = REGISTRY.get(name)
    if spec is None or spec.kind != ENCODER_KIND:
        known = ", ".join(sorted(k for k, s in REGISTRY.items() if s.kind == ENCODER_KIND))
        raise CheckpointError(name, f"no such file or registered encoder; expected a .pt file or one of: {known}")
    return fetch(spec), spec.name


@click.command("encode", cls=WplusCommand)
@click.argument("images", nargs=-1, required=True)
@click.option("--encoder", "encoder_name", required=True, help=ENCODER_HELP)
@click.option(
    "--outdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="One sub-folder per image is written here.",
)
@click.option(
    "--iterations",
    type=click.IntRange(1, 100),
    default=None,
    help="ReStyle refinement steps. Default: the file's n_iters_per_batch (5).",
)
@click.option("--model", type=str, default=None, help="Render with this generator, not the encoder's decoder.")
@click.option(
    "--crop",
    type=click.Choice(["center", "none"]),
    default="center",
    show_default=True,
    help="Centre-crop to a square, or resize the whole image.",
)
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@one_line_errors
def encode_cmd(
    images: tuple[str, ...],
    encoder_name: str,
    outdir: Path,
    iterations: int | None,
    model: str | None,
    crop: str,
    device: str,
    as_json: bool,
) -> None:
    """Encode IMAGES with a released pSp, e4e or ReStyle encoder (one forward pass; ReStyle: a few).

    Each image is cropped and resized to 256 px for the encoder, as the originals do. Per image, OUTDIR/<stem>/
    gets target.png (at the generator's resolution), projection.png, latent.npz (key 'w' [1, 18, 512], the
    constant noise, the generator's SHA-256), latent.npy, metrics.json (PSNR, SSIM, milliseconds) and
    config.json, as `wplus project` writes them: a code can seed `wplus project --init-latent` or be edited.

    \b
    Examples:
      wplus encode face.png --encoder e4e-ffhq-encode --outdir out/
      wplus encode photos/ --encoder restyle_psp_ffhq_encode.pt --outdir out/ \\
          --iterations 10
      wplus encode face.png --encoder psp.pt --model ffhq.pkl --outdir out/
    """
    from wplus import __version__
    from wplus.datasets.inputs import expand_inputs
    from wplus.formats.psp import INPUT_SIZE, load_encoder
    from wplus.io.atomic import write_json
    from wplus.io.images import fit_image, load_image, pil_to_tensor, save_image
    from wplus.io.latents import Latent, save_latent
    from wplus.loading import file_sha256, load_generator_info
    from wplus.metrics import psnr, ssim

    try:
        inputs = expand_inputs(images)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="IMAGES") from None
    dev = resolve_device(device)
    enc_path, enc_id = resolve_encoder(encoder_name)
    enc = load_encoder(enc_path, device=dev)
    enc_sha = file_sha256(enc_path)
    if iterations is not None and not enc.iterations and iterations != 1:
        raise click.BadParameter(f"{enc_path} is a single-pass {enc.kind} encoder; --iterations is for ReStyle")
    if model is not None:
        info = load_generator_info(model, device=dev, notice=err, fallback=False)
        G, model_id, model_sha, model_path = info.G, info.model_id, info.sha256, info.path
        if (G.num_ws, G.w_dim) != (enc.n_styles, enc.arch.style_dim):
            raise click.BadParameter(f"{model} takes [{G.num_ws}, {G.w_dim}] codes; the encoder writes "
                                     f"[{enc.n_styles}, {enc.arch.style_dim}]", param_hint="--model")  # fmt: skip
    else:
        G, model_id, model_sha, model_path = enc.G, enc_id, enc_sha, enc_path
    encoder_record = {"path": str(enc_path), "id": enc_id, "sha256": enc_sha, "kind": enc.kind,
                      "encoder_type": enc.arch.encoder_type}  # fmt: skip
    results: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for item in inputs:
        try:
            img = load_image(item.path)
            x = pil_to_tensor(fit_image(img, INPUT_SIZE, crop)).to(dev)  # type: ignore[arg-type]
            target = pil_to_tensor(fit_image(img, G.img_resolution, crop)).to(dev)  # type: ignore[arg-type]
            t0 = time.perf_counter()
            ws = enc.encode(x, iterations)
            t_enc = time.perf_counter() - t0
            with torch.no_grad():
                t0 = time.perf_counter()
                picture = G.synthesis(ws.to(dev), noise_mode="const")
                t_render = time.perf_counter() - t0
            folder = outdir / item.name
            folder.mkdir(parents=True, exist_ok=True)
            save_image(target, folder / "target.png")
            save_image(picture, folder / "projection.png")
            latent = Latent(ws=ws.cpu(), space="w+", noise=G.noise_maps(), model_id=model_id,
                            model_sha256=model_sha, source=f"encoder:{enc_id}")  # fmt: skip
            save_latent(folder / "latent.npz", latent)
            metrics = {
                "psnr": float(psnr(picture, target)[0]),
                "ssim": float(ssim(picture, target)[0]),
                "milliseconds": 1000 * t_enc,
                "milliseconds_render": 1000 * t_render,
                "iterations": (iterations or enc.iterations) if enc.iterations else 1,
                "seconds_total": t_enc + t_render,
            }
            write_json(folder / "metrics.json", metrics)
            model_entry = {"id": model_id, "sha256": model_sha, "path": str(model_path)}
            write_json(folder / "config.json", {"model": model_entry, "wplus_version": __version__,
                       "command": "encode", "encoder": encoder_record, "input": str(item.path),
                       "device": str(dev), "crop": crop, "space": "w+"})  # fmt: skip
            results.append({"image": str(item.path), "folder": str(folder), **metrics})
            if not as_json:
                click.echo(f"{item.name}: psnr {metrics['psnr']:.2f} dB, ssim {metrics['ssim']:.3f}, "
                           f"{metrics['milliseconds']:.0f} ms -> {folder}")  # fmt: skip
        except WplusError as e:
            failed.append({"image": str(item.path), "error": str(e).splitlines()[0]})
            err(f"{item.path}: {str(e).splitlines()[0]}")
    if as_json:
        echo_json({"results": results, "failed": failed})
    if failed:
        raise click.ClickException(
            f"{len(results)} of {plural(len(inputs), 'image')} encoded; {len(failed)} failed "
            f"(first: {failed[0]['error']})"
        )
