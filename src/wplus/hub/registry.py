"""Registry of the remote files wplus knows how to fetch.

Every file wplus may download is described by a frozen :class:`WeightSpec`: where it lives, what it must hash to,
its licence and the public page that documents it. Nothing here touches the network; :mod:`wplus.hub.download`
does that.
"""

from __future__ import annotations

from dataclasses import dataclass

from wplus.errors import ConfigError, WplusError

__all__ = ["WeightSpec", "REGISTRY", "register", "get_spec", "list_specs"]


@dataclass(frozen=True)
class WeightSpec:
    """Description of one downloadable weights file.

    Attributes:
        name: Registry key, e.g. ``'vgg16-imagenet'``.
        filename: File name in the cache (and on the server).
        urls: Mirrors, tried in order.
        sha256: Full lowercase SHA-256 of the file, or ``None`` when unknown (then the first download is trusted and
            recorded, see :func:`wplus.hub.download.download`).
        size: Exact size in bytes, or ``None`` when unknown.
        license: SPDX-style licence of the weights.
        source: Public page that documents the file.
        description: One line for ``wplus weights list``.
        kind: Architecture family the file belongs to: ``'vgg16'``, ``'lpips'``, ``'stylegan2'``, ...
        resolution: Output resolution for generators, ``None`` otherwise.
        format: On-disk format hint for generators: ``'nvidia-pkl'``, ``'tf-pkl'``, ``'rosinality-pt'`` or
            ``'wplus'``; ``None`` for other files (the loaders sniff the content anyway).
        config: Free-form architecture facts shown by ``wplus weights info`` (e.g. ``'config-f'``).
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None
    license: str
    source: str
    description: str
    kind: str
    resolution: int | None = None
    format: str | None = None
    config: str | None = None

    def __post_init__(self) -> None:
        if not self.urls:
            raise ConfigError(f"weight spec {self.name!r}: got no URLs, expected at least one")
        if self.sha256 is not None and (len(self.sha256) != 64 or self.sha256.strip("0123456789abcdef")):
            raise ConfigError(
                f"weight spec {self.name!r}: got sha256 {self.sha256!r}, expected 64 lowercase hex digits or None"
            )


# The one registry of the process. Populated here at import with constants only (no I/O); tests and plugins add
# entries through register().
REGISTRY: dict[str, WeightSpec] = {}


GOOGLE_DRIVE = "https://drive.google.com/uc?id="


def register_drive_file(
    name: str, filename: str, drive_id: str, *, license: str, source: str, description: str, kind: str,
    resolution: int, format: str, config: str | None = None,
) -> WeightSpec:  # fmt: skip
    """Register a file shared on Google Drive whose SHA-256 and size were never published (fetched unverified, with
    a warning: the StyleGAN v1 and pSp / e4e / ReStyle files)."""
    return register(
        WeightSpec(name=name, filename=filename, urls=(GOOGLE_DRIVE + drive_id,), sha256=None, size=None,
                   license=license, source=source, description=description, kind=kind, resolution=resolution,
                   format=format, config=config)
    )  # fmt: skip


def register(spec: WeightSpec, *, overwrite: bool = False) -> WeightSpec:
    """Add ``spec`` to :data:`REGISTRY`.

    Args:
        spec: The file to register.
        overwrite: Replace an existing, different entry of the same name instead of raising.

    Returns:
        ``spec``, so the call can be used as an expression.

    Raises:
        ConfigError: A different spec is already registered under ``spec.name`` and ``overwrite`` is False.
    """
    existing = REGISTRY.get(spec.name)
    if existing is not None and existing != spec and not overwrite:
        raise ConfigError(f"weight spec {spec.name!r} is already registered with different values; pass overwrite=True")
    REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> WeightSpec:
    """Look up a registered file by name.

    Args:
        name: Registry key, e.g. ``'vgg16-imagenet'``.

    Returns:
        The registered spec.

    Raises:
        WplusError: ``name`` is not registered; the message lists the known names.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "(none)"
        raise WplusError(f"unknown weights {name!r}; expected one of: {known}") from None


def list_specs() -> list[WeightSpec]:
    """Return all registered specs, sorted by name."""
    return [REGISTRY[name] for name in sorted(REGISTRY)]


# --------------------------------------------------------------------------------------------------------------------
# Built-in entries. Checksums and sizes: as published with each file (NVIDIA's READMEs, torchvision).

register(
    WeightSpec(
        name="vgg16-imagenet",
        filename="vgg16-397923af.pth",
        urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
        sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        size=553_433_881,
        license="BSD-3-Clause",
        source="https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg16.html",
        description="VGG-16 trained on ImageNet (torchvision IMAGENET1K_V1); trunk of the perceptual and LPIPS losses",
        kind="vgg16",
    )
)

register(
    WeightSpec(
        name="lpips-vgg-v0.1",
        filename="vgg.pth",
        urls=("https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/vgg.pth",),
        sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        size=7_289,
        license="BSD-2-Clause",
        source="https://github.com/richzhang/PerceptualSimilarity",
        description="LPIPS v0.1 linear heads for the VGG-16 trunk (5 per-channel weight vectors)",
        kind="lpips",
    )
)
