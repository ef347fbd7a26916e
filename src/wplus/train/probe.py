"""Training the attribute probe (:mod:`wplus.models.attribute_probe`) on drawn cartoon faces with exact labels.

A pool of ``images`` faces is drawn once from training seeds ``0 .. images-1`` (all below
:data:`~wplus.data.faces.HELD_OUT_SEED_BASE`); every step takes a random batch from it and degrades each image
afresh: a Gaussian blur of random width and a little pixel noise, because the generator's renders are softer and
noisier than the anti-aliased drawings and the probe must read both. Evaluation draws faces from held-out seeds
(``>= HELD_OUT_SEED_BASE``), clean and degraded: accuracy for the class heads, R^2 and mean absolute error (in
natural units) for the regressions.

Everything random comes from ``seed``: the batch order and the degradations of step ``t`` come from a generator
seeded with ``(seed, t)``, so a run resumed from its state file (``state_path``) continues exactly as an unbroken
one would.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wplus.data.faces import HELD_OUT_SEED_BASE, draw_face, sample_attributes
from wplus.errors import ConfigError
from wplus.models.attribute_probe import HAIR_COLOUR, AttributeProbe, ProbeConfig, face_targets

__all__ = [
    "FacePool",
    "ProbeTrainResult",
    "draw_pool",
    "degrade",
    "probe_loss",
    "evaluate_probe",
    "train_probe",
]

log = logging.getLogger(__name__)

STATE_ARCH = "attribute_probe_train_state"
MAX_BLUR_SIGMA = 1.2  # pixels at 64 px: a soft GAN render, short of washing out the brows (1-2 px thick)
MAX_NOISE_STD = 0.05  # in the [-1, 1] range


@dataclass
class FacePool:
    """Drawn faces and their labels: images uint8 ``[N, 3, 64, 64]``, reg float ``[N, R]``, cls long ``[N, C]``."""

    seeds: list[int]
    images: torch.Tensor
    reg: torch.Tensor
    cls: torch.Tensor

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] (float), regression labels, class labels for the rows ``idx``."""
        return self.images[idx].float() / 127.5 - 1, self.reg[idx], self.cls[idx]


@dataclass
class ProbeTrainResult:
    probe: AttributeProbe
    metrics: dict[str, Any]
    history: list[tuple[int, float]] = field(default_factory=list)


def draw_pool(seeds: Sequence[int], config: ProbeConfig) -> FacePool:
    """Draw the faces of ``seeds`` at the probe's side and read their labels in the probe's output order."""
    imgs, regs, clss = [], [], []
    for s in seeds:
        attrs = sample_attributes(int(s))
        imgs.append(np.asarray(draw_face(attrs, size=config.resolution)))
        reg, cls = face_targets(attrs, config)
        regs.append(reg)
        clss.append(cls)
    n, r, c = len(imgs), len(config.regression), len(config.classes)
    images = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous() if n else torch.zeros(0, 3, 64, 64)
    return FacePool(
        seeds=[int(s) for s in seeds],
        images=images.to(torch.uint8),
        reg=torch.tensor(regs, dtype=torch.float32).reshape(n, r),
        cls=torch.tensor(clss, dtype=torch.long).reshape(n, c),
    )


