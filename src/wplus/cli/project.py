"""``wplus project``: embed image files and write one folder of results per image.

The run's settings come from the shared projection options (``wplus.cli.projection_options``); the folder is
written by the library (``wplus.projection.outputs.write_projection_folder``). This module only turns files into
targets, batches them and reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch

from wplus.cli.common import DEVICE_CHOICES, MODEL_HELP, echo_json, err, one_line_errors, open_model, resolve_device
from wplus.cli.naming import face_name, unique_dirs
from wplus.cli.projection_options import ProjectionChoice, projection_options
from wplus.errors import ConfigError, WplusError
from wplus.io.images import MAX_PIXELS, center_crop_resize, load_image, pil_to_tensor
from wplus.io.masks import load_mask, split_alpha
from wplus.loading import LoadedGenerator, file_sha256
from wplus.progress import progress
from wplus.projection.outputs import ProgressVideo, write_projection_folder
from wplus.projection.project import ProjectionStep, project


@dataclass
class Job:
    path: Path
    outdir: Path
    target: torch.Tensor | None = None
    error: str | None = None
    mask: torch.Tensor | None = None
    transform: Any = None  # wplus.align.AlignTransform when the target is an aligned face


@dataclass(frozen=True)
class _Inputs:
    """How input files become targets."""

    resolution: int
    align: bool
    crop: str
    mask_path: Path | None
    mask_from_alpha: bool
    max_pixels: int


def _prepare_jobs(paths: list[Path], outdir: Path, how: _Inputs) -> list[Job]:
    """Turn each input file into targets: one centre-cropped (or squashed) image, or one aligned face per face."""
    detector = None
    if how.align:
        from wplus.align import LandmarkDetector

        detector = LandmarkDetector()
    jobs: list[Job] = []
    for path, d in zip(paths, unique_dirs(paths, outdir), strict=True):
        try:
            jobs.extend(_jobs_of(path, d, how, detector))
        except WplusError as e:
            jobs.append(Job(path, d, error=str(e)))
            err(f"skipped: {e}")
    return jobs


def _jobs_of(path: Path, d: Path, how: _Inputs, detector: Any) -> list[Job]:
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; pass the image files in it (e.g. {path}/*.png)")
    res, limit = how.resolution, how.max_pixels
    if detector is not None:
        from wplus.align import align_faces

        faces = align_faces(path, detector=detector, output_size=res, max_pixels=limit)
        mask = None  # an aligned face is square: the mask must be too
        if how.mask_path is not None:
            mask = load_mask(how.mask_path, res, image_size=(res, res), image_path=path, max_pixels=limit)
        return [
            Job(path, d.with_name(face_name(d.name, f.transform.face_index)), pil_to_tensor(f.image),
                mask=mask, transform=f.transform)
            for f in faces
        ]  # fmt: skip
    if how.mask_from_alpha:
        pil, mask = split_alpha(path, res, crop=how.crop, max_pixels=limit)
        return [Job(path, d, target=pil_to_tensor(pil), mask=mask)]
    img = load_image(path, max_pixels=limit)
    pil = center_crop_resize(img, res) if how.crop == "center" else img.resize((res,) * 2)
    mask = None
    if how.mask_path is not None:  # per image: the mask must have the image's aspect ratio to line up
        mask = load_mask(how.mask_path, res, image_size=img.size, image_path=path, crop=how.crop, max_pixels=limit)
    return [Job(path, d, target=pil_to_tensor(pil), mask=mask)]


def _start_code(path: Path, G: torch.nn.Module, space: str) -> torch.Tensor:
    """The code of ``--init-latent``: [1, num_ws, w_dim], checked against ``G`` (W+ / W only)."""
    if space == "z":
        raise click.UsageError("--init-latent holds a w code; use it with --space w+ or w (Z has no inverse of w)")
    from wplus.io.latents import load_code

    return load_code(path, G).ws


def _provenance(model: LoadedGenerator, **fields: Any) -> dict[str, Any]:
    from wplus import __version__

    entry = {"path": str(model.path), "id": model.model_id, "sha256": model.sha256}
    return {"wplus_version": __version__, "command": "project", "model": entry, **fields}


@click.command("project")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", type=str, default=None, help=MODEL_HELP)
@click.option(
    "--outdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="One sub-folder per image is written here.",
)
@click.option(
    "--init-latent",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Start from this code instead (latent.npz/.npy/.pt), e.g. to continue a run. W+ and W only.",
)
@click.option("--batch-size", type=click.IntRange(1), default=1, show_default=True, help="Images optimised together.")
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@click.option("--save-video", is_flag=True, help="Write proj.gif (and proj.mp4 with the video extra).")
@click.option("--plot", is_flag=True, help="Write history.png: PSNR and loss against seconds.")
@click.option("--mask", "mask_path", type=click.Path(path_type=Path), help="Mask image: white = loss looks here.")
@click.option("--mask-from-alpha", is_flag=True, help="Use each RGBA input's alpha as its mask (scribbles).")
@click.option("--align", is_flag=True, help="FFHQ-align each face first (align extra); one job per face.")
@click.option(
    "--crop",
    type=click.Choice(["center", "none"]),
    default="center",
    show_default=True,
    help="Without --align: centre-crop to a square, or resize the whole image.",
)
@click.option("--paste-back", is_flag=True, help="With --align: also write pasted.png (projection in the photo).")
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=MAX_PIXELS,
    show_default=True,
    help="Refuse input images with more pixels (decompression bombs); raise it for huge photos.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@projection_options
@one_line_errors
def project_cmd(
    images: tuple[Path, ...],
    model: str | None,
    outdir: Path,
    init_latent: Path | None,
    batch_size: int,
    device: str,
    save_video: bool,
    plot: bool,
    mask_path: Path | None,
    mask_from_alpha: bool,
    align: bool,
    crop: str,
    paste_back: bool,
    max_pixels: int,
    as_json: bool,
    projection: ProjectionChoice,
) -> None:
    """Embed IMAGES into the generator's latent space (Image2StyleGAN: VGG-16 perceptual + MSE loss, Adam).

    Each image is centre-cropped and resized (Lanczos) to the generator's resolution. Per image, OUTDIR/<stem>/
    gets target.png, projection.png, latent.npz (key 'w' [1, num_ws, w_dim], noise maps, model checksum),
    latent.npy ([num_ws, w_dim]), metrics.json and config.json. A file that cannot be read, or a batch whose
    projection fails, is reported and the rest goes on.

    \b
    Examples:
      wplus project face.png --model ffhq.safetensors --outdir out/
      wplus project a.jpg b.jpg --model m.safetensors --space w --steps 500 --batch-size 2 --outdir out/
      wplus project face.png --model m.safetensors --preset nvidia --steps 500 --outdir out/
      wplus project scribble.png --model m.safetensors --mask-from-alpha --latent-reg 1 --outdir out/

    Presets: image2stylegan (W+, VGG + MSE, lr 0.01, 5000 steps, noise fixed), nvidia (W, LPIPS, lr 0.1 with
    ramps, w-noise, noise optimised + regularised 1e5, 1000 steps), course (W+, perceptual 0.01 + L1 10).
    Options given explicitly override the preset; the resolved values are written to config.json.
    With --align each face is FFHQ-aligned first (group.jpg -> out/group_01/, out/group_02/, ...).
    """
    if paste_back and not align:
        raise click.UsageError("--paste-back needs --align (the transform back into the photo comes from alignment)")
    if align and mask_from_alpha:
        raise click.UsageError("--mask-from-alpha cannot be combined with --align (the alpha is not aligned)")
    if mask_path is not None and mask_from_alpha:
        raise click.UsageError("give either --mask FILE or --mask-from-alpha, not both")
    dev = resolve_device(device)
    model_info = open_model(model, device=dev)
    G = model_info.G
    loss, lpips = projection.loss(dev, model_info, notice=err)
    settings = projection.settings  # after the loss: an offline fallback to D features changes it
    start_code = _start_code(init_latent, G, settings.space).to(dev) if init_latent is not None else None
    provenance = _provenance(
        model_info,
        batch_size=batch_size,
        device=str(dev),
        mask=str(mask_path) if mask_path is not None else ("alpha" if mask_from_alpha else None),
        init_latent=None if init_latent is None else {"path": str(init_latent), "sha256": file_sha256(init_latent)},
        preprocess="ffhq-align" if align else ("center-crop, Lanczos resize" if crop == "center" else "resize"),
        vgg_weights=None if projection.vgg_weights is None else str(projection.vgg_weights),
        lpips_weights=None if projection.lpips_weights is None else str(projection.lpips_weights),
    )

    how = _Inputs(G.img_resolution, align, crop, mask_path, mask_from_alpha, max_pixels)
    jobs = _prepare_jobs(list(images), outdir, how)
    ready = [j for j in jobs if j.error is None]
    summary: list[dict[str, Any]] = []
    for start in range(0, len(ready), batch_size):
        batch = ready[start : start + batch_size]
        targets = torch.cat([j.target for j in batch]).to(dev)
        names = ", ".join(j.path.name for j in batch)
        masks = torch.cat([j.mask for j in batch]).to(dev) if batch[0].mask is not None else None
        video = ProgressVideo(targets, settings.total_steps) if save_video else None
        bar = progress(settings.total_steps, desc=names[:40], unit="step", leave=False)
        t0 = time.perf_counter()

        def on_step(st: ProjectionStep, bar=bar, video=video) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{st.terms['total'].mean().item():.4f}", psnr=f"{st.psnr.mean().item():.2f}")
            if video is not None:
                video(st)

        try:
            result = project(
                G, targets, loss=loss, settings=settings, init=start_code, callback=on_step, mask=masks, lpips=lpips
            )
        except WplusError as e:
            for job in batch:
                job.error = f"{job.path}: {e}"
            err(f"failed: {names}: {e}")
            continue
        finally:
            bar.close()
        for i, job in enumerate(batch):
            try:
                pasted = None
                if paste_back:
                    from wplus.align import paste_back as paste

                    pasted = paste(job.path, result.images[i : i + 1], job.transform)
                metrics = write_projection_folder(
                    job.outdir,
                    result,
                    i,
                    target=job.target,
                    model_id=model_info.model_id,
                    model_sha256=model_info.sha256,
                    provenance={**provenance, "image": str(job.path)},
                    mask=job.mask,
                    align_transform=job.transform,
                    pasted=pasted,
                    video=video,
                    plot=plot,
                )
            except (OSError, WplusError) as e:
                job.error = f"{job.path}: cannot write results ({e})"
                err(f"failed: {job.error}")
                continue
            summary.append({"image": str(job.path), "outdir": str(job.outdir), **metrics})
            if not as_json:
                err(
                    f"{job.path.name}: psnr {metrics['psnr']:.2f} dB, ssim {metrics['ssim']:.3f}, "
                    f"loss {metrics['loss_total']:.4f} ({time.perf_counter() - t0:.1f} s) -> {job.outdir}"
                )
    failed = [{"image": str(j.path), "error": j.error} for j in jobs if j.error is not None]
    if as_json:
        echo_json({"results": summary, "failed": failed})
    if failed:
        raise click.ClickException(
            f"{len(summary)} of {len(jobs)} images projected; {len(failed)} failed (first: {failed[0]['error']})"
        )
