"""``wplus train``: train a small StyleGAN2 on an image folder or on the built-in cartoon faces."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click
import torch

from wplus.cli.common import (
    DEVICE_CHOICES,
    FiniteFloatRange,
    echo_json,
    explicit_options,
    one_line_errors,
    resolve_device,
)
from wplus.cli.help import WplusCommand
from wplus.progress import progress
from wplus.train.trainer import (
    CHECKPOINT_NAME,
    TrainConfig,
    TrainStep,
    cartoon_faces,
    load_image_folder,
    read_checkpoint_config,
    train,
)

CARTOON_FACES = "cartoon-faces"


@click.command("train", cls=WplusCommand)
@click.argument("dataset", type=str)
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder.")
@click.option("--kimg", type=FiniteFloatRange(min=0.001), default=200.0, help="Run length: thousands of images shown.")
@click.option("--resume/--no-resume", default=True, help="Continue from OUTDIR/checkpoint.safetensors if present.")
@click.option("--resolution", type=click.Choice(["16", "32", "64", "128", "256"]), default="64")
@click.option("--batch", "batch_size", type=click.IntRange(min=2), default=16)
@click.option("--z-dim", type=click.IntRange(min=1), default=256, help="z_dim = w_dim.")
@click.option("--mapping-layers", type=click.IntRange(min=1), default=4)
@click.option("--g-channel-base", type=click.IntRange(min=16), default=4096)
@click.option("--g-channel-max", type=click.IntRange(min=8), default=192)
@click.option("--d-channel-base", type=click.IntRange(min=16), default=2048)
@click.option("--d-channel-max", type=click.IntRange(min=8), default=128)
@click.option("--gamma", "r1_gamma", type=FiniteFloatRange(min=0), default=None, help="R1 weight (default: heuristic).")
@click.option(
    "--pl-weight",
    type=FiniteFloatRange(min=0),
    default=2.0,
    help="Path length regularisation weight (StyleGAN2: 2; 0 turns it off). May be changed when resuming.",
)
@click.option("--mirror/--no-mirror", "xflip", default=True, help="Random horizontal flips of the reals.")
@click.option("--num-images", type=click.IntRange(min=8), default=20000, help="Faces drawn for cartoon-faces.")
@click.option("--seed", type=int, default=0)
@click.option("--snapshot-minutes", type=FiniteFloatRange(min=0), default=5.0)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads (default: torch's).")
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end.")
@one_line_errors
def train_cmd(
    dataset: str,
    outdir: Path,
    kimg: float,
    resume: bool,
    resolution: str,
    batch_size: int,
    z_dim: int,
    mapping_layers: int,
    g_channel_base: int,
    g_channel_max: int,
    d_channel_base: int,
    d_channel_max: int,
    r1_gamma: float | None,
    pl_weight: float,
    xflip: bool,
    num_images: int,
    seed: int,
    snapshot_minutes: float,
    threads: int | None,
    device: str,
    as_json: bool,
) -> None:
    """Train a StyleGAN2 on DATASET: a folder of images, or 'cartoon-faces' (drawn by wplus, no download).

    Writes OUTDIR/G_ema.safetensors (a generator for `wplus project --model`), D.safetensors, checkpoint.safetensors
    (resumable), samples/*.png and log.jsonl. Ctrl-C and run the same command again to resume.

    \b
    Examples:
      wplus train cartoon-faces --outdir runs/faces --kimg 100
      wplus train photos/ --outdir runs/mine --resolution 64 --kimg 500 --batch 16
    """
    if threads is not None:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # tiny gradients turn denormal as training settles and slow CPU steps 10x
    dev = resolve_device(device)
    res = int(resolution)
    config = TrainConfig(
        resolution=res,
        z_dim=z_dim,
        w_dim=z_dim,
        mapping_layers=mapping_layers,
        g_channel_base=g_channel_base,
        g_channel_max=g_channel_max,
        d_channel_base=d_channel_base,
        d_channel_max=d_channel_max,
        batch_size=batch_size,
        r1_gamma=r1_gamma,
        pl_weight=pl_weight,
        xflip=xflip,
        seed=seed,
    )
    ckpt = outdir / CHECKPOINT_NAME
    if resume and ckpt.is_file():
        # A resumed run keeps its own hyper-parameters, except the regularisation weights given on this command line.
        explicit = explicit_options(click.get_current_context())
        given = {k: v for k, v in (("r1_gamma", r1_gamma), ("pl_weight", pl_weight)) if k in explicit}
        config = dataclasses.replace(read_checkpoint_config(ckpt), **given)
        res = config.resolution
    if dataset == CARTOON_FACES:
        images = cartoon_faces(num_images, res, cache_dir=outdir)
        info = {"name": CARTOON_FACES, "num_images": num_images, "seeds": f"0-{num_images - 1}"}
    else:
        if not Path(dataset).is_dir():
            raise click.BadParameter(f"{dataset}: not a folder; expected an image folder or '{CARTOON_FACES}'")
        images = load_image_folder(dataset, res)
        info = {"name": str(dataset), "num_images": len(images)}
    total = round(kimg * 1000)
    bar = progress(total, unit="img", desc="train")  # a tqdm bar on a terminal, a line every few seconds in a log

    def on_step(st: TrainStep) -> None:
        post = {"G": f"{st.loss_G:.3f}", "D": f"{st.loss_D:.3f}", "s/step": f"{st.sec_per_step:.2f}"}
        if st.r1 is not None:
            post["r1"] = f"{st.r1:.3f}"
        if st.pl is not None:
            post["pl"] = f"{st.pl:.3f}"
        bar.set_postfix(post, refresh=False)
        bar.update(min(st.nimg, total) - bar.n)  # nimg counts from the resumed position

    t0 = time.perf_counter()
    try:
        state = train(
            images,
            config,
            outdir,
            kimg=kimg,
            resume=resume,
            device=dev,
            snapshot_minutes=snapshot_minutes,
            sample_minutes=snapshot_minutes,
            dataset_info=info,
            callback=on_step,
        )
    finally:
        bar.close()
    summary = {
        "outdir": str(outdir),
        "generator": str(outdir / "G_ema.safetensors"),
        "kimg": state.nimg / 1000,
        "steps": state.step,
        "train_wall_s": round(state.wall_s, 1),
        "session_s": round(time.perf_counter() - t0, 1),
    }
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"trained to {summary['kimg']:.1f} kimg; generator: {summary['generator']}")
