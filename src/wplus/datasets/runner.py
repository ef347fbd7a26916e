"""Plan a dataset run and project its images: the part both engines share, and the local engine.

:func:`plan_run` decides what a run does: the images of its shard, minus those the manifests say are done with the
same input and recipe. :class:`DatasetProjector` holds the generator and the loss and projects a list of images in
batches, writing each image's folder all at once: into a temporary folder inside OUTDIR
(``OUTDIR/.partial/<writer>/``), renamed into place when complete, so a ``kill -9`` at any moment leaves either the
old folder, the new one, or none. :func:`run_local` is the engine of one process; ``ray_engine`` runs the same
:class:`DatasetProjector` in Ray actors.

Results do not depend on how images are batched: :func:`wplus.project` gives each image its own latent and Adam
moves each coordinate on its own gradient, so a batch of B gives what B single runs give. Settings whose random
draws or stopping rules span the batch (random init, random noise maps, w-noise, Z, L-BFGS, early stopping) would
couple its images; with those, :func:`batch_coupling` says why, and images are projected one at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from wplus.align.ffhq import DEFAULT_FACE, DEFAULT_MIN_FACE_RATIO
from wplus.datasets.inputs import InputImage, face_name
from wplus.datasets.manifest import ManifestWriter, Shard, latest_records, read_manifests, recipe_sha256
from wplus.errors import ConfigError, WplusError
from wplus.io.images import MAX_PIXELS, fit_image, load_image, pil_to_tensor
from wplus.io.masks import load_mask, split_alpha
from wplus.loading import file_sha256
from wplus.progress import progress
from wplus.projection.outputs import ProgressVideo, summary_line, write_projection_folder
from wplus.projection.project import ProjectionStep, loss_terms, project
from wplus.projection.settings import ProjectionSettings, build_loss
from wplus.tuning import TuningSettings

log = logging.getLogger(__name__)

__all__ = [
    "Preprocess",
    "RunSpec",
    "WorkItem",
    "Outcome",
    "Plan",
    "plan_run",
    "select_shard",
    "batch_coupling",
    "DatasetProjector",
    "run_local",
    "partial_dir",
]

PARTIAL = ".partial"  # OUTDIR/.partial/<writer>/: folders being written; cleared when that writer starts again


@dataclass(frozen=True)
class Preprocess:
    """How an input file becomes a target: centre-crop (or squash), or one FFHQ-aligned face per face; masks."""

    resolution: int
    align: bool = False
    crop: str = "center"
    mask_path: Path | None = None
    mask_from_alpha: bool = False
    max_pixels: int = MAX_PIXELS
    face: str = DEFAULT_FACE  # with align: which faces (wplus.align.select_faces)
    min_face_ratio: float = DEFAULT_MIN_FACE_RATIO

    def describe(self) -> str:
        if not self.align:
            return "center-crop, Lanczos resize" if self.crop == "center" else "resize"
        if self.face == "largest":
            return "ffhq-align, largest face"
        return f"ffhq-align, every face of at least {self.min_face_ratio:g} of the largest one's size"


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a dataset run's outputs, picklable so a Ray worker can rebuild the projector.

    ``settings`` are resolved (after any offline fallback of the loss); ``provenance`` goes into ``config.json``.
    """

    model_path: str
    model_id: str
    model_sha256: str
    settings: ProjectionSettings
    preprocess: Preprocess
    init_latent: Path | None = None
    vgg_weights: Path | None = None
    lpips_weights: Path | None = None
    batch_size: int = 1
    save_video: bool = False
    plot: bool = False
    paste_back: bool = False
    tuning: TuningSettings | None = None  # pivotal tuning after each projection (``--tune``)
    save_styles: bool = False  # also styles.npz, the code in S (``--save-styles``)
    encoder: Path | None = None  # with init='encoder': the encoder file (None: the model's shipped encoder)
    provenance: dict[str, Any] = field(default_factory=dict)

    def recipe(self) -> dict[str, Any]:
        """What ``settings_sha256`` hashes: what changes an image's results. Not the batch size (results do not
        depend on it) and not the device."""
        p = self.preprocess
        mask = _file_identity(p.mask_path) if p.mask_path is not None else ("alpha" if p.mask_from_alpha else None)
        return {
            "settings": self.settings.to_dict(),
            "model_sha256": self.model_sha256,
            "preprocess": p.describe(),
            "resolution": p.resolution,
            "mask": mask,
            "init_latent": _file_identity(self.init_latent),
            "vgg_weights": None if self.vgg_weights is None else str(self.vgg_weights),
            "lpips_weights": None if self.lpips_weights is None else str(self.lpips_weights),
            "outputs": self._outputs(),
            "tuning": None if self.tuning is None else self.tuning.kwargs(),
            # Only when given, so that the recipes (and manifests) of runs without one keep their hashes.
            **({"encoder": _file_identity(self.encoder)} if self.encoder is not None else {}),
        }

    def _outputs(self) -> dict[str, bool]:
        out = {"save_video": self.save_video, "plot": self.plot, "paste_back": self.paste_back}
        if self.save_styles:  # only when asked for: the runs of earlier versions keep their recipe hash
            out["save_styles"] = True
        return out

    def settings_sha256(self) -> str:
        return recipe_sha256(self.recipe())


