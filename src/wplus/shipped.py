"""The generator wplus ships: a small StyleGAN2 trained by ``wplus train`` on the built-in cartoon faces.

It lives in ``wplus/assets/`` (``cartoon-faces-64.safetensors`` for G_ema, ``cartoon-faces-64-D.safetensors`` for
its discriminator, both in our safetensors format) and needs no download, so the demo and the CLI work offline.
``docs/demo-model.md`` records how it was trained. :func:`resolve_model` is the ``--model`` default: the registry
model when it can be had, else the shipped one with a one-line notice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch

from wplus.errors import CheckpointError, OfflineError, WplusError

log = logging.getLogger(__name__)

__all__ = [
    "SHIPPED_MODEL",
    "DEFAULT_MODEL",
    "shipped_generator_path",
    "shipped_discriminator_path",
    "load_shipped_generator",
    "load_shipped_discriminator",
    "resolve_model",
]

SHIPPED_MODEL = "cartoon-faces-64"
DEFAULT_MODEL = "stylegan2-ffhq-1024"  # the registry model a missing --model means, when it can be fetched


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


def load_shipped_generator(*, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The shipped 64 px cartoon-face StyleGAN2 (eval mode, frozen)."""
    from wplus.io.checkpoint import load_native_generator

    return load_native_generator(shipped_generator_path(), device=device)


def load_shipped_discriminator(*, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The shipped model's discriminator (for :class:`wplus.losses.DiscriminatorFeatures`)."""
    from wplus.models.stylegan2_discriminator import load_discriminator

    return load_discriminator(shipped_discriminator_path(), device=device)


def resolve_model(
    model: str | Path | None,
    *,
    notice: Callable[[str], None] | None = None,
    allow_download: bool = True,
) -> tuple[Path, bool]:
    """The generator file ``--model`` means: an existing file as is, a registry name fetched, else the shipped model.

    ``None`` means :data:`DEFAULT_MODEL`. When a registry model cannot be had (offline, or not downloadable), the
    shipped model is used and ``notice`` receives one line that says so.

    Returns:
        (path, is_shipped).

    Raises:
        CheckpointError: ``model`` names neither an existing file nor a registered model.
    """
    from wplus.hub import REGISTRY, fetch

    if model is not None and Path(model).exists():
        return Path(model), False
    name = DEFAULT_MODEL if model is None else str(model)
    if name == SHIPPED_MODEL:
        return shipped_generator_path(), True
    if name not in REGISTRY:
        raise CheckpointError(name, f"no such file or registered model; expected a file, a name from `wplus weights "
                                    f"list`, or {SHIPPED_MODEL!r}")  # fmt: skip
    try:
        return fetch(name, allow_download=allow_download), False
    except (OfflineError, WplusError) as e:
        line = f"{name} is unavailable ({str(e).splitlines()[0][:120]}); using the shipped model {SHIPPED_MODEL}"
        log.warning(line)
        if notice is not None:
            notice(line)
        return shipped_generator_path(), True
