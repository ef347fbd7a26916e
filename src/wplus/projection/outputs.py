"""The per-image folder a projection writes, and the progress video recorded on the way.

One folder per image (``wplus project`` writes ``OUTDIR/<stem>/``; any caller may write one)::

    target.png       the image the loss compared against (after crop / alignment, at the generator's resolution)
    projection.png   the generator's rendering of the embedded code, with the noise saved beside it
    latent.npz/.npy  the code (see wplus.io.latents)
    styles.npz       the code in the style space S, with the same noise and model (``wplus project --save-styles``;
                     see wplus.stylespace.io); of the tuned generator when tuned, as projection.png renders it
    metrics.json     final loss terms (those switched on), PSNR, SSIM, ||w - w_avg||, steps, seconds_total
    history.csv      one row per step: step, seconds (since the run started), psnr, loss_total, loss_<term>...
    config.json      every setting of the run plus the caller's provenance (model, device, input, ...)
    mask.png         the loss mask, when one was used
    align.json       the alignment transform, for aligned faces (``wplus paste`` reads it)
    pasted.png       the projection pasted back into the photo, when asked for
    history.png      PSNR and loss against seconds, with ``plot=True`` (``wplus project --plot``)
    proj.gif/.mp4    target | current estimate over the run, when a :class:`ProgressVideo` recorded it
    tuning.safetensors  the pivotal tuning of the generator around the code (``wplus project --tune``); then
                     projection.png is the tuned render, untuned.png the plain one, and metrics.json has
                     both states in separate blocks (``before_tuning``, ``after_tuning``; :func:`tuned_metrics`)

Every file is written atomically.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from wplus.io.atomic import atomic_write, write_json
from wplus.io.images import image_grid, save_image, tensor_to_pil
from wplus.io.latents import save_latent
from wplus.io.video import save_animation
from wplus.projection.project import ProjectionResult, ProjectionStep

__all__ = [
    "write_projection_folder",
    "write_history_csv",
    "write_history_plot",
    "tuned_metrics",
    "is_tuned",
    "summary_line",
    "ProgressVideo",
    "FOLDER_FILES",
]

FOLDER_FILES = (
    "target.png",
    "projection.png",
    "latent.npz",
    "latent.npy",
    "metrics.json",
    "config.json",
    "history.csv",
)


class ProgressVideo:
    """A :func:`wplus.project` callback that keeps at most ``max_frames`` evenly spaced 'target | current' frames
    per image (the last step always among them), each side at most ``max_side`` pixels.

    Args:
        targets: [B, C, R, R] in [-1, 1], the images being projected.
        num_steps: the run's total steps (``settings.total_steps``).
    """

    def __init__(self, targets: torch.Tensor, num_steps: int, *, max_frames: int = 120, max_side: int = 512):
        self.max_side = max_side
        self.stride = max(1, -(-num_steps // max_frames))
        self.targets = [self._small(tensor_to_pil(t)) for t in targets]
        self.frames: list[list[Image.Image]] = [[] for _ in self.targets]

    def _small(self, img: Image.Image) -> Image.Image:
        s = img.size[0]
        return img if s <= self.max_side else img.resize((self.max_side, self.max_side))

    def __call__(self, st: ProjectionStep) -> None:
        if (st.step - 1) % self.stride and st.step != st.num_steps:
            return
        for i, img in enumerate(st.images):
            self.frames[i].append(image_grid([self.targets[i], self._small(tensor_to_pil(img))], cols=2, pad=0))


def tuned_metrics(
    projected: dict[str, Any], tuning: Any, after_terms: dict[str, float] | None = None
) -> dict[str, Any]:
    """``metrics.json`` of a tuned image: the two states in their own blocks, never mixed.

    ``psnr`` and ``ssim`` at the top are what ``projection.png`` shows (the tuned render); ``before_tuning`` holds
    the projection's own metrics (its loss terms, PSNR, SSIM, steps, ...: what ``untuned.png`` shows);
    ``after_tuning`` holds the tuned render's PSNR and SSIM, its loss terms under the same loss when measured
    (``after_terms``, from :func:`wplus.projection.project.loss_terms`), and the tuning's steps, seconds and rank.

    Args:
        projected: the projection's metrics (one entry of ``ProjectionResult.metrics``), or an untuned
            ``metrics.json``.
        tuning: the :class:`wplus.tuning.Tuning` of this image.
        after_terms: the tuned render's ``loss_<term>`` values (and ``lpips``), if measured.
    """
    m = tuning.info["metrics"]
    after = {
        "psnr": m["psnr_after"][0],
        "ssim": m["ssim_after"][0],
        **(after_terms or {}),
        "steps": m["steps"],
        "kept_step": m.get("kept_step", m["steps"]),
        "seconds": m["seconds"],
        "rank": tuning.rank,
    }
    before = dict(projected)
    seconds = before.get("seconds_total", before.get("seconds", 0.0)) + m["seconds"]
    return {"psnr": after["psnr"], "ssim": after["ssim"], "seconds_total": seconds, "before_tuning": before,
            "after_tuning": after}  # fmt: skip


def is_tuned(metrics: dict[str, Any]) -> bool:
    """Whether a ``metrics.json`` is a tuned image's (this layout, or the flat one of earlier versions)."""
    return "before_tuning" in metrics or "psnr_before_tuning" in metrics


