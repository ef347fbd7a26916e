"""Embedding images into a generator's latent space by optimisation (Image2StyleGAN, Abdal et al., ICCV 2019).

Section 3.3 / 5 of the paper: start from the mean w (or U[-1, 1]), minimise the VGG-16 perceptual loss plus pixel
MSE with Adam (lr 0.01, betas 0.9/0.999, eps 1e-8) for a number of steps, noise inputs held constant. The latent is
one w per layer (W+), one w shared by all layers (W) or a z in front of the mapping network (Z).

A batch of targets is optimised together with independent latents: the loss is a sum of per-image terms and Adam
updates every element on its own, so each image follows the same trajectory it would alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch

from wplus.errors import ConfigError, ShapeError
from wplus.metrics import psnr, ssim

Space = Literal["w+", "w", "z"]
Init = Literal["mean", "random"]

log = logging.getLogger(__name__)

__all__ = ["project", "ProjectionResult", "ProjectionStep", "Space", "Init", "latent_to_ws"]


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
    settings: dict[str, Any] = field(default_factory=dict)


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


def resolve_w_avg(G: torch.nn.Module, num_samples: int = 10_000, seed: int = 123) -> torch.Tensor:
    """``G.w_avg`` when the checkpoint carries one, else the mean of ``num_samples`` mapped z (NVIDIA uses 10k)."""
    w_avg = G.w_avg.detach()
    if torch.count_nonzero(w_avg) > 0 and torch.isfinite(w_avg).all():
        return w_avg.clone()
    log.info("checkpoint has no w_avg; estimating it from %d mapped samples", num_samples)
    return G.mean_w(max(num_samples, 10_000), seed=seed)


def project(
    G: torch.nn.Module,
    target: torch.Tensor,
    *,
    loss: ProjectionLoss,
    space: Space = "w+",
    init: Init = "mean",
    num_steps: int = 1000,
    lr: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    seed: int = 0,
    w_avg_samples: int = 10_000,
    callback: Callable[[ProjectionStep], None] | None = None,
) -> ProjectionResult:
    """Embed target images into ``G``'s latent space (Image2StyleGAN).

    Args:
        G: a generator with ``mapping``, ``synthesis``, ``num_ws``, ``w_dim``, ``z_dim``, ``w_avg`` (our StyleGAN2
            or StyleGAN module). It is not modified; its parameters are frozen during the run.
        target: [B, C, R, R] images in [-1, 1] at the generator's resolution, on G's device.
        loss: the objective, e.g. ``wplus.losses.PerceptualLoss(load_vgg16())`` (the paper's VGG + MSE loss).
        space: 'w+' (one w per layer), 'w' (one w for all layers) or 'z'.
        init: 'mean' (w_avg; paper default) or 'random' (U[-1, 1], paper 5.1).
        num_steps: Adam steps (the paper uses 5000; faces converge around 1000).
        lr, betas, eps: Adam settings (paper: 0.01, (0.9, 0.999), 1e-8).
        seed: seeds the random initialisation; runs are deterministic for a given seed on CPU.
        w_avg_samples: samples used to estimate w_avg when the checkpoint has none (at least 10k).
        callback: called after each step with a :class:`ProjectionStep`.

    Returns:
        A :class:`ProjectionResult`; noise is the constant noise the generator used (held fixed).

    Raises:
        ShapeError: target does not match the generator's channels/resolution.
        ConfigError: unknown space or init, or num_steps < 0.
    """
    if space not in ("w+", "w", "z"):
        raise ConfigError(f"space must be 'w+', 'w' or 'z', got {space!r}")
    if init not in ("mean", "random"):
        raise ConfigError(f"init must be 'mean' or 'random', got {init!r}")
    if num_steps < 0:
        raise ConfigError(f"num_steps must be >= 0, got {num_steps}")
    want = [G.img_channels, G.img_resolution, G.img_resolution]
    if target.ndim != 4 or list(target.shape[1:]) != want:
        raise ShapeError(
            f"target has shape {list(target.shape)}, expected [B, {want[0]}, {want[1]}, {want[2]}] "
            f"(images in [-1, 1] at the generator's resolution)"
        )
    if space == "z" and getattr(G, "c_dim", 0):
        raise ConfigError("Z-space projection of a conditional generator is not supported; use 'w' or 'w+'")

    device = target.device
    batch = target.shape[0]
    started = time.perf_counter()
    requires_grad = [p.requires_grad for p in G.parameters()]
    G.requires_grad_(False)  # frozen weights: the backward pass computes activation gradients only
    try:
        gen = torch.Generator().manual_seed(seed)
        w_avg = resolve_w_avg(G, w_avg_samples)
        latent = _initial_latent(G, batch, space, init, w_avg, gen, device).requires_grad_(True)
        optimizer = torch.optim.Adam([latent], lr=lr, betas=betas, eps=eps)
        target = target.detach()
        with torch.no_grad():
            prepared = loss.prepare_target(target)

        history: dict[str, list[torch.Tensor]] = {}
        for step in range(num_steps):
            images = G.synthesis(latent_to_ws(G, latent, space), noise_mode="const")
            terms = loss(images, prepared)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].sum().backward()
            optimizer.step()
            detached = {k: v.detach() for k, v in terms.items()}
            step_psnr = psnr(images, target)
            for k, v in detached.items():
                history.setdefault(k, []).append(v.cpu())
            history.setdefault("psnr", []).append(step_psnr.cpu())
            if callback is not None:
                callback(ProjectionStep(step + 1, num_steps, detached, step_psnr, images.detach()))

        with torch.no_grad():
            ws = latent_to_ws(G, latent.detach(), space).clone()
            final = G.synthesis(ws, noise_mode="const")
            final_terms = {k: v.detach().cpu() for k, v in loss(final, prepared).items()}
            final_psnr, final_ssim = psnr(final, target).cpu(), ssim(final, target).cpu()
            w_dist = (ws - w_avg.to(device)).flatten(1).norm(dim=1).cpu()
    finally:
        for p, rg in zip(G.parameters(), requires_grad, strict=True):
            p.requires_grad_(rg)

    seconds = time.perf_counter() - started
    metrics = []
    for i in range(batch):
        m = {f"loss_{k}": float(v[i]) for k, v in final_terms.items()}
        m.update(
            psnr=float(final_psnr[i]),
            ssim=float(final_ssim[i]),
            w_dist_from_avg=float(w_dist[i]),
            steps=num_steps,
            seconds=seconds,
        )
        metrics.append(m)
    return ProjectionResult(
        ws=ws,
        space=space,
        noise=G.noise_maps() if hasattr(G, "noise_maps") else [],
        images=final,
        history={k: torch.stack(v) for k, v in history.items()},
        metrics=metrics,
        z=latent.detach().clone() if space == "z" else None,
        settings=dict(space=space, init=init, num_steps=num_steps, lr=lr, betas=list(betas), eps=eps, seed=seed),
    )
