"""The wplus error hierarchy.

Every message says what was found, what was expected and what to do about it; the CLI prints the message as one
line and exits non-zero, and batch commands record it and go on with the next file.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "WplusError",
    "CheckpointError",
    "ChecksumMismatchError",
    "OfflineError",
    "ShapeError",
    "ImageError",
    "NoFaceFoundError",
    "ConfigError",
    "ProjectionDivergedError",
]


class WplusError(Exception):
    """Base class of every error wplus raises on purpose."""


class ConfigError(WplusError, ValueError):
    """An option or configuration value is out of range or inconsistent."""


class ShapeError(WplusError, ValueError):
    """A tensor or array has the wrong shape (a latent for another generator, say)."""


class CheckpointError(WplusError):
    """A weights file cannot be read safely or does not describe a supported network."""

    def __init__(self, path: str | Path | None, message: str):
        self.path = None if path is None else str(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class ChecksumMismatchError(CheckpointError):
    """A downloaded or cached file does not have the SHA-256 the registry records."""


class OfflineError(WplusError):
    """A file must be downloaded but the network is off (``WPLUS_OFFLINE=1``) or unreachable."""


class ImageError(WplusError):
    """An input image cannot be read or converted."""

    def __init__(self, path: str | Path | None, message: str):
        self.path = None if path is None else str(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class NoFaceFoundError(ImageError):
    """Face alignment found no face in an image."""


class ProjectionDivergedError(WplusError):
    """A projection's loss or latent became NaN or infinite (a learning rate far too high, say)."""