def _file_identity(path: Path | None) -> str | None:
    return None if path is None else file_sha256(path)


@dataclass(frozen=True)
class WorkItem:
    """An image a run will project: manifest key (absolute path), the path as given, folder name, input hash."""

    input: str
    path: str
    name: str
    input_sha256: str


@dataclass
class Outcome:
    """What projecting one input gave; ``results`` holds one entry per output folder (``outdir`` + metrics)."""

    input: str
    input_sha256: str
    status: str
    outputs: list[str] = field(default_factory=list)
    seconds: float | None = None
    psnr: float | None = None
    error: str | None = None
    started: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def record_fields(self, settings_sha256: str) -> dict[str, Any]:
        d = asdict(self)
        d.pop("results")
        return {**d, "settings_sha256": settings_sha256}


@dataclass
class Plan:
    """What a run will do: ``todo`` in order; ``skipped`` were done already with the same input and recipe."""

    outdir: Path
    writer: str
    settings_sha256: str
    todo: list[WorkItem]
    skipped: list[WorkItem]
    manifest: bool


def select_shard(images: Sequence[InputImage], shard: Shard | None) -> list[InputImage]:
    """Shard ``I`` of ``N``: the images ordered by the SHA-256 of their absolute path, every N-th from the I-th.

    Every shard of the same inputs gets a disjoint part, the parts cover the set, and their sizes differ by at
    most one, whatever order the inputs were named in.
    """
    if shard is None or shard.count == 1:
        return list(images)
    ranked = sorted(images, key=lambda im: hashlib.sha256(im.key.encode("utf-8")).hexdigest())
    return ranked[shard.index :: shard.count]


