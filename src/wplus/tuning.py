"""Pivotal tuning: adjust the generator around an embedding for a near-exact reconstruction that stays editable.

PTI (Roich et al., "Pivotal Tuning for Latent-based Editing of Real Images", 2021) first finds a code (the pivot)
by ordinary projection, then optimises the generator's weights so that the pivot renders the photo, while a
locality term keeps codes near the pivot rendering as the original generator renders them. PTI saves a whole
generator per image; here the tuning is a *delta* on the synthesis network's parameters, stored compactly:

- every weight with a matrix shape ``[out, in, ...]`` gets a rank-``r`` delta ``A @ B`` (``A`` [out, r] starts at
  0, so the tuned network starts as the original; ``B`` [r, in * k * k] is seeded Gaussian), unless the factors
  would be larger than the matrix itself;
- noise strengths and small matrices (ToRGB's) get a full delta;
- biases and the learned constant are left alone unless ``biases=True``: a bias moves every render by the same
  amount, and leaving them out measured better in both reconstruction and locality (docs/tuning.md).

``rank=None`` gives every tuned parameter a full delta (PTI's own method). A :class:`Tuning` records the SHA-256 of the
base generator's weights (:func:`weights_fingerprint`, independent of the file format they came in) and refuses to
apply to another network. The file (``tuning.safetensors``) is our safetensors format: the factors plus a JSON
header (base fingerprint and file SHA-256, rank, steps, lr, loss, locality, metrics, wplus version); no pickle.

Locality (PTI sec. 3.2): each step draws ``locality_samples`` ``z``, maps each to ``w_z`` and takes a code between
the pivot and ``w_z``: by default at a uniformly random fraction of the way (so the codes the model usually renders
are covered too), or, with ``locality_radius`` set, at PTI's fixed distance ``locality_radius * w_std`` from the
pivot. The tuned render of each code must match the original generator's render under the same loss; their mean is
weighted by ``locality_weight``.
Adam's learning rate ramps up linearly over the first ``WARMUP_FRACTION`` of the steps: Adam's first steps move
every factor by the full lr whatever its gradient, and on a delta that starts at 0 that cost locality and PSNR.
Both terms add ``pixel_weight`` times the pixel MSE to the loss's own total: PSNR is what a tuning is for, and the
weight was chosen by measurement.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from wplus.errors import CheckpointError, ConfigError, ShapeError
from wplus.io.checkpoint import json_field, read_metadata, read_tensors, stored_shapes, write_checkpoint
from wplus.metrics import psnr, ssim
from wplus.precision import PRECISIONS, autocast, resolve_precision
from wplus.projection.project import estimate_w_std, frozen, resolve_w_avg

log = logging.getLogger(__name__)

__all__ = [
    "TuningSettings",
    "Tuning",
    "TuningStep",
    "tune",
    "save_tuning",
    "load_tuning",
    "weights_fingerprint",
    "blend_tunings",
    "TUNING_ARCH",
    "DEFAULT_RANK",
    "DEFAULT_STEPS",
    "DEFAULT_LR",
    "DEFAULT_LOCALITY_WEIGHT",
    "DEFAULT_LOCALITY_SAMPLES",
    "PIVOT_SPACE",
    "DEFAULT_PIXEL_WEIGHT",
    "DEFAULT_BIASES",
]

TUNING_ARCH = "wplus_tuning"
DEFAULT_RANK = 6  # the delta file is 4.2 % of the shipped generator's (docs/tuning.md)
DEFAULT_STEPS = 350  # PTI's tuning steps
# PTI uses 3e-4 on full weights; on our low-rank factors (with the warm-up below) 1e-2 measured best (docs/tuning.md).
DEFAULT_LR = 1e-2
# Locality: the weight of the mean over DEFAULT_LOCALITY_SAMPLES codes a step, along the way to random codes; two
# samples at 0.1 kept other codes 1.4-2.6 dB closer than one at 0.05 for <= 0.15 dB of PSNR, 1.3x the time (docs).
DEFAULT_LOCALITY_WEIGHT = 0.1
DEFAULT_LOCALITY_SAMPLES = 2
PIVOT_SPACE = "w"  # the space a pivot is projected into unless the user says otherwise (PTI's: a W code)
DEFAULT_LOCALITY_RADIUS: float | None = None  # None: anywhere on the way to a random code; else PTI's, in w_std units
WARMUP_FRACTION = 0.05  # of the steps, over which the lr ramps up linearly (as NVIDIA's projector's does)
DEFAULT_PIXEL_WEIGHT = 9.0  # extra pixel MSE on top of the loss's total (docs/tuning.md: +1 to +1.7 dB at 350 steps)
DEFAULT_BIASES = False  # biases and the constant shift every render: left alone, locality and PSNR both improved
MAX_TUNING_ELEMENTS = 1 << 30  # a header announcing more than this (4 GiB of float32) is refused before reading
MAX_RANK = 4096
MAX_LOCALITY_SAMPLES = 64  # codes per step; each is one more render of both generators


@dataclass(frozen=True)
class TuningSettings:
    """The options of :func:`tune` that decide a tuning (validated on construction); ``tune(..., **s.kwargs())``."""

    num_steps: int = DEFAULT_STEPS
    lr: float = DEFAULT_LR
    rank: int | None = DEFAULT_RANK
    locality_weight: float = DEFAULT_LOCALITY_WEIGHT
    locality_radius: float | None = DEFAULT_LOCALITY_RADIUS
    locality_samples: int = DEFAULT_LOCALITY_SAMPLES
    pixel_weight: float = DEFAULT_PIXEL_WEIGHT
    biases: bool = DEFAULT_BIASES
    stop_psnr: float | None = None
    seed: int = 0
    precision: str = "fp32"  # 'fp32', 'bf16' or 'auto' (wplus.precision); resolved against the device by tune()

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"got tuning precision {self.precision!r}, expected one of {', '.join(PRECISIONS)}")
        _check_options(
            self.num_steps,
            self.lr,
            self.rank,
            self.locality_weight,
            self.locality_radius,
            self.locality_samples,
            self.pixel_weight,
            self.stop_psnr,
        )

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _int_in(v: Any, lo: int, hi: int | None) -> bool:
    """Whether ``v`` is an int (not a bool) in ``lo..hi`` (``hi`` None: no upper bound)."""
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v and (hi is None or v <= hi)


def _check_options(
    num_steps: int,
    lr: float,
    rank: int | None,
    locality_weight: float,
    radius: float | None,
    locality_samples: int,
    pixel_weight: float,
    stop_psnr: float | None,
) -> None:
    if not _int_in(num_steps, 0, None):
        raise ConfigError(f"got tuning steps {num_steps!r}, expected an integer >= 0")
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"got tuning lr {lr!r}, expected a positive number (PTI: 3e-4)")
    if rank is not None and not _int_in(rank, 1, MAX_RANK):
        raise ConfigError(f"got tuning rank {rank!r}, expected 1..{MAX_RANK} or None (full deltas)")
    if not _int_in(locality_samples, 1, MAX_LOCALITY_SAMPLES):
        raise ConfigError(f"got locality samples {locality_samples!r}, expected an integer 1..{MAX_LOCALITY_SAMPLES}")
    checked = [("locality weight", locality_weight), ("pixel weight", pixel_weight)]
    for name, v in checked + ([] if radius is None else [("locality radius", radius)]):
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"got {name} {v!r}, expected a finite number >= 0")
    if stop_psnr is not None and not (math.isfinite(stop_psnr) and stop_psnr > 0):
        raise ConfigError(f"got tuning stop_psnr {stop_psnr!r}, expected a positive number of dB")


def weights_fingerprint(G: nn.Module) -> str:
    """SHA-256 of the generator's parameters and buffers (names, shapes, float32 values), in name order.

    The same network has the same fingerprint whichever file format it was read from.
    """
    h = hashlib.sha256()
    for name, t in sorted(G.state_dict().items()):
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{list(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _tuned(name: str, biases: bool) -> bool:
    """Whether synthesis parameter ``name`` gets a delta: all but biases and the learned constant, unless ``biases``."""
    return biases or not (name.endswith(".bias") or name.endswith("const"))


def _factored(shape: torch.Size, rank: int | None) -> bool:
    """Whether a parameter of ``shape`` gets a rank-``rank`` delta (smaller than the matrix) or a full one."""
    if rank is None or len(shape) < 2:
        return False
    out, rest = shape[0], math.prod(shape[1:])
    return rank * (out + rest) < out * rest


@dataclass
class TuningStep:
    """What the progress callback receives after every tuning step (1-based ``step``)."""

    step: int
    num_steps: int
    psnr: torch.Tensor  # [B] of the pivot's render at this step
    loss: float
    images: torch.Tensor  # [B, C, H, W] rendered at this step (before the update), detached


@dataclass
class Tuning:
    """A delta on a generator's synthesis parameters: ``factors[name + '.a'|'.b']`` or ``factors[name + '.delta']``.

    Names are those of ``G.synthesis.named_parameters()``. ``base_fingerprint`` is
    :func:`weights_fingerprint` of the generator it was made on; ``base_sha256`` that generator's file (when known).
    """

    factors: dict[str, torch.Tensor]
    rank: int | None
    base_fingerprint: str
    base_sha256: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # steps, lr, loss, locality, metrics, ...

    def deltas(self) -> dict[str, torch.Tensor]:
        """The full delta of every tuned parameter (``A @ B`` reshaped for factored ones)."""
        out = {}
        for key, t in self.factors.items():
            name, _, part = key.rpartition(".")
            if part == "delta":
                out[name] = t
            elif part == "a":
                b = self.factors[f"{name}.b"]
                out[name] = t @ b
        return out

    @property
    def num_elements(self) -> int:
        return sum(t.numel() for t in self.factors.values())

    def check_base(self, G: nn.Module, *, fingerprint: str | None = None) -> None:
        """Raise ConfigError unless ``G`` is the generator this tuning was made on."""
        got = fingerprint or weights_fingerprint(G)
        if got != self.base_fingerprint:
            raise ConfigError(
                f"this tuning was made on generator weights {self.base_fingerprint[:12]} but the model has "
                f"{got[:12]}; use the model it was tuned on (base file sha256 {self.base_sha256[:12] or 'unknown'})"
            )

    def apply(self, G: nn.Module, *, strength: float = 1.0, check: bool = True) -> nn.Module:
        """A tuned copy of ``G`` (``G`` itself is not modified); ``strength`` scales the delta (0: G's renders)."""
        if check:
            self.check_base(G)
        return _with_deltas(G, {k: v * strength for k, v in self.deltas().items()})


def _with_deltas(G: nn.Module, deltas: Mapping[str, torch.Tensor]) -> nn.Module:
    params = dict(G.synthesis.named_parameters())
    unknown = sorted(set(deltas) - set(params))
    if unknown:
        raise ShapeError(f"the tuning changes parameters this generator does not have: {', '.join(unknown[:3])}")
    tuned = copy.deepcopy(G)
    with torch.no_grad():
        for name, p in tuned.synthesis.named_parameters():
            if name in deltas:
                d = deltas[name]
                if d.numel() != p.numel():
                    raise ShapeError(f"tuning delta for {name} has {list(d.shape)}, the parameter {list(p.shape)}")
                p.add_(d.reshape(p.shape).to(p.device, p.dtype))
    return tuned.eval().requires_grad_(False)


def blend_tunings(G: nn.Module, tunings: list[Tuning | None], weights: list[float]) -> nn.Module:
    """``G`` with the weighted sum of the tunings' deltas (None: no delta); e.g. a morph between two tuned images
    renders frame ``t`` with ``(1 - t) * delta_1 + t * delta_2``."""
    fingerprint = weights_fingerprint(G)
    total: dict[str, torch.Tensor] = {}
    for tuning, w in zip(tunings, weights, strict=True):
        if tuning is None or w == 0:
            continue
        tuning.check_base(G, fingerprint=fingerprint)
        for name, d in tuning.deltas().items():
            total[name] = total[name] + w * d if name in total else w * d
    return _with_deltas(G, total)


class _Delta(nn.Module):
    """The trainable factors of a tuning, one entry per synthesis parameter."""

    def __init__(self, params: Mapping[str, torch.Tensor], rank: int | None, gen: torch.Generator):
        super().__init__()
        self.names = list(params)
        self.factors = nn.ParameterDict()
        for i, p in enumerate(params.values()):
            if _factored(p.shape, rank):
                rest = math.prod(p.shape[1:])
                b = torch.randn([rank, rest], generator=gen) / math.sqrt(rank)
                self.factors[f"a{i}"] = nn.Parameter(torch.zeros([p.shape[0], rank], device=p.device))
                self.factors[f"b{i}"] = nn.Parameter(b.to(p.device))
            else:
                self.factors[f"d{i}"] = nn.Parameter(torch.zeros_like(p))

    def tuned(self, base: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for i, name in enumerate(self.names):
            p = base[name]
            if f"d{i}" in self.factors:
                out[name] = p + self.factors[f"d{i}"]
            else:
                out[name] = p + (self.factors[f"a{i}"] @ self.factors[f"b{i}"]).reshape(p.shape)
        return out

    def export(self) -> dict[str, torch.Tensor]:
        out = {}
        for i, name in enumerate(self.names):
            if f"d{i}" in self.factors:
                out[f"{name}.delta"] = self.factors[f"d{i}"].detach().cpu().clone()
            else:
                out[f"{name}.a"] = self.factors[f"a{i}"].detach().cpu().clone()
                out[f"{name}.b"] = self.factors[f"b{i}"].detach().cpu().clone()
        return out


def tune(
    G: nn.Module,
    target: torch.Tensor,
    ws: torch.Tensor,
    *,
    loss: Any = None,
    num_steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    rank: int | None = DEFAULT_RANK,
    locality_weight: float = DEFAULT_LOCALITY_WEIGHT,
    locality_radius: float | None = DEFAULT_LOCALITY_RADIUS,
    locality_samples: int = DEFAULT_LOCALITY_SAMPLES,
    pixel_weight: float = DEFAULT_PIXEL_WEIGHT,
    biases: bool = DEFAULT_BIASES,
    stop_psnr: float | None = None,
    noise: list[torch.Tensor] | None = None,
    seed: int = 0,
    base_sha256: str = "",
    callback: Callable[[TuningStep], None] | None = None,
    precision: str = "fp32",
) -> Tuning:
    """Tune ``G``'s synthesis network so that the pivot codes ``ws`` render ``target`` (PTI), as a compact delta.

    Args:
        G: the generator (not modified; frozen during the run).
        target: [B, C, R, R] images in [-1, 1] at G's resolution.
        ws: [B, num_ws, w_dim] pivot codes (a projection result's ``ws``); B is usually 1: one tuning per image.
        loss: a projection loss (``prepare_target`` + per-sample terms with 'total'), e.g. the one the pivot was
            projected with; None builds :func:`wplus.default_loss` for ``G``, as :func:`wplus.project` does.
        num_steps: Adam steps (PTI: 350). lr: Adam's learning rate (PTI: 3e-4).
        rank: rank of the weight deltas (None: full deltas, PTI's own method).
        locality_weight: weight of the locality term (0: off); locality_radius: None samples its codes anywhere
            between the pivot and a random code, a number at that distance from the pivot in units of the model's
            w spread (PTI's samples); locality_samples: codes per step per pivot (rendered as one batch).
        pixel_weight: weight of an extra pixel MSE (images in [-1, 1]) added to the loss's total, in both terms.
        biases: also tune biases and the learned constant (off: they shift every render, docs/tuning.md).
        stop_psnr: stop once every image's PSNR reached this many dB.
        noise: the noise maps the pivot renders with (a projection result's ``noise``), else the stored ones.
        seed: seeds the factors' initialisation and the locality samples.
        base_sha256: the base model file's SHA-256, recorded in the tuning.
        callback: called after each step with a :class:`TuningStep`.
        precision: 'fp32', 'bf16' or 'auto' (:mod:`wplus.precision`): the training renders and the loss under bf16
            autocast; the factors, Adam's state and the renders before and after stay fp32.

    Returns:
        A :class:`Tuning`; ``info['metrics']`` holds PSNR / SSIM before and after, steps and seconds.
    """
    want = [G.img_channels, G.img_resolution, G.img_resolution]
    if target.ndim != 4 or list(target.shape[1:]) != want:
        raise ShapeError(f"target has shape {list(target.shape)}, expected [B, {', '.join(map(str, want))}]")
    if ws.ndim != 3 or ws.shape[0] != target.shape[0] or tuple(ws.shape[1:]) != (G.num_ws, G.w_dim):
        raise ShapeError(f"ws has shape {list(ws.shape)}, expected [{target.shape[0]}, {G.num_ws}, {G.w_dim}]")
    _check_options(num_steps, lr, rank, locality_weight, locality_radius, locality_samples, pixel_weight, stop_psnr)
    started = time.perf_counter()
    device = target.device
    precision = resolve_precision(precision, device)
    if loss is None:
        from wplus.projection.choice import default_loss

        loss = default_loss(G, device=device)
    fingerprint = weights_fingerprint(G)
    gen = torch.Generator().manual_seed(seed)
    ws = ws.detach().to(device)
    target = target.detach()
    with frozen(G):
        base = {n: p.detach() for n, p in G.synthesis.named_parameters()}
        buffers = dict(G.synthesis.named_buffers())
        delta = _Delta({n: p for n, p in base.items() if _tuned(n, biases)}, rank, gen)
        opt = torch.optim.Adam(delta.parameters(), lr=lr)

        def objective(images: torch.Tensor, prepared: Any, reference: torch.Tensor) -> torch.Tensor:
            total = loss(images, prepared)["total"].sum()
            if pixel_weight > 0:
                total = total + pixel_weight * (images - reference).square().flatten(1).mean(1).sum()
            return total

        def render(codes: torch.Tensor, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
            """The pivots render with their own noise maps; locality samples with the stored ones."""
            state = {**buffers, **base, **(params or {})}
            kwargs = {"noise_mode": "const", "noise": noise if codes is ws else None}
            return functional_call(G.synthesis, state, (codes,), kwargs)

        with torch.no_grad():
            prepared = loss.prepare_target(target)
            before = render(ws)
            radius = None
            if locality_weight > 0 and locality_radius is not None:
                w_avg = resolve_w_avg(G).to(device)
                radius = locality_radius * estimate_w_std(G, w_avg, 2000, seed=seed)
        psnr_before, ssim_before = psnr(before, target).cpu(), ssim(before, target).cpu()
        steps = 0
        stopped = ""
        best_score, best_step, best_state = -math.inf, 0, None
        warmup = max(1.0, WARMUP_FRACTION * num_steps)
        for step in range(num_steps):
            for group in opt.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / warmup)
            tuned = delta.tuned(base)
            with autocast(precision, device):  # bf16: renders and loss; the factors and Adam's state stay fp32
                images = render(ws, tuned)
                step_psnr = psnr(images.detach().float(), target)
                if float(step_psnr.mean()) > best_score:  # the state that rendered `images`, before this update
                    best_score, best_step = float(step_psnr.mean()), step
                    best_state = {k: v.detach().clone() for k, v in delta.state_dict().items()}
                total = objective(images, prepared, target)
                if locality_weight > 0:
                    codes = _locality_codes(G, ws.repeat_interleave(locality_samples, 0), radius, gen)
                    with torch.no_grad():
                        reference = render(codes)
                    kept = objective(render(codes, tuned), loss.prepare_target(reference), reference)
                    total = total + locality_weight / locality_samples * kept
                total = total.float()
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            steps += 1
            if not math.isfinite(float(total.detach())):
                raise ConfigError(f"tuning diverged at step {steps} (loss {float(total)}); lower the lr ({lr:g})")
            if callback is not None:
                callback(TuningStep(steps, num_steps, step_psnr.cpu(), float(total.detach()), images.detach().float()))
            if stop_psnr is not None and bool((step_psnr >= stop_psnr).all()):
                stopped = f"stopped at step {steps} of {num_steps}: PSNR {float(step_psnr.min()):.2f} >= {stop_psnr:g}"
                break
        with torch.no_grad():
            after = render(ws, delta.tuned(base))
            kept_step = steps
            if best_state is not None and float(psnr(after, target).mean()) < best_score:
                # The run ended below its best (an out-of-domain photo can make Adam overshoot): keep the best state,
                # so a tuning never renders its photo worse than where it was at its best (at worst, the pivot).
                delta.load_state_dict(best_state)
                after = render(ws, delta.tuned(base))
                kept_step = best_step
    metrics = {
        "psnr_before": [float(v) for v in psnr_before],
        "ssim_before": [float(v) for v in ssim_before],
        "psnr_after": [float(v) for v in psnr(after, target).cpu()],
        "ssim_after": [float(v) for v in ssim(after, target).cpu()],
        "steps": steps,
        "kept_step": kept_step,  # the state returned: after this many updates (the best one seen, or the last)
        "seconds": time.perf_counter() - started,
    }
    info = {
        "num_steps": num_steps,
        "lr": lr,
        "locality_weight": locality_weight,
        "locality_radius": locality_radius,
        "locality_samples": locality_samples,
        "pixel_weight": pixel_weight,
        "biases": biases,
        "seed": seed,
        "precision": precision,
        "loss": type(loss).__name__,
        "stopped_early": stopped,
        "metrics": metrics,
    }
    return Tuning(delta.export(), rank, fingerprint, base_sha256, info)


def _locality_codes(G: nn.Module, ws: torch.Tensor, radius: float | None, gen: torch.Generator) -> torch.Tensor:
    """A code on the way from each pivot to a freshly mapped random code: at a uniform random fraction of the way
    (``radius`` None) or at distance ``radius`` from the pivot (PTI's locality samples)."""
    z = torch.randn([ws.shape[0], G.z_dim], generator=gen).to(ws.device)
    with torch.no_grad():
        w_z = G.mapping(z, None)
    direction = w_z - ws
    if radius is None:
        fraction = torch.rand([ws.shape[0], 1, 1], generator=gen).to(ws.device)
        return (ws + fraction * direction).detach()
    norm = direction.flatten(1).norm(dim=1).clamp_min(1e-8)[:, None, None]
    return (ws + radius * direction / norm).detach()


# --------------------------------------------------------------------------------------------------------------------
# The file


def save_tuning(tuning: Tuning, path: str | Path) -> Path:
    """Write ``tuning.safetensors`` (atomically): the factors and a JSON header; no pickle."""
    from wplus import __version__

    metadata = {
        "base_fingerprint": tuning.base_fingerprint,
        "base_sha256": tuning.base_sha256,
        "rank": tuning.rank,
        "info": tuning.info,
        "wplus_version": __version__,
    }
    return write_checkpoint(path, tuning.factors, arch=TUNING_ARCH, metadata=metadata)


def load_tuning(path: str | Path) -> Tuning:
    """Read a tuning file: header checked (our format, arch, sane sizes) before any tensor is read.

    Raises:
        CheckpointError: not a tuning file, damaged header, or tensors out of bounds.
    """
    path = Path(path)
    meta = read_metadata(path, arch=TUNING_ARCH, what="a tuning file written by `wplus project --tune`")
    fingerprint = meta.get("base_fingerprint", "")
    rank = json_field(path, meta, "rank")
    if not (rank is None or (isinstance(rank, int) and 1 <= rank <= MAX_RANK)):
        raise CheckpointError(path, f"header rank {rank!r} is not 1..{MAX_RANK} or null")
    if not (isinstance(fingerprint, str) and len(fingerprint) == 64):
        raise CheckpointError(path, "header has no base_fingerprint (64 hex digits); the file is damaged")
    shapes = stored_shapes(path)
    total = 0
    for name, shape in shapes.items():
        part = name.rpartition(".")[2]
        if part not in ("a", "b", "delta") or len(shape) > 4:
            raise CheckpointError(path, f"tensor {name!r} {list(shape)} is not a tuning factor (.a, .b or .delta)")
        if part == "a" and (len(shape) != 2 or shape[1] != rank):
            raise CheckpointError(path, f"factor {name!r} has shape {list(shape)}, expected [out, {rank}]")
        if part == "a" and name[:-2] + ".b" not in shapes:
            raise CheckpointError(path, f"factor {name!r} has no matching {name[:-2]}.b")
        total += math.prod(shape)
    if total > MAX_TUNING_ELEMENTS:
        raise CheckpointError(path, f"announces {total} values, more than a tuning has ({MAX_TUNING_ELEMENTS})")
    tensors = read_tensors(path)
    for name, t in tensors.items():
        if not t.is_floating_point() or not torch.isfinite(t).all():
            raise CheckpointError(path, f"tensor {name!r} is not finite floating point")
    info = json_field(path, meta, "info") if "info" in meta else {}
    return Tuning({k: v.float() for k, v in tensors.items()}, rank, fingerprint, meta.get("base_sha256", ""), info)
