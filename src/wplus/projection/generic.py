"""Z-space inversion of any generator that maps a latent z to an image (the course inverts a vanilla DCGAN).

Protocol (:class:`ZGenerator`): a callable ``G(z) -> images`` with images [B, C, H, W] in [-1, 1], plus either an
attribute ``z_dim`` (z is [B, z_dim]) or ``z_shape`` (z is [B, *z_shape], e.g. ``(100, 1, 1)`` for a DCGAN whose
first layer is a transposed conv); ``z_dim`` / ``z_shape`` may also be passed as arguments for a plain callable.
``img_resolution`` is optional and only checked when present. Nothing else (no mapping, no noise) is assumed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from wplus.errors import ConfigError, ShapeError
from wplus.losses.regularizers import latent_regularization
from wplus.metrics import psnr
from wplus.projection.lbfgs import BatchLBFGS
from wplus.projection.project import ProjectionLoss, ProjectionStep, _keep_accepted, _make_optimizer, _prepare_target
from wplus.projection.schedules import learning_rate
from wplus.projection.settings import OptimizerKind

__all__ = ["ZGenerator", "GenericProjectionResult", "project_generic", "z_shape_of"]


@runtime_checkable
class ZGenerator(Protocol):
    """A generator ``G(z) -> [B, C, H, W]`` images in [-1, 1], with ``z_dim`` (or ``z_shape``)."""

    z_dim: int

    def __call__(self, z: torch.Tensor) -> torch.Tensor: ...


@dataclass
class GenericProjectionResult:
    """Outcome of :func:`project_generic`. Shape: z [B, *z_shape]; images [B, C, H, W]; history[key] [steps, B]."""

    z: torch.Tensor
    images: torch.Tensor
    history: dict[str, torch.Tensor]
    metrics: list[dict[str, float]]
    settings: dict[str, Any] = field(default_factory=dict)


def z_shape_of(G: Callable[..., torch.Tensor], z_dim: int | None = None, z_shape: Sequence[int] | None = None):
    """The per-sample latent shape: ``z_shape``, else ``(z_dim,)``, else G's ``z_shape`` / ``z_dim`` attributes.

    Raises:
        ConfigError: none of them is known.
    """
    shape = z_shape if z_shape is not None else getattr(G, "z_shape", None)
    if shape is None:
        dim = z_dim if z_dim is not None else getattr(G, "z_dim", None)
        if dim is None:
            raise ConfigError(
                f"got a {type(G).__name__} without z_dim or z_shape, expected one of them; pass z_dim= or z_shape="
            )
        shape = (int(dim),)
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ConfigError(f"got latent shape {shape}, expected positive sizes")
    return shape


def project_generic(
    G: Callable[[torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    *,
    loss: ProjectionLoss,
    z_dim: int | None = None,
    z_shape: Sequence[int] | None = None,
    num_steps: int = 500,
    lr: float = 0.05,
    optimizer: OptimizerKind = "adam",
    latent_reg_weight: float = 0.0,
    mask: torch.Tensor | None = None,
    seed: int = 0,
    callback: Callable[[ProjectionStep], None] | None = None,
) -> GenericProjectionResult:
    """Find z with ``G(z)`` close to ``target`` under ``loss``, starting from a seeded N(0, I) sample.

    Args:
        G: a :class:`ZGenerator` (an ``nn.Module`` is frozen during the run and restored afterwards).
        target: [B, C, H, W] in [-1, 1], on G's device.
        loss: a projection loss (``prepare_target`` + per-sample terms with 'total').
        z_dim, z_shape: latent shape when G does not carry it.
        num_steps, lr, optimizer: optimisation ('adam' or 'lbfgs').
        latent_reg_weight: weight of the mean of z^2 (keeps z near the prior's typical set).
        mask: optional loss mask, as in :func:`wplus.project`.
        seed: seeds the initial z.
        callback: called after each step with a :class:`ProjectionStep`.

    Raises:
        ConfigError: missing latent shape, bad options.
        ShapeError: G's output does not match the target.
    """
    if num_steps < 0:
        raise ConfigError(f"num_steps must be >= 0, got {num_steps}")
    if optimizer not in ("adam", "lbfgs"):
        raise ConfigError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    if not math.isfinite(latent_reg_weight) or latent_reg_weight < 0:
        raise ConfigError(f"got latent_reg_weight={latent_reg_weight}, expected a finite number >= 0")
    shape = z_shape_of(G, z_dim, z_shape)
    resolution = getattr(G, "img_resolution", None)
    if resolution is not None and tuple(target.shape[-2:]) != (resolution, resolution):
        raise ShapeError(f"target has shape {list(target.shape)}, expected images at {resolution}x{resolution}")
    params = list(G.parameters()) if isinstance(G, torch.nn.Module) else []
    requires_grad = [p.requires_grad for p in params]
    started = time.perf_counter()
    for p in params:
        p.requires_grad_(False)
    try:
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn([target.shape[0], *shape], generator=gen).to(target.device).requires_grad_(True)
        with torch.no_grad():
            prepared = _prepare_target(loss, target.detach(), mask)
            _check_output(G(z), target)
        opt = _make_optimizer(optimizer, [z], lr, (0.9, 0.999), 1e-8)
        history: dict[str, list[torch.Tensor]] = {}
        previous: dict[str, Any] = {}
        for step in range(num_steps):
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, num_steps, lr)
            seen: dict[str, Any] = {}

            def closure(seen=seen) -> torch.Tensor:
                images = G(z)
                terms = dict(loss(images, prepared))
                if latent_reg_weight > 0:
                    terms["latent_reg"] = latent_regularization(z, None)
                    terms["total"] = terms["total"] + latent_reg_weight * terms["latent_reg"]
                opt.zero_grad(set_to_none=True)
                terms["total"].sum().backward()
                seen.setdefault("images", images.detach())
                seen.setdefault("terms", {k: v.detach() for k, v in terms.items()})
                return terms["total"].detach()

            opt.step(closure)
            if isinstance(opt, BatchLBFGS):
                _keep_accepted(seen, previous, opt.accepted.to(target.device))
            previous = seen
            images, terms = seen["images"], seen["terms"]
            step_psnr = psnr(images, target)
            for k, v in {**terms, "psnr": step_psnr}.items():
                history.setdefault(k, []).append(v.cpu())
            if callback is not None:
                callback(ProjectionStep(step + 1, num_steps, terms, step_psnr, images))
        with torch.no_grad():
            final = G(z.detach())
            final_terms = {k: v.cpu() for k, v in loss(final, prepared).items()}
            final_psnr = psnr(final, target).cpu()
    finally:
        for p, rg in zip(params, requires_grad, strict=True):
            p.requires_grad_(rg)
    seconds = time.perf_counter() - started
    metrics = [
        {**{f"loss_{k}": float(v[i]) for k, v in final_terms.items()}, "psnr": float(final_psnr[i]), "seconds": seconds}
        for i in range(target.shape[0])
    ]
    return GenericProjectionResult(
        z=z.detach().clone(),
        images=final,
        history={k: torch.stack(v) for k, v in history.items()},
        metrics=metrics,
        settings=dict(
            num_steps=num_steps,
            lr=lr,
            optimizer=optimizer,
            latent_reg_weight=latent_reg_weight,
            seed=seed,
            z_shape=shape,
        ),
    )


def _check_output(images: torch.Tensor, target: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.shape != target.shape:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ShapeError(f"generator output is {got}, expected {tuple(target.shape)} like the target")
