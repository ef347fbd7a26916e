"""``wplus project``: embed images and write one folder of results per image.

The run's settings come from the shared projection options (``wplus.cli.projection_options``), the dataset options
(resume, ``--shard``, ``--engine ray``) from ``wplus.cli.dataset_options``; the work is the library's
(``wplus.datasets``: inputs, manifest, engines). This module only wires them together and reports.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from wplus.cli.align import check_face_options, face_options
from wplus.cli.common import (
    DEVICE_CHOICES,
    INPUT_FILE,
    MODEL_HELP,
    echo_json,
    err,
    one_line_errors,
    open_model,
    resolve_device,
)
from wplus.cli.dataset_options import DatasetChoice, dataset_options
from wplus.cli.help import WplusCommand
from wplus.cli.projection_options import ProjectionChoice, projection_options
from wplus.cli.tuning_options import tuning_options
from wplus.datasets.inputs import expand_inputs
from wplus.datasets.runner import DatasetProjector, Preprocess, RunSpec, plan_run, run_local
from wplus.errors import ConfigError
from wplus.io.images import MAX_PIXELS
from wplus.loading import LoadedGenerator, file_sha256
from wplus.text import plural
from wplus.tuning import PIVOT_SPACE, TuningSettings


def _provenance(model: LoadedGenerator, **fields: Any) -> dict[str, Any]:
    from wplus import __version__

    entry = {"path": str(model.path), "id": model.model_id, "sha256": model.sha256}
    return {"wplus_version": __version__, "command": "project", "model": entry, **fields}


@click.command("project", cls=WplusCommand, collapsed=("Noise maps", "Schedules & optimiser", "Tuning", "Dataset runs"))
@click.argument("images", nargs=-1, required=True)
@click.option("--model", type=str, default=None, help=MODEL_HELP)
@click.option(
    "--outdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="One sub-folder per image is written here.",
)
@click.option(
    "--init-latent",
    type=INPUT_FILE,
    help="Start from this code instead (latent.npz/.npy/.pt), e.g. to continue a run. W+ and W only.",
)
@click.option(
    "--encoder",
    "encoder_path",
    type=INPUT_FILE,
    help="For --init/--preset encoder [default: the model's].",
)
@click.option("--batch-size", type=click.IntRange(1), default=1, show_default=True, help="Images optimised together.")
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@click.option("--save-video", is_flag=True, help="Write proj.gif (and proj.mp4 with the video extra).")
@click.option("--plot", is_flag=True, help="Write history.png: PSNR and loss against seconds.")
@click.option("--save-styles", is_flag=True, help="Write styles.npz too: the code in S (wplus style).")
@click.option("--mask", "mask_path", type=INPUT_FILE, help="Mask image: white = loss looks here.")
@click.option("--mask-from-alpha", is_flag=True, help="Use each RGBA input's alpha as its mask (scribbles).")
@click.option("--align", is_flag=True, help="FFHQ-align faces first (align extra; --face: which); one job per face.")
@click.option(
    "--crop",
    type=click.Choice(["center", "none"]),
    default="center",
    show_default=True,
    help="Without --align: centre-crop to a square, or resize the whole image.",
)
@face_options
@click.option("--paste-back", is_flag=True, help="With --align: also write pasted.png (projection in the photo).")
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=MAX_PIXELS,
    show_default=True,
    help="Refuse input images with more pixels (decompression bombs); raise it for huge photos.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@tuning_options
@projection_options
@dataset_options
@one_line_errors
def project_cmd(
    images: tuple[str, ...],
    model: str | None,
    outdir: Path,
    init_latent: Path | None,
    encoder_path: Path | None,
    batch_size: int,
    device: str,
    save_video: bool,
    plot: bool,
    save_styles: bool,
    mask_path: Path | None,
    mask_from_alpha: bool,
    align: bool,
    crop: str,
    face: str,
    min_face_ratio: float,
    paste_back: bool,
    max_pixels: int,
    as_json: bool,
    tuning: TuningSettings | None,
    projection: ProjectionChoice,
    dataset: DatasetChoice,
) -> None:
    """Embed IMAGES into the generator's latent space (Image2StyleGAN: VGG-16 perceptual + MSE loss, Adam).

    Each image is centre-cropped and resized (Lanczos) to the generator's resolution. Per image, OUTDIR/<stem>/
    gets target.png, projection.png, latent.npz (key 'w' [1, num_ws, w_dim], noise maps, model checksum),
    latent.npy ([num_ws, w_dim]), metrics.json and config.json. A file that cannot be read, or a batch whose
    projection fails, is reported and the rest goes on.

    IMAGES are files, folders (every image below them, the layout kept in OUTDIR), globs ('photos/**/*.jpg') or
    @list.txt (one a line). Every run keeps OUTDIR/manifest.jsonl (one image too) and, run again, skips the images
    it finished with the same input and settings (--overwrite redoes them); `wplus manifest OUTDIR` summarises it.
    --shard I/N projects a deterministic part (Slurm arrays); --engine ray runs on a Ray cluster (docs/datasets.md).
    With --align the largest face is FFHQ-aligned first (group.jpg -> out/group_01/); --face all takes every face
    but those under --min-face-ratio of the largest (docs/alignment.md). With --tune each image's generator is then
    tuned around its code (pivotal tuning; W unless --space is given): tuning.safetensors, projection.png tuned,
    untuned.png, metrics before and after (docs/tuning.md).

    \b
    Presets (explicit options override them; config.json records the result):
      image2stylegan  W+, VGG + MSE, lr 0.01, 5000 steps, noise fixed
      fast            W+, VGG + MSE, L-BFGS per image, 600 steps
      nvidia          W, LPIPS, lr 0.1 with ramps, w-noise, noise optimised and
                      regularised (1e5), 1000 steps
      course          W+, perceptual 0.01 + L1 10

    \b
    Examples:
      wplus project face.png --model ffhq.safetensors --outdir out/
      wplus project photos/ --model G.safetensors --outdir out/  # again: resumes
      wplus project @list.txt --model G.safetensors --outdir out/ \\
          --shard $SLURM_ARRAY_TASK_ID/8
      wplus project 'frames/*.png' --model G.safetensors --outdir out/ \\
          --engine ray --workers 4 --gpus-per-worker 1
      wplus project a.jpg b.jpg --model G.safetensors --outdir out/ \\
          --space w --steps 500 --batch-size 2
      wplus project face.png --model G.safetensors --preset nvidia --outdir out/
      wplus project scribble.png --model G.safetensors --outdir out/ \\
          --mask-from-alpha --latent-reg 1
    """
    if paste_back and not align:
        raise click.UsageError("--paste-back needs --align (the transform back into the photo comes from alignment)")
    check_face_options(click.get_current_context(), face, needs=None if align else "--align")
    if align and mask_from_alpha:
        raise click.UsageError("--mask-from-alpha cannot be combined with --align (the alpha is not aligned)")
    if mask_path is not None and mask_from_alpha:
        raise click.UsageError("give either --mask FILE or --mask-from-alpha, not both")
    if plot:  # before any image is projected: a missing matplotlib is one line, not a failure per image
        from wplus.io.plot import pyplot
        from wplus.projection.outputs import HISTORY_PLOT_PURPOSE

        pyplot(HISTORY_PLOT_PURPOSE)
    repeated: list[Path] = []
    try:
        inputs = expand_inputs(images, repeated=repeated)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="IMAGES") from None
    if repeated:
        shown = ", ".join(str(p) for p in repeated[:3]) + (", ..." if len(repeated) > 3 else "")
        err(f"skipped {len(repeated)} repeated input{'s' if len(repeated) > 1 else ''} ({shown}): each file is "
            "projected once")  # fmt: skip
    if tuning is not None and "space" not in projection.given:
        projection.settings = projection.settings.replace(space=PIVOT_SPACE)  # PTI's pivot is a W code
    if encoder_path is not None and projection.settings.init != "encoder":
        raise click.UsageError("--encoder is for --init encoder (or --preset encoder)")
    if init_latent is not None and projection.settings.init == "encoder":
        raise click.UsageError("give either --init-latent or --init encoder, not both")
    dev = resolve_device(device)
    model_info = open_model(model, device=dev)
    if projection.settings.init == "encoder":
        from wplus.encoders import encoder_for

        encoder_for(model_info.G, encoder_path, device=dev)  # a missing encoder or one for another model: one line
    loss, lpips = projection.loss(dev, model_info, notice=err)
    settings = projection.settings  # after the loss: an offline fallback to D features changes it
    if tuning is not None:  # --tune has no precision flag of its own: it follows --precision
        tuning = dataclasses.replace(tuning, precision=settings.precision)
    pre = Preprocess(
        model_info.G.img_resolution, align, crop, mask_path, mask_from_alpha, max_pixels, face, min_face_ratio
    )
    spec = RunSpec(
        model_path=str(model_info.path),
        model_id=model_info.model_id,
        model_sha256=model_info.sha256,
        settings=settings,
        preprocess=pre,
        init_latent=init_latent,
        encoder=encoder_path,
        vgg_weights=projection.vgg_weights,
        lpips_weights=projection.lpips_weights,
        batch_size=batch_size,
        save_video=save_video,
        plot=plot,
        save_styles=save_styles,
        paste_back=paste_back,
        tuning=tuning,
        provenance=_provenance(
            model_info,
            batch_size=batch_size,
            device=str(dev),
            mask=str(mask_path) if mask_path is not None else ("alpha" if mask_from_alpha else None),
            init_latent=None if init_latent is None else {"path": str(init_latent), "sha256": file_sha256(init_latent)},
            encoder=None if encoder_path is None else {"path": str(encoder_path), "sha256": file_sha256(encoder_path)},
            preprocess=pre.describe(),
            vgg_weights=None if projection.vgg_weights is None else str(projection.vgg_weights),
            lpips_weights=None if projection.lpips_weights is None else str(projection.lpips_weights),
        ),
    )
    plan = plan_run(inputs, outdir, spec, shard=dataset.shard, overwrite=dataset.overwrite)
    if plan.skipped:
        total = plural(len(plan.skipped) + len(plan.todo), "image")
        err(f"skipped {len(plan.skipped)} of {total} done earlier with the same "
            f"input and settings (manifest in {outdir}; --overwrite redoes them)")  # fmt: skip
    if dataset.engine == "ray":
        from wplus.datasets.ray_engine import RayOptions, run_ray

        ray_opts = RayOptions(dataset.workers, dataset.gpus_per_worker, dataset.cpus_per_worker, dataset.ray_address)
        outcomes = run_ray(plan, spec, ray_opts, device=device, notice=err)
    else:
        projector = DatasetProjector(
            spec, G=model_info.G, loss=loss, lpips=lpips, device=dev, notice=err, quiet=as_json
        )
        if projector.coupling and batch_size > 1:
            err(f"projecting one image at a time, not {batch_size}: {projector.coupling}")
        outcomes = run_local(plan, projector)
    summary = [r for o in outcomes for r in o.results]
    failed = [{"image": o.input, "error": o.error} for o in outcomes if o.status == "failed"]
    if as_json:
        echo_json({"results": summary, "failed": failed, "skipped": len(plan.skipped),
                   "repeated": [str(p) for p in repeated]})  # fmt: skip
    if failed:
        raise click.ClickException(
            f"{len(outcomes) - len(failed)} of {plural(len(outcomes), 'image')} projected; {len(failed)} failed "
            f"(first: {failed[0]['error']})"
        )
