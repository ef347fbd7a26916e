"""``wplus encoder``: train our own W+ encoder for any generator, on the generator's own samples."""

from __future__ import annotations

import math
from pathlib import Path

import click
import torch

from wplus.cli.common import (
    DEVICE_CHOICES,
    INPUT_FILE,
    FiniteFloatRange,
    echo_json,
    err,
    one_line_errors,
    open_model,
    resolve_device,
)
from wplus.cli.help import WplusGroup
from wplus.errors import ConfigError, ImageError
from wplus.io.atomic import write_json
from wplus.precision import PRECISIONS, resolve_precision
from wplus.progress import progress

STATE_FILE = "train-state.safetensors"
ENCODER_FILE = "encoder.safetensors"


@click.group("encoder", cls=WplusGroup)
def encoder_group() -> None:
    """Encoders: one network pass from an image to its W+ code (a start for projection).

    \b
    Examples:
      wplus encoder train --model cartoon-faces-64 --outdir runs/enc --steps 2000
      wplus project face.png --init encoder --steps 100 --outdir out/
    """


def read_folder(folder: Path, resolution: int, limit: int | None = None) -> torch.Tensor:
    """Every image below ``folder`` (sorted), centre-cropped and resized: ``[N, 3, R, R]`` in [-1, 1]."""
    from wplus.io.images import IMAGE_SUFFIXES, load_target

    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"{folder}: no images found (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
    files = files[:limit] if limit else files
    return torch.cat([load_target(p, resolution) for p in files])


def _check_resumed_precision(state: Path, precision: str) -> None:
    """A resumed run keeps the precision it started with (the state records the one that ran; none: fp32)."""
    from wplus.io.checkpoint import json_field, read_metadata

    run = json_field(state, read_metadata(state), "run")
    stored = run.get("precision", "fp32") if isinstance(run, dict) else "fp32"
    if stored != precision:
        raise ConfigError(f"--resume: {state} trained in {stored}, this run would be {precision}; "
                          f"pass --precision {stored}")  # fmt: skip


