"""What the edit commands (morph, mix, expression, edit, direction) share: the model, reading inputs (projecting
images first with the shared projection options), and the JSON record written next to the outputs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import torch

from wplus.cli.common import DEVICE_CHOICES, INPUT_FILE, MODEL_HELP, echo_json, err, open_model, resolve_device
from wplus.cli.projection_options import ProjectionChoice, projection_options
from wplus.cli.tuning_options import TUNING_FILE_HELP, apply_tuning_file
from wplus.errors import ConfigError
from wplus.io.atomic import write_json
from wplus.io.images import IMAGE_SUFFIXES, MIN_FRAME_SIZE, center_crop_resize, frame_scale, load_image, pil_to_tensor
from wplus.io.latents import Latent, check_finite, load_code, load_codes
from wplus.loading import LoadedGenerator, file_sha256
from wplus.progress import progress
from wplus.projection.project import project
from wplus.projection.settings import ProjectionSettings
from wplus.text import plural

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--model", type=str, default=None, help=MODEL_HELP),
    click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Results folder."),
    click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True),
    click.option("--tuning", "tuning_path", type=INPUT_FILE, default=None, help=TUNING_FILE_HELP),
]


def model_options(fn: F) -> F:
    """Add --model, --outdir, --device and --tuning (commands whose inputs are latents only, such as ``render``);
    the command receives one ``ctx: EditContext`` without projection options."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opts = {k: kwargs.pop(k) for k in ("model", "outdir", "device", "tuning_path")}
        return fn(*args, ctx=EditContext.create(projection=None, **opts), **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def scale_option(fn: F) -> F:
    """``--scale``: the integer nearest-neighbour upscale of the frames in the command's pictures."""
    return click.option(
        "--scale",
        type=click.IntRange(1, 64),
        default=None,
        help=f"Enlarge each frame of the pictures (and GIF/MP4) this many times, nearest-neighbour [default: the "
        f"smallest factor making a frame at least {MIN_FRAME_SIZE} px; 1 for {MIN_FRAME_SIZE}-px and larger models].",
    )(fn)


def edit_options(fn: F) -> F:
    """Add --model, --outdir, --device and the shared projection options (for image inputs, which are projected
    first); the command receives one ``ctx: EditContext``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, projection: ProjectionChoice, **kwargs: Any) -> Any:
        opts = {k: kwargs.pop(k) for k in ("model", "outdir", "device", "tuning_path")}
        return fn(*args, ctx=EditContext.create(projection=projection, **opts), **kwargs)

    wrapper = projection_options(wrapper)
    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


@dataclass
class EditContext:
    info: LoadedGenerator
    outdir: Path
    device: torch.device
    projection: ProjectionChoice | None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    tuned: torch.nn.Module | None = None  # the generator with --tuning applied
    tuning: dict[str, Any] | None = None  # its record entry
    projected: dict[str, dict[str, Any]] = field(default_factory=dict)  # image path -> how well it was projected

    @classmethod
    def create(
        cls,
        *,
        model: str | None,
        outdir: Path,
        device: str,
        projection: ProjectionChoice | None,
        tuning_path: Path | None = None,
    ) -> EditContext:
        dev = resolve_device(device)
        info = open_model(model, device=dev)
        tuned, entry = apply_tuning_file(info.G, tuning_path)
        return cls(info=info, outdir=outdir, device=dev, projection=projection, tuned=tuned if entry else None,
                   tuning=entry)  # fmt: skip

    @property
    def G(self) -> torch.nn.Module:
        """The generator codes are rendered with: the model, tuned when ``--tuning`` was given."""
        return self.tuned if self.tuned is not None else self.info.G

    @property
    def settings(self) -> ProjectionSettings:
        """How image inputs are projected (the shared projection options)."""
        return self._projection().settings

    def _projection(self) -> ProjectionChoice:
        if self.projection is None:
            raise ConfigError("this command takes latent files only; embed images first with wplus project")
        return self.projection

    def projection_loss(self) -> Any:
        """The loss the projection options ask for (built once: VGG-16 weights are read on first use; offline, a
        model's discriminator features stand in, with a one-line notice)."""
        return self._projection().loss(self.device, self.info, notice=err)[0]

    def scale(self, scale: int | None) -> int:
        """``--scale`` as given, else the smallest factor that makes one of this model's frames >= 256 px."""
        return frame_scale(self.G.img_resolution, scale)

    def read_target(self, path: Path) -> torch.Tensor:
        """An image file centre-cropped to the generator's resolution, [1, C, R, R] in [-1, 1] on the device."""
        return pil_to_tensor(center_crop_resize(load_image(path), self.G.img_resolution)).to(self.device)

    def _project(self, path: Path) -> Latent:
        loss, lpips = self._projection().loss(self.device, self.info, notice=err)
        s = self.settings
        target = self.read_target(path)
        preset = f", preset {s.preset}" if s.preset else ""
        err(f"projecting {path} ({plural(s.total_steps, 'step')}, {s.space}{preset})")
        with progress(s.total_steps, desc=path.name[:40], unit="step", leave=False) as bar:
            r = project(self.info.G, target, loss=loss, settings=s, lpips=lpips, callback=lambda st: bar.update(1))
        m = r.metrics[0]
        self.projected[str(path)] = {k: m[k] for k in ("psnr", "ssim", "lpips", "loss_total", "steps", "seconds")
                                     if k in m}  # fmt: skip
        err(f"projected {path.name}: psnr {m['psnr']:.2f} dB in {m['steps']} steps ({m['seconds']:.1f} s)")
        return r.latent(0, model_id=self.info.model_id, model_sha256=self.info.sha256, source=str(path))

    def load(self, path: Path, role: str) -> Latent:
        """Read a latent (or project an image) and record it as an input."""
        latent = load_code(path, self.G, projector=self._project)
        latent.ws, latent.noise = latent.ws.to(self.device), [n.to(self.device) for n in latent.noise]
        latent.z = None if latent.z is None else latent.z.to(self.device)
        entry = self.add_input(path, role, space=latent.space, projected=path.suffix.lower() in IMAGE_SUFFIXES)
        if str(path) in self.projected:
            entry["projection"] = self.projected[str(path)]  # its PSNR: how faithful the code the edit starts from is
        entry["noise"] = "saved" if latent.noise else "generator const"
        self._check_model(path, latent, entry)
        return latent

    def load_all(self, path: Path, role: str) -> list[Latent]:
        """Read every code of a latent file (:func:`wplus.io.latents.load_codes`) and record the file as an input."""
        codes = load_codes(path, self.G)
        for c in codes:
            c.ws, c.noise = c.ws.to(self.device), [n.to(self.device) for n in c.noise]
        entry = self.add_input(path, role, projected=False, codes=len(codes))
        entry["noise"] = "saved" if all(c.noise for c in codes) else "generator const"
        for c in codes[:1]:  # a file records one model
            self._check_model(path, c, entry)
        return codes

    def _check_model(self, path: Path, latent: Latent, entry: dict[str, Any]) -> None:
        """Warn (one line on stderr, and in the record) when a latent names another model's SHA-256."""
        if latent.model_sha256 and latent.model_sha256 != self.info.sha256:
            entry["warning"] = "latent was made with another model (model_sha256 differs)"
            entry["latent_model_sha256"] = latent.model_sha256
            err(f"warning: {path}: made with model {latent.model_sha256[:12]}, rendering with {self.info.sha256[:12]}")

    def add_input(self, path: Path, role: str, **fields: Any) -> dict[str, Any]:
        """Record an input file (role, path, SHA-256 and ``fields``) for the JSON record; returns the entry."""
        entry: dict[str, Any] = {"role": role, "path": str(path), "sha256": file_sha256(path), **fields}
        self.inputs.append(entry)
        return entry

    def record(
        self, command: str, parameters: dict[str, Any], outputs: list[Path], name: str = "", *, echo: bool = False
    ) -> Path:
        """Write ``<outdir>/<name or command>.json``: inputs, parameters, model checksum, outputs (atomically);
        ``echo`` also prints it on stdout (``--json``)."""
        from wplus import __version__

        if any(e.get("projected") for e in self.inputs):
            parameters = {**parameters, "projection": self._projection().record()}
        rec = {
            "wplus_version": __version__,
            "command": command,
            "model": {"path": str(self.info.path), "id": self.info.model_id, "sha256": self.info.sha256},
            "inputs": self.inputs,
            "tuning": self.tuning,
            "parameters": parameters,
            "outputs": [str(p) for p in outputs],
        }
        path = write_json(self.outdir / f"{name or command}.json", rec)
        for p in outputs:
            err(f"wrote {p}")
        if echo:
            echo_json(rec)
        return path


def parse_floats(text: str, flag: str) -> list[float]:
    """'-3,0,3' -> [-3.0, 0.0, 3.0]; 'a:b:n' -> n evenly spaced values from a to b."""
    try:
        if text.count(":") == 2:
            a, b, n = text.split(":")
            k = int(n)
            if k < 1:
                raise ValueError
            out = [float(a)] if k == 1 else [float(a) + (float(b) - float(a)) * i / (k - 1) for i in range(k)]
        else:
            out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected numbers such as '-3,0,3' or a sweep 'start:stop:count'") from None
    if not out:
        raise ConfigError(f"{flag} {text!r}: no values given")
    check_finite(torch.tensor(out, dtype=torch.float64), flag)
    return out
