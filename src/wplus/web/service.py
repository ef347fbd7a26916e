"""What the web page does, without the page: embed an uploaded photo, edit, morph, mix and transfer expressions,
find and move the style channels of a region, transfer a part between faces.

:class:`WebService` holds one generator and answers each action with plain values (paths, PIL images, numbers),
so it runs and is tested without Gradio; :mod:`wplus.web.app` puts it behind a page and named API endpoints.
Every result of an embedding is a projection folder (the files ``wplus project`` writes, via
:func:`wplus.projection.outputs.write_projection_folder`) under the service's work folder, plus a zip of it.

When the model has an encoder (its shipped one, or the file given as ``encoder``), an embedding starts from the
encoder's code by default: its reconstruction and PSNR reach ``on_start`` before the first optimisation step, then
the optimisation refines that code (``start``: 'encoder', 'encoder-only' for the ``encoder`` preset's 0 steps, or
'mean' for the average latent).

Uploads are checked before anything is decoded: the file size against ``max_upload_bytes``, the pixel count
(read from the header) against ``max_pixels``; what fails raises a :class:`~wplus.errors.WplusError` whose first
line names the upload by its file name (not the server's temporary path).
"""

from __future__ import annotations

import copy
import logging
import math
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from wplus.errors import ConfigError, ImageError, WplusError
from wplus.io.images import MAX_PIXELS, center_crop_resize, load_image, pil_to_tensor
from wplus.loading import LoadedGenerator, file_sha256
from wplus.projection.project import ProjectionStep, loss_terms
from wplus.projection.settings import LOSS_KINDS, PRESETS, ProjectionSettings, resolve_settings

log = logging.getLogger(__name__)

__all__ = [
    "WebService",
    "EmbedRequest",
    "EmbedResult",
    "StyleTransfer",
    "StartCode",
    "Cancelled",
    "STARTS",
    "DEFAULT_MAX_UPLOAD_MB",
    "MAX_WEB_STEPS",
    "STYLE_TOP",
    "STYLE_PARTS",
    "MAX_EFFECT_SAMPLES",
]

DEFAULT_MAX_UPLOAD_MB = 25.0  # a phone photo is 3-12 MB; a bigger upload is refused before it is read
MAX_WEB_STEPS = 5000  # the paper's run length; a page visitor cannot ask one request for more
_CACHED_TUNED = 2  # tuned generator copies kept for edits (each is a full copy of G)
STYLE_TOP = 8  # channels the Style channels tab finds for a region (one slider each)
STYLE_PARTS = ("mouth", "eyes", "left_eye", "right_eye")  # the shipped model's named parts (its part catalogue)
MAX_EFFECT_SAMPLES = 64  # sample images a page visitor may ask the channel effects to be measured on
PART_SAMPLES = 200  # generator samples of the part catalogue (wplus.stylespace.parts.DEFAULT_SAMPLES)
START_ENCODER, START_ENCODER_ONLY, START_MEAN = "encoder", "encoder-only", "mean"
STARTS = (START_ENCODER, START_ENCODER_ONLY, START_MEAN)  # where an embedding starts (EmbedRequest.start)


class Cancelled(WplusError):
    """The user cancelled the projection (raised inside the optimisation loop, at the next step)."""


@dataclass(frozen=True)
class EmbedRequest:
    """One embedding asked for on the page (or through the ``project`` endpoint).

    ``loss`` None keeps the preset's loss; ``mask`` [1, 1, R, R] in [0, 1] (1: the loss looks there) comes from the
    mask editor; ``latent_reg`` None keeps the preset's latent regularisation weight. ``start``: 'encoder' (refine
    the encoder's code with the preset and steps), 'encoder-only' (the ``encoder`` preset: its code as it is, 0
    steps), 'mean' (the average latent), or None: 'encoder' when the service has an encoder, else 'mean'.
    """

    image: Path
    preset: str | None = None
    space: str = "w+"
    steps: int = 100
    loss: str | None = None
    align: bool = False
    tune: bool = False
    tune_steps: int = 100
    latent_reg: float | None = None
    target: Image.Image | None = None  # an already decoded target (the mask editor's), instead of reading image
    mask: torch.Tensor | None = None
    start: str | None = None


@dataclass
class StartCode:
    """The encoder's code an embedding starts from, shown before the first step: its render [1, C, R, R] in
    [-1, 1], that render's PSNR against the target, and the seconds of the encoder's pass and the render."""

    source: str  # the encoder's file name
    image: torch.Tensor
    psnr: float
    seconds: float


@dataclass
class EmbedResult:
    folder: Path
    metrics: dict[str, Any]
    projection: Image.Image
    target: Image.Image
    latent: Path
    pngs: list[Path]
    zip: Path
    notices: list[str] = field(default_factory=list)
    pasted: Image.Image | None = None  # the (tuned) projection pasted back into the photo, for aligned faces
    start: StartCode | None = None  # the encoder's start, when the run began from it


