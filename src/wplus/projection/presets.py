"""Named projection recipes (presets) and their resolution with explicit overrides.

A :class:`ProjectionSettings` is everything that decides a projection run apart from the target: the latent space,
the optimiser and its schedules, noise handling, regularisation and the loss. Presets are settings instances:

- ``image2stylegan`` (Abdal et al. 2019): W+, VGG-16 conv1_1/conv1_2/conv3_2/conv4_2 + pixel MSE, Adam lr 0.01,
  5000 steps, noise fixed.
- ``nvidia`` (StyleGAN2-ADA ``projector.py``, PRIOR_ART 1.1): W, LPIPS-VGG at 256 px, lr 0.1 with 5 % linear
  warm-up and 25 % cosine ramp-down, w-noise 0.05 fading out by 75 % of the run, noise maps re-drawn from N(0, 1),
  optimised jointly with noise regularisation 1e5, 1000 steps.
- ``course`` (GAN photo-editing course write-up): W+, perceptual (weight 0.01) + L1 (weight 10), Adam lr 0.01,
  1000 steps; ``optimizer='lbfgs'`` is the write-up's alternative.

:func:`resolve_settings` starts from a preset (or the library defaults, which are Image2StyleGAN's method with
1000 steps) and applies explicit overrides; weights of loss terms the chosen ``loss`` does not use become 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from wplus.errors import ConfigError
from wplus.losses.perceptual import PAPER_LAYERS, validate_layers

__all__ = [
    "ProjectionSettings",
    "PRESETS",
    "LOSS_KINDS",
    "PresetName",
    "resolve_settings",
    "settings_from_cli",
    "build_loss",
]

PresetName = Literal["image2stylegan", "nvidia", "course"]

# Loss kinds -> the terms they switch on. 'conv3_2' means the perceptual term on that layer alone; the first five
# reproduce the paper's loss ablation (MSE only, conv3_2 only, MSE + conv3_2, perceptual only, perceptual + MSE).
LOSS_KINDS: dict[str, tuple[str, ...]] = {
    "mse": ("mse",),
    "conv3_2": ("perceptual",),
    "mse+conv3_2": ("perceptual", "mse"),
    "perceptual": ("perceptual",),
    "perceptual+mse": ("perceptual", "mse"),
    "l1": ("l1",),
    "perceptual+l1": ("perceptual", "l1"),
    "perceptual+mse+l1": ("perceptual", "mse", "l1"),
    "lpips": ("lpips",),
    "lpips+mse": ("lpips", "mse"),
    "lpips+l1": ("lpips", "l1"),
}
_TERM_WEIGHT = {"perceptual": "perceptual_weight", "mse": "mse_weight", "l1": "l1_weight", "lpips": "lpips_weight"}


@dataclass(frozen=True)
class ProjectionSettings:
    """Resolved hyper-parameters of a projection run; see :func:`wplus.project` for each option's meaning."""

    preset: str | None = None
    space: Literal["w+", "w", "z"] = "w+"
    init: Literal["mean", "random"] = "mean"
    num_steps: int = 1000
    lr: float = 0.01
    optimizer: Literal["adam", "lbfgs"] = "adam"
    lr_rampup: float = 0.0
    lr_rampdown: float = 0.0
    w_noise: float = 0.0
    w_noise_ramp: float = 0.75
    latent_reg_weight: float = 0.0
    optimize_noise: Literal[False, "joint", "stage2"] = False
    noise_init: Literal["const", "random"] = "const"
    noise_reg_weight: float = 0.0
    noise_steps: int | None = None
    loss: str = "perceptual+mse"
    perceptual_weight: float = 1.0
    mse_weight: float = 1.0
    l1_weight: float = 1.0
    lpips_weight: float = 1.0
    layers: tuple[str, ...] = field(default=PAPER_LAYERS)
    taps: Literal["post_relu", "pre_relu"] = "post_relu"
    loss_resize: int | None = 256

    @property
    def terms(self) -> tuple[str, ...]:
        """The loss terms switched on by ``loss``."""
        return LOSS_KINDS[self.loss]

    def project_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`wplus.project` (everything but the loss object)."""
        names = ("space", "init", "num_steps", "lr", "optimizer", "lr_rampup", "lr_rampdown", "w_noise")
        names += ("w_noise_ramp", "latent_reg_weight", "optimize_noise", "noise_init", "noise_reg_weight")
        return {name: getattr(self, name) for name in names} | {"noise_steps": self.noise_steps}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (for ``config.json``)."""
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d


PRESETS: dict[str, ProjectionSettings] = {
    "image2stylegan": ProjectionSettings(
        preset="image2stylegan", space="w+", num_steps=5000, lr=0.01, loss="perceptual+mse", optimize_noise=False
    ),
    "nvidia": ProjectionSettings(
        preset="nvidia",
        space="w",
        num_steps=1000,
        lr=0.1,
        lr_rampup=0.05,
        lr_rampdown=0.25,
        w_noise=0.05,
        w_noise_ramp=0.75,
        optimize_noise="joint",
        noise_init="random",
        noise_reg_weight=1e5,
        loss="lpips",
        loss_resize=256,
    ),
    "course": ProjectionSettings(
        preset="course",
        space="w+",
        num_steps=1000,
        lr=0.01,
        loss="perceptual+l1",
        perceptual_weight=0.01,
        l1_weight=10.0,
    ),
}

_FIELDS = {f.name for f in dataclasses.fields(ProjectionSettings)} - {"preset"}


