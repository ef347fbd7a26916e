"""Embedding images into a generator's latent space by optimisation (Image2StyleGAN, Abdal et al., ICCV 2019).

Section 3.3 / 5 of the paper: start from the mean w (or U[-1, 1]), minimise the VGG-16 perceptual loss plus pixel
MSE with Adam (lr 0.01, betas 0.9/0.999, eps 1e-8) for a number of steps, noise inputs held constant. The latent is
one w per layer (W+), one w shared by all layers (W) or a z in front of the mapping network (Z).

A batch of targets is optimised together with independent latents: the loss is a sum of per-image terms and Adam
updates every element on its own, so each image follows the same trajectory it would alone.

Variants (keyword options, off by default): a mask on the loss and latent regularisation (Image2StyleGAN++, the
course write-up), noise-map optimisation jointly or as a second stage with NVIDIA's autocorrelation penalty and
per-step renormalisation, NVIDIA's learning-rate ramps and annealed w-noise, and L-BFGS. Optimised noise is
returned in the result and the final image is rendered with it, so a saved latent reproduces the image.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from wplus.errors import ConfigError, ProjectionDivergedError, ShapeError
from wplus.io.latents import Latent
from wplus.loading import ModelFile, generator_file
from wplus.losses.regularizers import latent_regularization, noise_regularization, renormalize_noise_
from wplus.metrics import psnr, ssim
from wplus.precision import autocast, resolve_precision
from wplus.projection.lbfgs import BatchLBFGS
from wplus.projection.schedules import learning_rate, w_noise_scale
from wplus.projection.settings import Init, NoiseInit, NoiseOpt, OptimizerKind, ProjectionSettings, Space
from wplus.text import plural

log = logging.getLogger(__name__)

LBFGS_HISTORY = 20  # curvature pairs kept per image by optimizer='lbfgs'

__all__ = [
    "project",
    "loss_terms",
    "ProjectionResult",
    "ProjectionStep",
    "Space",
    "Init",
    "NoiseOpt",
    "NoiseInit",
    "OptimizerKind",
    "latent_to_ws",
    "estimate_w_std",
]


class ProjectionLoss(Protocol):
    """What :func:`project` needs from a loss: targets prepared once, per-sample terms with a 'total' key."""

    def prepare_target(self, target: torch.Tensor) -> Any: ...

    def __call__(self, images: torch.Tensor, target: Any) -> dict[str, torch.Tensor]: ...


@dataclass
class ProjectionStep:
    """What the progress callback receives after every optimisation step."""

    step: int  # 1-based
    num_steps: int
    terms: dict[str, torch.Tensor]  # per-sample loss terms, each [B], detached
    psnr: torch.Tensor  # [B] dB of the image rendered at this step
    images: torch.Tensor  # [B, C, H, W] rendered at this step (before the update), detached


@dataclass
class ProjectionResult:
    """The outcome of :func:`project`.

    ``settings`` are the resolved hyper-parameters of the run; ``masked`` says whether a mask shaped the loss and
    ``started_from`` is 'mean', 'random', 'encoder' or 'code' (a given start code); ``step_seconds`` [steps] is the
    wall time from the call to the end of each step (set-up included) and ``stopped_early`` says which stages stopped
    before their last step, and why (``patience`` / ``stop_psnr``). :meth:`latent` is image ``i``'s code as a
    :class:`~wplus.io.latents.Latent`, the thing ``latent.npz`` stores. ``model`` is the generator's file (id, path,
    SHA-256) when ``load_generator`` read it, None for a generator built in memory.

    Shape:
        ws [B, num_ws, w_dim] — the W+ codes to render (for space 'w' the rows are identical);
        z [B, z_dim] for space 'z', else None; noise: per conv layer [1 or B, 1, r, r];
        images [B, C, R, R] in [-1, 1]; history[key] [num_steps, B].
    """

    ws: torch.Tensor
    space: Space
    noise: list[torch.Tensor]
    images: torch.Tensor
    history: dict[str, torch.Tensor]
    metrics: list[dict[str, float]]
    z: torch.Tensor | None = None
    settings: ProjectionSettings = field(default_factory=ProjectionSettings)
    masked: bool = False
    started_from: str = "mean"
    step_seconds: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))
    stopped_early: list[str] = field(default_factory=list)
    model: ModelFile | None = None

    def latent(
        self, i: int = 0, *, model_id: str | None = None, model_sha256: str | None = None, source: str = ""
    ) -> Latent:
        """Image ``i``'s code with the noise it was rendered with: ws [1, num_ws, w_dim], noise [1, 1, r, r].

        ``model_id`` and ``model_sha256`` default to the generator file's (:attr:`model`), else ''."""
        if not 0 <= i < self.ws.shape[0]:
            raise IndexError(f"image {i} of a batch of {self.ws.shape[0]}")
        return Latent(
            ws=self.ws[i : i + 1],
            space=self.space,
            noise=[n[i : i + 1] if n.shape[0] > 1 else n for n in self.noise],
            z=None if self.z is None else self.z[i : i + 1],
            model_id=(self.model.model_id if self.model else "") if model_id is None else model_id,
            model_sha256=(self.model.sha256 if self.model else "") if model_sha256 is None else model_sha256,
            source=source,
        )

    def record(self) -> dict[str, Any]:
        """What decided the run, for ``config.json``: every setting plus the mask and start flags."""
        return {
            **self.settings.to_record(),
            "masked": self.masked,
            "started_from": self.started_from,
            "stopped_early": self.stopped_early,
        }

    def history_rows(self, i: int = 0) -> list[dict[str, float]]:
        """Image ``i``'s per-step record: step, seconds, psnr, loss_total, then one ``loss_<term>`` per term."""
        terms = [k for k in self.history if k not in ("psnr", "total")]
        rows = []
        for t in range(len(self.step_seconds)):
            row = {"step": t + 1, "seconds": float(self.step_seconds[t]), "psnr": float(self.history["psnr"][t, i])}
            row["loss_total"] = float(self.history["total"][t, i])
            row.update({f"loss_{k}": float(self.history[k][t, i]) for k in terms})
            rows.append(row)
        return rows