@dataclass
class StyleTransfer:
    """A part transfer of the Style channels tab: the image, the styles before and after (batches of one,
    :class:`wplus.stylespace.Styles`) and the channels taken (:class:`wplus.stylespace.parts.Selection`)."""

    image: Image.Image
    styles: Any
    target: Any
    selection: Any
    label: str


def _one_line(e: BaseException, upload: Path | None = None) -> str:
    text = (str(e).splitlines() or [type(e).__name__])[0] or type(e).__name__
    if upload is not None:
        text = text.replace(str(upload), upload.name)
    return text


class WebService:
    """One generator and the actions of the page.

    Args:
        model: a loaded generator (:func:`wplus.loading.load_generator_info`).
        device: where to compute.
        workdir: where projection folders are written (one sub-folder per embedding).
        max_upload_bytes: refuse uploads larger than this.
        max_pixels: refuse images with more pixels (decompression bombs), see :data:`wplus.io.images.MAX_PIXELS`.
        part_samples: generator samples the part catalogue of a transfer is built from (once per model, cached).
        encoder: the encoder embeddings start from (a file or a module, :func:`wplus.encoders.encoder_for`); None:
            the model's shipped one, when it has one that fits (else embeddings start from the average latent).

    Raises:
        WplusError: the given encoder is missing, unreadable or trained for another generator (one line).

    Style-space work replaces the affines' outputs with hooks for the duration of a forward pass
    (:func:`wplus.stylespace.render_styles`), so it never runs on the generator a projection may be using: renders
    use one copy of it (one at a time, with the other renders of edits), the long measurements (channel effects, part
    catalogue, a box's contributions) another (one at a time).
    """

    def __init__(
        self,
        model: LoadedGenerator,
        *,
        device: torch.device,
        workdir: Path,
        max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024),
        max_pixels: int = MAX_PIXELS,
        part_samples: int = PART_SAMPLES,
        encoder: Any = None,
    ):
        self.model, self.device = model, device
        self.G = model.G.eval().requires_grad_(False)  # shared by concurrent requests: never toggled per run
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.max_upload_bytes, self.max_pixels = max_upload_bytes, max_pixels
        self._lock = threading.Lock()
        self._losses: dict[tuple, tuple[Any, Any, ProjectionSettings]] = {}
        self._tunings: dict[str, Path] = {}  # latent.npz SHA-256 -> the tuning.safetensors written beside it
        self._alignments: dict[str, tuple[Path, Any]] = {}  # latent.npz SHA-256 -> (its photo, AlignTransform)
        self._tuned: OrderedDict[Path, torch.nn.Module] = OrderedDict()
        self._directions: dict[tuple[str, int | None], Any] = {}
        self._detector: Any = None
        self.part_samples = int(part_samples)
        self._render_lock = threading.Lock()  # renders that hook a generator's affines, and the edits' renders
        self._compute_lock = threading.Lock()  # the long style-space measurements (on their own copy of G)
        self._render_G: torch.nn.Module | None = None
        self._compute_G: torch.nn.Module | None = None
        self._style_stats: Any = None
        self._effects: dict[int, Any] = {}
        self._catalogue: Any = None
        self.encoder, self.encoder_name, self.encoder_problem = self._find_encoder(encoder)

    def _find_encoder(self, encoder: Any) -> tuple[Any, str | None, str | None]:
        """``(encoder module, its name, why the shipped one is not used)``; a given encoder that does not fit fails
        here (the server does not start), a shipped one that does not fit is left out with a reason."""
        from wplus.encoders import encoder_for

        if encoder is not None:
            name = Path(encoder).name if isinstance(encoder, str | Path) else type(encoder).__name__
            return encoder_for(self.G, encoder, device=self.device), name, None
        if not self.has_builtin_parts:  # only the shipped model has a shipped encoder
            return None, None, None
        from wplus.shipped import shipped_encoder_path

        path = shipped_encoder_path()
        try:
            return encoder_for(self.G, path, device=self.device), path.name, None
        except WplusError as e:
            log.warning("not using the shipped encoder: %s", _one_line(e))
            return None, None, f"the shipped encoder does not fit this generator ({_one_line(e, path)})"

    # -- inputs ---------------------------------------------------------------------------------------------------

    @property
    def num_ws(self) -> int:
        return int(self.G.num_ws)

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)

    def check_upload(self, path: str | Path | None, what: str = "image") -> Path:
        """The uploaded file, after the size check (no decoding here)."""
        if path is None or str(path) == "":
            raise ConfigError(f"no {what} given; upload one first")
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path.name}: the upload is gone from the server; upload it again")
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise ConfigError(
                f"{path.name}: {size / 2**20:.1f} MB, expected at most {self.max_upload_bytes / 2**20:.1f} MB; "
                "upload a smaller file (or start the server with a larger --max-upload-mb)"
            )
        if size == 0:
            raise ConfigError(f"{path.name}: the file is empty; expected a {what}")
        return path

    def load_target(self, path: str | Path, *, align: bool) -> tuple[Image.Image, Any]:
        """The target at the generator's resolution (centre crop, or the largest FFHQ-aligned face) and the
        alignment transform (None without alignment)."""
        path = self.check_upload(path)
        try:
            if align:
                return self._aligned(path)
            img = load_image(path, max_pixels=self.max_pixels)
        except WplusError as e:
            raise ImageError(None, _one_line(e, path)) from None
        return center_crop_resize(img, self.resolution), None

    def _aligned(self, path: Path) -> tuple[Image.Image, Any]:
        try:
            from wplus.align import LandmarkDetector, align_faces

            if self._detector is None:
                self._detector = LandmarkDetector()
            faces = align_faces(
                path, detector=self._detector, face="largest", output_size=self.resolution, max_pixels=self.max_pixels
            )
        except ImportError:
            raise ConfigError(
                "face alignment needs the align extra (pip install 'wplus[align]'); untick 'Align face' to "
                "centre-crop instead"
            ) from None
        return faces[0].image, faces[0].transform

    def start_for(self, req: EmbedRequest) -> tuple[str, str | None]:
        """Where the request's embedding starts (one of :data:`STARTS`) and a notice when that is not what it asked
        for (no encoder, or Z space, which an encoder does not predict)."""
        start = req.start if req.start is not None else START_ENCODER if self.encoder is not None else START_MEAN
        if start not in STARTS:
            raise ConfigError(f"got start {start!r}, expected one of: {', '.join(STARTS)}")
        if start == START_MEAN:
            return start, None
        if self.encoder is None:
            why = self.encoder_problem or f"{self.model.model_id} has no encoder (wplus serve --encoder FILE)"
            return START_MEAN, f"{why}; started from the average latent"
        if req.space == "z":
            return START_MEAN, "an encoder predicts W+ codes, not Z; started from the average latent"
        return start, None

    def settings_for(self, req: EmbedRequest) -> ProjectionSettings:
        """The settings of a request: its preset with the page's space, steps, loss and regularisation, started
        where :meth:`start_for` says ('encoder-only' is the ``encoder`` preset, 0 steps, whatever the preset)."""
        start, _ = self.start_for(req)
        if req.preset is not None and req.preset not in PRESETS:
            raise ConfigError(f"got preset {req.preset!r}, expected one of: {', '.join(PRESETS)}")
        if req.loss is not None and req.loss not in LOSS_KINDS:
            raise ConfigError(f"got loss {req.loss!r}, expected one of: {', '.join(LOSS_KINDS)}")
        if not 1 <= int(req.steps) <= MAX_WEB_STEPS:
            raise ConfigError(f"got {req.steps} steps, expected 1 to {MAX_WEB_STEPS}")
        overrides: dict[str, Any] = {"space": req.space, "num_steps": int(req.steps)}
        overrides["init"] = "encoder" if start != START_MEAN else "mean"
        if req.loss is not None:
            overrides["loss"] = req.loss
        if req.latent_reg is not None:
            overrides["latent_reg_weight"] = float(req.latent_reg)
        if start == START_ENCODER_ONLY:
            return resolve_settings("encoder", **{**overrides, "num_steps": 0})
        return resolve_settings(req.preset, **overrides)

    def loss_for(self, settings: ProjectionSettings, notice: Callable[[str], None]) -> tuple[Any, Any, Any]:
        """``(loss, lpips, settings)`` built once per loss recipe; settings change when the loss falls back to the
        model's discriminator features offline (:meth:`ProjectionChoice.loss`)."""
        from wplus.projection.choice import ProjectionChoice

        key = (settings.loss, settings.layers, settings.taps, settings.loss_resize) + tuple(
            getattr(settings, f"{t}_weight") for t in ("perceptual", "mse", "l1", "lpips", "dfeat")
        )
        with self._lock:
            if key not in self._losses:
                choice = ProjectionChoice(settings)
                loss, lpips = choice.loss(self.device, self.model, notice=notice)
                self._losses[key] = (loss, lpips, choice.settings)
            loss, lpips, built = self._losses[key]
        if built.loss != settings.loss:  # the discriminator-feature fallback: keep the other settings of this run
            fallback = settings.with_discriminator_features()
            settings = fallback
        return loss, lpips, settings

    # -- embedding ------------------------------------------------------------------------------------------------

    def embed(
        self,
        req: EmbedRequest,
        *,
        on_step: Callable[[ProjectionStep], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_target: Callable[[Image.Image], None] | None = None,
        on_start: Callable[[StartCode], None] | None = None,
    ) -> EmbedResult:
        """Project the request's photo, optionally tune, write its folder and zip; return what the page shows.

        A run that starts from the encoder's code hands that code's render and PSNR to ``on_start`` first, before
        the loss is built and before the first step; ``on_step`` then follows the optimisation from it.

        Raises:
            WplusError: a bad upload or setting (one line); :class:`Cancelled` when ``should_stop`` said so.
        """
        from wplus import __version__
        from wplus.projection.outputs import write_projection_folder
        from wplus.projection.project import project

        notices: list[str] = []
        _, start_notice = self.start_for(req)
        if start_notice is not None:
            notices.append(start_notice)
        settings = self.settings_for(req)
        if req.target is not None:
            target_img, transform = req.target, None
        else:
            target_img, transform = self.load_target(req.image, align=req.align)
        if on_target is not None:
            on_target(target_img)
        target = pil_to_tensor(target_img).to(self.device)
        start = None
        if settings.init == "encoder":
            start = self._encoder_start(target, settings.space)
            if on_start is not None:
                on_start(start)
        loss, lpips, settings = self.loss_for(settings, notices.append)
        mask = None if req.mask is None else req.mask.to(self.device)

        def callback(st: ProjectionStep) -> None:
            if should_stop():
                raise Cancelled("projection cancelled")
            if on_step is not None:
                on_step(st)

        t0 = time.perf_counter()
        result = project(self.G, target, loss=loss, settings=settings, callback=callback, mask=mask, lpips=lpips,
                         encoder=self.encoder)  # fmt: skip
        tuning = tuned_image = tuned_terms = None
        if req.tune:
            tuning, tuned_image = self._tune(target, result, loss, int(req.tune_steps), should_stop)
            tuned_terms = loss_terms(loss, tuned_image, target, mask=mask, lpips=lpips)[0]
        stem = Path(req.image).stem if req.image else "image"
        folder = self.workdir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}" / stem
        provenance = {
            "wplus_version": __version__,
            "command": "serve",
            "model": {"path": str(self.model.path), "id": self.model.model_id, "sha256": self.model.sha256},
            "device": str(self.device),
            "image": Path(req.image).name if req.image else None,
            "preprocess": "ffhq-align" if req.align else "center-crop, Lanczos resize",
            "mask": "drawn on the page" if mask is not None else None,
            "encoder": None if start is None else {"name": start.source, "psnr": start.psnr, "seconds": start.seconds},
            "seconds": time.perf_counter() - t0,
        }
        pasted = None
        if transform is not None:
            from wplus.align import paste_back

            shown = tuned_image if tuned_image is not None else result.images[:1]
            pasted = paste_back(load_image(req.image, max_pixels=self.max_pixels), shown.cpu(), transform)
        metrics = write_projection_folder(
            folder,
            result,
            target=target.cpu(),
            model_id=self.model.model_id,
            model_sha256=self.model.sha256,
            provenance=provenance,
            mask=None if mask is None else mask.cpu(),
            align_transform=transform,
            tuning=tuning,
            tuned_image=tuned_image,
            tuned_terms=tuned_terms,
            pasted=pasted,
        )
        photo = None
        if transform is not None:  # kept beside the latent: every later edit can be pasted back into it
            photo = folder / f"photo{Path(req.image).suffix.lower() or '.png'}"
            shutil.copyfile(req.image, photo)
        archive = Path(shutil.make_archive(str(folder), "zip", root_dir=folder.parent, base_dir=folder.name))
        latent = folder / "latent.npz"
        if tuning is not None:
            self._tunings[file_sha256(latent)] = folder / "tuning.safetensors"
        if photo is not None:
            self._alignments[file_sha256(latent)] = (photo, transform)
        pngs = sorted(folder.glob("*.png"))
        return EmbedResult(
            folder=folder,
            metrics=metrics,
            projection=Image.open(folder / "projection.png").convert("RGB"),
            target=target_img,
            latent=latent,
            pngs=pngs,
            zip=archive,
            notices=notices,
            pasted=pasted,
            start=start,
        )

    def _encoder_start(self, target: torch.Tensor, space: str) -> StartCode:
        """The encoder's code for ``target`` rendered as the projection's first step will see it (in W, the rows'
        mean, as :func:`wplus.projection.project.project` starts there)."""
        from wplus.metrics import psnr

        t0 = time.perf_counter()
        with torch.no_grad():
            ws = self.encoder.encode(target).to(self.device)
            if space == "w":
                ws = ws.mean(1, keepdim=True).expand(-1, self.num_ws, -1)
            image = self.G.synthesis(ws, noise_mode="const")
            seconds = time.perf_counter() - t0
            value = float(psnr(image, target)[0])
        return StartCode(source=str(self.encoder_name), image=image.cpu(), psnr=value, seconds=seconds)

    def _tune(
        self, target: torch.Tensor, result: Any, loss: Any, steps: int, should_stop: Callable[[], bool]
    ) -> tuple[Any, torch.Tensor]:
        from wplus.tuning import tune

        def callback(st: Any) -> None:
            if should_stop():
                raise Cancelled("pivotal tuning cancelled")

        latent = result.latent(0)
        tuning = tune(self.G, target, latent.ws, loss=loss, noise=latent.noise or None, num_steps=steps,
                      base_sha256=self.model.sha256, callback=callback,
                      precision=result.settings.precision)  # fmt: skip
        with torch.no_grad():
            image = tuning.apply(self.G, check=False).synthesis(
                latent.ws, noise_mode="const", noise=latent.noise or None
            )
        return tuning, image

    # -- edits ----------------------------------------------------------------------------------------------------

    def code(self, path: str | Path | None, what: str = "latent") -> Any:
        """A latent file (any format ``wplus edit`` reads) checked against the generator."""
        from wplus.io.latents import load_code

        path = self.check_upload(path, what)
        try:
            return load_code(path, self.G)
        except WplusError as e:
            raise WplusError(_one_line(e, path)) from None

    def _generator_for(self, latent_path: Path) -> torch.nn.Module:
        """The tuned generator when this server tuned the embedding, else the base one."""
        tuning_path = self._tunings.get(file_sha256(latent_path))
        if tuning_path is None or not tuning_path.is_file():
            return self.G
        with self._lock:
            if tuning_path not in self._tuned:
                from wplus.tuning import load_tuning

                self._tuned[tuning_path] = load_tuning(tuning_path).apply(self.G)
                while len(self._tuned) > _CACHED_TUNED:
                    self._tuned.popitem(last=False)
            self._tuned.move_to_end(tuning_path)
            return self._tuned[tuning_path]

    def _render(self, G: torch.nn.Module, ws: torch.Tensor, latent: Any) -> Image.Image:
        from wplus.edits.render import latent_noise, render

        with self._render_lock:  # a tuned generator is also hooked by style renders
            return render(G, ws, latent_noise(latent, G))[0]

    def direction(self, path: str | Path, component: int | None = None) -> Any:
        from wplus.edits.directions import load_direction

        path = Path(path)
        key = (file_sha256(path), component)
        if key not in self._directions:
            try:
                self._directions[key] = load_direction(path, self.G, component=component)
            except WplusError as e:
                raise WplusError(_one_line(e, path)) from None
        return self._directions[key]

    def named_directions(self) -> list[Any]:
        """The shipped named directions of this generator (:class:`wplus.shipped.NamedDirection`), found by its file's
        SHA-256 (so the shipped model passed as a path counts too); empty for any other model."""
        from wplus.shipped import named_directions, shipped_models

        for model, sha256 in shipped_models().items():
            if sha256 == self.model.sha256:
                return named_directions(model)
        return []

    def edit(
        self,
        latent_path: str | Path | None,
        *,
        named: Mapping[str, float] | None = None,
        direction_path: str | Path | None = None,
        strength: float = 0.0,
        component: int | None = None,
    ) -> Image.Image:
        """The embedding moved along this model's named directions (``named``: name -> strength; the Edit tab's
        sliders) and along an uploaded direction."""
        from wplus.edits.directions import apply_direction

        path = self.check_upload(latent_path, "latent")
        latent = self.code(path)
        ws = latent.ws.to(self.device)
        by_name = {d.name: d for d in self.named_directions()}
        for name, value in (named or {}).items():
            if name not in by_name:
                have = ", ".join(by_name) or "none"
                raise ConfigError(f"{self.model.model_id} has no named direction {name!r}; available: {have}")
            if value:
                ws = apply_direction(ws, self.direction(by_name[name].path), float(value))
        if direction_path is not None and str(direction_path) and strength:
            ws = apply_direction(
                ws, self.direction(self.check_upload(direction_path, "direction"), component), strength
            )
        return self._render(self._generator_for(path), ws, latent)

    def paste(self, latent_path: str | Path | None, face: Image.Image | None) -> Image.Image | None:
        """``face`` (an edit of the embedding) warped back into the photo, when this server embedded that latent from
        an aligned face; None otherwise (nothing to paste into)."""
        if latent_path is None or face is None or not Path(latent_path).is_file():
            return None
        found = self._alignments.get(file_sha256(Path(latent_path)))
        if found is None:
            return None
        from wplus.align import paste_back

        photo, transform = found
        return paste_back(load_image(photo, max_pixels=self.max_pixels), face, transform)

    def morph(self, a: str | Path | None, b: str | Path | None, *, frames: int = 16) -> tuple[list[Image.Image], Path]:
        """Frames from ``a`` to ``b`` (linear in W+, noise blended) and a GIF of them (plus MP4 with the video
        extra)."""
        from wplus.edits.morph import morph
        from wplus.edits.render import render
        from wplus.io.video import save_animation

        if not 2 <= int(frames) <= 240:
            raise ConfigError(f"got {frames} frames, expected 2 to 240")
        keys = [self.code(a, "first latent"), self.code(b, "second latent")]
        m = morph(self.G, keys, frames=int(frames), space="w+")
        images = render(self.G, m.ws, m.noise)
        out = self.workdir / f"morph-{uuid.uuid4().hex[:8]}"
        out.mkdir(parents=True)
        return images, save_animation(images, out / "morph")[0]

    def mix(self, content: str | Path | None, style: str | Path | None, *, layers: str) -> Image.Image:
        """``content`` with the rows ``layers`` ('8-9', 'fine', ...: :func:`~wplus.edits.crossover.parse_layers`)
        taken from ``style`` (rendered with the content's noise)."""
        from wplus.edits.crossover import mix_styles, parse_layers

        rows = parse_layers(str(layers or ""), self.num_ws)
        c, s = self.code(content, "content latent"), self.code(style, "style latent")
        return self._render(self.G, mix_styles(c.ws, s.ws, rows).to(self.device), c)

    def expression(
        self, w1: str | Path | None, w2: str | Path | None, w3: str | Path | None, *, strength: float = 1.0
    ) -> Image.Image:
        """``w1 + λ (w3 − w2)`` (Image2StyleGAN's expression transfer, rows cleaned as ``wplus expression``)."""
        from wplus.edits.expression import expression_transfer

        target = self.code(w1, "target latent (w1)")
        neutral, expressive = self.code(w2, "neutral latent (w2)"), self.code(w3, "expressive latent (w3)")
        ws = expression_transfer(target.ws, neutral.ws, expressive.ws, strength=float(strength))
        return self._render(self.G, ws.to(self.device), target)

    # -- style space ----------------------------------------------------------------------------------------------

    @property
    def has_builtin_parts(self) -> bool:
        """Whether this is the shipped model (its drawn faces give the built-in regions and named parts)."""
        from wplus.shipped import SHIPPED_SHA256

        return self.model.sha256 == SHIPPED_SHA256

    def style_regions(self) -> list[str]:
        """The built-in regions channels are found for (the drawn faces' boxes; the shipped model only)."""
        from wplus.stylespace.locate import BUILTIN_REGIONS

        return list(BUILTIN_REGIONS) if self.has_builtin_parts else []

    def style_parts(self) -> list[str]:
        """The named parts a transfer takes (the shipped model's part catalogue names them; others have none)."""
        return list(STYLE_PARTS) if self.has_builtin_parts else []

    def style_latent(self, path: str | Path | None) -> Any:
        """The latent of the Style channels tab (checked as :meth:`code`)."""
        if path is None or str(path) == "":
            raise ConfigError("no latent yet: embed a photo on the Embed tab (or upload a latent) first")
        return self.code(path)

    def style_region(self, text: str | None) -> Any:
        """A region (:class:`wplus.stylespace.locate.Region`): a built-in part's box or ``x0,y0,x1,y1`` in pixels of
        the generator's images (x1, y1 excluded). Mask files are not read: a page visitor names no server path."""
        from wplus.stylespace.locate import parse_region

        text = str(text or "").strip()
        r = self.resolution
        builtin = self.style_regions()
        box = f"a box x0,y0,x1,y1 in pixels of the {r}x{r} image (or click two corners on it)"
        if not text:
            raise ConfigError(f"no region given; expected {'a part or ' if builtin else ''}{box}")
        if "," not in text and text not in builtin:
            if builtin:
                raise ConfigError(f"region {text!r}: expected {', '.join(builtin)} or {box}")
            raise ConfigError(f"region {text!r}: {self.model.model_id} has no built-in parts; expected {box}")
        return parse_region(text, r, flag="region")

    def style_stats(self) -> Any:
        """Per-channel σ of this generator's styles (:func:`wplus.stylespace.style_stats`, cached per model)."""
        from wplus.stylespace import style_stats

        with self._lock:
            if self._style_stats is None:
                self._style_stats = style_stats(self.G, model_sha256=self.model.sha256, device=self.device)
            return self._style_stats

    def _copy_of_G(self, which: str) -> torch.nn.Module:
        """The render or compute copy of the base generator (made on first use)."""
        attr = f"_{which}_G"
        with self._lock:
            if getattr(self, attr) is None:
                setattr(self, attr, copy.deepcopy(self.G))
            return getattr(self, attr)

    def _acquire(self, lock: threading.Lock, should_stop: Callable[[], bool], what: str) -> None:
        while not lock.acquire(timeout=0.2):
            if should_stop():
                raise Cancelled(f"{what} cancelled")

    def effects_ready(self, samples: int) -> bool:
        """Whether the channel effects over ``samples`` images are at hand (in memory or in the wplus cache)."""
        from wplus.stylespace.locate import DEFAULT_K, DEFAULT_SIZE, effects_cache_path

        if int(samples) in self._effects:
            return True
        path = effects_cache_path(self.model.sha256, samples=int(samples), seed=0, k=DEFAULT_K, size=DEFAULT_SIZE,
                                  channels="modulating-forward")  # fmt: skip
        return path.is_file()

    def style_effects(
        self,
        samples: int,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Any:
        """Where every channel changes the image, over ``samples`` generator samples
        (:func:`wplus.stylespace.sample_effects`: minutes on a CPU the first time for a model, then cached).

        Raises:
            Cancelled: ``should_stop`` said so (checked after every batch of channels).
        """
        from wplus.stylespace.locate import sample_effects

        samples = int(samples)
        if not 1 <= samples <= MAX_EFFECT_SAMPLES:
            raise ConfigError(f"got {samples} sample images, expected 1 to {MAX_EFFECT_SAMPLES}")
        if samples in self._effects:
            return self._effects[samples]
        stats = self.style_stats()

        def callback(done: int, total: int) -> None:
            if should_stop():
                raise Cancelled("finding channels cancelled")
            if on_progress is not None:
                on_progress(done, total)

        self._acquire(self._compute_lock, should_stop, "finding channels")
        try:
            if samples not in self._effects:  # another request may have measured them meanwhile
                G = self._copy_of_G("compute")
                self._effects[samples] = sample_effects(G, samples=samples, stats=stats, model_sha256=self.model.sha256,
                                                        device=self.device, callback=callback)[0]  # fmt: skip
        finally:
            self._compute_lock.release()
        return self._effects[samples]

    def style_channels(
        self,
        latent_path: str | Path | None,
        region: str | None,
        *,
        top: int = STYLE_TOP,
        samples: int = 8,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> list[Any]:
        """The ``top`` channels whose change stays most inside ``region`` (:meth:`style_region`), best first
        (:class:`wplus.stylespace.LocatedChannel`: name ``L_C``, share of the change inside, ...). The ranking is
        the model's (over ``samples`` generator samples); the latent is checked so that the sliders have a face to
        move."""
        from wplus.stylespace.locate import locate_region

        self.style_latent(latent_path)
        reg = self.style_region(region)
        effects = self.style_effects(samples, on_progress=on_progress, should_stop=should_stop)
        return locate_region(effects, reg.mask, others=reg.others)[: max(1, int(top))]

    def style_edit(
        self, latent_path: str | Path | None, channels: str | list[str], values: list[float]
    ) -> tuple[Any, Any, Any, torch.nn.Module]:
        """``(styles of the latent, styles with channel i moved by values[i]·σ, the latent, its generator)``;
        ``channels``: names ``L_C`` (a list, or joined by commas)."""
        from wplus.stylespace import edit_channels, parse_channel, style_layers, to_styles

        latent = self.style_latent(latent_path)
        G = self._generator_for(Path(latent_path))  # type: ignore[arg-type]
        names = [c.strip() for c in (channels.split(",") if isinstance(channels, str) else channels) if c.strip()]
        if len(values) < len(names):
            raise ConfigError(f"got {len(values)} values for {len(names)} channels, expected one per channel")
        layers = style_layers(G)
        edits = []
        for name, value in zip(names, values[: len(names)], strict=True):  # the unused sliders are ignored
            v = float(value or 0)
            if not math.isfinite(v):
                raise ConfigError(f"channel {name}: got {v}, expected a finite number of σ")
            layer, c = parse_channel(layers, name, flag="channel")
            if v:
                edits.append((layer.name, c, v))
        with torch.no_grad():
            base = to_styles(G, latent.ws.to(self.device))
        moved = edit_channels(base, edits, self.style_stats(), 1.0) if edits else base
        return base, moved, latent, G

    def style_render(self, latent_path: str | Path | None, channels: str | list[str], values: list[float]) -> Any:
        """The embedding with each channel moved by its value in σ (the latent's noise; 0 everywhere renders the
        embedding itself)."""
        _, styles, latent, G = self.style_edit(latent_path, channels, values)
        return self._render_styles(G, styles, latent)

    def _render_styles(self, G: torch.nn.Module, styles: Any, latent: Any) -> Image.Image:
        from wplus.edits.render import latent_noise
        from wplus.io.images import tensor_to_pil
        from wplus.stylespace import render_styles

        with self._render_lock:
            target = self._copy_of_G("render") if G is self.G else G  # never hook the generator projections use
            noise = [n.to(self.device) for n in latent_noise(latent, target)]
            with torch.no_grad():
                return tensor_to_pil(render_styles(target, styles, noise)[0])

    def _part_layer(self) -> str:
        """The layer whose features the part catalogue clusters: the default 32-px conv, else the last conv of at
        most 32 px (small models)."""
        from wplus.stylespace import parts as sp
        from wplus.stylespace import style_layers

        convs = [x.name for x in style_layers(self.G) if x.kind == "conv"]
        if sp.DEFAULT_LAYER in convs or not convs:
            return sp.DEFAULT_LAYER  # (no conv: parts refuses this generator in one line)
        small = [n for n in convs if int(n.split(".")[1][1:]) <= 32]
        return (small or convs)[-1]

    def catalogue_ready(self) -> bool:
        from wplus.stylespace import parts as sp

        return self._catalogue is not None or sp.catalogue_cache_path(
            self.model.sha256, k=sp.DEFAULT_K, layer=self._part_layer(), samples=self.part_samples, seed=0,
            size=sp.DEFAULT_MASK_SIZE).is_file()  # fmt: skip

    def style_transfer(
        self,
        target_latent: str | Path | None,
        reference: str | Path | None,
        region: str | None,
        *,
        strength: float = 1.0,
        reference_steps: int = 100,
        reference_loss: str | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> StyleTransfer:
        """The target with the channels of a part (:meth:`style_parts`), a built-in region's box or a box
        ``x0,y0,x1,y1`` moved ``strength`` of the way to the reference's (Editing in Style); every other channel is
        the target's. ``reference``: a latent, or a photo (embedded first with ``reference_steps`` steps).
        The first transfer of a model builds its part catalogue (about a minute at 64 px on a CPU, then cached); a
        box costs a pass over the catalogue's samples each time."""
        from wplus.io.images import IMAGE_SUFFIXES
        from wplus.stylespace import parts as sp
        from wplus.stylespace import to_styles

        target = self.style_latent(target_latent)
        ref_path = self.check_upload(reference, "reference (a latent, or a photo to embed)")
        if not (math.isfinite(float(strength)) and 0 <= float(strength) <= 1):
            raise ConfigError(f"got strength {strength}, expected 0 to 1")
        text = str(region or "").strip()
        part = text if text in self.style_parts() else None
        if part is None:
            self.style_region(text)  # a bad box fails here, before anything is computed
        if ref_path.suffix.lower() in IMAGE_SUFFIXES:
            embedded = self.embed(EmbedRequest(image=ref_path, steps=int(reference_steps), loss=reference_loss),
                                  should_stop=should_stop)  # fmt: skip
            ref_path = embedded.latent
        ref = self.code(ref_path, "reference latent")
        G = self._generator_for(Path(target_latent))  # type: ignore[arg-type]
        with torch.no_grad():
            t_styles = to_styles(G, target.ws.to(self.device))
            r_styles = to_styles(self._generator_for(ref_path), ref.ws.to(self.device))
        self._acquire(self._compute_lock, should_stop, "transfer")
        try:
            Gc = self._copy_of_G("compute")
            if self._catalogue is None:
                self._catalogue = sp.cached_catalogue(Gc, model_sha256=self.model.sha256, layer=self._part_layer(),
                                                      samples=self.part_samples, name_parts=self.has_builtin_parts,
                                                      device=self.device)[0]  # fmt: skip
            cat = self._catalogue
            mask = None if part is not None else sp.region_mask(text, cat.size, self.resolution)
            result, selection = sp.transfer_part(Gc, t_styles, r_styles, cat, part, region=mask,
                                                 rho=sp.DEFAULT_RHO[sp.DEFAULT_FORM], strength=float(strength),
                                                 device=self.device)  # fmt: skip
        finally:
            self._compute_lock.release()
        image = self._render_styles(G, result, target)
        label = part if part is not None else f"box {text}" if "," in text else f"{text} box"
        return StyleTransfer(image=image, styles=result, target=t_styles, selection=selection, label=label)


def mask_from_editor(background: Image.Image, layers: list[Image.Image], resolution: int) -> torch.Tensor:
    """The loss mask [1, 1, R, R] of strokes drawn in the image editor: 0 where painted (the loss skips an
    occluder there), 1 elsewhere; cropped and resized as the target is.

    Raises:
        ConfigError: nothing is painted.
    """
    import numpy as np

    painted = np.zeros((background.size[1], background.size[0]), dtype=bool)
    for layer in layers:
        painted |= np.asarray(layer.convert("RGBA").resize(background.size))[..., 3] > 0
    if not painted.any():
        raise ConfigError("nothing is painted; paint over the part of the photo the projection should skip")
    keep = Image.fromarray(np.where(painted, 0, 255).astype("uint8"), mode="L")
    mask = np.asarray(center_crop_resize(keep.convert("RGB"), resolution).convert("L"), dtype="float32") / 255.0
    return torch.from_numpy(mask.copy())[None, None]
