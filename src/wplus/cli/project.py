"""``wplus project``: embed image files and write one folder of results per image."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch
from tqdm.auto import tqdm

from wplus.cli.common import (
    DEVICE_CHOICES,
    MODEL_HELP,
    echo_json,
    err,
    explicit_options,
    one_line_errors,
    open_model,
    resolve_device,
)
from wplus.errors import WplusError
from wplus.io.atomic import write_json
from wplus.io.images import center_crop_resize, image_grid, load_image, pil_to_tensor, save_image, tensor_to_pil
from wplus.io.latents import Latent, save_latent
from wplus.io.masks import load_mask, split_alpha
from wplus.io.video import save_animation
from wplus.loading import LoadedGenerator, file_sha256
from wplus.projection.presets import LOSS_KINDS, PRESETS, build_loss, settings_from_cli
from wplus.projection.project import ProjectionResult, ProjectionStep, project

MAX_VIDEO_FRAMES = 120
MAX_VIDEO_SIDE = 512


@dataclass
class Job:
    path: Path
    outdir: Path
    target: torch.Tensor | None = None
    error: str | None = None
    mask: torch.Tensor | None = None
    transform: Any = None  # wplus.align.AlignTransform when the target is an aligned face


def _unique_dirs(paths: list[Path], outdir: Path) -> list[Path]:
    seen: dict[str, int] = {}
    dirs = []
    for p in paths:
        n = seen.get(p.stem, 0)
        seen[p.stem] = n + 1
        dirs.append(outdir / (p.stem if n == 0 else f"{p.stem}_{n + 1}"))
    return dirs


def _prepare_jobs(
    paths: list[Path],
    outdir: Path,
    resolution: int,
    *,
    align: bool,
    crop: str,
    mask_from_alpha: bool,
    shared_mask: torch.Tensor | None,
) -> list[Job]:
    """Turn each input file into targets: one centre-cropped (or squashed) image, or one aligned face per face."""
    detector = None
    if align:
        from wplus.align import LandmarkDetector, align_faces
        from wplus.cli.align import face_name

        detector = LandmarkDetector()
    jobs: list[Job] = []
    for path, d in zip(paths, _unique_dirs(paths, outdir), strict=True):
        try:
            if detector is not None:
                for f in align_faces(path, detector=detector, output_size=resolution):
                    name = face_name(d.name, f.transform.face_index)
                    jobs.append(
                        Job(
                            path,
                            d.with_name(name),
                            target=pil_to_tensor(f.image),
                            transform=f.transform,
                            mask=shared_mask,
                        )
                    )
                continue
            if mask_from_alpha:
                pil, mask = split_alpha(path, resolution)
            else:
                img = load_image(path)
                pil = center_crop_resize(img, resolution) if crop == "center" else img.resize((resolution,) * 2)
                mask = shared_mask
            jobs.append(Job(path, d, target=pil_to_tensor(pil), mask=mask))
        except WplusError as e:
            jobs.append(Job(path, d, error=str(e)))
            err(f"skipped: {e}")
    return jobs


class _VideoRecorder:
    """Keeps at most MAX_VIDEO_FRAMES evenly spaced 'target | current' frames per image."""

    def __init__(self, targets: torch.Tensor, num_steps: int):
        self.stride = max(1, -(-num_steps // MAX_VIDEO_FRAMES))
        self.targets = [self._small(tensor_to_pil(t)) for t in targets]
        self.frames: list[list] = [[] for _ in self.targets]

    @staticmethod
    def _small(img):
        s = img.size[0]
        return img if s <= MAX_VIDEO_SIDE else img.resize((MAX_VIDEO_SIDE, MAX_VIDEO_SIDE))

    def __call__(self, st: ProjectionStep) -> None:
        if (st.step - 1) % self.stride and st.step != st.num_steps:
            return
        for i, img in enumerate(st.images):
            self.frames[i].append(image_grid([self.targets[i], self._small(tensor_to_pil(img))], cols=2, pad=0))


def _write_outputs(
    job: Job,
    i: int,
    result: ProjectionResult,
    model: LoadedGenerator,
    config: dict[str, Any],
    frames: list | None,
    paste: bool = False,
) -> dict[str, Any]:
    out = job.outdir
    if job.transform is not None:
        job.transform.save(out / "align.json")
        if paste:
            from wplus.align import paste_back

            save_image(paste_back(job.path, result.images[i : i + 1], job.transform), out / "pasted.png")
    save_image(job.target, out / "target.png")
    if job.mask is not None:
        save_image(job.mask.expand(-1, 3, -1, -1) * 2 - 1, out / "mask.png")
    save_image(result.images[i : i + 1], out / "projection.png")
    noise = [n[i : i + 1] if n.shape[0] > 1 else n for n in result.noise]
    z = result.z[i : i + 1] if result.z is not None else None
    save_latent(
        out / "latent.npz",
        Latent(
            ws=result.ws[i : i + 1],
            space=result.space,
            noise=noise,
            z=z,
            model_id=model.model_id,
            model_sha256=model.sha256,
        ),
    )
    metrics = dict(result.metrics[i])
    write_json(out / "metrics.json", metrics)
    write_json(out / "config.json", {**config, "image": str(job.path)})
    if frames:
        save_animation(frames, out / "proj", fps=10)
    return metrics


def _start_code(path: Path, G: torch.nn.Module, space: str) -> torch.Tensor:
    """The code of ``--init-latent``: [1, num_ws, w_dim], checked against ``G`` (W+ / W only)."""
    if space == "z":
        raise click.UsageError("--init-latent holds a w code; use it with --space w+ or w (Z has no inverse of w)")
    from wplus.edits.inputs import load_code

    return load_code(path, G).ws


@click.command("project")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model",
    type=str,
    default=None,
    help=MODEL_HELP,
)
@click.option(
    "--outdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="One sub-folder per image is written here.",
)
@click.option("--space", type=click.Choice(["w+", "w", "z"]), default="w+", help="Latent space to embed into.")
@click.option("--steps", type=click.IntRange(0), default=1000, help="Adam steps (paper: 5000; faces ~1000).")
@click.option("--init", type=click.Choice(["mean", "random"]), default="mean", help="Start at w_avg or U[-1,1].")
@click.option(
    "--init-latent",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Start from this code instead (latent.npz/.npy/.pt), e.g. to continue a run. W+ and W only.",
)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=0.01, help="Adam learning rate.")
@click.option("--batch-size", type=click.IntRange(1), default=1, help="Images optimised together.")
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@click.option("--seed", type=int, default=0, help="Seed of the initialisation (recorded in config.json).")
@click.option("--save-video", is_flag=True, help="Write proj.gif (and proj.mp4 with the video extra).")
@click.option(
    "--vgg-weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="torchvision vgg16-397923af.pth (else taken from the cache or downloaded).",
)
@click.option(
    "--taps",
    type=click.Choice(["post_relu", "pre_relu"]),
    default="post_relu",
    help="VGG features after (paper reading) or before the ReLU.",
)
@click.option("--mse-weight", type=click.FloatRange(0), default=1.0, help="lambda_mse of Eq. 1.")
@click.option("--perceptual-weight", type=click.FloatRange(0), default=1.0, help="Weight of Eq. 2 (0: MSE only).")
@click.option("--loss-resize", type=click.IntRange(0), default=256, help="Side of the VGG input (0: no resize).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="Named recipe; explicit flags override it.")
@click.option("--loss", type=click.Choice(list(LOSS_KINDS)), default="perceptual+mse", help="Loss terms to use.")
@click.option("--l1-weight", type=click.FloatRange(0), default=1.0, help="Weight of pixel L1 (when --loss has l1).")
@click.option("--lpips-weight", type=click.FloatRange(0), default=1.0, help="Weight of LPIPS (when --loss has it).")
@click.option(
    "--lpips-weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="LPIPS v0.1 vgg.pth; also reports an 'lpips' metric (else cached or downloaded when --loss uses it).",
)
@click.option("--mask", "mask_path", type=click.Path(path_type=Path), help="Mask image: white = loss looks here.")
@click.option("--mask-from-alpha", is_flag=True, help="Use each RGBA input's alpha as its mask (scribbles).")
@click.option("--latent-reg", type=click.FloatRange(0), default=0.0, help="Weight of ||w - w_avg||^2 (Z: ||z||^2).")
@click.option(
    "--optimize-noise",
    type=click.Choice(["off", "joint", "stage2"]),
    default="off",
    help="Optimise noise maps with the latent (NVIDIA) or after it (Image2StyleGAN++).",
)
@click.option("--noise-init", type=click.Choice(["const", "random"]), default="const", help="Start of noise maps.")
@click.option("--noise-reg", type=click.FloatRange(0), default=0.0, help="Noise autocorrelation weight (NVIDIA 1e5).")
@click.option("--noise-steps", type=click.IntRange(0), default=None, help="Steps of the stage2 noise stage.")
@click.option("--optimizer", type=click.Choice(["adam", "lbfgs"]), default="adam", help="Optimiser.")
@click.option("--lr-rampup", type=click.FloatRange(0, 1), default=0.0, help="Linear warm-up, fraction of steps.")
@click.option("--lr-rampdown", type=click.FloatRange(0, 1), default=0.0, help="Cosine ramp-down, fraction of steps.")
@click.option("--w-noise", type=click.FloatRange(0), default=0.0, help="Initial w-noise factor of w_std (NVIDIA 0.05).")
@click.option("--w-noise-ramp", type=click.FloatRange(0, 1), default=0.75, help="Fraction of steps w-noise lasts.")
@click.option("--align", is_flag=True, help="FFHQ-align each face first (align extra); one job per face.")
@click.option(
    "--crop",
    type=click.Choice(["center", "none"]),
    default="center",
    help="Without --align: centre-crop to a square, or resize the whole image.",
)
@click.option("--paste-back", is_flag=True, help="With --align: also write pasted.png (projection in the photo).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@one_line_errors
def project_cmd(
    images: tuple[Path, ...],
    model: str | None,
    outdir: Path,
    space: str,
    steps: int,
    init: str,
    lr: float,
    batch_size: int,
    device: str,
    seed: int,
    save_video: bool,
    vgg_weights: Path | None,
    taps: str,
    mse_weight: float,
    perceptual_weight: float,
    loss_resize: int,
    align: bool,
    crop: str,
    paste_back: bool,
    as_json: bool,
    preset: str | None,
    lpips_weights: Path | None,
    mask_path: Path | None,
    mask_from_alpha: bool,
    init_latent: Path | None,
    **_settings_options: Any,
) -> None:
    """Embed IMAGES into the generator's latent space (Image2StyleGAN: VGG-16 perceptual + MSE loss, Adam).

    Each image is centre-cropped and resized (Lanczos) to the generator's resolution. Per image, OUTDIR/<stem>/
    gets target.png, projection.png, latent.npz (key 'w' [1, num_ws, w_dim], noise maps, model checksum),
    latent.npy ([num_ws, w_dim]), metrics.json and config.json. A file that cannot be read is reported and skipped.

    \b
    Examples:
      wplus project face.png --model ffhq.safetensors --outdir out/
      wplus project a.jpg b.jpg --model m.safetensors --space w --steps 500 --batch-size 2 --outdir out/
      wplus project face.png --model m.safetensors --preset nvidia --steps 500 --outdir out/
      wplus project scribble.png --model m.safetensors --mask-from-alpha --latent-reg 1 --outdir out/

    Presets: image2stylegan (W+, VGG + MSE, lr 0.01, 5000 steps, noise fixed), nvidia (W, LPIPS, lr 0.1 with
    ramps, w-noise, noise optimised + regularised 1e5, 1000 steps), course (W+, perceptual 0.01 + L1 10).
    Flags given explicitly override the preset; the resolved values are written to config.json.
    With --align each face is FFHQ-aligned first (group.jpg -> out/group_01/, out/group_02/, ...).
    """
    if paste_back and not align:
        raise click.UsageError("--paste-back needs --align (the transform back into the photo comes from alignment)")
    if align and mask_from_alpha:
        raise click.UsageError("--mask-from-alpha cannot be combined with --align (the alpha is not aligned)")
    dev = resolve_device(device)
    model_info = open_model(model, device=dev)
    G = model_info.G
    ctx = click.get_current_context()
    explicit = explicit_options(ctx)
    settings = settings_from_cli(preset, ctx.params, explicit)
    if mask_path is not None and mask_from_alpha:
        raise click.UsageError("give either --mask FILE or --mask-from-alpha, not both")
    shared_mask = load_mask(mask_path, G.img_resolution) if mask_path is not None else None
    start_code = _start_code(init_latent, G, settings.space) if init_latent is not None else None
    loss, lpips = build_loss(
        settings,
        vgg_weights=vgg_weights,
        lpips_weights=lpips_weights,
        lpips_metric=lpips_weights is not None,
        device=dev,
    )
    from wplus import __version__

    config = {
        "wplus_version": __version__,
        "command": "project",
        "model": {"path": str(model), "id": model_info.model_id, "sha256": model_info.sha256},
        "batch_size": batch_size,
        "device": str(dev),
        "seed": seed,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        **settings.to_dict(),
        "mask": str(mask_path) if mask_path is not None else ("alpha" if mask_from_alpha else None),
        "init_latent": None if init_latent is None else {"path": str(init_latent), "sha256": file_sha256(init_latent)},
        "preprocess": "ffhq-align" if align else ("center-crop, Lanczos resize" if crop == "center" else "resize"),
    }

    jobs = _prepare_jobs(
        list(images),
        outdir,
        G.img_resolution,
        align=align,
        crop=crop,
        mask_from_alpha=mask_from_alpha,
        shared_mask=shared_mask,
    )
    ready = [j for j in jobs if j.error is None]
    summary: list[dict[str, Any]] = []
    for start in range(0, len(ready), batch_size):
        batch = ready[start : start + batch_size]
        targets = torch.cat([j.target for j in batch]).to(dev)
        names = ", ".join(j.path.name for j in batch)
        masks = torch.cat([j.mask for j in batch]).to(dev) if batch[0].mask is not None else None
        total_steps = settings.num_steps + (
            (settings.noise_steps if settings.noise_steps is not None else settings.num_steps)
            if settings.optimize_noise == "stage2"
            else 0
        )
        recorder = _VideoRecorder(targets, total_steps) if save_video else None
        bar = tqdm(total=total_steps, desc=names[:40], unit="step", leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()

        def on_step(st: ProjectionStep, bar=bar, recorder=recorder) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{st.terms['total'].mean().item():.4f}", psnr=f"{st.psnr.mean().item():.2f}")
            if recorder is not None:
                recorder(st)

        try:
            result = project(
                G,
                targets,
                loss=loss,
                seed=seed,
                callback=on_step,
                mask=masks,
                lpips=lpips,
                **settings.project_kwargs() | ({"init": start_code.to(dev)} if start_code is not None else {}),
            )
        finally:
            bar.close()
        for i, job in enumerate(batch):
            frames = recorder.frames[i] if recorder is not None else None
            try:
                metrics = _write_outputs(job, i, result, model_info, config, frames, paste_back)
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
