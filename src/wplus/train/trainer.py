"""A compact StyleGAN2 trainer (Karras et al., CVPR 2020) for small datasets, CPU included.

What it does, and the paper facts it relies on:

* Non-saturating logistic loss (Goodfellow et al. 2014): G minimises ``softplus(-D(G(z)))``, D minimises
  ``softplus(D(G(z))) + softplus(-D(x))``.
* R1 regularisation (Mescheder et al. 2018) ``gamma/2 * |grad_x D(x)|^2`` on reals, applied lazily every
  ``r1_interval`` minibatches with its weight multiplied by the interval; D's Adam lr and betas are rescaled by
  ``interval / (interval + 1)`` to compensate (StyleGAN2 appendix B, "lazy regularization").
* Path length regularisation (StyleGAN2 sec. 3.2): ``pl_weight * (|J_w^T y| - a)^2`` with ``y`` Gaussian image
  noise scaled by ``1/sqrt(H*W)``, ``J_w`` the Jacobian of the image with respect to the W+ codes (squared norm
  summed over ``w_dim``, averaged over layers) and ``a`` a moving average of that length (decay ``pl_decay``),
  computed lazily every ``pl_interval`` minibatches on ``batch_size / pl_batch_shrink`` samples; G's Adam is
  rescaled like D's. It pushes a fixed-size step in W to change the image by a similar amount for every w (the
  paper ties it to a smoother, more consistent W); on the shipped model it raised the reconstruction PSNR but did
  not localise the smile direction (docs/demo-model.md).
* Style mixing with probability ``style_mixing_prob`` (StyleGAN sec. 3.1), random per-pixel noise while training,
  ``w_avg`` tracked as a moving average of the mapping output (for truncation and projection).
* An exponential moving average of G's weights (``G_ema``) with half-life ``ema_kimg`` thousand images, ramped up
  at the start (``ema_rampup``); G_ema is the network that is exported.
* Adam with lr 0.002, betas (0, 0.99) for both networks.

Everything needed to resume lives in ``checkpoint.safetensors`` (weights of G, D, G_ema, both optimisers' state and
the RNG state) with the counters and configs as JSON in its header, so resuming needs no pickle. ``G_ema`` is also
exported in wplus's generator format (``G_ema.safetensors``, loadable by ``wplus.load_generator``) and D as
``D.safetensors``. Sample grids of fixed latents go to ``samples/``; losses to ``log.jsonl``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wplus.errors import CheckpointError, ConfigError
from wplus.io.atomic import atomic_write, write_json
from wplus.io.checkpoint import (
    json_field,
    parse_config,
    read_metadata,
    read_tensors,
    save_discriminator,
    save_generator,
    write_checkpoint,
)
from wplus.io.images import IMAGE_SUFFIXES, image_grid, save_image, tensor_to_pil
from wplus.models.stylegan2 import Generator, StyleGAN2Config
from wplus.models.stylegan2_discriminator import Discriminator, DiscriminatorConfig

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainState", "TrainStep", "train", "build_networks", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run (stored in every checkpoint; a resumed run must use the same shapes).

    ``r1_gamma=None`` picks the StyleGAN2-ADA heuristic ``0.0002 * resolution**2 / batch_size``.
    """

    resolution: int = 64
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 2
    g_channel_base: int = 4096
    g_channel_max: int = 128
    d_channel_base: int = 4096
    d_channel_max: int = 128
    batch_size: int = 16
    lr: float = 0.002
    beta1: float = 0.0
    beta2: float = 0.99
    r1_gamma: float | None = None
    r1_interval: int = 16
    ema_kimg: float | None = None  # default: batch_size * 10 / 32, as StyleGAN2-ADA's small-batch setting
    ema_rampup: float | None = 0.05
    style_mixing_prob: float = 0.9
    xflip: bool = True
    seed: int = 0
    pl_weight: float = 2.0
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ConfigError(f"got batch_size={self.batch_size}, expected >= 2 (the minibatch-stddev needs pairs)")
        if self.r1_interval < 1:
            raise ConfigError(f"got r1_interval={self.r1_interval}, expected >= 1")
        if self.pl_interval < 1 or self.pl_batch_shrink < 1:
            raise ConfigError(
                f"got pl_interval={self.pl_interval}, pl_batch_shrink={self.pl_batch_shrink}, expected >= 1"
            )
        if not (math.isfinite(self.pl_weight) and self.pl_weight >= 0 and 0 < self.pl_decay <= 1):
            raise ConfigError(f"got pl_weight={self.pl_weight}, pl_decay={self.pl_decay}; expected >= 0 and (0, 1]")
        if not 0 <= self.style_mixing_prob <= 1:
            raise ConfigError(f"got style_mixing_prob={self.style_mixing_prob}, expected a value in [0, 1]")

    @property
    def gamma(self) -> float:
        return self.r1_gamma if self.r1_gamma is not None else 0.0002 * self.resolution**2 / self.batch_size

    def g_config(self) -> StyleGAN2Config:
        return StyleGAN2Config(
            z_dim=self.z_dim,
            w_dim=self.w_dim,
            img_resolution=self.resolution,
            mapping_layers=self.mapping_layers,
            channel_base=self.g_channel_base,
            channel_max=self.g_channel_max,
        )

    def d_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(
            img_resolution=self.resolution, channel_base=self.d_channel_base, channel_max=self.d_channel_max
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown training config keys {sorted(unknown)}; expected some of {sorted(known)}")
        # Runs recorded before path length regularisation existed were trained without it.
        return cls(**{"pl_weight": 0.0, **d})

    def adam_settings(self, interval: int) -> dict[str, Any]:
        """Adam lr and betas for a network regularised lazily every ``interval`` steps (0: never; appendix B)."""
        ratio = interval / (interval + 1) if interval > 0 else 1.0
        return {"lr": self.lr * ratio, "betas": (self.beta1**ratio, self.beta2**ratio)}

    @property
    def g_reg_interval(self) -> int:
        return self.pl_interval if self.pl_weight > 0 else 0


@dataclass
class TrainState:
    """The networks, optimisers and counters of a run."""

    config: TrainConfig
    G: Generator
    D: Discriminator
    G_ema: Generator
    opt_G: torch.optim.Adam
    opt_D: torch.optim.Adam
    step: int = 0
    nimg: int = 0
    wall_s: float = 0.0  # training time summed over all sessions of the run
    pl_mean: float = 0.0  # moving average of the path lengths

    def set_adam(self) -> None:
        """Put the optimisers' lr and betas in line with ``config`` (after a resume that changed regularisation)."""
        for opt, interval in ((self.opt_G, self.config.g_reg_interval), (self.opt_D, self.config.r1_interval)):
            for group in opt.param_groups:
                group.update(self.config.adam_settings(interval))


@dataclass(frozen=True)
class TrainStep:
    """What the progress callback sees after each minibatch."""

    step: int
    nimg: int
    loss_G: float
    loss_D: float
    r1: float | None
    sec_per_step: float
    pl: float | None = None  # path length penalty, on the steps that compute it


def build_networks(config: TrainConfig, *, device: torch.device | str = "cpu") -> TrainState:
    """Fresh G, D, G_ema and their optimisers, initialised from ``config.seed``."""
    gen = torch.Generator().manual_seed(config.seed)
    G = Generator(config.g_config())
    D = Discriminator(config.d_config())
    with torch.no_grad():
        for net in (G, D):
            for name, t in list(net.named_parameters()) + list(net.named_buffers()):
                if name.endswith(("weight", "const", "noise_const")):
                    lr_mul = G.config.mapping_lr_multiplier if name.startswith("mapping.fc") else 1.0
                    t.copy_(torch.randn(t.shape, generator=gen) / lr_mul)
    G, D = G.to(device).train(), D.to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_G = torch.optim.Adam(G.parameters(), eps=1e-8, **config.adam_settings(config.g_reg_interval))
    opt_D = torch.optim.Adam(D.parameters(), eps=1e-8, **config.adam_settings(config.r1_interval))
    return TrainState(config=config, G=G, D=D, G_ema=G_ema, opt_G=opt_G, opt_D=opt_D)


# --------------------------------------------------------------------------------------------------------------------
# Checkpoints: safetensors + JSON header, no pickle


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for key, value in st.items():
            tensors[f"{prefix}.state.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return {"param_groups": sd["param_groups"]}


def _unflatten_optimizer(prefix: str, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        if name.startswith(prefix + ".state."):
            idx, key = name[len(prefix) + 7 :].split(".", 1)
            state.setdefault(int(idx), {})[key] = t
    return {"state": state, "param_groups": meta["param_groups"]}


TRAIN_ARCH = "wplus_train_checkpoint"


def save_checkpoint(state: TrainState, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write everything needed to resume to one safetensors file (atomically)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, net in (("G", state.G), ("D", state.D), ("G_ema", state.G_ema)):
        for k, v in net.state_dict().items():
            tensors[f"{prefix}.{k}"] = v
    opt_meta = {
        "opt_G": _flatten_optimizer("opt_G", state.opt_G, tensors),
        "opt_D": _flatten_optimizer("opt_D", state.opt_D, tensors),
    }
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "train_config": state.config.to_dict(),
        "counters": {"step": state.step, "nimg": state.nimg, "wall_s": state.wall_s, "pl_mean": state.pl_mean},
        "optimizers": opt_meta,
        "extra": extra or {},
    }
    return write_checkpoint(path, tensors, arch=TRAIN_ARCH, metadata=meta)


_WHAT = "a training checkpoint written by `wplus train`"


def read_checkpoint_config(path: str | Path) -> TrainConfig:
    """The training config stored in a checkpoint (its header only)."""
    path = Path(path)
    meta = read_metadata(path, arch=TRAIN_ARCH, what=_WHAT)
    return _config(path, meta)


def _config(path: Path, meta: dict[str, str]) -> TrainConfig:
    config = parse_config(path, TrainConfig, json_field(path, meta, "train_config"), "training config")
    try:  # the networks' own configs check their ranges
        config.g_config(), config.d_config()
    except ConfigError as e:
        raise CheckpointError(path, f"invalid training config in its header: {e}") from None
    return config


def _expected_shapes(config: TrainConfig) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Shapes of the networks' tensors (required) and of the Adam state and RNG (optional), from the meta device."""
    required: dict[str, tuple[int, ...]] = {}
    optional: dict[str, tuple[int, ...]] = {"rng.torch": tuple(torch.get_rng_state().shape)}
    with torch.device("meta"):
        nets = {"G": Generator(config.g_config()), "D": Discriminator(config.d_config())}
    for prefix, net in nets.items():
        shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        for name in (prefix, "G_ema") if prefix == "G" else (prefix,):
            required.update({f"{name}.{k}": shape for k, shape in shapes.items()})
        for idx, p in enumerate(net.parameters()):  # Adam's state, keyed by parameter index
            base = f"opt_{prefix}.state.{idx}."
            optional.update({base + "step": (), base + "exp_avg": tuple(p.shape), base + "exp_avg_sq": tuple(p.shape)})
    return required, optional


def load_checkpoint(path: str | Path, *, device: torch.device | str = "cpu") -> TrainState:
    """Rebuild a :class:`TrainState` from :func:`save_checkpoint`'s file (strict) and restore the RNG state.

    The stored tensors are checked against the shapes the stored config describes before anything is built.
    """
    path = Path(path)
    meta = read_metadata(path, arch=TRAIN_ARCH, what=_WHAT)
    config = _config(path, meta)
    required, optional = _expected_shapes(config)
    tensors = read_tensors(path, required, optional=optional, what="the stored training config")
    if "rng.torch" not in tensors:
        raise CheckpointError(path, "no 'rng.torch' tensor; the file is damaged or not written by `wplus train`")
    state = build_networks(config, device=device)
    try:
        for prefix, net in (("G", state.G), ("D", state.D), ("G_ema", state.G_ema)):
            sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            net.load_state_dict(sub, strict=True)
        opts = json_field(path, meta, "optimizers")
        state.opt_G.load_state_dict(_unflatten_optimizer("opt_G", opts["opt_G"], tensors))
        state.opt_D.load_state_dict(_unflatten_optimizer("opt_D", opts["opt_D"], tensors))
        counters = json_field(path, meta, "counters")
        state.step, state.nimg, state.wall_s = int(counters["step"]), int(counters["nimg"]), float(counters["wall_s"])
        state.pl_mean = float(counters.get("pl_mean", 0.0))
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(path, f"checkpoint does not match its stored config: {str(e)[:200]}") from None
    torch.set_rng_state(tensors["rng.torch"])
    return state


# --------------------------------------------------------------------------------------------------------------------
# The training step


def _mapping(G: Generator, z: torch.Tensor, mixing_prob: float, gen: torch.Generator) -> torch.Tensor:
    ws = G.mapping(z, update_emas=True)  # [B, num_ws, w_dim]; tracks w_avg
    if mixing_prob > 0:
        b = z.shape[0]
        z2 = torch.randn(z.shape, generator=gen).to(z.device)
        ws2 = G.mapping(z2)
        cutoff = torch.randint(1, ws.shape[1], (b,), generator=gen).to(z.device)
        use = (torch.rand(b, generator=gen) < mixing_prob).to(z.device)
        cutoff = torch.where(use, cutoff, torch.full_like(cutoff, ws.shape[1]))
        layer = torch.arange(ws.shape[1], device=z.device)[None, :, None]
        ws = torch.where(layer < cutoff[:, None, None], ws, ws2)
    return ws


def _update_ema(state: TrainState) -> None:
    cfg = state.config
    ema_nimg = (cfg.ema_kimg if cfg.ema_kimg is not None else cfg.batch_size * 10 / 32) * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, state.nimg * cfg.ema_rampup)
    beta = 0.5 ** (cfg.batch_size / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p in zip(state.G_ema.parameters(), state.G.parameters(), strict=True):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(state.G_ema.buffers(), state.G.buffers(), strict=True):
            b_ema.copy_(b)


def train_step(state: TrainState, reals: torch.Tensor, gen: torch.Generator) -> TrainStep:
    """One minibatch: G update, D update (with lazy R1 every ``r1_interval`` steps), G_ema update.

    Args:
        state: The run; updated in place.
        reals: Real images [B, 3, R, R] in [-1, 1].
        gen: CPU random generator for latents, mixing and noise choices.
    """
    t0 = time.perf_counter()
    cfg, G, D = state.config, state.G, state.D
    device = reals.device
    b = reals.shape[0]

    # G: minimise softplus(-D(G(z))).
    G.requires_grad_(True)
    D.requires_grad_(False)
    z = torch.randn([b, G.z_dim], generator=gen).to(device)
    ws = _mapping(G, z, cfg.style_mixing_prob, gen)
    fakes = G.synthesis(ws, noise_mode="random")
    loss_G = F.softplus(-D(fakes)).mean()
    state.opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    state.opt_G.step()
    pl_value = None
    if cfg.pl_weight > 0 and state.step % cfg.pl_interval == 0:
        pl_value = _path_length_step(state, max(1, b // cfg.pl_batch_shrink), gen, device)

    # D: minimise softplus(D(fake)) + softplus(-D(real)) (+ lazy R1 on reals). The fakes of the G step are reused.
    G.requires_grad_(False)
    D.requires_grad_(True)
    do_r1 = cfg.gamma > 0 and state.step % cfg.r1_interval == 0
    reals = reals.detach().requires_grad_(do_r1)
    logits_fake = D(fakes.detach())
    logits_real = D(reals)
    loss_D = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
    total = loss_D
    r1_value = None
    if do_r1:
        (grad,) = torch.autograd.grad(logits_real.sum(), reals, create_graph=True)
        r1 = grad.square().sum(dim=[1, 2, 3]).mean()
        total = total + r1 * (cfg.gamma / 2) * cfg.r1_interval
        r1_value = float(r1.detach())
    state.opt_D.zero_grad(set_to_none=True)
    total.backward()
    state.opt_D.step()
    D.requires_grad_(False)

    state.step += 1
    state.nimg += b
    _update_ema(state)
    return TrainStep(
        state.step,
        state.nimg,
        float(loss_G.detach()),
        float(loss_D.detach()),
        r1_value,
        time.perf_counter() - t0,
        pl_value,
    )


def _path_length_step(state: TrainState, batch: int, gen: torch.Generator, device: torch.device) -> float:
    """One lazy path length regularisation update of G (see the module docstring); returns the penalty."""
    cfg, G = state.config, state.G
    z = torch.randn([batch, G.z_dim], generator=gen).to(device)
    ws = _mapping(G, z, cfg.style_mixing_prob, gen)
    images = G.synthesis(ws, noise_mode="random")
    y = torch.randn(images.shape, generator=gen).to(device) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()  # [batch]
    state.pl_mean += cfg.pl_decay * (float(lengths.detach().mean()) - state.pl_mean)
    penalty = (lengths - state.pl_mean).square().mean()
    state.opt_G.zero_grad(set_to_none=True)
    (penalty * cfg.pl_weight * cfg.pl_interval).backward()
    state.opt_G.step()
    return float(penalty.detach())


# --------------------------------------------------------------------------------------------------------------------
# The loop


def sample_grid(G: Generator, z: torch.Tensor, *, cols: int = 8) -> Any:
    """A PIL grid of ``G(z)`` with constant noise."""
    with torch.no_grad():
        imgs = G(z.to(G.w_avg.device), noise_mode="const")
    return image_grid([tensor_to_pil(x) for x in imgs], cols=cols, pad=1)


def export(state: TrainState, outdir: Path, *, metadata: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``G_ema.safetensors`` (wplus generator format) and ``D.safetensors`` (for DiscriminatorFeatures)."""
    meta = {
        "source": "wplus train",
        "kimg": f"{state.nimg / 1000:.1f}",
        "train_config": state.config.to_dict(),
        **(metadata or {}),
    }
    g_path = save_generator(state.G_ema, outdir / "G_ema.safetensors", metadata=meta)
    d_path = save_discriminator(state.D, outdir / "D.safetensors", metadata=meta)
    return g_path, d_path


def train(
    images: torch.Tensor,
    config: TrainConfig,
    outdir: str | Path,
    *,
    kimg: float,
    resume: bool = True,
    device: torch.device | str = "cpu",
    snapshot_minutes: float = 5.0,
    sample_minutes: float = 5.0,
    dataset_info: dict[str, Any] | None = None,
    callback: Callable[[TrainStep], None] | None = None,
) -> TrainState:
    """Train (or resume) a StyleGAN2 on ``images`` until ``kimg`` thousand images have been shown.

    Args:
        images: The dataset, uint8 [N, 3, R, R] (kept on the CPU; batches move to ``device``).
        config: Hyper-parameters. On resume they must match the checkpoint's network shapes; other settings given
            here (regularisation weights, for one) replace the stored ones from now on.
        outdir: Run folder (``checkpoint.safetensors``, ``G_ema.safetensors``, ``D.safetensors``, ``samples/``,
            ``log.jsonl``).
        kimg: Total length of the run in thousands of real images shown (counted across resumes).
        resume: Continue from ``outdir/checkpoint.safetensors`` when it exists.
        device: Where to train.
        snapshot_minutes: Wall-clock interval between checkpoints and exports (also written at the end).
        sample_minutes: Wall-clock interval between sample grids.
        dataset_info: Free-form description of the data, recorded in the exports.
        callback: Called after every step (progress bars).

    Returns:
        The final state.

    Raises:
        ConfigError: Images of the wrong shape or dtype, or a checkpoint whose shapes differ from ``config``.
    """
    outdir = Path(outdir)
    device = torch.device(device)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ConfigError(f"got images {images.dtype} {list(images.shape)}, expected uint8 [N, 3, R, R]")
    if images.shape[2] != config.resolution or images.shape[3] != config.resolution:
        raise ConfigError(f"got {images.shape[2]}x{images.shape[3]} images, expected {config.resolution} px")
    ckpt = outdir / CHECKPOINT_NAME
    if resume and ckpt.is_file():
        state = load_checkpoint(ckpt, device=device)
        if state.config.g_config() != config.g_config() or state.config.d_config() != config.d_config():
            raise ConfigError(
                f"{ckpt}: the checkpoint's network shapes differ from the requested ones; use another --outdir"
            )
        if config != state.config:
            changed = {k: v for k, v in config.to_dict().items() if state.config.to_dict()[k] != v}
            log.info("resuming with changed settings %s", changed)
            state.config = config
            state.set_adam()
        log.info("resumed %s at %.1f kimg", ckpt, state.nimg / 1000)
    else:
        state = build_networks(config, device=device)
    outdir.mkdir(parents=True, exist_ok=True)
    write_json(outdir / "train_config.json", {"config": state.config.to_dict(), "dataset": dataset_info or {}})
    cfg = state.config
    # The data order and latents come from a generator seeded by (seed, step), so a resumed run draws new batches.
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + state.step)
    grid_z = torch.randn([32, cfg.z_dim], generator=torch.Generator().manual_seed(cfg.seed + 12345))
    info = {"dataset": dataset_info or {}}
    last_snapshot = last_sample = time.monotonic()
    session_start = time.monotonic()
    wall_at_start = state.wall_s
    total_nimg = int(kimg * 1000)
    logf = (outdir / "log.jsonl").open("a", encoding="utf-8")
    try:
        if state.step == 0:
            save_image(image_grid([tensor_to_pil(x / 127.5 - 1) for x in images[:32].float()], cols=8, pad=1),
                       outdir / "samples" / "reals.png")  # fmt: skip
        while state.nimg < total_nimg:
            idx = torch.randint(len(images), (cfg.batch_size,), generator=gen)
            reals = images[idx].to(device, torch.float32) / 127.5 - 1
            if cfg.xflip:
                flip = torch.rand(cfg.batch_size, generator=gen) < 0.5
                reals = torch.where(flip.to(device)[:, None, None, None], reals.flip(3), reals)
            st = train_step(state, reals, gen)
            state.wall_s = wall_at_start + (time.monotonic() - session_start)
            if callback is not None:
                callback(st)
            if st.step % 20 == 0 or st.r1 is not None or st.pl is not None:
                rec = {"step": st.step, "kimg": st.nimg / 1000, "loss_G": st.loss_G, "loss_D": st.loss_D}
                if st.r1 is not None:
                    rec["r1"] = st.r1
                if st.pl is not None:
                    rec["pl"], rec["pl_mean"] = st.pl, state.pl_mean
                rec["wall_s"] = round(state.wall_s, 1)
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
            now = time.monotonic()
            if now - last_sample >= sample_minutes * 60:
                save_image(sample_grid(state.G_ema, grid_z), outdir / "samples" / f"step{state.step:07d}.png")
                last_sample = now
            if now - last_snapshot >= snapshot_minutes * 60:
                _snapshot(state, outdir, info)
                last_snapshot = now
        save_image(sample_grid(state.G_ema, grid_z), outdir / "samples" / f"step{state.step:07d}.png")
        _snapshot(state, outdir, info)
    finally:
        logf.close()
    return state


def _snapshot(state: TrainState, outdir: Path, info: dict[str, Any]) -> None:
    save_checkpoint(state, outdir / CHECKPOINT_NAME, extra=info)
    export(state, outdir, metadata={**info, "train_wall_s": round(state.wall_s, 1), "step": state.step})
    log.info("snapshot at step %d (%.1f kimg)", state.step, state.nimg / 1000)


def load_image_folder(folder: str | Path, resolution: int) -> torch.Tensor:
    """Every image in ``folder`` (recursively), centre-cropped and resized, as uint8 [N, 3, R, R].

    Raises:
        ConfigError: The folder has no readable images.
    """
    from wplus.io.images import center_crop_resize, load_image

    folder = Path(folder)
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ConfigError(f"{folder}: no images found (expected {', '.join(sorted(IMAGE_SUFFIXES))} files)")
    arrays = [np.asarray(center_crop_resize(load_image(p), resolution)) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def cartoon_faces(num_images: int, resolution: int, *, cache_dir: Path | None = None) -> torch.Tensor:
    """The procedural face dataset (seeds 0..num_images-1) as uint8 [N, 3, R, R], cached as .npy if asked."""
    from wplus.data.faces import render_faces

    cache = None if cache_dir is None else cache_dir / f"cartoon-faces-{resolution}px-{num_images}.npy"
    if cache is not None and cache.is_file():
        arr = np.load(cache, allow_pickle=False)
    else:
        arr = render_faces(range(num_images), size=resolution)
        if cache is not None:
            atomic_write(cache, lambda p: np.save(p, arr, allow_pickle=False))
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def kimg_per_hour(sec_per_step: float, batch_size: int) -> float:
    return 3600 / max(sec_per_step, 1e-9) * batch_size / 1000 if math.isfinite(sec_per_step) else 0.0


def networks_summary(state: TrainState) -> dict[str, int]:
    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    return {"G_params": count(state.G), "D_params": count(state.D)}
