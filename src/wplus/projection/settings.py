"""The settings of a projection run — one type, one list, one validator — and the named recipes (presets).

A :class:`ProjectionSettings` is everything that decides a projection run apart from the target, the generator and
the loss object: the latent space, the optimiser and its schedules, the seed, noise handling, regularisation, and a
description of the loss that :func:`build_loss` turns into a loss module. :func:`wplus.project` takes one (or plain
keyword arguments, which resolve into one), :class:`~wplus.projection.project.ProjectionResult` carries it, and
``config.json`` is its :meth:`~ProjectionSettings.to_dict`. The command line declares one option per field
(``wplus.cli.projection_options``); a test checks that none is missing.

Presets are settings instances:

- ``image2stylegan`` (Abdal et al. 2019): W+, VGG-16 conv1_1/conv1_2/conv3_2/conv4_2 + pixel MSE, Adam lr 0.01,
  5000 steps, noise fixed.
- ``nvidia`` (StyleGAN2-ADA ``projector.py``): W, LPIPS-VGG at 256 px, lr 0.1 with 5 % linear warm-up and 25 %
  cosine ramp-down, w-noise 0.05 fading out by 75 % of the run, noise maps re-drawn from N(0, 1), optimised jointly
  with noise regularisation 1e5, 1000 steps.
- ``course`` (GAN photo-editing course write-up): W+, perceptual (weight 0.01) + L1 (weight 10), Adam lr 0.01,
  1000 steps; ``optimizer='lbfgs'`` is the write-up's alternative.
- ``fast`` (ours, by measurement: docs/time_to_quality.md): the paper's W+ and loss, 600 steps of L-BFGS with a
  curvature history and a step length per image (``wplus.projection.lbfgs``), unit trial steps.

:func:`resolve_settings` starts from a preset (or the library defaults, which are Image2StyleGAN's method with
1000 steps) and applies explicit overrides; weights of loss terms the chosen ``loss`` does not use become 0.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from wplus.errors import ConfigError
from wplus.losses.perceptual import PAPER_LAYERS, validate_layers
from wplus.seeds import SEED_LIMIT  # one seed range everywhere: NVIDIA's (numpy RandomState's) 0 .. 2**32 - 1

__all__ = [
    "ProjectionSettings",
    "SettingError",
    "PRESETS",
    "LOSS_KINDS",
    "PresetName",
    "Space",
    "Init",
    "NoiseOpt",
    "NoiseInit",
    "OptimizerKind",
    "Precision",
    "MIN_LOSS_RESIZE",
    "LOSS_FIELDS",
    "resolve_settings",
    "build_loss",
]

Space = Literal["w+", "w", "z"]
Init = Literal["mean", "random", "encoder"]
NoiseOpt = Literal[False, "joint", "stage2"]
NoiseInit = Literal["const", "random"]
OptimizerKind = Literal["adam", "lbfgs"]
PresetName = Literal["image2stylegan", "nvidia", "course", "fast", "encoder"]
Precision = Literal["fp32", "bf16", "auto"]

MIN_LOSS_RESIZE = 16  # LPIPS reads VGG's conv5_3, behind four 2x poolings: 16 px is the smallest input it sees

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
    # A trained discriminator's block features in place of VGG: the loss that works offline with a model that has D.
    "dfeat": ("dfeat",),
    "dfeat+mse": ("dfeat", "mse"),
    "dfeat+l1": ("dfeat", "l1"),
    "dfeat+mse+l1": ("dfeat", "mse", "l1"),
}
_TERM_WEIGHT = {
    "perceptual": "perceptual_weight",
    "mse": "mse_weight",
    "l1": "l1_weight",
    "lpips": "lpips_weight",
    "dfeat": "dfeat_weight",
}
VGG_TERMS = ("perceptual", "lpips")  # the terms that need ImageNet VGG-16 weights


class SettingError(ConfigError):
    """A projection setting has a bad value; ``field`` names it (the CLI turns it into its flag)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class ProjectionSettings:
    """Every hyper-parameter of a projection run, validated on construction (also by ``dataclasses.replace``).

    Attributes:
        preset: the recipe these settings started from (None: the library defaults), recorded for provenance.
        space: 'w+' (one w per layer), 'w' (one w for all layers) or 'z' (a z in front of the mapping network).
        init: 'mean' (w_avg; paper default), 'random' (U[-1, 1], paper 5.1) or 'encoder' (the code an encoder
            predicts for the target: :func:`wplus.encoders.encoder_for`; W+ and W only). In Z, 'mean' is a seeded
            N(0, I) sample (Z has no mean code). A start code (a tensor) is passed to :func:`wplus.project` as
            ``init=``.
        num_steps: optimiser steps on the latent (the paper uses 5000; faces converge around 1000).
        lr, betas, eps: Adam settings (paper: 0.01, (0.9, 0.999), 1e-8); ``lr`` is the peak of the schedule.
        seed: seeds the initialisation, the random noise maps and the w-noise; deterministic on CPU.
        w_avg_samples: mapped samples used to estimate w_avg (at least 10k) and w_std when needed.
        optimizer: 'adam' or 'lbfgs' (:class:`~wplus.projection.lbfgs.BatchLBFGS`: one evaluation of the batch per
            step, a curvature history and step length per image; ``lr`` is the trial step length, 1 the natural
            one). L-BFGS wants a deterministic loss: with ``w_noise`` it compares losses under different noise.
        lr_rampup, lr_rampdown: warm-up and cosine ramp-down lengths as fractions of a stage (NVIDIA: 0.05, 0.25).
        w_noise, w_noise_ramp: Gaussian noise of scale ``w_std * w_noise`` added to the latent, fading
            quadratically to 0 at ``w_noise_ramp`` of the run (NVIDIA: 0.05, 0.75). In Z the scale is 1.
        latent_reg_weight: weight of the mean squared distance of the latent from w_avg (W, W+) or from 0 (Z).
        optimize_noise: False (noise fixed), 'joint' (noise maps optimised with the latent, NVIDIA) or 'stage2'
            (latent first, then the noise with the latent fixed, Image2StyleGAN++). True means 'joint'.
        noise_init: start optimised maps from the generator's constant noise ('const') or N(0, 1) ('random').
        noise_reg_weight: weight of NVIDIA's multi-scale autocorrelation penalty (NVIDIA: 1e5).
        noise_renormalize: re-standardise every optimised map after each step (NVIDIA does).
        noise_steps, noise_lr: steps and peak learning rate of the 'stage2' noise stage (None: num_steps, lr).
        patience: end a stage when no image's loss improved (relatively, by 1e-4) for this many steps (None: never).
        stop_psnr: end a stage when every image's PSNR reached this many dB (None: never). Outputs are the same
            as for a full run; ``metrics.json`` counts the steps that ran.
        coarse_resolution, coarse_fraction: coarse to fine. For the first ``coarse_fraction`` of the latent stage
            the generator renders only up to ``coarse_resolution`` px (its intermediate RGB image; skip
            architecture), and the loss compares it with the target averaged down to that resolution (the VGG
            perceptual loss runs at that side; other losses see both scaled up to the generator's); the rest of
            the run renders the whole network. None: off. Ignored (with a log line) for a generator whose
            resolution is not above it. Early stopping waits for the full phase.
        loss: which terms the loss has (a key of :data:`LOSS_KINDS`); used by :func:`build_loss`.
        perceptual_weight, mse_weight, l1_weight, lpips_weight, dfeat_weight: weights of those terms (``dfeat``: a
            trained discriminator's block features, the stand-in for VGG where its weights cannot be had).
        layers: VGG-16 layers of the perceptual term (the paper's four by default).
        taps: VGG features after ('post_relu', the paper's reading) or before the ReLU.
        loss_resize: side of the images VGG / LPIPS see (None: the generator's resolution).
        precision: 'fp32', 'bf16' (generator and loss under bf16 autocast; the latent, the optimiser state and the
            final render stay fp32) or 'auto' (bf16 where the device computes it natively and faster, else fp32):
            :mod:`wplus.precision`. A run records the precision it used.
    """

    preset: str | None = None
    space: Space = "w+"
    init: Init = "mean"
    num_steps: int = 1000
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 0
    w_avg_samples: int = 10_000
    optimizer: OptimizerKind = "adam"
    lr_rampup: float = 0.0
    lr_rampdown: float = 0.0
    w_noise: float = 0.0
    w_noise_ramp: float = 0.75
    latent_reg_weight: float = 0.0
    optimize_noise: NoiseOpt = False
    noise_init: NoiseInit = "const"
    noise_reg_weight: float = 0.0
    noise_renormalize: bool = True
    noise_steps: int | None = None
    noise_lr: float | None = None
    patience: int | None = None
    stop_psnr: float | None = None
    coarse_resolution: int | None = None
    coarse_fraction: float = 0.3
    loss: str = "perceptual+mse"
    perceptual_weight: float = 1.0
    mse_weight: float = 1.0
    l1_weight: float = 1.0
    lpips_weight: float = 1.0
    dfeat_weight: float = 1.0
    layers: tuple[str, ...] = field(default=PAPER_LAYERS)
    taps: Literal["post_relu", "pre_relu"] = "post_relu"
    loss_resize: int | None = 256
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        set_ = object.__setattr__.__get__(self)  # frozen: normalise values in place, once
        if self.optimize_noise is True:
            set_("optimize_noise", "joint")
        _choice(self, "preset", [None, *get_args(PresetName)])
        _choice(self, "space", ["w+", "w", "z"])
        _choice(self, "init", ["mean", "random", "encoder"])
        _choice(self, "optimizer", ["adam", "lbfgs"])
        _choice(self, "optimize_noise", [False, "joint", "stage2"])
        _choice(self, "noise_init", ["const", "random"])
        _choice(self, "taps", ["post_relu", "pre_relu"])
        _choice(self, "loss", list(LOSS_KINDS))
        _choice(self, "precision", list(get_args(Precision)))
        set_("num_steps", _integer(self, "num_steps", 0))
        set_("w_avg_samples", _integer(self, "w_avg_samples", 1))
        set_("seed", _integer(self, "seed", 0, SEED_LIMIT - 1))
        if self.noise_steps is not None:
            set_("noise_steps", _integer(self, "noise_steps", 0))
        if self.patience is not None:
            set_("patience", _integer(self, "patience", 1))
        if self.stop_psnr is not None:
            set_("stop_psnr", _number(self, "stop_psnr", positive=True))
        if self.coarse_resolution is not None:
            set_("coarse_resolution", _integer(self, "coarse_resolution", 4))
            if self.coarse_resolution & (self.coarse_resolution - 1):
                raise SettingError(
                    "coarse_resolution", f"got coarse_resolution={self.coarse_resolution}, expected a power of 2 (>= 4)"
                )
        if self.init == "encoder" and self.space == "z":
            raise SettingError("init", "init='encoder' predicts W+ codes; project into 'w+' or 'w', not 'z'")
        if self.loss_resize is not None:
            set_("loss_resize", _integer(self, "loss_resize", MIN_LOSS_RESIZE))
        set_("lr", _number(self, "lr", positive=True))
        set_("eps", _number(self, "eps", positive=True))
        if self.noise_lr is not None:
            set_("noise_lr", _number(self, "noise_lr", positive=True))
        for name in ("w_noise", "latent_reg_weight", "noise_reg_weight", *_TERM_WEIGHT.values()):
            set_(name, _number(self, name))
        for name in ("lr_rampup", "lr_rampdown", "w_noise_ramp", "coarse_fraction"):
            set_(name, _number(self, name, upper=1.0))
        try:
            betas = tuple(float(b) for b in self.betas)
        except (TypeError, ValueError):
            betas = ()
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise SettingError("betas", f"got betas={self.betas!r}, expected two numbers in [0, 1) such as 0.9,0.999")
        set_("betas", betas)
        set_("noise_renormalize", bool(self.noise_renormalize))
        try:
            set_("layers", validate_layers(self.layers))
        except ConfigError as e:
            raise SettingError("layers", str(e)) from None
        if not any(getattr(self, _TERM_WEIGHT[t]) > 0 for t in self.terms):
            raise SettingError(
                _TERM_WEIGHT[self.terms[0]],
                f"loss {self.loss!r} has every term weighted 0; give one of its terms a positive weight",
            )

    @property
    def terms(self) -> tuple[str, ...]:
        """The loss terms switched on by ``loss``."""
        return LOSS_KINDS[self.loss]

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole run (the latent stage plus a 'stage2' noise stage)."""
        if self.optimize_noise != "stage2":
            return self.num_steps
        return self.num_steps + (self.num_steps if self.noise_steps is None else self.noise_steps)

    @property
    def needs_vgg(self) -> bool:
        """Whether the loss has a term that needs ImageNet VGG-16 weights (perceptual or LPIPS)."""
        return any(t in VGG_TERMS and getattr(self, _TERM_WEIGHT[t]) > 0 for t in self.terms)

    def with_discriminator_features(self) -> ProjectionSettings:
        """The same recipe with the discriminator-feature term in place of VGG's perceptual and LPIPS terms.

        ``dfeat_weight`` takes the weight of the term it replaces; the other terms and settings stay.

        Example:
            >>> s = resolve_settings("course").with_discriminator_features()
            >>> (s.loss, s.dfeat_weight, s.l1_weight)
            ('dfeat+l1', 0.01, 10.0)
        """
        if not any(t in VGG_TERMS for t in self.terms):
            return self
        kept = [t for t in self.terms if t not in VGG_TERMS]
        replaced = next(t for t in self.terms if t in VGG_TERMS)
        kind = "+".join(["dfeat", *[t for t in ("mse", "l1") if t in kept]])
        weights = {_TERM_WEIGHT[t]: 0.0 for t in VGG_TERMS}
        return self.replace(loss=kind, dfeat_weight=getattr(self, _TERM_WEIGHT[replaced]), **weights)

    def with_loss_of(self, other: ProjectionSettings) -> ProjectionSettings:
        """These settings with ``other``'s loss description (:data:`LOSS_FIELDS`): what a run records when its loss
        module was built from ``other`` (:func:`build_loss` leaves the recipe on the module as ``loss.settings``)."""
        changes = {name: getattr(other, name) for name in LOSS_FIELDS if getattr(other, name) != getattr(self, name)}
        return self.replace(**changes) if changes else self

    def replace(self, **changes: Any) -> ProjectionSettings:
        """A copy with ``changes`` applied (validated); unknown names are an error that lists the known ones."""
        unknown = sorted(set(changes) - FIELD_NAMES)
        if unknown:
            raise ConfigError(
                f"unknown projection setting(s) {unknown}, expected names from: {', '.join(sorted(FIELD_NAMES))}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (``config.json``); :meth:`from_dict` reads them back."""
        d = dataclasses.asdict(self)
        d["layers"], d["betas"] = list(self.layers), list(self.betas)
        return d

    def to_record(self) -> dict[str, Any]:
        """:meth:`to_dict` for records of a run (``config.json``): what ran, so the VGG layers and taps only when
        the perceptual term is on. :meth:`from_dict` reads it back (the defaults fill what is left out)."""
        d = self.to_dict()
        if "perceptual" not in self.terms or self.perceptual_weight == 0:
            del d["layers"], d["taps"]
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ProjectionSettings:
        """Settings from :meth:`to_dict`'s output (e.g. a ``config.json``); other keys are ignored."""
        known = {k: v for k, v in values.items() if k in FIELD_NAMES | {"preset"}}
        for key in ("layers", "betas"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


def _choice(s: ProjectionSettings, name: str, allowed: list[Any]) -> None:
    value = getattr(s, name)
    if not any(value is a or (isinstance(value, str) and value == a) for a in allowed):
        shown = ", ".join(repr(a) for a in allowed)
        raise SettingError(name, f"got {name}={value!r}, expected one of {shown}")


def _integer(s: ProjectionSettings, name: str, low: int, high: int | None = None) -> int:
    value = getattr(s, name)
    try:
        ok = not isinstance(value, bool)
        value = operator.index(value)  # ints and numpy integers; not floats or strings
    except TypeError:
        ok = False
    if not ok or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise SettingError(name, f"got {name}={value!r}, expected an integer {bound}")
    return value


def _number(s: ProjectionSettings, name: str, *, positive: bool = False, upper: float | None = None) -> float:
    raw = getattr(s, name)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    bad = not math.isfinite(value) or value < 0 or (positive and value == 0) or (upper is not None and value > upper)
    if bad:
        want = "a positive number" if positive else "a finite number >= 0"
        if upper is not None:
            want = f"a fraction of the run in [0, {upper:g}]"
        raise SettingError(name, f"got {name}={raw!r}, expected {want}")
    return value


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(ProjectionSettings)) - {"preset"}
# The fields that describe the loss module (what build_loss reads), as opposed to the optimisation.
LOSS_FIELDS = ("loss", *_TERM_WEIGHT.values(), "layers", "taps", "loss_resize")

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
    # Measured on the shipped model (docs/time_to_quality.md): L-BFGS with a curvature history per image passes the
    # paper recipe's 5000-step PSNR after about 500 steps, faces and the out-of-domain photo alike; Adam at its best
    # schedule (peak 0.2, cosine to 0) was 3.4 dB short after 1000.
    "fast": ProjectionSettings(
        preset="fast", space="w+", num_steps=600, optimizer="lbfgs", lr=1.0, loss="perceptual+mse", optimize_noise=False
    ),
    # The encoder's code as it is (docs/encoders.md): one network pass, no optimisation. Give --steps N to refine
    # it with the 'fast' recipe's L-BFGS.
    "encoder": ProjectionSettings(
        preset="encoder", space="w+", init="encoder", num_steps=0, optimizer="lbfgs", lr=1.0, loss="perceptual+mse"
    ),
}