def degrade(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur each image by a random sigma in [0, MAX_BLUR_SIGMA] px and add noise of random std in [0, MAX_NOISE_STD].

    Shape: ``[B, 3, H, W]`` in [-1, 1] -> same, clamped to [-1, 1].
    """
    b = x.shape[0]
    sigma = torch.rand(b, generator=generator) * MAX_BLUR_SIGMA
    noise_std = torch.rand(b, generator=generator) * MAX_NOISE_STD
    noise = torch.randn(x.shape, generator=generator)
    # One separable 5-tap Gaussian per image, applied as a grouped convolution over [1, B*3, H, W].
    t = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma.clamp_min(1e-3)[:, None] ** 2))  # [B, 5]; sigma ~ 0 -> a delta
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(3, 0)  # [B*3, 5]
    y = F.pad(x.reshape(1, b * 3, *x.shape[-2:]), (2, 2, 2, 2), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=b * 3)
    y = F.conv2d(y, k[:, None, :, None], groups=b * 3).reshape(x.shape)
    return (y + noise * noise_std[:, None, None, None]).clamp(-1, 1)


def probe_loss(
    probe: AttributeProbe, out: torch.Tensor, reg: torch.Tensor, cls: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean squared error of the normalised regressions plus the cross-entropy of each class head.

    Hair colour counts only where the face has hair (hair_style > 0): on a bald face it shows on the brows alone.
    """
    cfg = probe.config
    pred, logits = probe.split(out)
    target = (reg - probe.reg_mean) / probe.reg_std
    weight = torch.ones_like(target)
    if "hair_style" in cfg.classes:
        bald = cls[:, cfg.classes.index("hair_style")] == 0
        for name in HAIR_COLOUR:
            if name in cfg.regression:
                weight[bald, cfg.regression.index(name)] = 0
    mse = ((pred - target) ** 2 * weight).sum() / weight.sum().clamp_min(1)
    parts = {"mse": float(mse.detach())}
    loss = mse
    for i, name in enumerate(cfg.classes):
        ce = F.cross_entropy(logits[name], cls[:, i])
        parts[name] = float(ce.detach())
        loss = loss + ce
    return loss, parts


@torch.no_grad()
def evaluate_probe(
    probe: AttributeProbe, pool: FacePool, *, generator: torch.Generator | None = None
) -> dict[str, Any]:
    """Accuracy of each class head, R^2 and mean absolute error of each regression on ``pool``.

    With a ``generator`` the images are degraded first (:func:`degrade`). Hair colour is scored on faces with hair.
    """
    cfg = probe.config
    was_training = probe.training
    probe.eval()
    device = probe.head.weight.device
    outs = []
    for i in range(0, len(pool.seeds), 256):
        x, _, _ = pool.batch(torch.arange(i, min(i + 256, len(pool.seeds))))
        if generator is not None:
            x = degrade(x, generator)
        outs.append(probe(x.to(device)).cpu())
    probe.train(was_training)
    reg_n, logits = probe.split(torch.cat(outs))
    pred = reg_n * probe.reg_std.cpu() + probe.reg_mean.cpu()
    metrics: dict[str, Any] = {"images": len(pool.seeds)}
    has_hair = pool.cls[:, cfg.classes.index("hair_style")] > 0 if "hair_style" in cfg.classes else None
    for j, name in enumerate(cfg.regression):
        keep = has_hair if (name in HAIR_COLOUR and has_hair is not None) else torch.ones(len(pred), dtype=torch.bool)
        y, p = pool.reg[keep, j], pred[keep, j]
        var = float(((y - y.mean()) ** 2).mean())
        r2 = 1 - float(((p - y) ** 2).mean()) / var if var > 0 else float("nan")
        metrics[name] = {"r2": round(r2, 4), "mae": float(f"{float((p - y).abs().mean()):.4g}")}
    for i, name in enumerate(cfg.classes):
        acc = float((logits[name].argmax(1) == pool.cls[:, i]).float().mean())
        metrics[name] = {"accuracy": round(acc, 4)}
    return metrics


def _cosine_lr(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_probe(
    *,
    images: int = 20_000,
    steps: int = 3000,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    eval_images: int = 1000,
    config: ProbeConfig | None = None,
    device: str | torch.device = "cpu",
    state_path: str | Path | None = None,
    checkpoint_every: int = 250,
    callback: Callable[[int, int, float], None] | None = None,
) -> ProbeTrainResult:
    """Train a probe on ``images`` drawn faces for ``steps`` AdamW steps; evaluate on ``eval_images`` held-out faces.

    Args:
        images: Faces in the training pool (seeds 0 .. images-1).
        steps: Optimiser steps (cosine learning-rate decay, 5 % warm-up).
        batch_size: Faces per step.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        seed: Seeds the weights, the batch order and the degradations.
        eval_images: Held-out faces (seeds from HELD_OUT_SEED_BASE) for the final metrics; 0 skips evaluation.
        config: The network's shape (its reg_mean / reg_std are replaced by the pool's).
        device: Where to train.
        state_path: A training-state file: resumed from when it exists, written every ``checkpoint_every`` steps.
        checkpoint_every: Steps between state writes.
        callback: Called as ``callback(step, steps, loss)`` after each step.

    Returns:
        The trained probe (eval mode), its metrics (``{"clean": ..., "degraded": ...}``) and the loss history.

    Raises:
        ConfigError: Non-positive sizes, a pool larger than the training seed range, a state file of another run.
    """
    if images < 2 or steps < 1 or batch_size < 1 or eval_images < 0 or not lr > 0:
        raise ConfigError(
            f"got images={images}, steps={steps}, batch_size={batch_size}, eval_images={eval_images}, lr={lr}; "
            "expected images >= 2, steps >= 1, batch_size >= 1, eval_images >= 0, lr > 0"
        )
    if images > HELD_OUT_SEED_BASE:
        raise ConfigError(f"got images={images}; training seeds stop below the held-out base {HELD_OUT_SEED_BASE}")
    device = torch.device(device)
    config = config or ProbeConfig()
    log.info("drawing %d training faces", images)
    pool = draw_pool(range(images), config)
    mean, std = pool.reg.mean(0), pool.reg.std(0).clamp_min(1e-6)
    config = replace(config, reg_mean=tuple(float(m) for m in mean), reg_std=tuple(float(s) for s in std))
    with torch.random.fork_rng(devices=[]):  # seed the initial weights without touching the caller's global RNG
        torch.manual_seed(seed)
        probe = AttributeProbe(config).to(device)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    run = {"images": images, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}
    start, history = 0, []
    if state_path is not None and Path(state_path).is_file():
        start, history = _load_state(Path(state_path), probe, opt, run)
        log.info("resumed from %s at step %d", state_path, start)
    warmup = max(1, steps // 20)
    probe.train()
    for step in range(start, steps):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(len(pool.seeds), (batch_size,), generator=g)
        x, reg, cls = pool.batch(idx)
        x = degrade(x, g)
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, steps, lr, warmup)
        loss, _ = probe_loss(probe, probe(x.to(device)), reg.to(device), cls.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        history.append((step, value))
        if callback is not None:
            callback(step, steps, value)
        done = step + 1
        if state_path is not None and (done % checkpoint_every == 0 or done == steps):
            _save_state(Path(state_path), probe, opt, run, done, history)
    probe.eval()
    metrics: dict[str, Any] = {}
    if eval_images:
        log.info("evaluating on %d held-out faces", eval_images)
        held_out = draw_pool(range(HELD_OUT_SEED_BASE, HELD_OUT_SEED_BASE + eval_images), config)
        metrics["clean"] = evaluate_probe(probe, held_out)
        metrics["degraded"] = evaluate_probe(probe, held_out, generator=torch.Generator().manual_seed(seed))
    return ProbeTrainResult(probe=probe, metrics=metrics, history=history)


# --------------------------------------------------------------------------------------------------------------------
# Resumable state: weights, AdamW moments and the step, in our safetensors format (no pickle).


def _save_state(
    path: Path, probe: AttributeProbe, opt: torch.optim.Optimizer, run: dict[str, Any], step: int, history: list
) -> None:
    from wplus.io.checkpoint import training_tensors, write_checkpoint

    tensors, groups = training_tensors(probe, opt)
    meta = {"config": probe.config.to_dict(), "run": run, "step": step, "param_groups": groups, "history": history}
    write_checkpoint(path, tensors, arch=STATE_ARCH, metadata=meta)


def _load_state(
    path: Path, probe: AttributeProbe, opt: torch.optim.Optimizer, run: dict[str, Any]
) -> tuple[int, list[tuple[int, float]]]:
    from wplus.io.checkpoint import json_field, read_metadata, restore_training

    meta = read_metadata(path, arch=STATE_ARCH, what="a probe training state written by `wplus probe train`")
    stored_run = json_field(path, meta, "run")
    if stored_run != run:
        raise ConfigError(f"{path}: a state of another run ({stored_run}), this run is {run}; use another --outdir")
    restore_training(path, meta, probe, opt, "probe")
    history = [(int(s), float(v)) for s, v in json_field(path, meta, "history")]
    return int(json.loads(meta["step"])), history