def _input_sha256(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return ""  # unreadable: the projector fails it with the reason


def plan_run(
    images: Sequence[InputImage],
    outdir: str | Path,
    spec: RunSpec,
    *,
    shard: Shard | None = None,
    overwrite: bool = False,
    manifest: bool = True,
    writer: str | None = None,
) -> Plan:
    """Which of ``images`` this run projects.

    An image is skipped when the latest record of it in any ``OUTDIR/manifest*.jsonl`` is ``done`` with the same
    input SHA-256 and recipe (:meth:`RunSpec.settings_sha256`) and its folders are still there under the same
    names; everything else (new, failed, interrupted while ``running``, changed) is redone. ``overwrite`` redoes
    all. ``manifest`` says whether the run reads and keeps one: every run into an OUTDIR does (a single image too,
    so that the folder it overwrites is recorded), unless a caller that owns its folder says False.
    """
    outdir = Path(outdir)
    chosen = select_shard(images, shard)
    writer = writer or (shard.writer if shard is not None else "main")
    settings_sha = spec.settings_sha256()
    latest = latest_records(read_manifests(outdir)[0]) if manifest and not overwrite else {}
    todo, skipped = [], []
    for im in chosen:
        item = WorkItem(im.key, str(im.path), im.name, _input_sha256(im.path))
        rec = latest.get(item.input)
        if rec is not None and _still_done(rec, item, settings_sha, outdir, spec.preprocess.align):
            skipped.append(item)
        else:
            todo.append(item)
    return Plan(outdir, writer, settings_sha, todo, skipped, manifest)


def _still_done(rec: Any, item: WorkItem, settings_sha: str, outdir: Path, align: bool) -> bool:
    if rec.status != "done" or not item.input_sha256:
        return False
    if rec.input_sha256 != item.input_sha256 or rec.settings_sha256 != settings_sha:
        return False
    if not rec.outputs or not all((outdir / o).is_dir() for o in rec.outputs):
        return False
    return align or rec.outputs == [item.name]  # named differently now (the set changed): redo under the new name


def batch_coupling(settings: ProjectionSettings, *, start_code: bool = False) -> str | None:
    """Why images projected together would not get the results they get alone, or None when they would.

    Random draws are made for the whole batch from one seeded generator (so image 2 of a batch starts elsewhere
    than image 2 alone); L-BFGS's step and the early-stopping rules look at the whole batch.
    """
    s = settings
    if s.num_steps == 0 and not s.optimize_noise:
        return None  # no optimisation at all (the 'encoder' preset): every image keeps its own start
    if s.optimizer != "adam":
        return f"optimizer {s.optimizer!r} couples the images of a batch"
    if s.patience is not None or s.stop_psnr is not None:
        return "early stopping (--patience, --stop-psnr) decides for the whole batch"
    if not start_code and (s.space == "z" or s.init == "random"):
        return "the random start codes are drawn for the whole batch"
    if s.optimize_noise and s.noise_init == "random":
        return "the random noise maps are drawn for the whole batch"
    if s.w_noise > 0:
        return "the w-noise is drawn for the whole batch"
    return None


@dataclass
class _Job:
    """One target: an input file, or one face of it (with --align)."""

    item: WorkItem
    folder: str  # relative to OUTDIR
    target: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    transform: Any = None  # wplus.align.AlignTransform for an aligned face


def partial_dir(outdir: Path, writer: str) -> Path:
    return outdir / PARTIAL / writer


def clear_partial(outdir: Path, writer: str) -> None:
    """Remove what a killed run of ``writer`` left half-written (only that writer's: shards run at once), and
    ``OUTDIR/.partial`` itself once no writer has anything there."""
    shutil.rmtree(partial_dir(outdir, writer), ignore_errors=True)
    with contextlib.suppress(OSError):
        (outdir / PARTIAL).rmdir()


def pick_device(name: str) -> torch.device:
    """'auto': CUDA when this process has a GPU (a Ray worker given one), else CPU; else the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class DatasetProjector:
    """The generator, loss and settings of a run; projects lists of :class:`WorkItem` and writes their folders.

    Args:
        spec: the run.
        G, loss, lpips: already built (the command line builds them once); see :meth:`load` to build them.
        device: where to project.
        notice: receives one line per image projected and per failure (None: silent).
        quiet: only failures reach ``notice``.
    """

    def __init__(
        self,
        spec: RunSpec,
        *,
        G: torch.nn.Module,
        loss: torch.nn.Module,
        lpips: torch.nn.Module | None,
        device: torch.device,
        notice: Callable[[str], None] | None = None,
        quiet: bool = False,
    ):
        self.spec, self.G, self.loss, self.lpips, self.device = spec, G, loss, lpips, device
        self.notice, self.quiet = notice, quiet
        if spec.plot:  # a missing matplotlib is said once, here, not as a failure of every image
            from wplus.io.plot import pyplot
            from wplus.projection.outputs import HISTORY_PLOT_PURPOSE

            pyplot(HISTORY_PLOT_PURPOSE)
        self.start_code = _start_code(spec.init_latent, G, spec.settings.space, device)
        self.coupling = batch_coupling(spec.settings, start_code=self.start_code is not None)
        self.encoder = None
        if spec.settings.init == "encoder" and self.start_code is None:
            from wplus.encoders import encoder_for

            self.encoder = encoder_for(G, spec.encoder, device=device)  # read once, checked against G
        self.detector = None
        if spec.preprocess.align:
            from wplus.align import LandmarkDetector

            self.detector = LandmarkDetector()

    @classmethod
    def load(cls, spec: RunSpec, device: torch.device, **kwargs: Any) -> DatasetProjector:
        """Read the generator from ``spec.model_path`` and build the loss the settings describe (a Ray worker)."""
        from wplus.loading import load_generator_info

        model = load_generator_info(spec.model_path, device=device)
        if model.sha256 != spec.model_sha256:
            raise ConfigError(
                f"{spec.model_path}: SHA-256 {model.sha256[:12]}... on this machine, expected "
                f"{spec.model_sha256[:12]}... (the driver's); give every worker the same model file"
            )
        D = None
        if "dfeat" in spec.settings.terms:
            from wplus.formats.dispatch import load_discriminator_for

            D = load_discriminator_for(spec.model_path, device=device)
        loss, lpips = build_loss(
            spec.settings,
            vgg_weights=spec.vgg_weights,
            lpips_weights=spec.lpips_weights,
            lpips_metric=spec.lpips_weights is not None,
            discriminator=D,
            device=device,
        )
        return cls(spec, G=model.G, loss=loss, lpips=lpips, device=device, **kwargs)

    def _say(self, msg: str, *, problem: bool = False) -> None:
        if self.notice is not None and (problem or not self.quiet):
            self.notice(msg)

    def run(self, items: Sequence[WorkItem], outdir: str | Path, writer: str) -> list[Outcome]:
        """Project ``items`` (batches of ``spec.batch_size``, or one by one when :attr:`coupling`), write each
        image's folder all at once, and return one :class:`Outcome` per item, in order. A file that cannot be
        read, a batch whose projection fails and a folder that cannot be written fail their images; the rest go on.
        """
        outdir = Path(outdir)
        outcomes = {it.input: Outcome(it.input, it.input_sha256, "done", started=time.time()) for it in items}
        jobs: list[_Job] = []
        for it in items:
            try:
                jobs.extend(self._jobs_of(it))
            except (WplusError, OSError) as e:
                self._fail(outcomes[it.input], _one_line(e, it.path))
        step = 1 if self.coupling else self.spec.batch_size
        for start in range(0, len(jobs), step):
            self._project_batch(jobs[start : start + step], outdir, writer, outcomes)
        for o in outcomes.values():
            if o.status == "done" and not o.results:
                self._fail(o, f"{o.input}: no target to project")
            if o.status == "done":
                psnrs = [r["psnr"] for r in o.results]
                o.psnr = sum(psnrs) / len(psnrs)
        return [outcomes[it.input] for it in items]

    def _fail(self, outcome: Outcome, error: str) -> None:
        if outcome.status != "failed":
            outcome.status, outcome.error = "failed", error
            self._say(f"failed: {error}", problem=True)

    def _jobs_of(self, it: WorkItem) -> list[_Job]:
        how, path = self.spec.preprocess, Path(it.path)
        if not it.input_sha256:
            raise ConfigError(f"{path}: cannot read the file; check its permissions")
        res, limit = how.resolution, how.max_pixels
        if self.detector is not None:
            from wplus.align import align_faces

            faces = align_faces(
                path,
                detector=self.detector,
                face=how.face,  # type: ignore[arg-type]
                min_face_ratio=how.min_face_ratio,
                output_size=res,
                max_pixels=limit,
                notice=self._say,
            )
            mask = None  # an aligned face is square: the mask must be too
            if how.mask_path is not None:
                mask = load_mask(how.mask_path, res, image_size=(res, res), image_path=path, max_pixels=limit)
            parent, stem = os.path.split(it.name)
            return [
                _Job(it, os.path.join(parent, face_name(stem, f.transform.face_index)), pil_to_tensor(f.image),
                     mask=mask, transform=f.transform)
                for f in faces
            ]  # fmt: skip
        if how.mask_from_alpha:
            pil, mask = split_alpha(path, res, crop=how.crop, max_pixels=limit)
            return [_Job(it, it.name, pil_to_tensor(pil), mask=mask)]
        img = load_image(path, max_pixels=limit)
        pil = fit_image(img, res, how.crop)
        mask = None
        if how.mask_path is not None:  # per image: the mask must have the image's aspect ratio to line up
            mask = load_mask(how.mask_path, res, image_size=img.size, image_path=path, crop=how.crop, max_pixels=limit)
        return [_Job(it, it.name, pil_to_tensor(pil), mask=mask)]

    def _project_batch(self, batch: list[_Job], outdir: Path, writer: str, outcomes: dict[str, Outcome]) -> None:
        spec, settings = self.spec, self.spec.settings
        targets = torch.cat([j.target for j in batch]).to(self.device)
        names = ", ".join(Path(j.item.path).name for j in batch)
        masks = torch.cat([j.mask for j in batch]).to(self.device) if batch[0].mask is not None else None
        video = ProgressVideo(targets, settings.total_steps) if spec.save_video else None
        bar = progress(settings.total_steps, desc=names[:40], unit="step", leave=False)
        t0 = time.perf_counter()

        def on_step(st: ProjectionStep) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{st.terms['total'].mean().item():.4f}", psnr=f"{st.psnr.mean().item():.2f}")
            if video is not None:
                video(st)

        try:
            result = project(
                self.G,
                targets,
                loss=self.loss,
                settings=settings,
                init=self.start_code,
                encoder=self.encoder,
                callback=on_step,
                mask=masks,
                lpips=self.lpips,
            )
        except WplusError as e:
            for job in batch:
                self._fail(outcomes[job.item.input], f"{job.item.path}: {e}")
            return
        finally:
            bar.close()
        for i, job in enumerate(batch):
            outcome = outcomes[job.item.input]
            if outcome.status == "failed":
                continue
            tuned = None
            if spec.tuning is not None:
                try:
                    tuned = self._tune(job, result, i, targets[i : i + 1])
                except WplusError as e:
                    self._fail(outcome, f"{job.item.path}: tuning failed ({_one_line(e)})")
                    continue
            try:
                metrics = self._write(job, result, i, outdir, writer, video, tuned)
            except (OSError, WplusError) as e:
                self._fail(outcome, f"{job.item.path}: cannot write results ({_one_line(e)})")
                continue
            outcome.outputs.append(job.folder)
            outcome.results.append({"image": job.item.path, "outdir": str(outdir / job.folder), **metrics})
            self._say(
                f"{Path(job.item.path).name}: {summary_line(metrics)} ({time.perf_counter() - t0:.1f} s) "
                f"-> {outdir / job.folder}"
            )
        share = (time.perf_counter() - t0) / len({j.item.input for j in batch})
        for item in {j.item.input for j in batch}:
            outcomes[item].seconds = (outcomes[item].seconds or 0.0) + share

    def _tune(
        self, job: _Job, result: Any, i: int, target: torch.Tensor
    ) -> tuple[Any, torch.Tensor, dict[str, float], torch.nn.Module]:
        """Pivotal tuning of image ``i`` around its code: the tuning, the tuned render, that render's loss terms
        measured as the projection measured its own (same loss, mask and LPIPS metric), and the tuned generator."""
        from wplus.tuning import tune

        latent = result.latent(i)
        bar = progress(self.spec.tuning.num_steps, desc=f"tune {Path(job.item.path).name}"[:40], unit="step",
                       leave=False)  # fmt: skip
        with bar:
            tuning = tune(self.G, target, latent.ws, loss=self.loss, noise=latent.noise or None,
                          base_sha256=self.spec.model_sha256, callback=lambda st: bar.update(1),
                          **self.spec.tuning.kwargs())  # fmt: skip
        with torch.no_grad():
            tuned_G = tuning.apply(self.G, check=False)  # made on self.G just now
            image = tuned_G.synthesis(latent.ws, noise_mode="const", noise=latent.noise or None)
        mask = None if job.mask is None else job.mask.to(self.device)
        terms = loss_terms(self.loss, image, target, mask=mask, lpips=self.lpips)[0]
        return tuning, image, terms, tuned_G

    def _write(
        self,
        job: _Job,
        result: Any,
        i: int,
        outdir: Path,
        writer: str,
        video: ProgressVideo | None,
        tuned: tuple[Any, torch.Tensor, dict[str, float], torch.nn.Module] | None = None,
    ) -> dict[str, Any]:
        spec = self.spec
        pasted = None
        if spec.paste_back:
            from wplus.align import paste_back

            shown = result.images[i : i + 1] if tuned is None else tuned[1]
            pasted = paste_back(Path(job.item.path), shown, job.transform)
        with _folder_in_place(outdir, job.folder, writer) as tmp:
            return write_projection_folder(
                tmp,
                result,
                i,
                target=job.target,
                model_id=spec.model_id,
                model_sha256=spec.model_sha256,
                provenance={**spec.provenance, "image": job.item.path},
                mask=job.mask,
                align_transform=job.transform,
                pasted=pasted,
                video=video,
                plot=spec.plot,
                tuning=None if tuned is None else tuned[0],
                tuned_image=None if tuned is None else tuned[1],
                tuned_terms=None if tuned is None else tuned[2],
                name=Path(job.folder).name,  # `tmp` is a random name until the folder is moved into place
                styles_generator=(self.G if tuned is None else tuned[3]) if spec.save_styles else None,
            )


class _folder_in_place:
    """Yield a fresh folder under ``OUTDIR/.partial/<writer>/``; on success it replaces ``OUTDIR/<folder>``."""

    def __init__(self, outdir: Path, folder: str, writer: str):
        self.final = outdir / folder
        self.tmp = partial_dir(outdir, writer) / f"{uuid.uuid4().hex}"

    def __enter__(self) -> Path:
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        self.final.parent.mkdir(parents=True, exist_ok=True)
        if self.final.exists():  # a rename cannot replace a folder that has files: move the old one aside first
            old = self.tmp.with_name(self.tmp.name + ".old")
            os.replace(self.final, old)
            os.replace(self.tmp, self.final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.final)


def _one_line(e: BaseException, path: str | None = None) -> str:
    text = (str(e).splitlines() or [type(e).__name__])[0]
    if isinstance(e, OSError) and not isinstance(e, WplusError):
        text = f"{e.filename or path}: {e.strerror or text}"
    return text


def _start_code(path: Path | None, G: torch.nn.Module, space: str, device: torch.device) -> torch.Tensor | None:
    """The code of ``--init-latent``: [1, num_ws, w_dim], checked against ``G`` (W+ / W only)."""
    if path is None:
        return None
    if space == "z":
        raise ConfigError("--init-latent holds a w code; use it with --space w+ or w (Z has no inverse of w)")
    from wplus.io.latents import load_code

    return load_code(path, G).ws.to(device)


def chunks(items: Sequence[WorkItem], size: int) -> Iterator[list[WorkItem]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def run_local(plan: Plan, projector: DatasetProjector) -> list[Outcome]:
    """The local engine: project ``plan.todo`` batch by batch, recording each image in the manifest as it goes
    (``running`` before its batch starts, ``done``/``failed`` when it ends)."""
    writer = ManifestWriter(plan.outdir, plan.writer) if plan.manifest else None
    clear_partial(plan.outdir, plan.writer)
    outcomes: list[Outcome] = []
    for chunk in chunks(plan.todo, projector.spec.batch_size):
        if writer is not None:
            started = time.time()
            for it in chunk:
                writer.record(
                    input=it.input,
                    input_sha256=it.input_sha256,
                    settings_sha256=plan.settings_sha256,
                    status="running",
                    outputs=[],
                    started=started,
                )
        done = projector.run(chunk, plan.outdir, plan.writer)
        if writer is not None:
            for o in done:
                writer.record(**o.record_fields(plan.settings_sha256))
        outcomes.extend(done)
    clear_partial(plan.outdir, plan.writer)
    return outcomes