def latent_to_ws(G: torch.nn.Module, latent: torch.Tensor, space: Space) -> torch.Tensor:
    """Turn the optimised variable into W+ codes [B, num_ws, w_dim]."""
    if space == "w+":
        return latent
    if space == "w":
        return latent.expand(-1, G.num_ws, -1)
    return G.mapping(latent, None)


def _initial_latent(
    G: torch.nn.Module,
    batch: int,
    space: Space,
    init: Init,
    w_avg: torch.Tensor,
    gen: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    if space == "z":
        # Z has no "mean code": 'mean' starts from a seeded N(0, I) sample, 'random' from U[-1, 1] (paper 5.1).
        if init == "mean":
            z = torch.randn([batch, G.z_dim], generator=gen)
        else:
            z = torch.rand([batch, G.z_dim], generator=gen) * 2 - 1
        return z.to(device)
    rows = G.num_ws if space == "w+" else 1
    if init == "mean":
        return w_avg.to(device).reshape(1, 1, -1).repeat(batch, rows, 1)
    return (torch.rand([batch, rows, G.w_dim], generator=gen) * 2 - 1).to(device)


def _given_latent(G: torch.nn.Module, batch: int, space: Space, init: torch.Tensor) -> torch.Tensor:
    """A caller's start code in the shape of ``space``: [B|1, num_ws, w_dim] (W+), [B|1, 1|num_ws, w_dim] (W, the
    rows must agree), [B|1, z_dim] (Z); a single code is shared by the whole batch."""
    init = init.detach().float()
    if space == "z":
        want = f"[{batch} or 1, {G.z_dim}]"
        ok = init.ndim == 2 and init.shape[1] == G.z_dim
    else:
        rows = G.num_ws if space == "w+" else 1
        want = f"[{batch} or 1, {rows}, {G.w_dim}]"
        if rows == 1:
            want += f" (or [.., {G.num_ws}, ..] with equal rows)"
        if space == "w" and init.ndim == 3 and init.shape[1] == G.num_ws:
            if not torch.allclose(init, init[:, :1].expand_as(init)):
                raise ConfigError("init for W space has different rows per layer; start a W+ projection from it")
            init = init[:, :1]
        ok = init.ndim == 3 and init.shape[1:] == (rows, G.w_dim)
    if not ok or init.shape[0] not in (1, batch):
        raise ShapeError(f"init latent has shape {list(init.shape)}, expected {want} for space {space!r}")
    if not torch.isfinite(init).all():
        raise ConfigError("init latent contains NaN or infinite values")
    return init.expand(batch, *init.shape[1:]).clone()


def resolve_w_avg(G: torch.nn.Module, num_samples: int = 10_000, seed: int = 123) -> torch.Tensor:
    """``G.w_avg`` when the checkpoint carries one, else the mean of ``num_samples`` mapped z (NVIDIA uses 10k)."""
    w_avg = G.w_avg.detach()
    if torch.count_nonzero(w_avg) > 0 and torch.isfinite(w_avg).all():
        return w_avg.clone()
    log.info("checkpoint has no w_avg; estimating it from %d mapped samples", num_samples)
    return G.mean_w(max(num_samples, 10_000), seed=seed)


def estimate_w_std(G: torch.nn.Module, w_avg: torch.Tensor, num_samples: int = 10_000, seed: int = 123) -> float:
    """NVIDIA's scalar spread of W: ``sqrt(sum_i ||w_i - w_avg||^2 / N)`` over ``num_samples`` mapped z."""
    gen = torch.Generator().manual_seed(seed)
    total, done = 0.0, 0
    with torch.no_grad():
        while done < num_samples:
            n = min(1000, num_samples - done)
            z = torch.randn([n, G.z_dim], generator=gen).to(w_avg.device)
            total += float((G.mapping(z, None)[:, 0] - w_avg).square().sum())
            done += n
    return (total / num_samples) ** 0.5


def _initial_noise(
    G: torch.nn.Module, batch: int, mode: NoiseInit, gen: torch.Generator, device: torch.device
) -> list[torch.Tensor]:
    """Per-image trainable noise maps [B, 1, r, r]: the generator's constant maps, or fresh N(0, 1) (NVIDIA)."""
    if not hasattr(G, "noise_maps"):
        raise ConfigError(f"optimize_noise needs a generator with noise_maps(), got {type(G).__name__}")
    maps = []
    for n in G.noise_maps():
        if mode == "random":
            maps.append(torch.randn([batch, 1, *n.shape[-2:]], generator=gen).to(device))
        else:
            maps.append(n.detach().to(device).reshape(1, 1, *n.shape[-2:]).repeat(batch, 1, 1, 1))
    return [m.requires_grad_(True) for m in maps]


def _make_optimizer(
    kind: OptimizerKind, params: list[torch.Tensor], lr: float, betas: tuple[float, float], eps: float
) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    # One evaluation of the batch per step; each image keeps its own curvature history and step length.
    return BatchLBFGS(params, lr=lr, history_size=LBFGS_HISTORY)


def _keep_accepted(seen: dict[str, Any], previous: dict[str, Any], accepted: torch.Tensor) -> None:
    """L-BFGS evaluates trial points: an image whose trial was rejected stays where it was, so its step record
    (images and loss terms) is its previous one."""
    if not previous or bool(accepted.all()):
        return
    keep = ~accepted
    images = seen["images"]
    seen["images"] = torch.where(keep.reshape(-1, *[1] * (images.ndim - 1)), previous["images"], images)
    seen["terms"] = {
        k: torch.where(keep, previous["terms"][k], v) if k in previous["terms"] else v for k, v in seen["terms"].items()
    }


def _prepare_target(loss: ProjectionLoss, target: torch.Tensor, mask: torch.Tensor | None) -> Any:
    if mask is None:
        return loss.prepare_target(target)
    try:
        return loss.prepare_target(target, mask=mask)  # type: ignore[call-arg]
    except TypeError:
        raise ConfigError(
            f"a mask was given but {type(loss).__name__}.prepare_target() takes none; use wplus.losses.ImageLoss"
        ) from None


def loss_terms(
    loss: ProjectionLoss,
    images: torch.Tensor,
    target: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    lpips: torch.nn.Module | None = None,
) -> list[dict[str, float]]:
    """What a projection's ``metrics`` hold for its final images, for any other images: the loss terms as
    ``loss_<term>`` (and ``lpips`` when an LPIPS module is given), one dict per image, e.g. to measure a tuned render
    with the loss its pivot was projected with.

    Shape:
        images, target: [B, C, H, W] in [-1, 1]; mask: as :func:`project`'s.
    """
    with torch.no_grad():
        terms = loss(images, _prepare_target(loss, target, mask))
        dist = lpips(images, target).cpu() if lpips is not None else None
    out = [{f"loss_{k}": float(v[i]) for k, v in terms.items()} for i in range(images.shape[0])]
    if dist is not None:
        for i, m in enumerate(out):
            m["lpips"] = float(dist[i])
    return out


@contextmanager
def frozen(G: torch.nn.Module) -> Iterator[None]:
    """Freeze G's parameters for an optimisation over its inputs (the backward pass then computes activation
    gradients only) and restore each parameter's ``requires_grad`` afterwards, also on errors."""
    requires_grad = [p.requires_grad for p in G.parameters()]
    G.requires_grad_(False)
    try:
        yield
    finally:
        for p, rg in zip(G.parameters(), requires_grad, strict=True):
            p.requires_grad_(rg)


@dataclass
class _Stage:
    name: str
    params: list[torch.Tensor]
    steps: int
    lr: float


def project(
    G: torch.nn.Module,
    target: torch.Tensor,
    *,
    loss: ProjectionLoss | None = None,
    settings: ProjectionSettings | None = None,
    init: Init | torch.Tensor | None = None,
    callback: Callable[[ProjectionStep], None] | None = None,
    mask: torch.Tensor | None = None,
    lpips: torch.nn.Module | None = None,
    encoder: Any = None,
    **options: Any,
) -> ProjectionResult:
    """Embed target images into ``G``'s latent space (Image2StyleGAN, with the variants of its successors).

    The defaults are the paper's method: Adam at a constant learning rate, noise held fixed, no regularisation.
    The hyper-parameters are one :class:`~wplus.projection.settings.ProjectionSettings` (see it for each one's
    meaning): pass ``settings=`` (e.g. ``wplus.PRESETS["nvidia"]``), plain keyword arguments (``space="w"``,
    ``num_steps=500``, ...), or both (the keywords then change the given settings).

    Args:
        G: a generator with ``mapping``, ``synthesis``, ``num_ws``, ``w_dim``, ``z_dim``, ``w_avg`` (our StyleGAN2
            or StyleGAN module). It is not modified; its parameters are frozen during the run.
        target: [B, C, R, R] images in [-1, 1] at the generator's resolution, on G's device.
        loss: the objective. Omitted: :func:`~wplus.projection.choice.default_loss` for ``G`` and the settings' loss
            (the paper's VGG-16 perceptual + MSE, or offline the model's discriminator features, with a logged
            warning); build it once with ``wplus.default_loss(G)`` to project many images. Else e.g.
            ``wplus.losses.PerceptualLoss(load_vgg16())``, ``wplus.losses.ImageLoss`` for L1 / LPIPS / masks, or
            :func:`~wplus.projection.settings.build_loss`'s result. A loss built by ``build_loss`` or
            ``default_loss`` remembers its recipe, and the result's settings record that recipe's loss fields;
            for any other loss the settings' loss fields are recorded as given, not checked.
        settings: the run's hyper-parameters (default: ``ProjectionSettings()``).
        init: 'mean' or 'random' (the ``init`` setting), or a start code in the shape of ``space`` (an earlier
            result's ``ws``, or ``z`` in Z): continuing a run, or neighbouring video frames.
            Not for edit pairs: Adam moves every coordinate by about ``lr`` per step whatever its gradient, so a
            warm-started second image differs from the first in every coordinate; project pairs jointly with
            :func:`wplus.projection.pairs.project_pairs` instead (docs/demo-model.md measures both).
        callback: called after each step with a :class:`ProjectionStep`.
        mask: [H, W] or [1|B, 1, H, W] in [0, 1]; the loss only looks where it is on (needs a loss whose
            ``prepare_target`` takes ``mask=``, such as :class:`wplus.losses.ImageLoss`).
        lpips: an LPIPS module (``wplus.losses.load_lpips()``) to report ``lpips`` in the metrics.
        encoder: with ``init='encoder'``: an encoder file or module (default: the one shipped for G's model;
            :func:`wplus.encoders.encoder_for`). The run starts from its code for each target (in W, the rows'
            mean); ``num_steps=0`` (the ``encoder`` preset) returns that code as it is.
        **options: fields of :class:`~wplus.projection.settings.ProjectionSettings` (``space``, ``num_steps``,
            ``lr``, ``seed``, ``optimize_noise``, ...).

    Returns:
        A :class:`ProjectionResult`; ``noise`` holds the optimised per-image maps [B, 1, r, r] when noise was
        optimised (the final image is rendered with them), else the generator's constant maps. ``model`` is G's
        file when ``load_generator`` read G (else None).

    Example:
        >>> G = wplus.load_generator("cartoon-faces-64")                                    # doctest: +SKIP
        >>> result = wplus.project(G, wplus.load_target("photo.png", G), num_steps=200)     # doctest: +SKIP
        >>> result.metrics[0]["psnr"], result.settings.loss                                 # doctest: +SKIP
        (24.1, 'dfeat+mse')

    Raises:
        ShapeError: target (or mask, or init) does not match the generator's channels/resolution.
        ConfigError: an unknown or bad setting (a ``SettingError`` naming it).
        ProjectionDivergedError: the loss became NaN or infinite (a learning rate far too high, say).
    """
    if isinstance(init, str):
        options["init"] = init
    s = (settings or ProjectionSettings()).replace(**options) if options or settings is None else settings
    start_code = init if isinstance(init, torch.Tensor) else None
    started_from = "code" if start_code is not None else s.init
    want = [G.img_channels, G.img_resolution, G.img_resolution]
    if target.ndim != 4 or list(target.shape[1:]) != want:
        raise ShapeError(
            f"target has shape {list(target.shape)}, expected [B, {want[0]}, {want[1]}, {want[2]}] "
            f"(images in [-1, 1] at the generator's resolution)"
        )
    if s.space == "z" and getattr(G, "c_dim", 0):
        raise ConfigError("Z-space projection of a conditional generator is not supported; use 'w' or 'w+'")
    if s.optimize_noise and not (hasattr(G, "noise_maps") and G.noise_maps()):
        raise ConfigError(
            f"optimize_noise={s.optimize_noise!r} (--optimize-noise) needs a generator with noise inputs, and "
            f"{type(G).__module__}.{type(G).__name__} has none (StyleGAN3); leave it off (the 'nvidia' preset sets it)"
        )

    device = target.device
    precision = resolve_precision(s.precision, device)
    if precision != s.precision:
        s = s.replace(precision=precision)  # record what ran ('auto' resolved)
    if loss is None:
        from wplus.projection.choice import loss_for_model

        loss = loss_for_model(s, G, device=device).loss
    recipe = getattr(loss, "settings", None)
    if isinstance(recipe, ProjectionSettings):
        s = s.with_loss_of(recipe)  # record the loss that runs (after an offline fallback: a dfeat kind)
    batch = target.shape[0]
    started = time.perf_counter()
    if start_code is None and s.init == "encoder":
        from wplus.encoders import encode_for

        start_code = encode_for(G, target.detach(), encoder)  # [B, num_ws, w_dim]
        if s.space == "w":
            start_code = start_code.mean(1, keepdim=True)
    with frozen(G):
        gen = torch.Generator().manual_seed(s.seed)
        w_avg = resolve_w_avg(G, s.w_avg_samples)
        if start_code is not None:
            latent = _given_latent(G, batch, s.space, start_code).to(device)
        else:
            latent = _initial_latent(G, batch, s.space, s.init, w_avg, gen, device)
        latent.requires_grad_(True)
        noise = _initial_noise(G, batch, s.noise_init, gen, device) if s.optimize_noise else None
        if noise is not None and s.noise_renormalize:
            renormalize_noise_(noise)
        w_std = 0.0
        if s.w_noise:
            w_std = 1.0 if s.space == "z" else estimate_w_std(G, w_avg.to(device), s.w_avg_samples)
        reg_center = None if s.space == "z" else w_avg.to(device).reshape(1, 1, -1)
        target = target.detach()
        with torch.no_grad():
            prepared = _prepare_target(loss, target, mask)

        coarse = _coarse_resolution(G, s)
        coarse_prepared = None
        coarse_loss, coarse_upscale = loss, True
        if coarse is not None:
            small_loss = _loss_at(loss, coarse) if mask is None else None
            with torch.no_grad():
                if small_loss is not None:  # the loss itself runs at the coarse side: VGG sees the small image
                    coarse_loss, coarse_upscale = small_loss, False
                    small = torch.nn.functional.interpolate(target, size=(coarse, coarse), mode="area")
                    coarse_prepared = small_loss.prepare_target(small)
                else:
                    coarse_prepared = _prepare_target(loss, _coarse_view(target, coarse), mask)

        stages = [_Stage("latent", [latent] + (noise if s.optimize_noise == "joint" else []), s.num_steps, s.lr)]
        if s.optimize_noise == "stage2":
            steps2 = s.num_steps if s.noise_steps is None else s.noise_steps
            stages.append(_Stage("noise", list(noise), steps2, s.noise_lr or s.lr))
        total_steps = s.total_steps
        # Python floats, not one small tensor per term and step: thousands of those, allocated between each step's
        # large activations, fragment the heap (RSS grew ~6 MB/step at 64 px, batch 9, with 6 loss terms).
        history: dict[str, list[list[float]]] = {}
        step_seconds: list[float] = []
        stopped: list[str] = []
        done = 0
        for stage in stages:
            previous: dict[str, Any] = {}
            opt = _make_optimizer(s.optimizer, stage.params, stage.lr, s.betas, s.eps)
            stop = _EarlyStop(s.patience, s.stop_psnr)
            coarse_steps = (
                round(s.coarse_fraction * stage.steps) if coarse is not None and stage.name == "latent" else 0
            )
            for step in range(stage.steps):
                render_res = coarse if step < coarse_steps else None
                if step == coarse_steps and coarse_steps and isinstance(opt, BatchLBFGS):
                    # The full render is another objective: curvature pairs and losses of the coarse one mislead.
                    opt = _make_optimizer(s.optimizer, stage.params, stage.lr, s.betas, s.eps)
                    previous = {}
                goal = coarse_prepared if render_res is not None else prepared
                for group in opt.param_groups:
                    group["lr"] = learning_rate(step, stage.steps, stage.lr, rampup=s.lr_rampup, rampdown=s.lr_rampdown)
                scale = w_std * w_noise_scale(step, stage.steps, s.w_noise, ramp=s.w_noise_ramp)
                if stage.name == "noise":
                    scale = 0.0  # the latent is fixed in the noise stage
                seen: dict[str, Any] = {}

                def closure(scale=scale, seen=seen, opt=opt, render_res=render_res, goal=goal) -> torch.Tensor:
                    code = latent
                    if scale > 0:
                        code = latent + torch.randn(latent.shape, generator=gen).to(device) * scale
                    with autocast(precision, device):  # bf16: generator and loss; latent and optimiser fp32
                        ws = latent_to_ws(G, code, s.space)
                        if render_res is None:
                            images = G.synthesis(ws, noise_mode="const", noise=noise)
                        else:
                            coarse_img = G.synthesis(ws, noise_mode="const", noise=noise, max_resolution=render_res)
                            images = _upscale(coarse_img, G.img_resolution) if coarse_upscale else coarse_img
                        terms = dict((loss if render_res is None else coarse_loss)(images, goal))
                    if precision != "fp32":
                        terms = {k: v.float() for k, v in terms.items()}
                    total = terms["total"]
                    if s.latent_reg_weight > 0:
                        terms["latent_reg"] = latent_regularization(latent, reg_center)
                        total = total + s.latent_reg_weight * terms["latent_reg"]
                    if noise is not None and s.noise_reg_weight > 0:
                        terms["noise_reg"] = noise_regularization(noise)
                        total = total + s.noise_reg_weight * terms["noise_reg"]
                    terms["total"] = total
                    opt.zero_grad(set_to_none=True)
                    total.sum().backward()
                    if images.shape[-1] != G.img_resolution:  # a coarse render the loss saw small: shown scaled up
                        images = _upscale(images, G.img_resolution)
                    seen.setdefault("images", images.detach().float())
                    seen.setdefault("terms", {k: v.detach() for k, v in terms.items()})
                    return total.detach()

                opt.step(closure)
                done += 1
                if isinstance(opt, BatchLBFGS):
                    _keep_accepted(seen, previous, opt.accepted.to(device))
                    previous = seen
                _check_finite_step(seen["terms"]["total"], latent, done, s)
                if noise is not None and s.noise_renormalize:
                    renormalize_noise_(noise)
                step_psnr = psnr(seen["images"], target)
                for k, v in seen["terms"].items():
                    history.setdefault(k, []).append(v.tolist())
                history.setdefault("psnr", []).append(step_psnr.tolist())
                step_seconds.append(time.perf_counter() - started)
                if callback is not None:
                    callback(ProjectionStep(done, total_steps, seen["terms"], step_psnr, seen["images"]))
                reason = stop(seen["terms"]["total"], step_psnr) if render_res is None else None
                if reason is not None:
                    stopped.append(f"{stage.name} stage stopped at step {step + 1} of {stage.steps}: {reason}")
                    log.info("%s", stopped[-1])
                    break

        with torch.no_grad():
            ws = latent_to_ws(G, latent.detach(), s.space).clone()
            final_noise = [n.detach().clone() for n in noise] if noise is not None else None
            final = G.synthesis(ws, noise_mode="const", noise=final_noise)
            final_terms = {k: v.detach().cpu() for k, v in loss(final, prepared).items()}
            final_psnr, final_ssim = psnr(final, target).cpu(), ssim(final, target).cpu()
            w_dist = (ws - w_avg.to(device)).flatten(1).norm(dim=1).cpu()
            final_lpips = lpips(final, target).cpu() if lpips is not None else None

    seconds = time.perf_counter() - started
    metrics = []
    for i in range(batch):
        m = {f"loss_{k}": float(v[i]) for k, v in final_terms.items()}
        m.update(
            psnr=float(final_psnr[i]),
            ssim=float(final_ssim[i]),
            w_dist_from_avg=float(w_dist[i]),
            steps=done,
            seconds=seconds,
            seconds_total=seconds,
        )
        if final_lpips is not None:
            m["lpips"] = float(final_lpips[i])
        metrics.append(m)
    return ProjectionResult(
        ws=ws,
        space=s.space,
        noise=final_noise if final_noise is not None else (G.noise_maps() if hasattr(G, "noise_maps") else []),
        images=final,
        history={k: torch.tensor(v, dtype=torch.float32) for k, v in history.items()},
        step_seconds=torch.tensor(step_seconds, dtype=torch.float64),
        stopped_early=stopped,
        metrics=metrics,
        z=latent.detach().clone() if s.space == "z" else None,
        settings=s,
        masked=mask is not None,
        started_from=started_from,
        model=generator_file(G),
    )


def _coarse_resolution(G: torch.nn.Module, s: ProjectionSettings) -> int | None:
    """The resolution of the coarse phase, or None when the settings ask for none or G is not larger than it."""
    if s.coarse_resolution is None or s.coarse_fraction == 0:
        return None
    if s.coarse_resolution >= G.img_resolution:
        log.info(
            "coarse_resolution %d is not below the generator's %d px: no coarse phase",
            s.coarse_resolution,
            G.img_resolution,
        )
        return None
    if not getattr(G.synthesis, "renders_coarse", False):
        raise ConfigError(
            f"coarse_resolution={s.coarse_resolution} needs a skip-architecture StyleGAN2 generator, which sums an RGB "
            f"image per resolution; {type(G).__name__} does not; leave coarse_resolution unset"
        )
    return s.coarse_resolution


def _loss_at(loss: Any, side: int) -> Any:
    """The perceptual (VGG) loss looking at ``side``-px images, for the coarse phase: VGG at 256 px was most of a
    coarse step's cost at 1024 px. None for other losses (they see the coarse render scaled up)."""
    from wplus.losses.perceptual import PerceptualLoss

    if not isinstance(loss, PerceptualLoss) or (loss.resize is not None and loss.resize <= side):
        return None
    small = copy.copy(loss)  # shares the VGG module
    small.resize = side
    return small


def _upscale(images: torch.Tensor, size: int) -> torch.Tensor:
    """A coarse image at the loss's resolution (bilinear; the same operator for renders and targets)."""
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def _coarse_view(target: torch.Tensor, resolution: int) -> torch.Tensor:
    """What a coarse render can match: the target averaged down to ``resolution`` and scaled back up."""
    small = torch.nn.functional.interpolate(target, size=(resolution, resolution), mode="area")
    return _upscale(small, target.shape[-1])


PLATEAU_TOLERANCE = 1e-4  # relative decrease of an image's best loss that counts as progress, for ``patience``


class _EarlyStop:
    """Ends a stage when every image's PSNR reached ``stop_psnr``, or when no image's loss improved on its best by
    more than :data:`PLATEAU_TOLERANCE` (relative) for ``patience`` steps."""

    def __init__(self, patience: int | None, stop_psnr: float | None):
        self.patience, self.stop_psnr = patience, stop_psnr
        self.best: torch.Tensor | None = None
        self.waited = 0

    def __call__(self, total: torch.Tensor, step_psnr: torch.Tensor) -> str | None:
        if self.stop_psnr is not None and bool((step_psnr >= self.stop_psnr).all()):
            return f"PSNR {float(step_psnr.min()):.2f} dB >= stop_psnr {self.stop_psnr:g}"
        if self.patience is None:
            return None
        total = total.detach().cpu()
        if self.best is None or bool((total < self.best - PLATEAU_TOLERANCE * self.best.abs()).any()):
            self.best = total if self.best is None else torch.minimum(self.best, total)
            self.waited = 0
            return None
        self.waited += 1
        return f"loss did not improve for {plural(self.patience, 'step')}" if self.waited >= self.patience else None


def _check_finite_step(total: torch.Tensor, latent: torch.Tensor, step: int, s: ProjectionSettings) -> None:
    """Stop a run whose loss or latent stopped being finite, instead of writing NaN results."""
    if torch.isfinite(total).all() and torch.isfinite(latent.detach()).all():
        return
    bad = [i for i, ok in enumerate(torch.isfinite(total).tolist()) if not ok] or list(range(total.numel()))
    raise ProjectionDivergedError(
        f"projection diverged at step {step} of {s.total_steps} (loss or latent is NaN/inf for image(s) {bad}); "
        f"lower the learning rate (lr={s.lr:g}) or the loss weights"
    )