def resolve_settings(preset: str | None = None, **overrides: Any) -> ProjectionSettings:
    """Start from ``preset`` (None: library defaults) and apply ``overrides``; validate the result.

    Weights of terms that ``loss`` does not use are set to 0 in the result (so ``config.json`` shows what ran).

    Raises:
        ConfigError: unknown preset, option or loss kind; a bad value; an explicit positive weight for a term that
            the chosen loss does not use.

    Example:
        >>> s = resolve_settings("nvidia", num_steps=200)
        >>> (s.space, s.lr, s.num_steps, s.noise_reg_weight)
        ('w', 0.1, 200, 100000.0)
    """
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}, expected one of: {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise ConfigError(f"unknown projection setting(s) {unknown}, expected names from: {', '.join(sorted(_FIELDS))}")
    base = PRESETS[preset] if preset is not None else ProjectionSettings()
    if "layers" in overrides:
        overrides["layers"] = validate_layers(overrides["layers"])
    s = dataclasses.replace(base, **overrides)
    if s.loss not in LOSS_KINDS:
        raise ConfigError(f"unknown loss {s.loss!r}, expected one of: {', '.join(LOSS_KINDS)}")
    for term, name in _TERM_WEIGHT.items():
        value = float(getattr(s, name))
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"got {name}={value}, expected a finite number >= 0")
        if term not in s.terms and name in overrides and value > 0:
            raise ConfigError(
                f"got {name}={value} but loss {s.loss!r} has no {term} term; pick a --loss that includes {term}"
            )
    zeroed = {name: 0.0 for term, name in _TERM_WEIGHT.items() if term not in s.terms}
    if s.loss in ("conv3_2", "mse+conv3_2"):
        zeroed["layers"] = ("conv3_2",)
    s = dataclasses.replace(s, **zeroed)
    if s.num_steps < 0 or (s.noise_steps is not None and s.noise_steps < 0):
        raise ConfigError(f"got num_steps={s.num_steps}, noise_steps={s.noise_steps}, expected values >= 0")
    if not (math.isfinite(s.lr) and s.lr > 0):
        raise ConfigError(f"got lr={s.lr}, expected a positive number")
    return s


# CLI option name -> settings field (the option's value may need a conversion, see settings_from_cli).
CLI_FIELDS: dict[str, str] = {
    "space": "space",
    "init": "init",
    "steps": "num_steps",
    "lr": "lr",
    "optimizer": "optimizer",
    "lr_rampup": "lr_rampup",
    "lr_rampdown": "lr_rampdown",
    "w_noise": "w_noise",
    "w_noise_ramp": "w_noise_ramp",
    "latent_reg": "latent_reg_weight",
    "optimize_noise": "optimize_noise",
    "noise_init": "noise_init",
    "noise_reg": "noise_reg_weight",
    "noise_steps": "noise_steps",
    "loss": "loss",
    "perceptual_weight": "perceptual_weight",
    "mse_weight": "mse_weight",
    "l1_weight": "l1_weight",
    "lpips_weight": "lpips_weight",
    "taps": "taps",
    "loss_resize": "loss_resize",
}


def settings_from_cli(preset: str | None, options: Mapping[str, Any], explicit: set[str]) -> ProjectionSettings:
    """Resolve CLI options: the preset's values, then every option the user gave explicitly.

    The CLI's defaults equal the library defaults, so without a preset the result is what the flags say.

    Args:
        preset: ``--preset`` value or None.
        options: click's parameter values (``ctx.params``).
        explicit: names of the options given on the command line (``ctx.get_parameter_source``).
    """
    overrides: dict[str, Any] = {}
    for option, name in CLI_FIELDS.items():
        if option not in options or option not in explicit:
            continue
        value = options[option]
        if option == "loss_resize":
            value = value or None
        elif option == "optimize_noise":
            value = False if value in (None, "off") else value
        overrides[name] = value
    return resolve_settings(preset, **overrides)


def build_loss(
    settings: ProjectionSettings,
    *,
    vgg_weights: str | Path | None = None,
    lpips_weights: str | Path | None = None,
    lpips_metric: bool = False,
    vgg: torch.nn.Module | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """Build the :class:`~wplus.losses.ImageLoss` the settings describe, plus an LPIPS module when the loss uses it
    or ``lpips_metric`` is asked for (to report the metric). One VGG-16 trunk is shared by both.

    Args:
        vgg: an already built trunk (tests pass ``random_vgg16``); else ``load_vgg16(vgg_weights)`` when needed.

    Returns:
        ``(loss, lpips_or_None)``.
    """
    from wplus.losses.lpips import load_lpips
    from wplus.losses.masked import ImageLoss
    from wplus.models.vgg16 import load_vgg16

    need_lpips = "lpips" in settings.terms or lpips_metric
    if vgg is None and (settings.perceptual_weight > 0 or need_lpips):
        vgg = load_vgg16(vgg_weights, device=device)
    lpips = load_lpips(lpips_weights, vgg=vgg, resize=settings.loss_resize, device=device) if need_lpips else None
    loss = ImageLoss(
        vgg if settings.perceptual_weight > 0 else None,
        layers=settings.layers,
        taps=settings.taps,
        perceptual_weight=settings.perceptual_weight,
        mse_weight=settings.mse_weight,
        l1_weight=settings.l1_weight,
        lpips=lpips if "lpips" in settings.terms else None,
        lpips_weight=settings.lpips_weight,
        resize=settings.loss_resize,
    ).to(device)
    return loss, lpips
