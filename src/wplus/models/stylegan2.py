"""StyleGAN2 generator (Karras et al., CVPR 2020), pure PyTorch, with NVIDIA's ``G_ema`` parameter layout.

Parameter and buffer names follow NVIDIA's stylegan2-ada-pytorch ``G_ema`` so that an official state dict loads with
``strict=True``. The run-time conventions are those of stylegan2-ada-pytorch ``training/networks.py``
(equalised-learning-rate gains applied at run time, mapping lr multiplier 0.01, 2nd-moment normalised z,
modulated convolution with demodulation eps 1e-8,
ToRGB styles scaled by 1/sqrt(in_channels), per-layer scalar noise strength, [1,3,3,1] FIR resampling,
bias + lrelu * sqrt(2) + optional clamp, truncation with cutoff).

Modulation is applied to activations rather than to weights: ``conv(x * s, W) * d`` equals ``conv(x, W * s) / ...``
exactly, but keeps the convolution weight shared across the batch (one ordinary conv, no grouped conv) and means the
backward pass of an embedding run, where weights are frozen, computes no weight gradients at all.

Shapes: z [B, z_dim], c [B, c_dim], ws [B, num_ws, w_dim], images [B, img_channels, R, R] in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wplus.errors import ConfigError, ShapeError
from wplus.models.config import (
    MAX_CHANNEL_BASE,
    MAX_WIDTH,
    ModelConfig,
    check_filter,
    check_ranges,
    check_resolution,
)

NoiseMode = Literal["const", "random", "none"]
Architecture = Literal["orig", "skip", "resnet"]

__all__ = ["StyleGAN2Config", "Generator", "MappingNetwork", "SynthesisNetwork", "upfirdn2d", "NoiseMode"]


# --------------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class StyleGAN2Config(ModelConfig):
    """Everything needed to build a StyleGAN2 generator; stored next to the weights.

    Field names follow NVIDIA's constructor arguments. ``channels(res) = min(channel_base // res, channel_max)``.
    """

    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    embed_features: int | None = None  # label embedding width (c_dim > 0); defaults to w_dim
    layer_features: int | None = None  # hidden width of the mapping MLP; defaults to w_dim
    channel_base: int = 32768
    channel_max: int = 512
    architecture: Architecture = "skip"
    conv_clamp: float | None = None
    resample_filter: tuple[int, ...] = (1, 3, 3, 1)
    num_fp16_res: int = 0  # recorded from source checkpoints; wplus always computes in the module's dtype
    arch: str = field(default="stylegan2", init=False)

    def __post_init__(self) -> None:
        check_resolution(self, "img_resolution", 4)
        check_ranges(
            self,
            ints={
                "z_dim": (1, MAX_WIDTH),
                "c_dim": (0, 100_000),
                "w_dim": (1, MAX_WIDTH),
                "img_channels": (1, 16),
                "mapping_layers": (1, 32),
                "embed_features": (0, MAX_WIDTH),
                "layer_features": (1, MAX_WIDTH),
                "channel_base": (1, MAX_CHANNEL_BASE),
                "channel_max": (1, MAX_WIDTH),
                "num_fp16_res": (0, 16),
            },
            floats={"mapping_lr_multiplier": (1e-6, 1e3), "w_avg_beta": (0.0, 1.0), "conv_clamp": (1e-6, 1e9)},
            optional=("embed_features", "layer_features", "conv_clamp"),
        )
        check_filter(self, "resample_filter")
        if self.channels(self.img_resolution) < 1:
            raise ConfigError(
                f"channel_base={self.channel_base} gives 0 channels at {self.img_resolution} px; raise it"
            )
        if self.architecture not in ("orig", "skip", "resnet"):
            raise ConfigError(f"architecture must be 'orig', 'skip' or 'resnet', got {self.architecture!r}")

    @property
    def num_ws(self) -> int:
        # Each block has two convs (b4 has one) and only the last ToRGB takes a w of its own: 2*log2(R) - 2.
        return 2 * int(math.log2(self.img_resolution)) - 2

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


# --------------------------------------------------------------------------------------------------------------------
# Low-level operations


def setup_filter(f: tuple[int, ...] | list[int]) -> torch.Tensor:
    """2-D FIR filter [k, k]: the outer product of a 1-D kernel, normalised to sum 1 (NVIDIA's ``resample_filter``)."""
    f1 = torch.as_tensor(f, dtype=torch.float32)
    f2 = torch.outer(f1, f1)
    return f2 / f2.sum()


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    *,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with the 2-D FIR filter ``f`` (true convolution), downsample.

    ``pad`` is (x0, x1, y0, y1) like NVIDIA's; negative values crop. Shape: [B, C, H, W] -> [B, C, H', W'].
    """
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    px0, px1, py0, py1 = pad
    k = (f * gain).flip([0, 1]).to(dtype=x.dtype)  # convolution, not correlation
    k = k[None, None].expand(c, 1, *k.shape)
    if px0 == px1 == py0 == py1 >= 0:
        x = F.conv2d(x, k, groups=c, padding=px0)  # let the conv pad: no padded copy of a large activation
    else:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
        x = F.conv2d(x, k, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """2x FIR upsampling with gain up**2 (the ``skip`` image path)."""
    fw = f.shape[-1]
    p0, p1 = (fw + up - 1) // 2, (fw - up) // 2
    return upfirdn2d(x, f, up=up, pad=(p0, p1, p0, p1), gain=up**2)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


_SQRT2 = math.sqrt(2.0)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None,
    *,
    act: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """``act(x + b) * gain``, clamped to ±clamp. lrelu slope 0.2 with default gain sqrt(2) (NVIDIA bias_act)."""
    if b is not None:
        x = x + (b.reshape(1, -1, *([1] * (x.ndim - 2))) if x.ndim > 2 else b)
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
        gain = _SQRT2 if gain is None else gain
    elif act != "linear":
        raise ConfigError(f"unsupported activation {act!r}; expected 'linear' or 'lrelu'")
    if gain is not None and gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# --------------------------------------------------------------------------------------------------------------------
# Layers


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: ``w_eff = w * lr_mul / sqrt(in)``, ``b_eff = b * lr_mul``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = None if self.bias is None else (self.bias * self.bias_gain if self.bias_gain != 1 else self.bias)
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Plain conv with equalised lr (the ``resnet`` skip: 1x1, no bias, 2x FIR upsampling)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        up: int = 1,
        resample_filter: tuple[int, ...] = (1, 3, 3, 1),
    ):
        super().__init__()
        self.up, self.padding = up, kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        if self.weight.shape[-1] != 1 or self.up != 2:
            raise NotImplementedError("only the 1x1 up-sampling skip conv of the resnet architecture is used")
        x = F.conv2d(x, self.weight * self.weight_gain)  # 1x1: convolve, then upsample (as NVIDIA's fast path)
        x = upsample2d(x, self.resample_filter)
        return bias_act(x, self.bias, gain=gain)


class MappingNetwork(nn.Module):
    """z (and optional label c) -> w, broadcast to [B, num_ws, w_dim], with truncation."""

    def __init__(self, cfg: StyleGAN2Config, num_ws: int):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = cfg.z_dim, cfg.c_dim, cfg.w_dim, num_ws
        self.num_layers, self.w_avg_beta = cfg.mapping_layers, cfg.w_avg_beta
        embed_features = cfg.embed_features or cfg.w_dim
        layer_features = cfg.layer_features or cfg.w_dim
        if cfg.c_dim == 0:
            embed_features = 0
        features = [cfg.z_dim + embed_features] + [layer_features] * (cfg.mapping_layers - 1) + [cfg.w_dim]
        if cfg.c_dim > 0:
            self.embed = FullyConnectedLayer(cfg.c_dim, embed_features)
        for i in range(cfg.mapping_layers):
            layer = FullyConnectedLayer(
                features[i], features[i + 1], activation="lrelu", lr_multiplier=cfg.mapping_lr_multiplier
            )
            setattr(self, f"fc{i}", layer)
        self.register_buffer("w_avg", torch.zeros([cfg.w_dim]))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            _check_shape(z, [None, self.z_dim], "z")
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            if c is None:
                raise ConfigError(f"this generator is conditional (c_dim={self.c_dim}): pass a class label c")
            _check_shape(c, [None, self.c_dim], "c")
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # [B, num_ws, w_dim]
        return truncate(x, self.w_avg, truncation_psi, truncation_cutoff)


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    """``w_avg + psi * (w - w_avg)`` on all layers, or on the first ``cutoff`` layers only."""
    if psi == 1:
        return ws
    if cutoff is None:
        return w_avg.lerp(ws, psi)
    ws = ws.clone()
    ws[:, :cutoff] = w_avg.lerp(ws[:, :cutoff], psi)
    return ws


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv with demodulation, optional 2x up-sampling, noise, bias, lrelu and clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        *,
        up: int = 1,
        conv_clamp: float | None = None,
        resample_filter: tuple[int, ...] = (1, 3, 3, 1),
        kernel_size: int = 3,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.padding = kernel_size // 2
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: NoiseMode = "const",
        noise: torch.Tensor | None = None,
        gain: float = 1.0,
    ) -> torch.Tensor:
        styles = self.affine(w)  # [B, in]
        # Demodulation d[b,o] = rsqrt(sum_{i,k} (W[o,i,k] s[b,i])^2 + 1e-8), as a [B,in] x [in,out] product.
        wsq = self.weight.square().sum(dim=[2, 3])  # [out, in]
        dcoefs = (styles.square().matmul(wsq.t()) + 1e-8).rsqrt()  # [B, out]
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        bias = self.bias[None, :, None, None]
        if not self.weight.requires_grad:  # frozen weights (embedding, inference): memory-lean autograd
            y = _FrozenModConv.apply(x, styles, self.weight, self.up, self.padding, self.resample_filter)
            noise_term = self._noise_term(y, noise_mode, noise)
            d = dcoefs[:, :, None, None].to(y.dtype)
            return _FrozenEpilogue.apply(y, d, bias.to(y.dtype), noise_term, _SQRT2 * gain, clamp)
        y = _modulated_conv(x, styles, self.weight, self.up, self.padding, self.resample_filter)
        noise_term = self._noise_term(y, noise_mode, noise)
        additive = bias if noise_term is None else bias + noise_term
        # A channels_last additive keeps addcmul's result channels_last (an NCHW one would make it NCHW).
        additive = additive.to(y.dtype).contiguous(memory_format=torch.channels_last)
        x = torch.addcmul(additive, y, dcoefs[:, :, None, None].to(y.dtype))  # y * d + bias + noise * strength
        x = F.leaky_relu(x, 0.2) * (_SQRT2 * gain)
        return x if clamp is None else x.clamp(-clamp, clamp)

    def _noise_term(self, x: torch.Tensor, noise_mode: NoiseMode, noise: torch.Tensor | None) -> torch.Tensor | None:
        """noise * strength as [1|B, 1, H, W] (None for noise_mode 'none')."""
        if noise is not None:
            n = noise.to(x.dtype)
        elif noise_mode == "const":
            n = self.noise_const[None, None].to(x.dtype)
        elif noise_mode == "random":
            n = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device, dtype=x.dtype)
        elif noise_mode == "none":
            return None
        else:
            raise ConfigError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}")
        return n * self.noise_strength.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, up={self.up}"


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation; styles scaled by 1/sqrt(in_channels); linear, clamped."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # [B, in]
        if self.weight.requires_grad:
            x = _modulated_conv(x, styles, self.weight, 1, 0, None)
        else:
            x = _FrozenModConv.apply(x, styles, self.weight, 1, 0, None)
        x = x + self.bias.to(x.dtype)[None, :, None, None]
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return x


# Up-sampling convs whose pre-blur map (2H+1)^2 x C_out would exceed this many elements per image run as one
# stride-2 transposed conv with the 6x6 kernel W (*) blur instead: no 4x-sized intermediate (537 MB per image at
# 1024 px), and at those sizes it is also faster on CPU (benchmarks/projection_speed.py); below it, two steps win.
FUSE_UPSAMPLING_ELEMENTS = 1 << 26


def _fuse_upsampling(x: torch.Tensor, out_channels: int) -> bool:
    return (2 * x.shape[-1] + 1) * (2 * x.shape[-2] + 1) * out_channels >= FUSE_UPSAMPLING_ELEMENTS


def _blurred_kernel(weight: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
    """W (*) (4 * blur): the 6x6 kernel of "transposed conv, then blur" as one transposed conv. [out, in, 6, 6]."""
    o, i, kh, kw = weight.shape
    f = (blur * 4).flip([0, 1]).to(weight.dtype)
    k = F.conv2d(weight.reshape(o * i, 1, kh, kw), f[None, None], padding=f.shape[-1] - 1)
    return k.reshape(o, i, *k.shape[-2:])


def _modulated_conv(
    x: torch.Tensor, styles: torch.Tensor, weight: torch.Tensor, up: int, padding: int, blur: torch.Tensor | None
) -> torch.Tensor:
    """``conv(x * s, W)``; for up=2 a stride-2 transposed conv, then the [1,3,3,1] blur with gain 4 (NVIDIA's
    conv2d_resample). Shapes: x [B, in, H, W], styles [B, in], weight [out, in, k, k]."""
    fused = up == 2 and _fuse_upsampling(x, weight.shape[0])
    x = x * styles[:, :, None, None].to(x.dtype)
    if up == 1:
        return F.conv2d(x, weight.to(x.dtype), padding=padding)
    if fused:  # the blur's 4 taps and the 3x3 kernel as one 6x6 transposed conv (same result, see above)
        return F.conv_transpose2d(x, _blurred_kernel(weight, blur).transpose(0, 1).to(x.dtype), stride=2, padding=2)
    x = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
    return upfirdn2d(x, blur, pad=(1, 1, 1, 1), gain=4)


class _FrozenModConv(torch.autograd.Function):
    """:func:`_modulated_conv` for frozen weights, saving only its input.

    Plain autograd would keep ``x * s``, the up-sampled map before the blur (4x the output at 2x the channels) and
    the blur input; an embedding run at 1024 px would hold several GB of them. The backward pass needs only x and
    the (constant) weights: grad_x = adjoint(g) * s, grad_s = sum_hw(adjoint(g) * x).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        styles: torch.Tensor,
        weight: torch.Tensor,
        up: int,
        padding: int,
        blur: torch.Tensor | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, styles, weight, blur)
        ctx.up, ctx.padding = up, padding
        return _modulated_conv(x, styles, weight, up, padding, blur)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, styles, weight, blur = ctx.saved_tensors
        w = weight.to(g.dtype)
        if ctx.up == 1:
            g = F.conv_transpose2d(g, w, padding=ctx.padding)  # adjoint of conv2d
        elif _fuse_upsampling(x, w.shape[0]):
            g = F.conv2d(g, _blurred_kernel(w, blur).transpose(0, 1), stride=2, padding=2)
        else:
            k = (blur * 4).flip([0, 1]).to(g.dtype)
            c = g.shape[1]
            g = F.conv_transpose2d(g, k[None, None].expand(c, 1, *k.shape), padding=1, groups=c)  # blur adjoint
            g = F.conv2d(g, w.transpose(0, 1), stride=2)  # adjoint of the stride-2 transposed conv
        grad_x = g * styles[:, :, None, None].to(g.dtype) if ctx.needs_input_grad[0] else None
        # x.to: under bf16 autocast g is bf16 while a block's first input (the learned constant) is fp32
        grad_s = _channel_dots(g, x.to(g.dtype)).to(styles.dtype) if ctx.needs_input_grad[1] else None
        return grad_x, grad_s, None, None, None, None