def untuned_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The projection's own metrics of a ``metrics.json``, tuned or not (to tune a tuned folder again)."""
    if "before_tuning" in metrics:
        return dict(metrics["before_tuning"])
    flat = {k: v for k, v in metrics.items() if not k.endswith("_before_tuning") and not k.startswith("tuning_")}
    for key in ("psnr", "ssim"):  # the flat layout of earlier versions kept the untuned figures under these keys
        if f"{key}_before_tuning" in metrics:
            flat[key] = metrics[f"{key}_before_tuning"]
    return flat


def summary_line(metrics: dict[str, Any]) -> str:
    """'psnr 24.10 dB, ssim 0.812, loss 0.2308', or for a tuned image each figure before -> after tuning."""
    if "before_tuning" not in metrics:
        return f"psnr {metrics['psnr']:.2f} dB, ssim {metrics['ssim']:.3f}, loss {metrics['loss_total']:.4f}"
    b, a = metrics["before_tuning"], metrics["after_tuning"]
    line = f"psnr {b['psnr']:.2f} -> {a['psnr']:.2f} dB, ssim {b['ssim']:.3f} -> {a['ssim']:.3f}"
    if "loss_total" in a:
        line += f", loss {b['loss_total']:.4f} -> {a['loss_total']:.4f}"
    return line


def write_history_csv(path: str | Path, rows: list[dict[str, float]]) -> Path:
    """Write per-step rows (:meth:`ProjectionResult.history_rows`) as CSV with a header line, atomically."""
    columns = list(rows[0]) if rows else ["step", "seconds", "psnr", "loss_total"]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            w.writeheader()
            for row in rows:
                w.writerow({k: (v if k == "step" else f"{v:.6g}") for k, v in row.items()})

    return atomic_write(path, write)


HISTORY_PLOT_PURPOSE = "history.png (wplus project --plot)"


def write_history_plot(path: str | Path, rows: list[dict[str, float]], *, title: str = "") -> Path:
    """PSNR and total loss (log axis) against wall seconds, from :meth:`ProjectionResult.history_rows`.

    Raises:
        ConfigError: matplotlib (the ``plot`` extra) is not installed.
    """
    from wplus.io.plot import Panel, draw_panels

    seconds = [r["seconds"] for r in rows]
    psnr = Panel(f"{title} PSNR".strip(), "seconds", "dB", {"psnr": (seconds, [r["psnr"] for r in rows])})
    loss = Panel("loss", "seconds", "total loss", {"total": (seconds, [r["loss_total"] for r in rows])}, log_y=True)
    return draw_panels([psnr, loss], path, purpose=HISTORY_PLOT_PURPOSE)


def _write_styles(path: Path, G: torch.nn.Module, latent: Any) -> Path:
    from wplus.stylespace import save_styles, to_styles

    with torch.no_grad():
        styles = to_styles(G, latent.ws.to(next(G.parameters()).device))
    return save_styles(path, styles.to("cpu"), noise=latent.noise, model_id=latent.model_id,
                       model_sha256=latent.model_sha256, source="latent.npz")  # fmt: skip


