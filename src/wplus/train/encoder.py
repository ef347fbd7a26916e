"""Training our own W+ encoder (:mod:`wplus.models.encoder`) on the generator's own samples.

Every pair is ``(G(ws), ws)``: ``ws`` comes from the mapping network with style mixing (two codes crossed over at a
random row, so W+ codes that no single w gives are covered) and mild truncation variety (half the codes pulled
towards ``w_avg`` by a random psi in ``[psi_min, 1]``), rendered with the generator's constant noise. Rendering is
the expensive part on a CPU, so the pairs live in a replay pool of ``pool_size`` that gets ``fresh`` new pairs per
step (pbaylies' stylegan-encoder trains on such a stream; the pool lets one render serve several steps).

The loss (``docs/encoders.md`` measured the terms):

- the latent loss: MSE of the predicted W+ code in the whitened space ``(ws - w_avg) / w_std`` (``w_std``: the
  per-row, per-channel spread of the training codes), weight ``latent_weight``;
- every ``image_every`` steps, on ``image_batch`` of the pairs: the pixel MSE of ``G(encoder(x))`` against ``x``
  (``pixel_weight``) and a perceptual loss (``perceptual_weight`` times the recipe's image loss,
  :func:`wplus.default_loss`: VGG-16, or offline the model's discriminator features);
- with ``real`` images (``wplus encoder train --images DIR``): reconstruction-only batches (pixel + perceptual), as
  often as the image terms.

Everything random comes from ``seed`` and the step, and the state file (weights, AdamW moments, the step, the
history) is pickle-free safetensors: killing a run and starting it again continues from the last state.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wplus.errors import ConfigError
from wplus.metrics import psnr
from wplus.models.encoder import EncoderConfig, WEncoder
from wplus.precision import PRECISIONS, autocast, resolve_precision

__all__ = ["EncoderTrainSettings", "EncoderTrainResult", "sample_pairs", "train_encoder", "code_spread"]

log = logging.getLogger(__name__)

STATE_ARCH = "wplus_encoder_train_state"
# Settings a resumed run may change: its length (the learning-rate schedule follows the new one), the reporting,
# and the replay pool (a cache of renders, rebuilt on resume).
VOLATILE = ("steps", "eval_every", "checkpoint_every", "pool_size", "fresh")


@dataclass(frozen=True)
class EncoderTrainSettings:
    """How an encoder is trained (recorded in its state file and in the encoder's header).

    Args:
        steps: Optimiser steps.
        batch_size: Pairs per step for the latent loss.
        lr: Peak AdamW learning rate (5 % warm-up, constant, cosine decay over the last 30 %).
        weight_decay: AdamW weight decay.
        seed: Seeds the weights, the sampled codes and the batch order.
        mix_prob: Fraction of codes made by style mixing.
        psi_min: Half the codes get a truncation psi drawn from ``[psi_min, 1]``; 1 switches truncation off.
        latent_weight, pixel_weight, perceptual_weight: Loss weights (see the module docstring).
        image_batch: Pairs (and real images) per image-loss batch.
        image_every: Steps between image-loss batches (1: every step).
        pool_size: Pairs in the replay pool (0: every batch freshly rendered).
        fresh: New pairs rendered per step once the pool is full.
        eval_every: Steps between evaluations (validation latent loss and PSNR) and sample grids.
        checkpoint_every: Steps between state writes.
        precision: 'fp32', 'bf16' or 'auto' (:mod:`wplus.precision`): each step's forward pass (encoder, renders of
            its codes, losses) under bf16 autocast; the weights, AdamW's state, the training pairs and the
            evaluations stay fp32. Resolved against the device once; a resumed run must resolve to the same.
    """

    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    mix_prob: float = 0.5
    psi_min: float = 0.7
    latent_weight: float = 1.0
    pixel_weight: float = 1.0
    perceptual_weight: float = 0.1
    image_batch: int = 8
    image_every: int = 1
    pool_size: int = 2048
    fresh: int = 8
    eval_every: int = 250
    checkpoint_every: int = 250
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"got precision {self.precision!r}, expected one of {', '.join(PRECISIONS)}")
        ints = ("steps", "batch_size", "image_batch", "image_every", "eval_every", "checkpoint_every", "fresh")
        for name in ints:
            if getattr(self, name) < 1:
                raise ConfigError(f"EncoderTrainSettings.{name} must be >= 1, got {getattr(self, name)}")
        if self.pool_size < 0:
            raise ConfigError(f"EncoderTrainSettings.pool_size must be >= 0, got {self.pool_size}")
        if 0 < self.pool_size < self.batch_size:
            raise ConfigError(f"pool_size={self.pool_size} is smaller than batch_size={self.batch_size}")
        if not (self.lr > 0 and 0 <= self.mix_prob <= 1 and 0 < self.psi_min <= 1):
            raise ConfigError(
                f"got lr={self.lr}, mix_prob={self.mix_prob}, psi_min={self.psi_min}; "
                "expected lr > 0, mix_prob in [0, 1], psi_min in (0, 1]"
            )
        weights = (self.latent_weight, self.pixel_weight, self.perceptual_weight, self.weight_decay)
        if any(not (math.isfinite(w) and w >= 0) for w in weights):
            raise ConfigError(f"loss weights and weight_decay must be finite and >= 0, got {weights}")

    @property
    def uses_images(self) -> bool:
        return self.pixel_weight > 0 or self.perceptual_weight > 0


@dataclass
class EncoderTrainResult:
    encoder: WEncoder
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)


def sample_pairs(
    G: torch.nn.Module, n: int, generator: torch.Generator, *, mix_prob: float = 0.5, psi_min: float = 0.7
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training codes ``[n, num_ws, w_dim]`` (style mixing, truncation variety) and their renders
    ``[n, 3, R, R]`` (constant noise), without gradients."""
    device = G.mapping.w_avg.device
    with torch.no_grad():
        z = torch.randn(2 * n, G.z_dim, generator=generator).to(device)
        w = G.mapping(z, None)  # [2n, num_ws, w_dim]
        w1, w2 = w[:n], w[n:]
        num_ws = w.shape[1]
        cut = torch.randint(1, max(2, num_ws), (n,), generator=generator)
        mixed = torch.rand(n, generator=generator) < mix_prob
        rows = torch.arange(num_ws)[None, :]
        take2 = (mixed[:, None] & (rows >= cut[:, None])).to(device)  # [n, num_ws]
        ws = torch.where(take2[..., None], w2, w1)
        truncated = torch.rand(n, generator=generator) < 0.5
        psi = torch.where(truncated, psi_min + (1 - psi_min) * torch.rand(n, generator=generator), torch.ones(n))
        ws = G.mapping.w_avg.lerp(ws, psi.to(device)[:, None, None])
        images = G.synthesis(ws, noise_mode="const").clamp(-1, 1)
    return ws, images


