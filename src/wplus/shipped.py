"""The generator wplus ships: a small StyleGAN2 trained by ``wplus train`` on the built-in cartoon faces.

It lives in ``wplus/assets/`` (``cartoon-faces-64.safetensors`` for G_ema, ``cartoon-faces-64-D.safetensors`` for
its discriminator, both in our safetensors format) and needs no download, so the demo and the CLI work offline.
``docs/demo-model.md`` records how it was trained. Which file a ``--model`` value means, this model included, is
decided in one place: :func:`wplus.loading.resolve_model`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from wplus.errors import CheckpointError, ConfigError

__all__ = [
    "SHIPPED_MODEL",
    "SHIPPED_SHA256",
    "SHIPPED_RESOLUTION",
    "SHIPPED_LICENSE",
    "SHIPPED_DESCRIPTION",
    "DEFAULT_MODEL",
    "shipped_generator_path",
    "shipped_discriminator_path",
    "shipped_smile_direction_path",
    "shipped_encoder_path",
    "load_shipped_generator",
    "load_shipped_discriminator",
    "NamedDirection",
    "shipped_models",
    "named_directions",
    "named_direction",
    "parse_direction_spec",
    "check_direction_model",
    "write_named_directions",
]

SHIPPED_MODEL = "cartoon-faces-64"
DEFAULT_MODEL = "stylegan2-ffhq-1024"  # the registry model a missing --model means, when it can be fetched
# Facts `wplus weights list / verify` report. The digest pins the shipped file (a reinstall fixes a mismatch); the
# licence is the project's own, since the model, its code and its training data were all made by this project.
SHIPPED_SHA256 = "862b90e7c01fa8ca9a1615f7ee4c8ebb58e1f7f76ab106880d4e9ae53fbef0d2"
SHIPPED_RESOLUTION = 64
SHIPPED_LICENSE = "MIT"
SHIPPED_DESCRIPTION = "cartoon faces 64 px, trained by wplus on its own drawings (docs/demo-model.md); no download"


def _asset(name: str) -> Path:
    path = Path(str(resources.files("wplus") / "assets" / name))
    if not path.is_file():
        raise CheckpointError(path, "the shipped model file is missing from this wplus installation; reinstall wplus")
    return path


def shipped_generator_path() -> Path:
    """Path of the shipped generator (``wplus.load_generator`` reads it)."""
    return _asset(f"{SHIPPED_MODEL}.safetensors")


def shipped_discriminator_path() -> Path:
    """Path of the shipped generator's discriminator (the offline perceptual feature network)."""
    return _asset(f"{SHIPPED_MODEL}-D.safetensors")


def shipped_smile_direction_path() -> Path:
    """Path of the shipped model's smile direction (jointly projected pairs; ``wplus.load_direction`` reads it).

    The same file is the named direction ``cartoon-faces-64:smile`` (:func:`named_directions`)."""
    return _asset(f"{SHIPPED_MODEL}-smile.npz")


def shipped_encoder_path() -> Path:
    """Path of the shipped model's W+ encoder (``wplus encoder train``; docs/encoders.md), the start of
    ``--init encoder`` and the whole of ``--preset encoder``."""
    return _asset(f"{SHIPPED_MODEL}-encoder.safetensors")


def load_shipped_generator(*, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The shipped 64 px cartoon-face StyleGAN2 (eval mode, frozen)."""
    from wplus.io.checkpoint import load_native_generator

    return load_native_generator(shipped_generator_path(), device=device)


def load_shipped_discriminator(*, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The shipped model's discriminator (for :class:`wplus.losses.DiscriminatorFeatures`)."""
    from wplus.io.checkpoint import load_discriminator

    return load_discriminator(shipped_discriminator_path(), device=device)


# --------------------------------------------------------------------------------------------------------------------
# Named directions: ``MODEL:NAME`` (``wplus edit --direction cartoon-faces-64:glasses``).
#
# Each shipped model may have an index, ``assets/<model>-directions.json``, that names its directions; every direction
# is its own file in our direction format (``assets/<model>-<name>.npz``, ``wplus.load_direction`` reads it) whose
# metadata records how it was made (the fit's accuracies and counts, the conditions). One file per direction, not one
# archive for all: each stays usable as a plain ``--direction FILE`` and copyable on its own, today's smile keeps its
# path, and refitting one direction rewrites one file. The index is what lists them: the name, the file, a
# description, the strengths worth trying and how it was made. It is written by ``benchmarks/fit_shipped_directions.py``
# (:func:`write_named_directions`) and read here on every call (a few hundred bytes; no module-level cache).

NAMED_FORMAT = "wplus-named-directions/1"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SPEC = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*):([A-Za-z0-9][A-Za-z0-9_-]*)$")


