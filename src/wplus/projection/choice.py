"""What a projecting caller asked for — settings plus the weight files of its loss — and the loss built from it once.

The command line (``wplus.cli.projection_options``) and the web UI (``wplus.web``) both hold one
:class:`ProjectionChoice`; it owns the offline fallback from VGG to the model's discriminator features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wplus.errors import ConfigError, OfflineError
from wplus.loading import LoadedGenerator
from wplus.projection.settings import ProjectionSettings, build_loss

__all__ = ["ProjectionChoice"]


@dataclass
class ProjectionChoice:
    """What a projecting command was asked for: settings, plus the weight files its loss is built from."""

    settings: ProjectionSettings
    vgg_weights: Path | None = None
    lpips_weights: Path | None = None
    given: frozenset[str] = frozenset()  # the settings fields given explicitly on the command line
    _built: dict[str, Any] = field(default_factory=dict, repr=False)

    def loss(
        self,
        device: torch.device,
        model: LoadedGenerator | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> tuple[torch.nn.Module, torch.nn.Module | None]:
        """``(loss, lpips_or_None)`` from :func:`build_loss`, built once (VGG-16 is read on first use).

        When the loss needs VGG-16 weights that cannot be had (offline, not cached, no ``--vgg-weights``) and
        ``model`` carries a discriminator, the recipe switches to its discriminator features
        (:meth:`ProjectionSettings.with_discriminator_features`), says so in one line to ``notice``, and
        ``self.settings`` (what ``config.json`` records) is updated: read the settings after calling this.
        """
        if "loss" in self._built:
            return self._built["loss"]
        D = _discriminator_of(model, device, required=True) if "dfeat" in self.settings.terms else None
        try:
            built = self._build(self.settings, D, device)
        except OfflineError:
            # Looked for only now: reading D from a large foreign pickle costs seconds, wasted when VGG is there.
            if not self.settings.needs_vgg or self.vgg_weights is not None:
                raise
            D = _discriminator_of(model, device, required=False)
            if D is None:
                raise
            self.settings = self.settings.with_discriminator_features()
            if notice is not None:
                notice(
                    f"VGG-16 weights are not cached and cannot be downloaded: the loss uses {model.model_id}'s "
                    f"discriminator features instead (--loss {self.settings.loss}); --vgg-weights FILE gives the "
                    "paper's VGG loss"
                )
            built = self._build(self.settings, D, device)
        self._built["loss"] = built
        return built

    def _build(self, settings: ProjectionSettings, D: torch.nn.Module | None, device: torch.device) -> Any:
        return build_loss(
            settings,
            vgg_weights=self.vgg_weights,
            lpips_weights=self.lpips_weights,
            lpips_metric=self.lpips_weights is not None,
            discriminator=D if "dfeat" in settings.terms else None,
            device=device,
        )

    def record(self) -> dict[str, Any]:
        """The settings and weight files, JSON-ready (what an edit command records for projected inputs)."""
        files = {"vgg_weights": self.vgg_weights, "lpips_weights": self.lpips_weights}
        return {**self.settings.to_record(), **{k: None if v is None else str(v) for k, v in files.items()}}


def _discriminator_of(model: LoadedGenerator | None, device: torch.device, *, required: bool) -> Any:
    """The discriminator that came with ``model`` (None if it has none; an error if ``required``)."""
    from wplus.formats.dispatch import load_discriminator_for

    D = load_discriminator_for(model.path, device=device) if model is not None else None
    if D is None and required:
        name = "no --model" if model is None else f"{model.path}"
        raise ConfigError(
            f"{name}: no discriminator found with this generator (in the file, or <stem>-D.safetensors beside it); "
            "the dfeat losses need one: use the shipped model, a training snapshot, or a VGG loss with --vgg-weights"
        )
    return D