def resolve_settings(preset: str | None = None, **overrides: Any) -> ProjectionSettings:
    """Start from ``preset`` (None: library defaults) and apply ``overrides``; validate the result.

    Weights of terms that ``loss`` does not use are set to 0 in the result (so ``config.json`` shows what ran).

    Raises:
        ConfigError: unknown preset, option or loss kind; a bad value (a :class:`SettingError` naming the field); an
            explicit positive weight for a term that the chosen loss does not use.

    Example:
        >>> s = resolve_settings("nvidia", num_steps=200)
        >>> (s.space, s.lr, s.num_steps, s.noise_reg_weight)
        ('w', 0.1, 200, 100000.0)
    """
    if preset is not None and preset not in PRESETS:
        raise SettingError("preset", f"unknown preset {preset!r}, expected one of: {', '.join(PRESETS)}")
    s = (PRESETS[preset] if preset is not None else ProjectionSettings()).replace(**overrides)
    for term, name in _TERM_WEIGHT.items():
        if term not in s.terms and name in overrides and float(overrides[name]) > 0:
            raise SettingError(
                name, f"got {name}={overrides[name]} but loss {s.loss!r} has no {term} term; pick a loss with {term}"
            )
    zeroed: dict[str, Any] = {name: 0.0 for term, name in _TERM_WEIGHT.items() if term not in s.terms}
    if s.loss in ("conv3_2", "mse+conv3_2"):
        zeroed["layers"] = ("conv3_2",)
    return s.replace(**zeroed)