def write_projection_folder(
    folder: str | Path,
    result: ProjectionResult,
    i: int = 0,
    *,
    target: torch.Tensor,
    model_id: str | None = None,
    model_sha256: str | None = None,
    provenance: dict[str, Any] | None = None,
    mask: torch.Tensor | None = None,
    align_transform: Any = None,
    pasted: Image.Image | torch.Tensor | None = None,
    video: ProgressVideo | None = None,
    fps: float = 10,
    plot: bool = False,
    tuning: Any = None,
    tuned_image: torch.Tensor | None = None,
    tuned_terms: dict[str, float] | None = None,
    name: str | None = None,
    styles_generator: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Write image ``i`` of ``result`` as a projection folder (the files listed in the module docstring).

    Args:
        folder: the image's folder (created).
        result: what :func:`wplus.project` returned.
        i: which image of the batch.
        target: [1, C, R, R] the image projected.
        model_id, model_sha256: the generator's name and checksum, stored in ``latent.npz`` and ``config.json``
            (default: those of the file ``result`` was projected with, :attr:`ProjectionResult.model`, whose path
            ``config.json`` records too, so ``wplus tune FOLDER`` finds the model).
        provenance: more ``config.json`` entries (wplus version, command, model path, device, input file, ...).
        mask: [1, 1, R, R] in [0, 1], the loss mask, written as ``mask.png``.
        align_transform: a :class:`wplus.align.AlignTransform`, written as ``align.json``.
        pasted: the projection pasted into the source photo, written as ``pasted.png``.
        video: the :class:`ProgressVideo` that recorded the run; writes ``proj.gif`` (and ``proj.mp4``).
        plot: also draw ``history.png``.
        tuning, tuned_image: a :class:`wplus.tuning.Tuning` of this image and its tuned render [1, C, R, R].
        tuned_terms: the tuned render's loss terms (:func:`wplus.projection.project.loss_terms`), for
            ``metrics.json``'s ``after_tuning`` block.
        name: what the image is called in titles (``history.png``); default the folder's name. Give it when
            ``folder`` is a temporary one that is renamed afterwards.
        styles_generator: also write ``styles.npz``, the code's styles under this generator (the one that renders
            ``projection.png``: the tuned one when tuned), with the latent's noise, model id and checksum.

    Returns:
        The image's metrics (also in ``metrics.json``).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if align_transform is not None:
        align_transform.save(out / "align.json")
    if pasted is not None:
        save_image(pasted, out / "pasted.png")
    save_image(target, out / "target.png")
    if mask is not None:
        save_image(mask.expand(-1, 3, -1, -1) * 2 - 1, out / "mask.png")
    metrics = dict(result.metrics[i])
    if tuning is not None:
        from wplus.tuning import save_tuning

        if tuned_image is None:
            raise ValueError("a tuning needs its tuned_image")
        save_tuning(tuning, out / "tuning.safetensors")
        save_image(result.images[i : i + 1], out / "untuned.png")
        save_image(tuned_image, out / "projection.png")
        metrics = tuned_metrics(metrics, tuning, tuned_terms)
    else:
        save_image(result.images[i : i + 1], out / "projection.png")
    known = result.model
    model_id = model_id if model_id is not None else (known.model_id if known is not None else "")
    model_sha256 = model_sha256 if model_sha256 is not None else (known.sha256 if known is not None else "")
    latent = result.latent(i, model_id=model_id, model_sha256=model_sha256)
    save_latent(out / "latent.npz", latent)
    if styles_generator is not None:
        _write_styles(out / "styles.npz", styles_generator, latent)
    write_json(out / "metrics.json", metrics)
    rows = result.history_rows(i)
    write_history_csv(out / "history.csv", rows)
    if plot:
        write_history_plot(out / "history.png", rows, title=name or out.name)
    model: dict[str, str] = {"id": model_id, "sha256": model_sha256}
    if known is not None and known.model_id == model_id and known.sha256 == model_sha256:
        model["path"] = str(known.path)
    config = {"model": model, **(provenance or {}), **result.record()}
    write_json(out / "config.json", config)
    if video is not None and video.frames[i]:
        save_animation(video.frames[i], out / "proj", fps=fps)
    return metrics