def code_spread(G: torch.nn.Module, *, seed: int, mix_prob: float, psi_min: float, n: int = 4096) -> torch.Tensor:
    """Per-row, per-channel standard deviation ``[num_ws, w_dim]`` of the training codes around ``w_avg``."""
    g = torch.Generator().manual_seed(seed * 7919 + 17)
    with torch.no_grad():
        z = torch.randn(n, G.z_dim, generator=g).to(G.mapping.w_avg.device)
        w = G.mapping(z, None)[:, 0]  # [n, w_dim]; rows are identical before mixing and truncation
    std = (w - G.mapping.w_avg).square().mean(0).sqrt()  # around w_avg, not the sample mean
    return std.clamp_min(1e-3 * float(std.mean()))[None].repeat(G.num_ws, 1)


def _lr_at(step: int, steps: int, lr: float) -> float:
    warmup, decay_from = max(1, steps // 20), int(0.7 * steps)
    if step < warmup:
        return lr * (step + 1) / warmup
    if step < decay_from:
        return lr
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - decay_from) / max(1, steps - decay_from))))


@torch.no_grad()
def evaluate_encoder(
    encoder: WEncoder, G: torch.nn.Module, val_ws: torch.Tensor, val_images: torch.Tensor, real: torch.Tensor | None
) -> tuple[dict[str, float], torch.Tensor, torch.Tensor | None]:
    """Whitened latent MSE and median PSNR of ``G(encoder(x))`` on the validation pairs (and on ``real``)."""
    was_training = encoder.training
    encoder.eval()
    delta = encoder(val_images)
    target = (val_ws - encoder.w_avg) / encoder.w_std
    recon = G.synthesis(encoder.to_ws(delta), noise_mode="const")
    out = {"val_latent": float(F.mse_loss(delta, target)), "val_psnr": float(psnr(recon, val_images).median())}
    real_recon = None
    if real is not None and len(real):
        real_recon = G.synthesis(encoder.encode(real), noise_mode="const")
        out["real_psnr"] = float(psnr(real_recon, real).median())
    encoder.train(was_training)
    return out, recon, real_recon


