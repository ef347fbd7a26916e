"""The projection options, declared once: ``wplus project`` and every command that projects images share them.

Each :class:`ProjectionSettings` field has exactly one option here (a test checks that none is missing); its default
is the library's, shown in ``--help``, and an option that is not given leaves the preset's value in place. Adding a
setting is one field in ``wplus.projection.settings`` plus one line in :data:`OPTIONS`.

A decorated command receives one ``projection: ProjectionChoice`` argument: the resolved settings and the files
the loss is built from.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from wplus.cli.common import FiniteFloatRange
from wplus.losses.perceptual import PAPER_LAYERS
from wplus.projection.choice import ProjectionChoice  # re-exported: the commands take one
from wplus.projection.settings import (
    LOSS_KINDS,
    PRESETS,
    ProjectionSettings,
    SettingError,
    resolve_settings,
)
from wplus.seeds import SEED_LIMIT

__all__ = ["OPTIONS", "ProjectionChoice", "projection_options", "settings_from_options", "flag_of"]

F = TypeVar("F", bound=Callable[..., Any])
_PREFIX = "proj_"  # click parameter names of these options, so they never collide with a command's own options


class _FloatPair(click.ParamType):
    name = "A,B"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        try:
            a, b = (float(x) for x in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r}: expected two numbers such as 0.9,0.999", param, ctx)
        return a, b


class _Names(click.ParamType):
    name = "A,B,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        names = tuple(x.strip() for x in str(value).split(",") if x.strip())
        if not names:
            self.fail(f"{value!r}: expected comma-separated names", param, ctx)
        return names


@dataclass(frozen=True)
class _Option:
    field: str  # ProjectionSettings field
    flag: str  # '--steps'; a boolean field gets '--flag/--no-flag'
    type: Any
    help: str
    to_setting: Callable[[Any], Any] = lambda v: v


def _nonneg(positive: bool = False) -> click.FloatRange:
    return FiniteFloatRange(0, min_open=positive)


OPTIONS: tuple[_Option, ...] = (
    _Option("space", "--space", click.Choice(["w+", "w", "z"]), "Latent space to embed into."),
    _Option(
        "init", "--init", click.Choice(["mean", "random", "encoder"]), "Start at w_avg, U[-1, 1] or an encoder's code."
    ),
    _Option("num_steps", "--steps", click.IntRange(0), "Optimiser steps (paper: 5000; faces ~1000)."),
    _Option("lr", "--lr", _nonneg(True), "Peak learning rate."),
    _Option("betas", "--betas", _FloatPair(), "Adam betas."),
    _Option("eps", "--eps", _nonneg(True), "Adam epsilon."),
    _Option("seed", "--seed", click.IntRange(0, SEED_LIMIT - 1), "Seed of the initialisation and noise."),
    _Option("w_avg_samples", "--w-avg-samples", click.IntRange(1), "Samples for w_avg / w_std when needed."),
    _Option(
        "optimizer",
        "--optimizer",
        click.Choice(["adam", "lbfgs"]),
        "Optimiser: adam, or lbfgs (a curvature history per image; --lr is its trial step, 1 the natural one).",
    ),
    _Option("lr_rampup", "--lr-rampup", FiniteFloatRange(0, 1), "Linear warm-up, fraction of steps."),
    _Option("lr_rampdown", "--lr-rampdown", FiniteFloatRange(0, 1), "Cosine ramp-down, fraction of steps."),
    _Option("w_noise", "--w-noise", _nonneg(), "Initial w-noise factor of w_std (NVIDIA 0.05)."),
    _Option("w_noise_ramp", "--w-noise-ramp", FiniteFloatRange(0, 1), "Fraction of steps w-noise lasts."),
    _Option("latent_reg_weight", "--latent-reg", _nonneg(), "Weight of ||w - w_avg||^2 (Z: ||z||^2)."),
    _Option(
        "optimize_noise",
        "--optimize-noise",
        click.Choice(["off", "joint", "stage2"]),
        "Optimise noise maps with the latent (NVIDIA) or after it (Image2StyleGAN++).",
        lambda v: False if v == "off" else v,
    ),
    _Option("noise_init", "--noise-init", click.Choice(["const", "random"]), "Start of optimised noise maps."),
    _Option("noise_reg_weight", "--noise-reg", _nonneg(), "Noise autocorrelation weight (NVIDIA 1e5)."),
    _Option("noise_renormalize", "--noise-renormalize/--no-noise-renormalize", bool, "Re-standardise noise maps."),
    _Option("noise_steps", "--noise-steps", click.IntRange(0), "Steps of the stage2 noise stage (default: --steps)."),
    _Option("noise_lr", "--noise-lr", _nonneg(True), "Learning rate of the stage2 noise stage (default: --lr)."),
    _Option("patience", "--patience", click.IntRange(1), "Stop a stage when the loss stalls this many steps."),
    _Option("stop_psnr", "--stop-psnr", _nonneg(True), "Stop a stage once every image reaches this PSNR (dB)."),
    _Option(
        "coarse_resolution",
        "--coarse-res",
        click.IntRange(0),
        "Coarse to fine: render only up to this many px at first (0: off).",
        lambda v: v or None,
    ),
    _Option("coarse_fraction", "--coarse-fraction", FiniteFloatRange(0, 1), "Fraction of steps rendered coarse."),
    _Option(
        "precision",
        "--precision",
        click.Choice(["fp32", "bf16", "auto"]),
        "bf16: generator and loss under bf16 autocast (native bf16 CPUs, GPUs); auto: bf16 where faster.",
    ),
    _Option("loss", "--loss", click.Choice(list(LOSS_KINDS)), "Loss terms to use."),
    _Option("perceptual_weight", "--perceptual-weight", _nonneg(), "Weight of the VGG term (paper Eq. 2)."),
    _Option("mse_weight", "--mse-weight", _nonneg(), "lambda_mse of paper Eq. 1."),
    _Option("l1_weight", "--l1-weight", _nonneg(), "Weight of pixel L1 (when --loss has l1)."),
    _Option("lpips_weight", "--lpips-weight", _nonneg(), "Weight of LPIPS (when --loss has it)."),
    _Option("dfeat_weight", "--dfeat-weight", _nonneg(), "Weight of the discriminator-feature term (dfeat losses)."),
    _Option("layers", "--vgg-layers", _Names(), f"VGG-16 layers of the perceptual term ({','.join(PAPER_LAYERS)})."),
    _Option("taps", "--taps", click.Choice(["post_relu", "pre_relu"]), "VGG features after or before the ReLU."),
    _Option(
        "loss_resize",
        "--loss-resize",
        click.IntRange(0),
        "Side of the images VGG/LPIPS see (0: the generator's resolution).",
        lambda v: v or None,
    ),
)
_BY_FIELD = {o.field: o for o in OPTIONS}


def flag_of(field_name: str) -> str:
    """The command-line flag of a settings field ('num_steps' -> '--steps')."""
    if field_name == "preset":
        return "--preset"
    opt = _BY_FIELD.get(field_name)
    return opt.flag.split("/")[0] if opt is not None else field_name


def _shown_default(opt: _Option) -> str:
    value = getattr(ProjectionSettings(), opt.field)
    if opt.field == "optimize_noise" and value is False:
        return "off"
    if opt.field == "loss_resize" and value is None:
        return "0"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return opt.flag.split("/")[0 if value else 1].lstrip("-")
    return "none" if value is None else str(value)


def settings_from_options(preset: str | None, given: dict[str, Any]) -> ProjectionSettings:
    """Resolve ``--preset`` and the options given (``{field: option value}``); a bad value names its flag.

    Raises:
        click.BadParameter: a setting is out of range or inconsistent (the message names the flag).
    """
    overrides = {name: _BY_FIELD[name].to_setting(value) for name, value in given.items()}
    try:
        return resolve_settings(preset, **overrides)
    except SettingError as e:
        raise click.BadParameter(str(e), param_hint=f"'{flag_of(e.field)}'") from None


def projection_options(fn: F) -> F:
    """Add ``--preset``, one option per projection setting, ``--vgg-weights`` and ``--lpips-weights`` to a click
    command, which then receives ``projection: ProjectionChoice`` instead of them."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        preset = kwargs.pop(_PREFIX + "preset")
        vgg, lpips = kwargs.pop(_PREFIX + "vgg_weights"), kwargs.pop(_PREFIX + "lpips_weights")
        given = {o.field: kwargs.pop(_PREFIX + o.field) for o in OPTIONS}
        explicit = {k: v for k, v in given.items() if v is not None}
        settings = settings_from_options(preset, explicit)
        return fn(*args, projection=ProjectionChoice(settings, vgg, lpips, frozenset(explicit)), **kwargs)

    decorators = [
        click.option(
            "--preset",
            _PREFIX + "preset",
            type=click.Choice(sorted(PRESETS)),
            default=None,
            help="Named projection recipe; options given explicitly override it.",
        )
    ]
    for opt in OPTIONS:
        kind = {} if opt.type is bool else {"type": opt.type}
        decorators.append(
            click.option(
                opt.flag,
                _PREFIX + opt.field,
                default=None,
                help=f"{opt.help}  [default: {_shown_default(opt)}]",
                **kind,
            )
        )
    decorators += [
        click.option(
            "--vgg-weights",
            _PREFIX + "vgg_weights",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="torchvision vgg16-397923af.pth (else taken from the cache or downloaded).",
        ),
        click.option(
            "--lpips-weights",
            _PREFIX + "lpips_weights",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="LPIPS v0.1 vgg.pth; also reports an 'lpips' metric (else cached or downloaded when --loss uses it).",
        ),
    ]
    for decorate in reversed(decorators):
        wrapper = decorate(wrapper)
    return wrapper  # type: ignore[return-value]