# Elements per chunk of _channel_dots' product: 16 MB of float32, so the product stays in cache before it is summed.
CHANNEL_DOTS_CHUNK = 1 << 22


def _channel_dots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum_hw a * b`` per image and channel, [B, C, H, W] x2 -> [B, C].

    ``einsum("bchw,bchw->bc")`` runs as a batch of B*C one-column matrix products, which at 1024 px took 0.64 s
    for one [1, 32, 1024, 1024] pair on this CPU; a product and a sum over H*W take about a tenth of that, and in
    cache-sized chunks of channels_last rows (a [B, H*W, C] view) a twentieth.
    """
    bsz, c, h, w = a.shape
    last = torch.channels_last
    if not (a.is_contiguous(memory_format=last) and b.is_contiguous(memory_format=last)) or c == 1:
        return (a * b).sum(dim=(2, 3))
    a2, b2 = a.permute(0, 2, 3, 1).reshape(bsz, h * w, c), b.permute(0, 2, 3, 1).reshape(bsz, h * w, c)
    rows = max(1, CHANNEL_DOTS_CHUNK // (bsz * c))
    out = (a2[:, :rows] * b2[:, :rows]).sum(1)
    for i in range(rows, h * w, rows):
        out += (a2[:, i : i + rows] * b2[:, i : i + rows]).sum(1)
    return out


class _FrozenEpilogue(torch.autograd.Function):
    """``out = clamp(lrelu(y * d + bias + noise_term) * gain)``, saving nothing but ``out`` itself.

    ``out`` is kept alive anyway as the next layer's input, and it determines everything the backward pass needs:
    the lrelu slope (out > 0), the clamp mask (|out| >= clamp) and y * d (from out, bias and noise). Saving y and
    the pre-activation instead would triple the activation memory of an embedding run.
    Shapes: y [B, C, H, W], d [B, C, 1, 1], bias [1, C, 1, 1], noise_term [1|B, 1, H, W] or None.
    """

    @staticmethod
    def forward(
        ctx: Any,
        y: torch.Tensor,
        d: torch.Tensor,
        bias: torch.Tensor,
        noise_term: torch.Tensor | None,
        gain: float,
        clamp: float | None,
    ) -> torch.Tensor:
        # lrelu(p) * gain == lrelu(p * gain) for gain > 0, so the gain rides along in d, bias and noise.
        out = y * (d * gain) if noise_term is None else torch.addcmul(noise_term * gain, y, d * gain)
        out = F.leaky_relu_(out.add_(bias * gain), 0.2)
        if clamp is not None:
            out = out.clamp_(-clamp, clamp)
        ctx.save_for_backward(out, d, bias, noise_term)
        ctx.gain, ctx.clamp = gain, clamp
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        out, d, bias, noise_term = ctx.saved_tensors
        gain, clamp = ctx.gain, ctx.clamp
        g = torch.where(out > 0, grad * gain, grad * (0.2 * gain))  # d out / d p, times the incoming gradient
        if clamp is not None:
            g = g.masked_fill_(out.abs() >= clamp, 0)
        grad_y = g * d if ctx.needs_input_grad[0] else None
        grad_d = grad_bias = grad_noise = None
        g_sum = g.sum(dim=[2, 3], keepdim=True)  # [B, C, 1, 1]
        if ctx.needs_input_grad[1]:
            # dL/dd = sum_hw g * y and y * d = p - bias - noise_term, with g * p = grad * out where not clamped.
            go = grad * out if clamp is None else (grad * out).masked_fill_(out.abs() >= clamp, 0)
            gyd = go.sum(dim=[2, 3], keepdim=True) - g_sum * bias
            if noise_term is not None:
                gyd = gyd - (g * noise_term).sum(dim=[2, 3], keepdim=True)
            grad_d = gyd / d
        if ctx.needs_input_grad[2]:
            grad_bias = g_sum.sum(dim=0, keepdim=True)
        if ctx.needs_input_grad[3]:  # noise maps being optimised
            grad_noise = g.sum(dim=1, keepdim=True)
            if noise_term.shape[0] == 1:
                grad_noise = grad_noise.sum(dim=0, keepdim=True)
        return grad_y, grad_d, grad_bias, grad_noise, None, None


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity whose backward hands on a channels_last gradient.

    The loss returns NCHW gradients for the image; without this, the whole backward pass would run in NCHW against
    channels_last saved activations, and every elementwise op would stride across memory (several times slower).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


def _channels_last_grad(x: torch.Tensor) -> torch.Tensor:
    return _ChannelsLastGrad.apply(x) if x.requires_grad else x


class SynthesisBlock(nn.Module):
    """One resolution: (const | up-sampling conv0) + conv1, ToRGB and the image skip / resnet path."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        *,
        architecture: Architecture,
        conv_clamp: float | None,
        resample_filter: tuple[int, ...],
    ):
        super().__init__()
        self.in_channels, self.resolution, self.architecture = in_channels, resolution, architecture
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim,
                resolution,
                up=2,
                conv_clamp=conv_clamp,
                resample_filter=resample_filter,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp, resample_filter=resample_filter
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, up=2, resample_filter=resample_filter)

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: NoiseMode,
        noises: list[torch.Tensor | None],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # ws: [B, num_conv + num_torgb, w_dim]; noises: one entry (or None) per conv layer.
        if self.in_channels == 0:
            # channels_last: oneDNN runs these convs ~2.5x faster on CPU than in NCHW (benchmarks/).
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1).contiguous(memory_format=torch.channels_last)
            x = self.conv1(x, ws[:, 0], noise_mode, noises[0])
            i = 1
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, ws[:, 0], noise_mode, noises[0])
            x = self.conv1(x, ws[:, 1], noise_mode, noises[1], gain=math.sqrt(0.5))
            x = y + x
            i = 2
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, noises[0])
            x = self.conv1(x, ws[:, 1], noise_mode, noises[1])
            i = 2
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.num_torgb:
            y = _channels_last_grad(self.torgb(x, ws[:, i]))
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> image [B, img_channels, R, R]."""

    def __init__(self, cfg: StyleGAN2Config):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = cfg.w_dim, cfg.img_resolution, cfg.img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(cfg.img_resolution)) + 1)]
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = cfg.channels(res // 2) if res > 4 else 0
            block = SynthesisBlock(
                in_ch,
                cfg.channels(res),
                cfg.w_dim,
                res,
                cfg.img_channels,
                is_last=(res == cfg.img_resolution),
                architecture=cfg.architecture,
                conv_clamp=cfg.conv_clamp,
                resample_filter=cfg.resample_filter,
            )
            self.num_ws += block.num_conv
            if res == cfg.img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def noise_layers(self) -> list[SynthesisLayer]:
        """The conv layers that take noise, in W+ row order (one noise map each)."""
        out = []
        for block in self.blocks():
            out.extend(getattr(block, name) for name in ("conv0", "conv1") if hasattr(block, name))
        return out

    @property
    def renders_coarse(self) -> bool:
        """Whether ``forward(max_resolution=r)`` can stop early: the skip architecture sums an RGB image per block."""
        return self.blocks()[0].architecture == "skip"

    def coarse_rows(self, resolution: int) -> int:
        """How many leading W+ rows the blocks up to ``resolution`` read (the rows a coarse render depends on)."""
        rows = 0
        for block in self.blocks():
            if block.resolution == resolution:
                return rows + block.num_conv + block.num_torgb
            rows += block.num_conv
        raise ConfigError(f"no block renders {resolution} px; expected one of {self.block_resolutions}")

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: NoiseMode = "const",
        noise: list[torch.Tensor] | None = None,
        *,
        max_resolution: int | None = None,
    ) -> torch.Tensor:
        """Render W+ codes.

        Args:
            ws: [B, num_ws, w_dim] codes.
            noise_mode: 'const' (the stored ``noise_const`` buffers), 'random' (fresh N(0,1)) or 'none'.
            noise: optional explicit noise maps, one per conv layer ([1 or B, 1, r, r]); overrides ``noise_mode``.
            max_resolution: stop after the block of this resolution and return the RGB image summed so far
                [B, C, r, r] — the same tensor the full render computes there (skip architecture only; the blocks
                above it are not run). Coarse-to-fine projection renders this way in its first steps.
        """
        _check_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        layers = self.noise_layers()
        if noise is not None and len(noise) != len(layers):
            raise ShapeError(f"expected {len(layers)} noise maps (one per conv layer), got {len(noise)}")
        if max_resolution is not None and max_resolution != self.img_resolution:
            if not self.renders_coarse:
                raise ConfigError("a coarse render (max_resolution) needs a generator of the 'skip' architecture")
            self.coarse_rows(max_resolution)  # names the valid resolutions when this one is not a block's
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = n_idx = 0
        for block in self.blocks():
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            block_noise = noise[n_idx : n_idx + block.num_conv] if noise is not None else [None] * block.num_conv
            x, img = block(x, img, block_ws, noise_mode, block_noise)
            w_idx += block.num_conv
            n_idx += block.num_conv
            if block.resolution == max_resolution:
                break
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: ``G(z) = G.synthesis(G.mapping(z))``.

    Example:
        >>> G = Generator(StyleGAN2Config(img_resolution=16, channel_base=256, channel_max=32, mapping_layers=2,
        ...                               z_dim=32, w_dim=32))
        >>> G(torch.randn(2, 32)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, config: StyleGAN2Config | None = None, **kwargs: Any):
        super().__init__()
        cfg = config if config is not None else StyleGAN2Config(**kwargs)
        self.config = cfg
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg, self.num_ws)

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
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)

    def noise_maps(self) -> list[torch.Tensor]:
        """The stored constant noise maps as [1, 1, r, r] tensors, in layer order (the ``noise=`` argument form)."""
        return [layer.noise_const[None, None].clone() for layer in self.synthesis.noise_layers()]

    @torch.no_grad()
    def mean_w(
        self, num_samples: int = 10_000, *, seed: int = 123, batch_size: int = 1000, c: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean of ``mapping(z)`` over ``num_samples`` z ~ N(0, I) (for checkpoints without a usable ``w_avg``)."""
        gen = torch.Generator().manual_seed(seed)
        device = self.w_avg.device
        total = torch.zeros(self.w_dim, dtype=torch.float64, device=device)
        done = 0
        while done < num_samples:
            n = min(batch_size, num_samples - done)
            z = torch.randn([n, self.z_dim], generator=gen).to(device)
            cc = None if c is None else c.expand(n, -1)
            total += self.mapping(z, cc)[:, 0].double().sum(0)
            done += n
        return (total / num_samples).float()