def train_encoder(
    G: torch.nn.Module,
    *,
    settings: EncoderTrainSettings | None = None,
    config: EncoderConfig | None = None,
    loss: torch.nn.Module | None = None,
    real: torch.Tensor | None = None,
    real_eval: torch.Tensor | None = None,
    init: WEncoder | None = None,
    device: str | torch.device = "cpu",
    state_path: str | Path | None = None,
    callback: Callable[[int, int, dict[str, float]], None] | None = None,
    on_eval: Callable[[int, WEncoder, dict[str, float], list[torch.Tensor]], None] | None = None,
    val_size: int = 64,
) -> EncoderTrainResult:
    """Train an encoder for ``G`` on its own samples (and reconstruction-only batches of ``real`` images).

    Args:
        G: The generator (frozen; its ``mapping``, ``synthesis``, ``w_avg``, ``num_ws``, ``w_dim``).
        settings: The recipe (:class:`EncoderTrainSettings`).
        config: The network's shape; its ``num_ws``/``w_dim`` must match ``G`` (default: ``EncoderConfig`` for G).
        loss: The perceptual image loss (an :class:`~wplus.losses.ImageLoss`); needed when
            ``settings.perceptual_weight > 0``.
        real: Real images ``[N, 3, R, R]`` in [-1, 1] for reconstruction-only batches.
        real_eval: Real images whose reconstruction PSNR each evaluation reports (e.g. held-out ones).
        init: An encoder of the same config to start from (fine-tuning: another loss, or a folder of real images);
            its ``w_avg`` and ``w_std`` are kept.
        device: Where to train.
        state_path: A training-state file: resumed from when it exists, written every ``checkpoint_every`` steps.
        callback: ``callback(step, steps, losses)`` after each step.
        on_eval: ``on_eval(step, encoder, metrics, [inputs, recons, real, real_recons])`` after each evaluation.
        val_size: Validation pairs (drawn from a seed of their own).

    Returns:
        The encoder (eval mode), final metrics, the per-step loss history and the evaluations.

    Raises:
        ConfigError: a config for another W+ shape, a perceptual weight without a loss, a state of another run.
    """
    settings = settings or EncoderTrainSettings()
    device = torch.device(device)
    G = G.to(device).eval().requires_grad_(False)
    config = config or EncoderConfig(num_ws=G.num_ws, w_dim=G.w_dim)
    if (config.num_ws, config.w_dim) != (G.num_ws, G.w_dim):
        raise ConfigError(
            f"encoder config is for W+ [{config.num_ws}, {config.w_dim}], the generator's is [{G.num_ws}, {G.w_dim}]"
        )
    if settings.perceptual_weight > 0 and loss is None:
        raise ConfigError("perceptual_weight > 0 needs an image loss (wplus.default_loss(G)); pass loss=")
    precision = resolve_precision(settings.precision, device)  # bf16 where it would be emulated: one line
    s = settings = replace(settings, precision=precision)  # what runs ('auto' resolved), as the state records it
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        encoder = WEncoder(config).to(device)
    encoder.w_avg.copy_(G.mapping.w_avg)
    encoder.w_std.copy_(code_spread(G, seed=s.seed, mix_prob=s.mix_prob, psi_min=s.psi_min))
    if init is not None:
        if init.config != config:
            raise ConfigError(f"init encoder has config {init.config}, this run builds {config}")
        encoder.load_state_dict(init.state_dict(), strict=True)
    opt = torch.optim.AdamW(encoder.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    run = {k: v for k, v in asdict(s).items() if k not in VOLATILE}
    if precision == "fp32":  # not recorded: the states of runs from before the setting existed still resume
        del run["precision"]
    run["config"] = config.to_dict()
    if init is not None:  # which start: a digest of its weights
        run["init"] = _digest(init)
    start, history, evals, seconds = 0, [], [], 0.0
    if state_path is not None and Path(state_path).is_file():
        start, history, evals, seconds = _load_state(Path(state_path), encoder, opt, run)
        log.info("resumed from %s at step %d", state_path, start)
    val_ws, val_images = sample_pairs(
        G, val_size, torch.Generator().manual_seed(10_000_019 + s.seed), mix_prob=s.mix_prob, psi_min=s.psi_min
    )
    real = real.to(device) if real is not None and len(real) else None
    real_eval = real_eval.to(device) if real_eval is not None and len(real_eval) else None

    # The replay pool is rebuilt on resume (it is a cache of renders, not state worth gigabytes on disk).
    pool_ws = pool_img = None
    if s.pool_size:
        log.info("rendering a pool of %d pairs", s.pool_size)
        pool_ws, pool_img = sample_pairs(
            G, s.pool_size, torch.Generator().manual_seed(s.seed * 1_000_003 + start + 5), mix_prob=s.mix_prob,
            psi_min=s.psi_min,
        )  # fmt: skip
        pool_img = pool_img.half()

    encoder.train()
    t_last = time.perf_counter()
    for step in range(start, s.steps):
        g = torch.Generator().manual_seed(s.seed * 1_000_003 + step)
        if pool_ws is not None and pool_img is not None:
            new_ws, new_img = sample_pairs(G, s.fresh, g, mix_prob=s.mix_prob, psi_min=s.psi_min)
            slots = torch.randint(s.pool_size, (s.fresh,), generator=g).to(device)
            pool_ws[slots], pool_img[slots] = new_ws, new_img.half()
            idx = torch.randint(s.pool_size, (s.batch_size,), generator=g).to(device)
            ws, images = pool_ws[idx], pool_img[idx].float()
        else:
            ws, images = sample_pairs(G, s.batch_size, g, mix_prob=s.mix_prob, psi_min=s.psi_min)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, s.steps, s.lr)
        with autocast(precision, device):  # bf16: the forward pass; weights and AdamW's state stay fp32
            delta = encoder(images)
            target = (ws - encoder.w_avg) / encoder.w_std
            latent = F.mse_loss(delta.float(), target)
            total = s.latent_weight * latent
            parts = {"latent": float(latent.detach())}
            if s.uses_images and step % s.image_every == 0:
                k = min(s.image_batch, s.batch_size)
                img_loss, pix = _image_loss(G, encoder, delta[:k], images[:k], loss, s)
                total = total + img_loss
                parts["pixel"] = pix
                if real is not None:
                    ridx = torch.randint(len(real), (s.image_batch,), generator=g).to(device)
                    r_loss, r_pix = _image_loss(G, encoder, encoder(real[ridx]), real[ridx], loss, s)
                    total = total + r_loss
                    parts["real_pixel"] = r_pix
            total = total.float()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        parts["total"] = float(total.detach())
        history.append({"step": step, **{k: round(v, 6) for k, v in parts.items()}})
        if callback is not None:
            callback(step, s.steps, parts)
        done = step + 1
        now = time.perf_counter()
        seconds += now - t_last
        t_last = now
        if done % s.eval_every == 0 or done == s.steps:
            m, recon, real_recon = evaluate_encoder(encoder, G, val_ws, val_images, real_eval)
            m = {"step": done, "seconds": round(seconds, 1), **{k: round(v, 4) for k, v in m.items()}}
            evals.append(m)
            log.info("step %d: %s", done, m)
            if on_eval is not None:
                on_eval(
                    done, encoder, m, [val_images, recon, *([real_eval, real_recon] if real_eval is not None else [])]
                )
            t_last = time.perf_counter()  # evaluation and grids do not count as training time
        if state_path is not None and (done % s.checkpoint_every == 0 or done == s.steps):
            _save_state(Path(state_path), encoder, opt, run, done, history, evals, seconds)
            t_last = time.perf_counter()
    encoder.eval()
    metrics = dict(evals[-1]) if evals else {}
    return EncoderTrainResult(encoder=encoder, metrics=metrics, history=history, evals=evals)