@encoder_group.command("train")
@click.option("--model", default=None, help="Generator to train for (a name or a file).")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Where to write.")
@click.option("--steps", type=click.IntRange(1), default=None, help="Optimiser steps [default: 2000].")
@click.option("--kimg", type=FiniteFloatRange(0, min_open=True), default=None, help="Or thousands of pairs seen.")
@click.option("--images", type=click.Path(path_type=Path), default=None, help="Real images: recon-only batches.")
@click.option("--eval-images", type=click.Path(path_type=Path), default=None, help="Images to report PSNR on.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=32)
@click.option("--lr", type=FiniteFloatRange(0, 1, min_open=True), default=1e-3, help="Peak AdamW learning rate.")
@click.option("--head", type=click.Choice(["grouped", "flat"]), default="grouped", help="W+ head layout.")
@click.option("--init-from", type=INPUT_FILE, default=None, help="Start from this encoder (fine-tune).")
@click.option("--latent-weight", type=FiniteFloatRange(0), default=1.0, help="Whitened W+ MSE weight.")
@click.option("--pixel-weight", type=FiniteFloatRange(0), default=1.0, help="Pixel MSE weight.")
@click.option("--perceptual-weight", type=FiniteFloatRange(0), default=0.1, help="Perceptual loss weight.")
@click.option("--image-every", type=click.IntRange(1), default=4, help="Steps between image-loss batches.")
@click.option("--pool-size", type=click.IntRange(0), default=2048, help="Replay pool of rendered pairs.")
@click.option("--seed", type=click.IntRange(0), default=0, help="Seeds weights, codes and batch order.")
@click.option("--eval-every", type=click.IntRange(1), default=250, help="Steps between evaluations and grids.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=100, help="Steps between state writes.")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="fp32",
    show_default=True,
    help="bf16: each step's forward pass under bf16 autocast (weights and AdamW stay fp32; native bf16 CPUs, GPUs); "
    "auto: bf16 where faster. --resume needs the same.",
)
@click.option("--resume", is_flag=True, help="Continue from OUTDIR's training state.")
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as JSON.")
@one_line_errors
def train_cmd(
    model: str | None,
    outdir: Path,
    steps: int | None,
    kimg: float | None,
    images: Path | None,
    eval_images: Path | None,
    batch_size: int,
    lr: float,
    head: str,
    init_from: Path | None,
    latent_weight: float,
    pixel_weight: float,
    perceptual_weight: float,
    image_every: int,
    pool_size: int,
    seed: int,
    eval_every: int,
    checkpoint_every: int,
    precision: str,
    resume: bool,
    device: str,
    as_json: bool,
) -> None:
    """Train an encoder on pairs (G(w), w) with style mixing; writes OUTDIR/encoder.safetensors.

    Loss: whitened W+ MSE + pixel MSE + a perceptual term (VGG-16, or offline
    the model's discriminator features). OUTDIR/samples/ gets grids (inputs
    over reconstructions), OUTDIR/metrics.json the evaluations. Killed, the
    same command with --resume continues from OUTDIR/train-state.safetensors.

    \b
    Example:
      wplus --threads 1 encoder train --model cartoon-faces-64 --outdir runs/enc
    """
    from wplus import __version__
    from wplus.models.encoder import config_for, save_encoder
    from wplus.projection.choice import default_loss
    from wplus.train.encoder import EncoderTrainSettings, train_encoder

    if steps is not None and kimg is not None:
        raise ConfigError("give --steps or --kimg, not both")
    total = steps if steps is not None else (math.ceil(kimg * 1000 / batch_size) if kimg is not None else 2000)
    state = outdir / STATE_FILE
    if state.is_file() and not resume:
        raise ConfigError(f"{state} exists: pass --resume to continue that run, or choose another --outdir")
    if resume and not state.is_file():
        raise ConfigError(f"--resume: no training state at {state}")
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)  # bf16 where it would be emulated: one line, before the model
    if resume:
        _check_resumed_precision(state, precision)
    info = open_model(model, device=dev)
    G = info.G
    real = read_folder(images, G.img_resolution) if images is not None else None
    real_eval = read_folder(eval_images, G.img_resolution, limit=64) if eval_images is not None else None
    settings = EncoderTrainSettings(
        steps=total, batch_size=batch_size, lr=lr, seed=seed, latent_weight=latent_weight, pixel_weight=pixel_weight,
        perceptual_weight=perceptual_weight, image_every=image_every, pool_size=pool_size,
        image_batch=min(8, batch_size), eval_every=eval_every, checkpoint_every=checkpoint_every, precision=precision,
    )  # fmt: skip
    loss = default_loss(G, notice=err) if perceptual_weight > 0 else None
    config = config_for(
        G.num_ws, G.w_dim, G.img_resolution, head=head, model_sha256=info.sha256, model_id=info.model_id or ""
    )
    init = None
    if init_from is not None:
        from wplus.encoders import encoder_for

        init = encoder_for(G, init_from, device=dev)
    training = {"wplus_version": __version__, "model": info.model_id, "model_sha256": info.sha256,
                "settings": vars(settings) | {}, "images": str(images) if images else None,
                "init_from": str(init_from) if init_from else None}  # fmt: skip
    outdir.mkdir(parents=True, exist_ok=True)
    evals: list[dict] = []
    if resume and (outdir / "metrics.json").is_file():  # keep the evaluations made before the interruption
        import json

        evals = list(json.loads((outdir / "metrics.json").read_text()).get("evals", []))

    def on_eval(step: int, encoder, metrics: dict, grids: list[torch.Tensor]) -> None:
        from wplus.io.images import image_grid, save_image, tensor_to_pil

        evals.append(metrics)
        rows = []
        for i in range(0, len(grids), 2):  # inputs over reconstructions, 8 per row
            rows += [tensor_to_pil(x[None]) for x in grids[i][:8]] + [tensor_to_pil(x[None]) for x in grids[i + 1][:8]]
        save_image(image_grid(rows, 8), outdir / "samples" / f"step-{step:06d}.png")
        save_encoder(outdir / ENCODER_FILE, encoder, metadata={"metrics": metrics, "training": training})
        write_json(outdir / "metrics.json", {"training": training, "evals": evals})

    done = 0
    if resume:
        from wplus.io.checkpoint import json_field, read_metadata

        done = int(json_field(state, read_metadata(state), "step"))
    with progress(total=total, desc="encoder", unit="step") as bar:
        bar.update(min(done, total))  # a resumed run's bar starts where the state stopped

        def callback(step: int, n: int, parts: dict[str, float]) -> None:
            bar.update(1)
            if step % 5 == 0:
                bar.set_postfix(**{k: f"{v:.4f}" for k, v in parts.items()})

        result = train_encoder(
            G, settings=settings, config=config, loss=loss, real=real, real_eval=real_eval, init=init, device=dev,
            state_path=state, callback=callback, on_eval=on_eval,
        )  # fmt: skip
    metrics = {"training": training, "evals": result.evals, "final": result.metrics}
    write_json(outdir / "metrics.json", metrics)
    path = save_encoder(outdir / ENCODER_FILE, result.encoder, metadata={"metrics": result.metrics,
                                                                          "training": training})  # fmt: skip
    err(f"wrote {path}")
    if as_json:
        echo_json(result.metrics)
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in result.metrics.items()))
