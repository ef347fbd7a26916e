"""The generator wplus ships: a small StyleGAN2 trained by ``wplus train`` on the built-in cartoon faces.

It lives in ``wplus/assets/`` (``cartoon-faces-64.safetensors`` for G_ema, ``cartoon-faces-64-D.safetensors`` for
its discriminator, both in our safetensors format) and needs no download, so the demo and the CLI work offline.
``docs/demo-model.md`` records how it was trained. Which file a ``--model`` value means, this model included, is
decided in one place: :func:`wplus.loading.resolve_model`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from wplus.errors import CheckpointError

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
    "load_shipped_generator",
    "load_shipped_discriminator",
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
    """Path of the shipped model's smile direction (jointly projected pairs; ``wplus.load_direction`` reads it)."""
    return _asset(f"{SHIPPED_MODEL}-smile.npz")


def load_shipped_generator(*, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The shipped 64 px cartoon-face StyleGAN2 (eval mode, frozen)."""
    from wplus.io.checkpoint import load_native_generator

    return load_native_generator(shipped_generator_path(), device=device)


def load_shipped_discriminator(*, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The shipped model's discriminator (for :class:`wplus.losses.DiscriminatorFeatures`)."""
    from wplus.io.checkpoint import load_discriminator

    return load_discriminator(shipped_discriminator_path(), device=device)