def _digest(module: torch.nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _image_loss(
    G: torch.nn.Module,
    encoder: WEncoder,
    delta: torch.Tensor,
    images: torch.Tensor,
    loss: torch.nn.Module | None,
    s: EncoderTrainSettings,
) -> tuple[torch.Tensor, float]:
    """Pixel MSE + perceptual loss of ``G(w_avg + w_std * delta)`` against ``images``; (loss, pixel MSE)."""
    recon = G.synthesis(encoder.to_ws(delta.float()), noise_mode="const")
    mse = F.mse_loss(recon.float(), images)
    total = s.pixel_weight * mse
    if s.perceptual_weight > 0 and loss is not None:
        total = total + s.perceptual_weight * loss(recon, loss.prepare_target(images))["total"].mean()
    return total, float(mse.detach())


# --------------------------------------------------------------------------------------------------------------------
# Resumable state: weights, AdamW moments, the step and the history, in our safetensors format (no pickle).


def _save_state(
    path: Path,
    encoder: WEncoder,
    opt: torch.optim.Optimizer,
    run: dict[str, Any],
    step: int,
    history: list,
    evals: list,
    seconds: float,
) -> None:
    from wplus.io.checkpoint import training_tensors, write_checkpoint

    tensors, groups = training_tensors(encoder, opt)
    meta = {"run": run, "step": step, "param_groups": groups, "history": history, "evals": evals, "seconds": seconds}
    write_checkpoint(path, tensors, arch=STATE_ARCH, metadata=meta)


def _load_state(
    path: Path, encoder: WEncoder, opt: torch.optim.Optimizer, run: dict[str, Any]
) -> tuple[int, list, list, float]:
    from wplus.io.checkpoint import json_field, read_metadata, restore_training

    meta = read_metadata(path, arch=STATE_ARCH, what="an encoder training state written by `wplus encoder train`")
    stored_run = json_field(path, meta, "run")
    if isinstance(stored_run, dict):
        stored_run = {k: v for k, v in stored_run.items() if k not in VOLATILE}
    if stored_run != run:
        diff = sorted(k for k in set(run) | set(stored_run) if run.get(k) != stored_run.get(k))
        raise ConfigError(f"{path}: a state of another run (differs in {', '.join(diff)}); use another --outdir")
    restore_training(path, meta, encoder, opt, "encoder")
    history = json_field(path, meta, "history")
    evals = json_field(path, meta, "evals")
    return int(json.loads(meta["step"])), history, evals, float(json.loads(meta["seconds"]))
