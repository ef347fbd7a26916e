"""The loss a projection of a given model runs, with the offline fallback from VGG to the model's discriminator.

:func:`loss_for_model` is the one owner of that fallback: when the settings' loss needs ImageNet VGG-16 weights
that cannot be had (not given, not cached, not downloadable) and the model carries its discriminator, the recipe
switches to the discriminator's block features (:meth:`ProjectionSettings.with_discriminator_features`) and says so
once. :func:`default_loss` is the library's one-call entry (``wplus.default_loss(G)``), :func:`wplus.project` uses
it when no ``loss`` is given, and the command line (``wplus.cli.projection_options``) and the web UI
(``wplus.web``) hold one :class:`ProjectionChoice`, which builds its loss through the same function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from wplus.errors import CheckpointError, ConfigError, OfflineError
from wplus.loading import LoadedGenerator, ModelLike, generator_file, resolve_model
from wplus.projection.settings import ProjectionSettings, build_loss

__all__ = ["ProjectionChoice", "BuiltLoss", "default_loss", "loss_for_model"]

log = logging.getLogger(__name__)

Wording = Literal["python", "cli"]
# How the fallback line names the loss and the VGG file, for a Python caller or a command-line user.
_SPELLING: dict[str, tuple[str, str]] = {
    "python": ("loss=", "vgg_weights=FILE"),
    "cli": ("--loss ", "--vgg-weights FILE"),
}


@dataclass(frozen=True)
class BuiltLoss:
    """What :func:`loss_for_model` built: the loss, an LPIPS module (or None), and the settings that describe the
    loss that will run (after a fallback, their ``loss`` is a ``dfeat`` kind)."""

    loss: torch.nn.Module
    lpips: torch.nn.Module | None
    settings: ProjectionSettings


def loss_for_model(
    settings: ProjectionSettings,
    model: ModelLike | None,
    *,
    vgg_weights: str | Path | None = None,
    lpips_weights: str | Path | None = None,
    lpips_metric: bool = False,
    device: torch.device | str = "cpu",
    notice: Callable[[str], None] | None = None,
    wording: Wording = "python",
) -> BuiltLoss:
    """Build the loss ``settings`` describe for projecting into ``model``, falling back to its discriminator's
    features when VGG-16 weights cannot be had.

    The discriminator is looked for only when it is needed (a ``dfeat`` loss, or the fallback): reading one from
    a large foreign pickle costs seconds, wasted when VGG is there.

    Args:
        settings: the recipe (its ``loss`` and weights).
        model: the generator being projected into, as :func:`wplus.resolve_model` takes it (a loaded generator, a
            name, a file, a :class:`~wplus.loading.ModelFile`), or None when no model's discriminator may be used.
        vgg_weights, lpips_weights, lpips_metric, device: as :func:`~wplus.projection.settings.build_loss`.
        notice: receives the one line that says the loss switched; without it the line is logged as a warning.
        wording: spell the hints in that line for a Python caller (``vgg_weights=FILE``) or the command line.

    Raises:
        OfflineError: VGG-16 weights cannot be had and ``model`` has no discriminator; the message says what to
            pass or download.
        ConfigError: a ``dfeat`` loss for a model without a discriminator.
    """
    D = _discriminator_of(model, device, required=True) if "dfeat" in settings.terms else None
    try:
        return BuiltLoss(*_build(settings, D, vgg_weights, lpips_weights, lpips_metric, device), settings)
    except OfflineError as e:
        if not settings.needs_vgg or vgg_weights is not None:
            raise
        D = _discriminator_of(model, device, required=False)
        if D is None:
            if wording == "cli":
                raise  # the download error already names --vgg-weights and `wplus weights download`
            raise OfflineError(_no_vgg_no_discriminator(model)) from e
    fallback = settings.with_discriminator_features()
    loss_word, vgg_word = _SPELLING[wording]
    line = (
        f"VGG-16 weights are not cached and cannot be downloaded: the loss uses {_model_id(model)}'s "
        f"discriminator features instead ({loss_word}{fallback.loss}); {vgg_word} gives the paper's VGG loss"
    )
    if notice is None:
        log.warning("%s", line)
    else:
        notice(line)
    return BuiltLoss(*_build(fallback, D, vgg_weights, lpips_weights, lpips_metric, device), fallback)


def default_loss(
    model: ModelLike,
    *,
    settings: ProjectionSettings | None = None,
    device: torch.device | str | None = None,
    vgg_weights: str | Path | None = None,
    notice: Callable[[str], None] | None = None,
) -> torch.nn.Module:
    """The loss to project into ``model`` with: the paper's VGG-16 perceptual + MSE loss when VGG-16 weights are at
    hand (``vgg_weights``, the cache, or a download), else the model's discriminator features + MSE (``dfeat+mse``),
    saying so through ``notice`` (else a logged warning).

    The returned module remembers its recipe (``loss.settings``), and :func:`wplus.project` records that recipe's
    loss fields, so a result shows the loss that ran. :func:`wplus.project` without ``loss`` calls this itself.

    Args:
        model: a generator that ``load_generator`` read (it remembers its file), a name (``'cartoon-faces-64'``, a
            registered name), a generator file, or a :class:`~wplus.loading.ModelFile` from
            :func:`wplus.resolve_model`. A generator built in memory works while VGG-16 weights are at hand.
        settings: the recipe whose loss to build (default: the library's, the paper's ``perceptual+mse``); e.g.
            ``resolve_settings("course")`` falls back to ``dfeat+l1``.
        device: where the loss runs (default: the generator's device, else the CPU).
        vgg_weights: torchvision's ``vgg16-397923af.pth``, when it is neither cached nor downloadable.
        notice: receives the one line that says the loss switched to discriminator features.

    Returns:
        An :class:`~wplus.losses.ImageLoss`.

    Raises:
        OfflineError: no VGG-16 weights and the model carries no discriminator (the message says what to pass).
        CheckpointError: ``model`` names no file or registered generator.

    Example:
        >>> import os
        >>> os.environ["WPLUS_OFFLINE"] = "1"                     # doctest: +SKIP
        >>> loss = default_loss("cartoon-faces-64")               # doctest: +SKIP
        >>> loss.settings.loss                                    # doctest: +SKIP
        'dfeat+mse'
    """
    if device is None:
        device = _device_of(model)
    built = loss_for_model(
        settings if settings is not None else ProjectionSettings(),
        model,
        vgg_weights=vgg_weights,
        device=device,
        notice=notice,
    )
    return built.loss


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
        """``(loss, lpips_or_None)`` from :func:`loss_for_model`, built once (VGG-16 is read on first use).

        After an offline fallback to the model's discriminator features, ``self.settings`` (what ``config.json``
        records) is updated: read the settings after calling this.
        """
        if "loss" in self._built:
            return self._built["loss"]
        from wplus.precision import resolve_precision

        resolve_precision(self.settings.precision, device)  # bf16 where it would be emulated: one line, up front
        built = loss_for_model(
            self.settings,
            model,
            vgg_weights=self.vgg_weights,
            lpips_weights=self.lpips_weights,
            lpips_metric=self.lpips_weights is not None,
            device=device,
            notice=notice,
            wording="cli",
        )
        self.settings = built.settings
        self._built["loss"] = (built.loss, built.lpips)
        return self._built["loss"]

    def record(self) -> dict[str, Any]:
        """The settings and weight files, JSON-ready (what an edit command records for projected inputs)."""
        files = {"vgg_weights": self.vgg_weights, "lpips_weights": self.lpips_weights}
        return {**self.settings.to_record(), **{k: None if v is None else str(v) for k, v in files.items()}}


def _build(
    settings: ProjectionSettings,
    D: torch.nn.Module | None,
    vgg_weights: str | Path | None,
    lpips_weights: str | Path | None,
    lpips_metric: bool,
    device: torch.device | str,
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    return build_loss(
        settings,
        vgg_weights=vgg_weights,
        lpips_weights=lpips_weights,
        lpips_metric=lpips_metric,
        discriminator=D if "dfeat" in settings.terms else None,
        device=device,
    )


def _is_in_memory(model: ModelLike | None) -> bool:
    return isinstance(model, torch.nn.Module) and generator_file(model) is None


def _discriminator_of(model: ModelLike | None, device: torch.device | str, *, required: bool) -> Any:
    """The discriminator that came with ``model`` (None if it has none; an error if ``required``)."""
    from wplus.formats.dispatch import load_discriminator_for

    found = None if model is None or _is_in_memory(model) else resolve_model(model)
    D = None if found is None else load_discriminator_for(found, device=device)
    if D is None and required:
        name = "no --model" if model is None else ("a generator built in memory" if found is None else f"{found.path}")
        raise ConfigError(
            f"{name}: no discriminator found with this generator (in the file, or <stem>-D.safetensors beside it); "
            "the dfeat losses need one: use the shipped model, a training snapshot, or a VGG loss with --vgg-weights"
        )
    return D


def _no_vgg_no_discriminator(model: ModelLike | None) -> str:
    if model is None or _is_in_memory(model):
        what = "the generator was built in memory, so no discriminator is known for it"
    else:
        what = f"{_model_id(model)} carries no discriminator to use instead"
    return (
        f"the loss needs VGG-16 weights, which are not cached and cannot be downloaded, and {what}; pass "
        "vgg_weights=FILE (torchvision's vgg16-397923af.pth), run `wplus weights download vgg16-imagenet` once with "
        "network access, or project into a model that carries its discriminator (cartoon-faces-64 does)"
    )


def _model_id(model: ModelLike | None) -> str:
    if model is None or _is_in_memory(model):
        return "the generator"
    try:
        return resolve_model(model).model_id
    except CheckpointError:
        return str(model)


def _device_of(model: ModelLike) -> torch.device:
    G = model.G if isinstance(model, LoadedGenerator) else model
    if isinstance(G, torch.nn.Module):
        p = next(iter(G.parameters()), None)
        if p is not None:
            return p.device
    return torch.device("cpu")