def build_loss(
    settings: ProjectionSettings,
    *,
    vgg_weights: str | Path | None = None,
    lpips_weights: str | Path | None = None,
    lpips_metric: bool = False,
    vgg: torch.nn.Module | None = None,
    discriminator: torch.nn.Module | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """Build the :class:`~wplus.losses.ImageLoss` the settings describe, plus an LPIPS module when the loss uses it
    or ``lpips_metric`` is asked for (to report the metric). One VGG-16 trunk is shared by both.

    Args:
        vgg: an already built trunk (tests pass ``random_vgg16``); else ``load_vgg16(vgg_weights)`` when needed.
        discriminator: the trained discriminator a ``dfeat`` loss reads features from.

    Raises:
        ConfigError: a ``dfeat`` loss without a discriminator.

    Returns:
        ``(loss, lpips_or_None)``; the loss remembers ``settings`` as ``loss.settings``, so :func:`wplus.project`
        records the loss that ran whatever settings it is given.
    """
    from wplus.losses.lpips import load_lpips
    from wplus.losses.masked import ImageLoss
    from wplus.models.vgg16 import load_vgg16

    weight = {t: getattr(settings, w) if t in settings.terms else 0.0 for t, w in _TERM_WEIGHT.items()}
    if weight["dfeat"] > 0 and discriminator is None:
        raise ConfigError(
            f"loss {settings.loss!r} reads a discriminator's features, but none was given; use a model that carries "
            "its discriminator (the shipped one, a training snapshot) or a VGG loss"
        )
    need_lpips = weight["lpips"] > 0 or lpips_metric
    if vgg is None and (weight["perceptual"] > 0 or need_lpips):
        vgg = load_vgg16(vgg_weights, device=device)
    lpips = load_lpips(lpips_weights, vgg=vgg, resize=settings.loss_resize, device=device) if need_lpips else None
    loss = ImageLoss(
        vgg if weight["perceptual"] > 0 else None,
        layers=settings.layers,
        taps=settings.taps,
        perceptual_weight=weight["perceptual"],
        mse_weight=weight["mse"],
        l1_weight=weight["l1"],
        lpips=lpips if weight["lpips"] > 0 else None,
        lpips_weight=weight["lpips"],
        resize=settings.loss_resize,
        discriminator=discriminator if weight["dfeat"] > 0 else None,
        dfeat_weight=weight["dfeat"],
    ).to(device)
    loss.settings = settings
    return loss, lpips