def _check_shape(x: torch.Tensor, shape: list[int | None], name: str) -> None:
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape, strict=True)):
        want = "[" + ", ".join("B" if s is None else str(s) for s in shape) + "]"
        raise ShapeError(f"{name} has shape {list(x.shape)}, expected {want}")


def seeded_init_(G: nn.Module, seed: int) -> nn.Module:
    """Re-draw every randomly initialised tensor of ``G`` from a seeded generator (deterministic random models)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(G.named_parameters()) + list(G.named_buffers()):
            if name.endswith(("weight", "const", "noise_const")):
                lr_mul = 1.0
                if name.startswith("mapping.fc"):
                    lr_mul = G.config.mapping_lr_multiplier  # type: ignore[union-attr]
                t.copy_(torch.randn(t.shape, generator=gen) / lr_mul)
    return G


def random_generator(
    config: StyleGAN2Config, *, seed: int = 0, noise_strength: float = 0.0, w_avg_samples: int = 2000
) -> Generator:
    """A randomly initialised generator (tests, benchmarks, bug reports): seeded weights, ``w_avg`` estimated.

    ``noise_strength`` sets every layer's noise strength (0 at real initialisation; nonzero exercises noise paths).
    """
    G = seeded_init_(Generator(config), seed)
    with torch.no_grad():
        for layer in G.synthesis.noise_layers():
            layer.noise_strength.fill_(noise_strength)
        G.mapping.w_avg.copy_(G.mean_w(w_avg_samples, seed=seed))
    return G.eval().requires_grad_(False)


def count_parameters(module: nn.Module) -> int:
    return int(sum(np.prod(p.shape) for p in module.parameters()))
