"""StyleGAN3 generator (Karras et al., "Alias-Free Generative Adversarial Networks", NeurIPS 2021), pure PyTorch.

Parameter and buffer names follow NVIDIA's stylegan3 ``training/networks_stylegan3.py`` so that an official
``G_ema`` state dict loads with ``strict=True``; the geometry (cutoffs, sampling rates, sizes, channels, paddings)
is computed from the same constructor arguments, so T, R and custom configurations all come from the file's own
kwargs (:class:`StyleGAN3Config`). The filters, Fourier frequencies and phases are buffers: they are drawn or
designed at construction and replaced by the file's values on loading.

The network: a 2-layer mapping (same layout as StyleGAN2's), then ``input`` (Fourier features at the frequencies
``freqs``, rotated and translated by an affine of ws[0] and the user ``transform``), 14 synthesis layers and a ToRGB
(``L{idx}_{size}_{channels}``, one w each: ``num_ws = 16``), and ``output_scale``. Each layer is a modulated conv
(input scaled by ``magnitude_ema ** -0.5``, padding ``k - 1``) followed by the filtered leaky ReLU: bias, up-sampling
by ``up_factor`` with ``up_filter`` (gain up**2), lrelu * sqrt(2), clamp, low-pass ``down_filter`` and keep every
``down_factor``-th sample. Filters are separable Kaiser FIRs, or a radially symmetric jinc filter for the down
filter of StyleGAN3-R's non-critically sampled layers.

With frozen weights (every embedding run) each layer keeps only its conv output for the backward pass; the
up-sampled map (``up_factor**2`` times larger, the bulk of StyleGAN3's memory) is recomputed there, never stored.
StyleGAN3 has no noise inputs: ``noise_mode`` is accepted for interface compatibility and ignored, and explicit
noise maps are refused.

Shapes: z [B, z_dim], c [B, c_dim], ws [B, num_ws, w_dim], images [B, img_channels, R, R] in [-1, 1].
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wplus.errors import ConfigError, ShapeError
from wplus.models import stylegan2
from wplus.models.config import MAX_CHANNEL_BASE, MAX_WIDTH, ModelConfig, check_ranges, check_resolution
from wplus.models.stylegan2 import (
    FullyConnectedLayer,
    MappingNetwork,
    NoiseMode,
    _channel_dots,
    _check_shape,
    _FrozenModConv,
)

__all__ = [
    "StyleGAN3Config",
    "Generator",
    "SynthesisInput",
    "SynthesisLayer",
    "SynthesisNetwork",
    "LayerSpec",
    "make_transform",
    "anchor_latent_space",
    "random_generator",
    "filtered_lrelu",
    "design_lowpass_filter",
]

_SQRT2 = math.sqrt(2.0)
MAX_TRANSFORM_SHIFT = 1e4  # |translate| in image units (the image spans [-0.5, 0.5]); beyond it, nothing is left


# --------------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class LayerSpec:
    """One synthesis layer's geometry, as NVIDIA's SynthesisNetwork derives it from the config."""

    name: str
    is_torgb: bool
    is_critically_sampled: bool
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    conv_kernel: int
    up_factor: int
    down_factor: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: tuple[int, int, int, int]  # (x0, x1, y0, y1) of the up-sampled map, NVIDIA's order


@dataclass(frozen=True)
class StyleGAN3Config(ModelConfig):
    """Everything needed to build a StyleGAN3 generator; stored next to the weights.

    Field names follow NVIDIA's constructor arguments (``mapping_kwargs.num_layers`` is ``mapping_layers``, the
    synthesis ``num_layers`` keeps its name). The defaults are StyleGAN3-T's; StyleGAN3-R is ``conv_kernel=1``,
    ``channel_base=65536``, ``channel_max=1024``, ``use_radial_filters=True`` (NVIDIA's train.py).
    """

    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.998
    channel_base: int = 32768
    channel_max: int = 512
    num_layers: int = 14  # synthesis layers, excluding the Fourier input and ToRGB
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2**2.1
    last_stopband_rel: float = 2**0.3
    margin_size: int = 10
    output_scale: float = 0.25
    num_fp16_res: int = 4  # recorded from source checkpoints; wplus always computes in the module's dtype
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256
    magnitude_ema_beta: float = 0.999
    arch: str = field(default="stylegan3", init=False)

    def __post_init__(self) -> None:
        check_resolution(self, "img_resolution", 8)
        check_ranges(
            self,
            ints={
                "z_dim": (1, MAX_WIDTH),
                "c_dim": (0, 100_000),
                "w_dim": (1, MAX_WIDTH),
                "img_channels": (1, 16),
                "mapping_layers": (1, 32),
                "channel_base": (1, MAX_CHANNEL_BASE),
                "channel_max": (1, MAX_WIDTH),
                "num_layers": (2, 64),
                "num_critical": (0, 63),
                "margin_size": (0, 256),
                "num_fp16_res": (0, 16),
                "conv_kernel": (1, 7),
                "filter_size": (1, 16),
                "lrelu_upsampling": (1, 8),
            },
            floats={
                "mapping_lr_multiplier": (1e-6, 1e3),
                "w_avg_beta": (0.0, 1.0),
                "first_cutoff": (1e-3, 1e4),
                "first_stopband": (1e-3, 1e4),
                "last_stopband_rel": (1.0, 16.0),
                "output_scale": (1e-6, 1e6),
                "conv_clamp": (1e-6, 1e9),
                "magnitude_ema_beta": (0.0, 1.0),
            },
            optional=("conv_clamp",),
        )
        if not isinstance(self.use_radial_filters, bool):
            raise ConfigError(f"use_radial_filters must be true or false, got {self.use_radial_filters!r}")
        if self.num_critical >= self.num_layers:
            raise ConfigError(f"num_critical={self.num_critical} must be below num_layers={self.num_layers}")
        if self.first_cutoff >= self.img_resolution / 2:
            raise ConfigError(f"first_cutoff={self.first_cutoff} must be below img_resolution / 2")
        self.layer_specs()  # every size and rate must come out whole (NVIDIA asserts the same)

    # NVIDIA's mapping has no separate embedding / hidden widths: both are w_dim (read by stylegan2.MappingNetwork).
    @property
    def embed_features(self) -> int:
        return self.w_dim

    @property
    def layer_features(self) -> int:
        return self.w_dim

    @property
    def num_ws(self) -> int:
        return self.num_layers + 2  # input + layers + ToRGB

    def bands(self) -> dict[str, np.ndarray]:
        """Per-layer cutoffs, stopbands, sampling rates, half widths, sizes and channels (index 0 is the input).

        Cutoffs and stopbands grow geometrically from ``first_*`` to the image's Nyquist frequency over the
        non-critical layers; each sampling rate is the power of two above twice the stopband, capped at the image
        resolution (paper Sec. 3.2, NVIDIA's SynthesisNetwork).
        """
        n, res = self.num_layers, self.img_resolution
        last_cutoff = res / 2
        last_stopband = last_cutoff * self.last_stopband_rel
        exponents = np.minimum(np.arange(n + 1) / (n - self.num_critical), 1)
        cutoffs = self.first_cutoff * (last_cutoff / self.first_cutoff) ** exponents
        stopbands = self.first_stopband * (last_stopband / self.first_stopband) ** exponents
        rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, res))))
        half_widths = np.maximum(stopbands, rates / 2) - cutoffs
        sizes = rates + self.margin_size * 2
        sizes[-2:] = res
        channels = np.rint(np.minimum((self.channel_base / 2) / cutoffs, self.channel_max))
        channels[-1] = self.img_channels
        return {
            "cutoffs": cutoffs,
            "stopbands": stopbands,
            "sampling_rates": rates,
            "half_widths": half_widths,
            "sizes": sizes,
            "channels": channels,
        }

    def layer_specs(self) -> list[LayerSpec]:
        b = self.bands()
        ch, sizes, rates = b["channels"], b["sizes"], b["sampling_rates"]
        if ch.min() < 1:
            raise ConfigError(f"channel_base={self.channel_base} gives 0 channels in some layer; raise it")
        specs = []
        for idx in range(self.num_layers + 1):
            prev = max(idx - 1, 0)
            is_torgb = idx == self.num_layers
            critical = idx >= self.num_layers - self.num_critical
            in_sr, out_sr = int(rates[prev]), int(rates[idx])
            tmp_sr = max(in_sr, out_sr) * (1 if is_torgb else self.lrelu_upsampling)
            up, down = tmp_sr // in_sr, tmp_sr // out_sr
            if up * in_sr != tmp_sr or down * out_sr != tmp_sr:
                raise ConfigError(f"layer {idx}: sampling rates {in_sr} -> {out_sr} do not divide {tmp_sr}")
            k = 1 if is_torgb else self.conv_kernel
            up_taps = self.filter_size * up if up > 1 and not is_torgb else 1
            down_taps = self.filter_size * down if down > 1 and not is_torgb else 1
            in_size, out_size = int(sizes[prev]), int(sizes[idx])
            # Size before the final stride, minus the input after conv and up-sampling, plus the filters' shrinkage;
            # split with the symmetric sample positions of the paper's Appendix C.3.
            pad_total = (out_size - 1) * down + 1 - (in_size + k - 1) * up + up_taps + down_taps - 2
            pad_lo = (pad_total + up) // 2
            pad_hi = pad_total - pad_lo
            out_ch = int(ch[idx])
            specs.append(
                LayerSpec(
                    name=f"L{idx}_{out_size}_{out_ch}",
                    is_torgb=is_torgb,
                    is_critically_sampled=critical,
                    in_channels=int(ch[prev]),
                    out_channels=out_ch,
                    in_size=in_size,
                    out_size=out_size,
                    in_sampling_rate=in_sr,
                    out_sampling_rate=out_sr,
                    in_cutoff=float(b["cutoffs"][prev]),
                    out_cutoff=float(b["cutoffs"][idx]),
                    in_half_width=float(b["half_widths"][prev]),
                    out_half_width=float(b["half_widths"][idx]),
                    conv_kernel=k,
                    up_factor=up,
                    down_factor=down,
                    up_taps=up_taps,
                    down_taps=down_taps,
                    down_radial=self.use_radial_filters and not critical,
                    padding=(pad_lo, pad_hi, pad_lo, pad_hi),
                )
            )
        return specs


# --------------------------------------------------------------------------------------------------------------------
# Filters (only used when building a network from scratch: a loaded file brings its own filter buffers)


def _kaiser_beta(numtaps: int, width: float) -> float:
    """Kaiser window beta for ``numtaps`` taps and a transition ``width`` relative to Nyquist (Kaiser's formulas)."""
    atten = 2.285 * (numtaps - 1) * math.pi * width + 7.95
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def design_lowpass_filter(
    numtaps: int, cutoff: float, width: float, fs: float, *, radial: bool = False
) -> torch.Tensor | None:
    """The windowed-sinc low-pass FIR NVIDIA designs: ``None`` for 1 tap (identity), else a Kaiser-windowed sinc
    [numtaps] normalised to unit DC gain, or (``radial``) a Kaiser-windowed jinc [numtaps, numtaps] of sum 1."""
    if numtaps == 1:
        return None
    nyq = fs / 2
    beta = _kaiser_beta(numtaps, width / nyq)
    window = np.kaiser(numtaps, beta)
    if not radial:
        m = np.arange(numtaps) - (numtaps - 1) / 2
        h = (cutoff / nyq) * np.sinc((cutoff / nyq) * m) * window
        return torch.as_tensor(h / h.sum(), dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = torch.as_tensor(np.hypot(*np.meshgrid(x, x)), dtype=torch.float64, device="cpu")  # also under a meta device
    # jinc: J1(2 pi fc r) / (pi r), whose value at r = 0 is fc (never sampled for even tap counts).
    f = torch.where(
        r > 0, torch.special.bessel_j1(2 * cutoff * math.pi * r) / (math.pi * r), torch.full_like(r, cutoff)
    )
    f = f.numpy() * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# --------------------------------------------------------------------------------------------------------------------
# Filtered leaky ReLU
#
# NVIDIA's upfirdn2d is a true convolution of the zero-stuffed, padded map. Up-sampling is done here as a strided
# transposed conv (the same sums, without the zero-stuffed copy) followed by a pad/crop to NVIDIA's window;
# down-sampling as a strided conv (only the kept samples are computed). Separable filters run one axis at a time.


def _axis_kernel(f: torch.Tensor, channels: int, axis: int, dtype: torch.dtype) -> torch.Tensor:
    """A 1-D filter as a depthwise conv kernel [C, 1, 1, T] (axis 3, x) or [C, 1, T, 1] (axis 2, y)."""
    k = f.to(dtype).reshape((1, 1, 1, -1) if axis == 3 else (1, 1, -1, 1))
    return k.expand(channels, 1, *k.shape[2:])


def _up_pad(n: int, up: int, taps: int, p0: int, p1: int) -> tuple[int, int]:
    """Pad (negative: crop) that turns the transposed conv's full output [(n-1)*up + taps] into NVIDIA's window
    [n*up + p0 + p1 - taps + 1]: the full convolution starts ``taps - 1 - p0`` samples before it."""
    return p0 - taps + 1, p1 + up - taps


def _pad_axis(x: torch.Tensor, lo: int, hi: int, axis: int) -> torch.Tensor:
    if lo == hi == 0:
        return x
    return F.pad(x, [lo, hi] if axis == 3 else [0, 0, lo, hi])


def _up_axis_conv(x: torch.Tensor, f: torch.Tensor, up: int, p0: int, p1: int, axis: int) -> torch.Tensor:
    """Zero-stuff by ``up``, pad (p0, p1) and convolve with ``f * up`` along one axis, as a depthwise conv."""
    k = _axis_kernel(f * up, x.shape[1], axis, x.dtype)
    stride = (1, up) if axis == 3 else (up, 1)
    y = F.conv_transpose2d(x, k, stride=stride, groups=x.shape[1])
    return _pad_axis(y, *_up_pad(x.shape[axis], up, f.numel(), p0, p1), axis)


def _down_axis_conv(x: torch.Tensor, f: torch.Tensor, down: int, axis: int) -> torch.Tensor:
    k = _axis_kernel(f.flip([0]), x.shape[1], axis, x.dtype)
    return F.conv2d(x, k, stride=(1, down) if axis == 3 else (down, 1), groups=x.shape[1])


# Each 1-D filter step along one axis is a linear map y = x @ M with a banded M [n_in, n_out], shift-invariant in
# the interior (NVIDIA's zero padding is zero extension, their crop a restriction). It runs as BLAS matmuls over
# blocks: output block j (``bo`` samples) reads the ``m * step`` inputs from ``start + j * step`` on, with the same
# weights k [m * step, bo] for every block. About m * step MACs per output instead of n_in for the dense matrix.
# The windows of consecutive blocks overlap, and two layouts avoid copying the larger side:
# - up-sampling (output larger): copy the input's overlapping windows (m times the small input), one matmul;
# - down-sampling (input larger): cut the input into ``step``-sample pieces (a free reshape), one matmul with
#   [step, m * bo] gives each piece's share of the m blocks that read it, and m shifted slices are summed.
# Axes too short to have interior blocks use M itself.
@dataclass(frozen=True)
class _AxisOp:
    n_in: int
    n_out: int
    dense: torch.Tensor | None  # [n_in, n_out], or None when blocked
    k: torch.Tensor | None = None  # [m * step, bo] (windows) or [step, m * bo] (pieces)
    step: int = 0
    bo: int = 0
    nb: int = 0
    m: int = 0
    start: int = 0
    windows: bool = False

    def __call__(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        if self.dense is not None:
            return x @ self.dense if axis == 3 else self.dense.t() @ x
        step, bo, nb, m = self.step, self.bo, self.nb, self.m
        pieces = nb + m - 1
        lo, hi = -self.start, self.start + pieces * step - self.n_in  # pad (negative: crop) to whole pieces
        x = F.pad(x, [lo, hi] if axis == 3 else [0, 0, lo, hi]) if lo or hi else x
        b, c, h, w = x.shape
        if self.windows:
            win = x.unfold(axis, m * step, step)  # [B, C, H, nb, m * step] or [B, C, nb, W, m * step]
            if axis == 3:  # the copy of the windows, then one matmul
                return (win.reshape(-1, m * step) @ self.k).reshape(b, c, h, nb * bo)[..., : self.n_out]
            win = win.transpose(3, 4).contiguous()  # [B, C, nb, m * step, W]
            return (self.k.t() @ win).reshape(b, c, nb * bo, w)[:, :, : self.n_out]
        # z: [B, C, H, pieces, m * bo] (axis 3) or [B, C, pieces, m * bo, W] (axis 2)
        z = x.reshape(b, c, h, pieces, step) @ self.k if axis == 3 else self.k.t() @ x.reshape(b, c, pieces, step, w)
        d = axis  # the pieces dimension of z; the next one holds the m blocks' columns
        y = z.narrow(d, 0, nb).narrow(d + 1, 0, bo)
        for i in range(1, m):  # block j = piece j's share + piece j+1's share + ...
            y = y + z.narrow(d, i, nb).narrow(d + 1, i * bo, bo)
        return y.flatten(d, d + 1).narrow(axis, 0, self.n_out)


def _blocked(m_: torch.Tensor, num: int, den: int, bo: int) -> _AxisOp | None:
    """``m_`` [n_in, n_out] in blocks of ``bo`` outputs whose windows advance by ``bo * num / den`` inputs; None when
    the axis has no interior block to read the shared block weights from (or the windows overlap more than 2)."""
    n_in, n_out = m_.shape
    step, nb = bo * num // den, -(-n_out // bo)
    nz = F.pad(m_, [0, nb * bo - n_out]).reshape(n_in, nb, bo).ne(0).any(2)  # [n_in, nb]: rows block j reads
    used = nz.any(0)
    if step < 1 or step * den != bo * num or nb < 3 or not used.any():
        return None
    rows = torch.arange(n_in, device=m_.device)[:, None]
    shift = torch.arange(nb, device=m_.device) * step
    first = int((torch.where(nz, rows, n_in).amin(0) - shift)[used].min())
    last = int((torch.where(nz, rows, -1).amax(0) + 1 - shift)[used].max())
    m = -(-(last - first) // step)
    inner = [j for j in range(nb) if first + j * step >= 0 and first + (j + m) * step <= n_in and (j + 1) * bo <= n_out]
    if m > 2 or not inner:
        return None
    j = inner[len(inner) // 2]
    s = first + j * step
    k = m_[s : s + m * step, j * bo : (j + 1) * bo]  # [m * step, bo]; rows past the band are zero
    if num < den:  # up-sampling: the windows layout
        return _AxisOp(n_in, n_out, None, k.contiguous(), step, bo, nb, m, first, windows=True)
    pieces = torch.cat([k[i * step : (i + 1) * step] for i in range(m)], dim=1).contiguous()
    return _AxisOp(n_in, n_out, None, pieces, step, bo, nb, m, first)


_MIN_MATMUL_COLUMNS = 16  # narrower matmuls run far below the memory speed on CPU (measured: 10 columns, 3x slower)


def _axis_op(m_: torch.Tensor, num: int, den: int) -> _AxisOp:
    """The fastest form of ``x @ m_``: the smallest blocks whose windows overlap at most two pieces and whose
    matmul has at least :data:`_MIN_MATMUL_COLUMNS` columns (benchmarked on StyleGAN3-T's layers)."""
    unit = den // math.gcd(num, den)  # bo must be a multiple of it for whole-sample steps
    for bo in range(unit, m_.shape[1] // 3 + 1, unit):
        op = _blocked(m_, num, den, bo)
        if op is not None and op.k is not None and op.k.shape[1] >= _MIN_MATMUL_COLUMNS:
            return op
    return _AxisOp(*m_.shape, m_.contiguous())


def _impulses(step: Any, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The matrix M with ``step(x) == x @ M`` along the last axis (the step applied to the unit impulses)."""
    eye = torch.eye(n, dtype=dtype, device=device)[:, None, None, :]  # n impulses, one channel
    return step(eye).reshape(n, -1)


_OPS: dict[tuple, tuple[_AxisOp, _AxisOp]] = {}  # (kind, filter, n, factor, pads, dtype, device) -> (op, adjoint)
_MAX_OPS = 512


def _ops(kind: str, f: torch.Tensor, n: int, factor: int, pads: tuple[int, int], like: torch.Tensor):
    """The (forward, adjoint) axis ops of one up- or down-sampling step on an axis of n samples, cached by value."""
    key = (kind, tuple(f.tolist()), n, factor, pads, like.dtype, like.device)
    ops = _OPS.get(key)
    if ops is None:
        fx = f.to(device=like.device, dtype=like.dtype)
        if kind == "up":
            m_ = _impulses(lambda e: _up_axis_conv(e, fx, factor, *pads, 3), n, like.dtype, like.device)
            ops = _axis_op(m_, 1, factor), _axis_op(m_.t(), factor, 1)
        else:
            m_ = _impulses(lambda e: _down_axis_conv(e, fx, factor, 3), n, like.dtype, like.device)
            ops = _axis_op(m_, factor, 1), _axis_op(m_.t(), 1, factor)
        if len(_OPS) >= _MAX_OPS:
            _OPS.clear()
        _OPS[key] = ops
    return ops


def _up_axis(x: torch.Tensor, f: torch.Tensor, up: int, p0: int, p1: int, axis: int) -> torch.Tensor:
    return _ops("up", f, x.shape[axis], up, (p0, p1), x)[0](x, axis)


def _up_axis_adjoint(g: torch.Tensor, f: torch.Tensor, up: int, p0: int, p1: int, axis: int, n: int) -> torch.Tensor:
    return _ops("up", f, n, up, (p0, p1), g)[1](g, axis)


def _down(x: torch.Tensor, f: torch.Tensor, down: int) -> torch.Tensor:
    """Convolve with ``f`` ([T] separable or [T, T]) and keep every ``down``-th sample (no padding)."""
    if f.ndim == 2:
        k = f.flip([0, 1]).to(x.dtype)[None, None].expand(x.shape[1], 1, *f.shape)  # radial: a 2-D depthwise conv
        return F.conv2d(x, k, stride=down, groups=x.shape[1])
    x = _ops("down", f, x.shape[3], down, (0, 0), x)[0](x, 3)
    return _ops("down", f, x.shape[2], down, (0, 0), x)[0](x, 2)


def _down_adjoint(g: torch.Tensor, f: torch.Tensor, down: int, shape: torch.Size) -> torch.Tensor:
    if f.ndim == 2:
        return _radial_down_adjoint(g, f, down, shape)
    g = _ops("down", f, shape[2], down, (0, 0), g)[1](g, 2)
    return _ops("down", f, shape[3], down, (0, 0), g)[1](g, 3)


def _radial_down_adjoint(g: torch.Tensor, f: torch.Tensor, down: int, shape: torch.Size) -> torch.Tensor:
    """The adjoint of the strided 2-D depthwise conv, one phase at a time: input sample (down*q + p) receives
    sum_a g[q - a] * K[down*a + p] (K = flipped f), a stride-1 convolution of g with the phase's sub-kernel. Four
    forward convs scale with the map; conv2d_input and conv_transpose2d ran 20x slower on 2000-px one-channel maps."""
    c = g.shape[1]
    k = f.flip([0, 1]).to(g.dtype)[None, None].expand(c, 1, *f.shape)
    out = g.new_empty(shape)
    for py in range(down):
        for px in range(down):
            kp = k[:, :, py::down, px::down]
            ty, tx = kp.shape[2:]
            qy, qx = -(-(shape[2] - py) // down), -(-(shape[3] - px) // down)  # samples of this phase
            gp = F.pad(g, [tx - 1, max(tx - 1, qx - g.shape[3]), ty - 1, max(ty - 1, qy - g.shape[2])])
            out[:, :, py::down, px::down] = F.conv2d(gp, kp.flip([2, 3]), groups=c)[:, :, :qy, :qx]
    return out


def _up(x: torch.Tensor, f: torch.Tensor, up: int, padding: tuple[int, int, int, int]) -> torch.Tensor:
    px0, px1, py0, py1 = padding
    return _up_axis(_up_axis(x, f, up, px0, px1, 3), f, up, py0, py1, 2)


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor,
    fd: torch.Tensor,
    b: torch.Tensor,
    *,
    up: int,
    down: int,
    padding: tuple[int, int, int, int],
    clamp: float | None,
) -> torch.Tensor:
    """NVIDIA's filtered_lrelu (slope 0.2, gain sqrt(2)) with plain autograd: bias, up-sample with ``fu`` (gain up**2),
    lrelu, clamp, down-sample with ``fd``. Shapes: x [B, C, H, W], fu [T], fd [T] or [T, T], b [C]."""
    u = F.leaky_relu(_up(x + b.to(x.dtype)[None, :, None, None], fu, up, padding), 0.2)
    if clamp is not None:  # clamp(gain * a, c) = gain * clamp(a, c / gain), the gain applied after the (linear) down
        u = u.clamp(-clamp / _SQRT2, clamp / _SQRT2)
    return _down(u, fd, down) * _SQRT2


def _may_clamp(z: torch.Tensor, fu: torch.Tensor, up: int, clamp: float | None) -> bool:
    """Whether lrelu(up(z)) * sqrt(2) can reach ±clamp at all: each separable pass multiplies max|.| by at most
    up * sum|fu|. Nearly always False (NVIDIA's conv_clamp is 256), which spares the clamp's passes over the
    up-sampled map."""
    if clamp is None:
        return False
    return z.abs().amax().item() * (up * fu.abs().sum().item()) ** 2 * _SQRT2 > clamp


# Channels are independent in the filtered lrelu, so the frozen path runs it a few channels at a time (about
# CHUNK_ELEMENTS values of up-sampled map per chunk): peak memory no longer holds a whole up-sampled map, the bulk of
# StyleGAN3's memory (T at 256 px: 2.5 -> 1.5 GiB peak RSS; speed the same within the machine's noise, for chunks
# of 2^16 to 2^30 values). On a GPU the chunks are large: it wants parallel work.
CHUNK_ELEMENTS = {"cpu": 1 << 21, "other": 1 << 28}


def _channel_chunks(shape: torch.Size, up_shape: torch.Size, device: torch.device) -> list[slice]:
    budget = CHUNK_ELEMENTS["cpu" if device.type == "cpu" else "other"]
    per_channel = shape[0] * up_shape[-2] * up_shape[-1]
    step = max(1, budget // max(per_channel, 1))
    return [slice(c, min(c + step, shape[1])) for c in range(0, shape[1], step)]


def _up_shape(y: torch.Tensor, fu: torch.Tensor, up: int, padding: tuple[int, int, int, int]) -> torch.Size:
    px0, px1, py0, py1 = padding
    t = fu.shape[0]
    return torch.Size([*y.shape[:2], y.shape[2] * up + py0 + py1 - t + 1, y.shape[3] * up + px0 + px1 - t + 1])


class _FrozenFilteredLReLU(torch.autograd.Function):
    """``filtered_lrelu(y * d + b)`` saving only ``y``: the up-sampled map is recomputed in the backward pass.

    The up-sampled pre-activation is up**2 times the size of ``y`` (4 to 16x) and dominates StyleGAN3's memory;
    autograd would also keep the lrelu output and the half-filtered maps. The gain sqrt(2) is applied to the
    down-sampled map (the filter is linear), and the clamp only where it can act (:func:`_may_clamp`), so the
    up-sampled map sees one lrelu pass forward and one fused lrelu-gradient pass backward; both passes run over
    channel chunks (:data:`CHUNK_ELEMENTS`). Shapes: y [B, C, H, W], d [B, C, 1, 1].
    """

    @staticmethod
    def forward(
        ctx: Any,
        y: torch.Tensor,
        d: torch.Tensor,
        b: torch.Tensor,
        fu: torch.Tensor,
        fd: torch.Tensor,
        up: int,
        down: int,
        padding: tuple[int, int, int, int],
        clamp: float | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(y, d, b, fu, fd)
        b = b.to(y.dtype)[None, :, None, None]
        u_shape = _up_shape(y, fu, up, padding)
        out, clamps = None, False
        for sl in _channel_chunks(y.shape, u_shape, y.device):
            z = torch.addcmul(b[:, sl], y[:, sl], d[:, sl])
            u = F.leaky_relu_(_up(z, fu, up, padding), 0.2)
            if _may_clamp(z, fu, up, clamp):
                clamps = True
                u.clamp_(-clamp / _SQRT2, clamp / _SQRT2)  # type: ignore[operator]
            part = _down(u, fd, down)
            if out is None:
                out = part.new_empty(y.shape[0], y.shape[1], *part.shape[2:])
            out[:, sl] = part
            del z, u, part
        ctx.args = up, down, padding, clamp if clamps else None
        ctx.u_shape = u_shape
        return out.mul_(_SQRT2)  # type: ignore[union-attr]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        y, d, b, fu, fd = ctx.saved_tensors
        up, down, padding, clamp = ctx.args
        px0, px1, py0, py1 = padding
        b = b.to(y.dtype)[None, :, None, None]
        g = g * _SQRT2
        gz = torch.empty_like(y)
        for sl in _channel_chunks(y.shape, ctx.u_shape, y.device):
            z = torch.addcmul(b[:, sl], y[:, sl], d[:, sl])
            u = _up(z, fu, up, padding)  # recomputed pre-activation
            gu = _down_adjoint(g[:, sl], fd, down, torch.Size([y.shape[0], z.shape[1], *ctx.u_shape[2:]]))
            torch.ops.aten.leaky_relu_backward.grad_input(gu, u, 0.2, False, grad_input=gu)
            if clamp is not None:  # clamp passes the gradient where |lrelu(u) * gain| <= clamp (inclusive, as torch)
                gu.masked_fill_(F.leaky_relu_(u, 0.2).abs_() > clamp / _SQRT2, 0)
            del u
            gu = _up_axis_adjoint(gu, fu, up, py0, py1, 2, z.shape[2])
            gz[:, sl] = _up_axis_adjoint(gu, fu, up, px0, px1, 3, z.shape[3])
            del gu, z
        grad_d = _channel_dots(gz, y)[:, :, None, None] if ctx.needs_input_grad[1] else None
        grad_b = gz.sum(dim=[0, 2, 3]) if ctx.needs_input_grad[2] else None
        grad_y = gz.mul_(d) if ctx.needs_input_grad[0] else None
        return grad_y, grad_d, grad_b, None, None, None, None, None, None


# --------------------------------------------------------------------------------------------------------------------
# Layers


def make_transform(rotate: float = 0.0, translate: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """The 3x3 matrix for ``synthesis.input.transform`` that rotates the image by ``rotate`` degrees and shifts it
    by ``translate`` (x, y in image units; the image spans [-0.5, 0.5]), as NVIDIA's gen_images.py builds it: the
    rotation-translation matrix, inverted (the buffer maps image coordinates back to the input's)."""
    a = math.radians(rotate)
    s, c = math.sin(a), math.cos(a)
    m = torch.tensor([[c, s, translate[0]], [-s, c, translate[1]], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return torch.linalg.inv(m).float()


def check_transform(transform: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """A finite affine [3, 3] or [B, 3, 3] (last row 0, 0, 1), returned as [1 | B, 3, 3] float32."""
    t = transform.to(torch.float32)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[1:] != (3, 3) or (batch is not None and t.shape[0] not in (1, batch)):
        raise ShapeError(f"transform has shape {list(transform.shape)}, expected [3, 3] or [B, 3, 3]")
    if not torch.isfinite(t).all():
        raise ConfigError("transform has non-finite entries; expected a finite 3x3 affine matrix")
    last = torch.tensor([0.0, 0.0, 1.0], device=t.device)
    if not torch.allclose(t[:, 2], last.expand_as(t[:, 2])):
        raise ConfigError(f"transform's last row is {t[0, 2].tolist()}, expected [0, 0, 1] (an affine matrix)")
    return t


class SynthesisInput(nn.Module):
    """Fourier features: ``sin(2 pi (grid . f + phase))`` at ``freqs``, turned and shifted per image by an affine of
    w (rotation r_c, r_s and translation t_x, t_y) and the user ``transform``; out-of-band frequencies damped; mixed
    by ``weight``. Output [B, channels, size, size]."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, size
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        # NVIDIA draws frequencies in a disc of radius `bandwidth` and phases in [-0.5, 0.5); a file replaces both.
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():  # weight_init 0, bias_init [1, 0, 0, 0]: the identity transform
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand([channels]) - 0.5)

    def forward(self, w: torch.Tensor, transform: torch.Tensor | None = None) -> torch.Tensor:
        b = w.shape[0]
        user = self.transform[None] if transform is None else check_transform(transform, b).to(w.device)
        t = self.affine(w)  # [B, 4] = (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rc, rs, tx, ty = t.unbind(1)
        zero, one = torch.zeros_like(rc), torch.ones_like(rc)
        m_r = torch.stack([rc, -rs, zero, rs, rc, zero, zero, zero, one], 1).reshape(b, 3, 3)  # inverse rotation
        m_t = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], 1).reshape(b, 3, 3)  # inverse shift
        m = m_r @ m_t @ user  # rotate the image, then translate it, then apply the user transform
        phases = self.phases[None] + (self.freqs[None] @ m[:, :2, 2:]).squeeze(2)  # [B, C]
        freqs = self.freqs[None] @ m[:, :2, :2]  # [B, C, 2]
        # A user transform can push frequencies beyond the band: fade them out before they alias.
        amp = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        # Sample positions: pixel centres of a size x size grid spanning size / sampling_rate units.
        s = 0.5 * self.size / self.sampling_rate
        pos = (torch.arange(self.size, device=w.device, dtype=w.dtype) * 2 + 1) / self.size - 1
        pos = pos * s  # [size], affine_grid's align_corners=False positions, scaled
        gx, gy = pos[None, :].expand(self.size, -1), pos[:, None].expand(-1, self.size)
        grid = torch.stack([gx, gy], -1).reshape(1, -1, 2)  # [1, H*W, 2] (x, y)
        x = grid @ freqs.transpose(1, 2) + phases[:, None, :]  # [B, H*W, C]
        x = torch.sin(x * (2 * math.pi)) * amp[:, None, :]
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        # [B, H, W, C] viewed as [B, C, H, W]: channels_last memory, the layout the convs below run fastest in.
        return x.reshape(b, self.size, self.size, self.channels).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}, sampling_rate={self.sampling_rate:g}"


class SynthesisLayer(nn.Module):
    """Modulated conv (``magnitude_ema`` input gain) + filtered leaky ReLU; the ToRGB layer when ``spec.is_torgb``
    (1x1 conv, no demodulation, styles / sqrt(in), linear, clamp)."""

    def __init__(self, w_dim: int, spec: LayerSpec, conv_clamp: float | None):
        super().__init__()
        self.spec, self.conv_clamp = spec, conv_clamp
        self.in_channels, self.out_channels, self.is_torgb = spec.in_channels, spec.out_channels, spec.is_torgb
        self.up_factor, self.down_factor, self.padding = spec.up_factor, spec.down_factor, spec.padding
        k = spec.conv_kernel
        self.affine = FullyConnectedLayer(w_dim, spec.in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([spec.out_channels, spec.in_channels, k, k]))
        self.bias = nn.Parameter(torch.zeros([spec.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        fs = spec.up_factor * spec.in_sampling_rate
        up = design_lowpass_filter(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, fs)
        down = design_lowpass_filter(
            spec.down_taps, spec.out_cutoff, spec.out_half_width * 2, fs, radial=spec.down_radial
        )
        self.register_buffer("up_filter", up)  # None (not in the state dict) for the ToRGB layer, as NVIDIA's
        self.register_buffer("down_filter", down)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        _check_shape(x, [w.shape[0], spec.in_channels, spec.in_size, spec.in_size], f"{spec.name} input")
        styles = self.affine(w)  # [B, in]
        input_gain = self.magnitude_ema.rsqrt()
        frozen = not (self.weight.requires_grad or self.bias.requires_grad)
        conv = _FrozenModConv.apply if frozen and x.requires_grad else _plain_modconv
        pad = spec.conv_kernel - 1
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(spec.in_channels))
            y = conv(x, styles, self.weight, 1, 0, None) * input_gain
            y = y + self.bias.to(y.dtype)[None, :, None, None]
            return y if self.conv_clamp is None else y.clamp(-self.conv_clamp, self.conv_clamp)
        # NVIDIA pre-normalises weight (per output channel) and styles before demodulating; both scalings cancel in
        # the demodulation up to its 1e-8, kept here for the same rounding. Styles are normalised per image (NVIDIA:
        # over the batch), so that an image renders the same alone and in a batch.
        weight = self.weight * self.weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
        wsq = weight.square().sum(dim=[2, 3])  # [out, in]
        d = (styles.square() @ wsq.t() + 1e-8).rsqrt() * input_gain  # [B, out]
        y = conv(x, styles, weight, 1, pad, None)
        d = d[:, :, None, None].to(y.dtype)
        if frozen:
            return _FrozenFilteredLReLU.apply(
                y, d, self.bias, self.up_filter, self.down_filter, spec.up_factor, spec.down_factor, spec.padding,
                self.conv_clamp,
            )  # fmt: skip
        return filtered_lrelu(
            y * d,
            self.up_filter,
            self.down_filter,
            self.bias,
            up=spec.up_factor,
            down=spec.down_factor,
            padding=spec.padding,
            clamp=self.conv_clamp,
        )

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"{s.in_channels}->{s.out_channels}, {s.in_size}->{s.out_size} px, up={s.up_factor}, down={s.down_factor}"
            f"{', radial' if s.down_radial else ''}{', torgb' if s.is_torgb else ''}"
        )


def _plain_modconv(
    x: torch.Tensor, styles: torch.Tensor, weight: torch.Tensor, up: int, padding: int, blur: torch.Tensor | None
) -> torch.Tensor:
    """``conv(x * s, W)`` with ordinary autograd (trainable weights, or no gradient needed at all)."""
    return F.conv2d(x * styles[:, :, None, None].to(x.dtype), weight.to(x.dtype), padding=padding)


class SynthesisNetwork(nn.Module):
    """ws [B, 16, w_dim] -> image [B, img_channels, R, R]: input(ws[0]), L0..L13 (ws[1..14]), ToRGB (ws[15])."""

    def __init__(self, cfg: StyleGAN3Config):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = cfg.w_dim, cfg.img_resolution, cfg.img_channels
        self.num_ws, self.output_scale = cfg.num_ws, cfg.output_scale
        b = cfg.bands()
        self.input = SynthesisInput(
            cfg.w_dim, int(b["channels"][0]), int(b["sizes"][0]), b["sampling_rates"][0], b["cutoffs"][0]
        )
        self.layer_names = []
        for spec in cfg.layer_specs():
            setattr(self, spec.name, SynthesisLayer(cfg.w_dim, spec, cfg.conv_clamp))
            self.layer_names.append(spec.name)

    renders_coarse = False  # no per-resolution RGB images: projection cannot stop early

    def layers(self) -> list[SynthesisLayer]:
        return [getattr(self, name) for name in self.layer_names]

    def noise_layers(self) -> list[nn.Module]:
        """No layer takes noise (the list the noise options of projection and the edits read)."""
        return []

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: NoiseMode = "const",
        noise: list[torch.Tensor] | None = None,
        *,
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Render W+ codes.

        Args:
            ws: [B, num_ws, w_dim] codes.
            noise_mode: accepted for the StyleGAN2 interface; StyleGAN3 has no noise, so every mode renders the same.
            noise: must be None or empty (there are no noise inputs).
            transform: [3, 3] or [B, 3, 3] input transform for this call (:func:`make_transform`), instead of the
                ``input.transform`` buffer.
        """
        _check_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        if noise_mode not in ("const", "random", "none"):
            raise ConfigError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}")
        if noise:
            raise ConfigError(
                f"got {len(noise)} noise maps, but a StyleGAN3 generator has no noise inputs; pass none "
                "(a latent saved from a StyleGAN2 projection does not fit this model)"
            )
        ws = ws.to(self.input.weight.dtype)  # float32, or float64 for a .double() model
        x = self.input(ws[:, 0], transform)
        for i, layer in enumerate(self.layers()):
            x = layer(x, ws[:, i + 1])
        return x * self.output_scale if self.output_scale != 1 else x


class Generator(nn.Module):
    """StyleGAN3 generator: ``G(z) = G.synthesis(G.mapping(z))``.

    Example:
        >>> G = Generator(StyleGAN3Config(img_resolution=16, channel_base=256, channel_max=16, z_dim=8, w_dim=8))
        >>> G(torch.randn(2, 8)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, config: StyleGAN3Config | None = None, **kwargs: Any):
        super().__init__()
        cfg = config if config is not None else StyleGAN3Config(**kwargs)
        self.config = cfg
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg, self.num_ws)  # type: ignore[arg-type]  (StyleGAN2's layout and rules)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: NoiseMode = "const",
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, transform=transform)

    def noise_maps(self) -> list[torch.Tensor]:
        """Always empty: StyleGAN3 has no noise inputs (so latents saved from it carry no noise maps)."""
        return []

    mean_w = stylegan2.Generator.mean_w  # the mean of mapping(z), for checkpoints without a usable w_avg


def anchor_latent_space(G: Generator) -> Generator:
    """A copy of ``G`` whose codes can no longer rotate or shift the image: the input's affine (w -> rotation and
    translation of the Fourier features) is fixed at its value for ``w_avg`` — its weight zeroed, that value folded
    into its bias. The stabilisation community StyleGAN3 projectors use; ``G`` itself is not changed.

    Renders of ``w_avg`` are unchanged; any other code renders with the mean code's pose, so a projection into the
    anchored model cannot explain a target by turning the grid. Codes projected with the anchored model belong to
    it: save it (``wplus weights convert --anchor``) and edit with that file.
    """
    if not isinstance(G, Generator):
        raise ConfigError(f"latent-space anchoring is for StyleGAN3 generators, got {type(G).__name__}")
    out = copy.deepcopy(G)
    affine = out.synthesis.input.affine
    with torch.no_grad():
        value = affine(out.w_avg.reshape(1, -1).to(affine.weight.dtype))[0]
        affine.weight.zero_()
        affine.bias.copy_(value / affine.bias_gain)
    return out


def random_generator(config: StyleGAN3Config, *, seed: int = 0, w_avg_samples: int = 2000) -> Generator:
    """A randomly initialised StyleGAN3 (tests, benchmarks): seeded weights, frequencies and phases, small random
    biases and input gains, and a non-identity input affine, so that every term of the network is exercised."""
    gen = torch.Generator().manual_seed(seed)
    G = Generator(config)
    with torch.no_grad():
        for name, t in G.named_parameters():
            if name.startswith("mapping.fc") and name.endswith("weight"):
                t.copy_(torch.randn(t.shape, generator=gen) / config.mapping_lr_multiplier)
            elif name == "synthesis.input.affine.weight":
                t.copy_(torch.randn(t.shape, generator=gen) * 0.2)
            elif name.endswith("weight"):
                t.copy_(torch.randn(t.shape, generator=gen))
            elif name.startswith("synthesis.L") and name.endswith(".bias") and ".affine." not in name:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
        inp = G.synthesis.input
        f = torch.randn(inp.freqs.shape, generator=gen)
        r = f.square().sum(dim=1, keepdim=True).sqrt()
        inp.freqs.copy_(f / (r * r.square().exp().pow(0.25)) * inp.bandwidth)
        inp.phases.copy_(torch.rand(inp.phases.shape, generator=gen) - 0.5)
        for layer in G.synthesis.layers():
            layer.magnitude_ema.fill_(float(torch.rand([], generator=gen)) + 0.5)
        G.mapping.w_avg.copy_(G.mean_w(w_avg_samples, seed=seed))
    return G.eval().requires_grad_(False)