@dataclass(frozen=True)
class NamedDirection:
    """One named direction of a shipped model.

    Attributes:
        model: the shipped model it belongs to (``cartoon-faces-64``).
        name: its name (``glasses``); ``MODEL:NAME`` means it wherever a direction file is taken.
        file: the asset's file name in ``wplus/assets/`` (our direction ``.npz``).
        description: what moving along it does, in one sentence.
        strength: the recommended strength range ``(low, high)`` of ``wplus edit --strength`` (the web UI's slider and
            the demo's row of attribute edits use it).
        method: how it was made, in a few words (the file's metadata has the details).
    """

    model: str
    name: str
    file: str
    description: str
    strength: tuple[float, float]
    method: str

    @property
    def spec(self) -> str:
        """``MODEL:NAME``."""
        return f"{self.model}:{self.name}"

    @property
    def path(self) -> Path:
        """The direction file (CheckpointError when it is missing from the installation)."""
        return _asset(self.file)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "description": self.description,
                "strength": list(self.strength), "method": self.method}  # fmt: skip


def shipped_models() -> dict[str, str]:
    """The models that ship with wplus and may have named directions: name -> SHA-256 of the generator file."""
    return {SHIPPED_MODEL: SHIPPED_SHA256}


def _index_path(model: str) -> Path | None:
    # Through _asset, so that the tests' stand-in asset folders hold their own index; None: the model has none.
    try:
        path = _asset(f"{model}-directions.json")
    except CheckpointError:
        return None
    return path if path.is_file() else None


def _check_model(model: str) -> None:
    if model not in shipped_models():
        raise ConfigError(
            f"{model!r} is not a shipped model; named directions exist for: {', '.join(shipped_models())} "
            "(for another model pass a direction file)"
        )


def named_directions(model: str = SHIPPED_MODEL) -> list[NamedDirection]:
    """The named directions of a shipped model, in the order of its index (empty when it has none).

    Raises:
        ConfigError: ``model`` is not a shipped model. CheckpointError: the index is unreadable or malformed
        (a broken installation: reinstall wplus).
    """
    _check_model(model)
    path = _index_path(model)
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(path, f"cannot read the index of named directions ({e}); reinstall wplus") from None
    if not isinstance(data, dict) or data.get("format") != NAMED_FORMAT or not isinstance(data.get("directions"), list):
        raise CheckpointError(path, f"is not an index of named directions (format {NAMED_FORMAT}); reinstall wplus")
    return [_entry(path, model, i, e) for i, e in enumerate(data["directions"])]


def _entry(path: Path, model: str, i: int, e: Any) -> NamedDirection:
    try:
        name, file, strength = str(e["name"]), str(e["file"]), [float(s) for s in e["strength"]]
        ok = (_NAME.match(name) and Path(file).name == file and file.endswith(".npz") and len(strength) == 2
              and all(math.isfinite(s) for s in strength) and strength[0] < strength[1])  # fmt: skip
        if ok:
            return NamedDirection(model, name, file, str(e.get("description", "")), (strength[0], strength[1]),
                                  str(e.get("method", "")))  # fmt: skip
    except (KeyError, TypeError, ValueError):
        pass
    raise CheckpointError(
        path, f"entry {i} is not a named direction (name, file .npz in assets/, strength [low, high]); reinstall wplus"
    )


def parse_direction_spec(text: str | Path) -> tuple[str, str] | None:
    """``(model, name)`` when ``text`` reads as ``MODEL:NAME`` (and is not an existing file), else None."""
    if not isinstance(text, str) or Path(text).exists():
        return None
    m = _SPEC.match(text)
    return (m.group(1), m.group(2)) if m else None


def named_direction(spec: str) -> NamedDirection:
    """The named direction ``MODEL:NAME`` means.

    Raises:
        ConfigError: not ``MODEL:NAME``, a model that is not shipped, or a name it does not have (the message lists
        the names it has).
    """
    parsed = parse_direction_spec(spec)
    if parsed is None:
        raise ConfigError(f"{spec}: expected MODEL:NAME, e.g. {SHIPPED_MODEL}:smile")
    model, name = parsed
    try:
        found = named_directions(model)
    except ConfigError as e:
        raise ConfigError(f"{spec}: {e}") from None
    for d in found:
        if d.name == name:
            return d
    have = ", ".join(d.name for d in found) or "none yet"
    raise ConfigError(
        f"{spec}: {model} has no direction named {name!r}; available: {have} (wplus direction list {model})"
    )


def check_direction_model(d: NamedDirection, model_sha256: str, model_id: str) -> None:
    """ConfigError unless the generator rendering (its file's SHA-256) is the model ``d`` was made for."""
    if shipped_models()[d.model] != model_sha256:
        raise ConfigError(
            f"{d.spec}: a direction of {d.model}, but the model rendering is {model_id} "
            f"(sha256 {model_sha256[:12]}); pass --model {d.model}, or a direction file made for {model_id}"
        )


def write_named_directions(folder: str | Path, model: str, entries: Sequence[NamedDirection]) -> Path:
    """Write ``folder/<model>-directions.json`` (atomically) listing ``entries`` in order.

    Raises:
        ConfigError: an entry of another model, a bad name, or two entries with one name.
    """
    _check_model(model)
    names = [e.name for e in entries]
    bad = [e.name for e in entries if e.model != model or not _NAME.match(e.name)]
    if bad or len(set(names)) != len(names):
        raise ConfigError(f"named directions {bad or names}: names must be unique, [a-z0-9_-], and of {model}")
    from wplus.io.atomic import write_json

    path = Path(folder) / f"{model}-directions.json"
    write_json(path, {"format": NAMED_FORMAT, "model": model, "directions": [e.to_json() for e in entries]})
    return path
