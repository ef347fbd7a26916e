"""StyleGAN2 discriminator (Karras et al., CVPR 2020, the ``resnet`` D of Fig. 7), pure PyTorch, for training.

Structure, from the paper and its appendix: FromRGB (1x1 conv) at full resolution, then one residual block per
resolution down to 8x8 (two 3x3 convs, the second down-sampling 2x after a [1,3,3,1] blur, plus a 1x1 down-sampling
skip, summed and scaled by sqrt(0.5)), then the 4x4 epilogue: minibatch standard deviation (Karras et al. 2018),
a 3x3 conv, a dense layer and the linear output. All layers use the equalised learning rate (weights ~ N(0, 1),
scaled by 1/sqrt(fan_in) at run time) and lrelu(0.2) * sqrt(2).

The same network reads NVIDIA's, TF's and rosinality's trained discriminators (:mod:`wplus.formats.d_state` maps
their names onto ours): ``architecture='orig'`` drops the skips (and their sqrt(0.5)), ``conv_clamp`` clamps every
activated conv's output to +-conv_clamp (times the layer's gain) as NVIDIA's ``bias_act`` does, and ``c_dim > 0``
adds NVIDIA's conditional projection head: a label mapping network gives ``cmap`` [B, cmap_dim] and the logit is
``(out(x) * cmap).sum(1) / sqrt(cmap_dim)``. NVIDIA's fp16 layers run in float32 here.

:meth:`Discriminator.features` returns the activations of every block; ``wplus.losses.DiscriminatorFeatures`` uses
them as a domain-specific perceptual feature network where ImageNet VGG-16 weights are not available.

Shapes: images [B, img_channels, R, R] in [-1, 1] -> logits [B, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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
from wplus.models.stylegan2 import FullyConnectedLayer, normalize_2nd_moment, setup_filter, upfirdn2d

__all__ = ["DiscriminatorConfig", "Discriminator"]

_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class DiscriminatorConfig(ModelConfig):
    """Shape of a StyleGAN2 discriminator; ``channels(res) = min(channel_base // res, channel_max)``.

    Saved and loaded by :mod:`wplus.io.checkpoint` (``save_discriminator`` / ``load_discriminator``).
    """

    img_resolution: int = 64
    img_channels: int = 3
    channel_base: int = 4096
    channel_max: int = 256
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    resample_filter: tuple[int, ...] = (1, 3, 3, 1)
    architecture: str = "resnet"  # 'resnet' (skips) or 'orig' (plain chain); NVIDIA's 'skip' D is not supported
    conv_clamp: float | None = None
    c_dim: int = 0  # label size of a conditional D
    cmap_dim: int | None = None  # width of the label projection; None: channels(4) (NVIDIA's default)
    mapping_layers: int = 8  # label mapping network of a conditional D
    mapping_lr_multiplier: float = 0.01
    arch: str = field(default="stylegan2_discriminator", init=False)

    def __post_init__(self) -> None:
        check_resolution(self, "img_resolution", 8)
        check_ranges(
            self,
            ints={
                "img_channels": (1, 16),
                "channel_base": (1, MAX_CHANNEL_BASE),
                "channel_max": (1, MAX_WIDTH),
                "mbstd_group_size": (1, 256),
                "mbstd_num_channels": (0, 16),
                "c_dim": (0, 1 << 16),
                "cmap_dim": (1, MAX_WIDTH),
                "mapping_layers": (1, 64),
            },
            floats={"conv_clamp": (1e-6, 1e9), "mapping_lr_multiplier": (1e-6, 1e3)},
            optional=("conv_clamp", "cmap_dim"),
        )
        check_filter(self, "resample_filter")
        if self.architecture not in ("resnet", "orig"):
            raise ConfigError(f"architecture={self.architecture!r}; expected 'resnet' or 'orig'")
        if self.channels(self.img_resolution) < 1:
            raise ConfigError(
                f"channel_base={self.channel_base} gives 0 channels at {self.img_resolution} px; raise it"
            )
        f = self.mbstd_num_channels
        if self.channels(4) < 1 or (f and self.channels(4) % f):
            raise ConfigError(f"mbstd_num_channels={f} must divide the {self.channels(4)} channels at 4x4")

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @property
    def projection_dim(self) -> int:
        """Width of the output layer: 1, or ``cmap_dim`` for a conditional D."""
        if self.c_dim == 0:
            return 1
        return self.cmap_dim if self.cmap_dim is not None else self.channels(4)


class EqualConv2d(nn.Module):
    """Conv with equalised lr; ``down=2`` blurs with the FIR filter first, then convolves with stride 2."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: bool = True,
        down: int = 1,
        resample_filter: tuple[int, ...] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.down, self.activation, self.kernel_size, self.conv_clamp = down, activation, kernel_size, conv_clamp
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.register_buffer("resample_filter", setup_filter(resample_filter))

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down == 1:
            x = F.conv2d(x, w, self.bias, padding=self.kernel_size // 2)
        elif self.kernel_size == 1:
            x = upfirdn2d(x, self.resample_filter, down=2, pad=(1, 1, 1, 1))  # [H] -> [H/2]
            x = F.conv2d(x, w, self.bias)
        else:
            # Pad so that the blurred map is H+1 wide; a 3x3 stride-2 conv without padding then gives H/2.
            p = (self.resample_filter.shape[-1] - 2 + self.kernel_size - 1) // 2
            x = upfirdn2d(x, self.resample_filter, pad=(p, p, p, p))
            x = F.conv2d(x, w, self.bias, stride=2)
        if self.activation:
            x = F.leaky_relu(x, 0.2) * (_SQRT2 * gain)
        elif gain != 1:
            x = x * gain
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp * gain, self.conv_clamp * gain)  # NVIDIA: clamp = conv_clamp * gain
        return x


class EqualLinear(nn.Module):
    """Dense layer with equalised lr and optional lrelu."""

    def __init__(self, in_features: int, out_features: int, *, activation: bool = True):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]))
        self.bias = nn.Parameter(torch.zeros([out_features]))
        self.weight_gain = 1 / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias)
        return F.leaky_relu(x, 0.2) * _SQRT2 if self.activation else x


class DiscriminatorBlock(nn.Module):
    """Residual block: conv, down-sampling conv, 1x1 down-sampling skip; ``(skip + main) * sqrt(0.5)``.

    Without ``skip`` ('orig'): the two convs alone, no rescaling. The skip is never clamped (as NVIDIA's).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        resample_filter: tuple[int, ...],
        *,
        skip: bool = True,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        kw: dict[str, Any] = {"resample_filter": resample_filter, "conv_clamp": conv_clamp}
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, **kw)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, down=2, **kw)
        self.skip = (
            EqualConv2d(
                in_channels, out_channels, 1, bias=False, activation=False, down=2, resample_filter=resample_filter
            )
            if skip
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.skip is None:
            return self.conv1(self.conv0(x))
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class LabelMapping(nn.Module):
    """A conditional D's label embedding: ``embed`` (linear), 2nd-moment normalisation, ``fc{i}`` lrelu layers.

    NVIDIA's ``MappingNetwork(z_dim=0, w_dim=cmap_dim, num_ws=None)`` (no w_avg). Shape: c [B, c_dim] -> [B, cmap_dim].
    """

    def __init__(self, c_dim: int, cmap_dim: int, num_layers: int, lr_multiplier: float):
        super().__init__()
        self.num_layers = num_layers
        self.embed = FullyConnectedLayer(c_dim, cmap_dim)
        for i in range(num_layers):
            fc = FullyConnectedLayer(cmap_dim, cmap_dim, activation="lrelu", lr_multiplier=lr_multiplier)
            setattr(self, f"fc{i}", fc)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        x = normalize_2nd_moment(self.embed(c.to(torch.float32)))
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


def minibatch_stddev(x: torch.Tensor, group_size: int, num_channels: int) -> torch.Tensor:
    """Append the std-dev of features across groups of samples as extra channels (Karras et al. 2018, sec. 3)."""
    b, c, h, w = x.shape
    g = min(group_size, b)
    if b % g:
        g = 1  # a batch that does not split into groups: each sample is its own group (std 0)
    f = num_channels
    if f == 0:
        return x
    y = x.reshape(g, -1, f, c // f, h, w)  # [G, M, F, C/F, H, W]
    y = (y - y.mean(dim=0)).square().mean(dim=0)
    y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [M, F]
    y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [B, F, H, W]
    return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """StyleGAN2 ``resnet`` discriminator.

    Example:
        >>> D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32))
        >>> D(torch.zeros(4, 3, 16, 16)).shape
        torch.Size([4, 1])
    """

    def __init__(self, config: DiscriminatorConfig | None = None, **kwargs: Any):
        super().__init__()
        cfg = config if config is not None else DiscriminatorConfig(**kwargs)
        self.config = cfg
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.block_resolutions = [2**i for i in range(int(math.log2(cfg.img_resolution)), 2, -1)]
        clamp = cfg.conv_clamp
        self.fromrgb = EqualConv2d(cfg.img_channels, cfg.channels(cfg.img_resolution), 1, conv_clamp=clamp)
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                cfg.channels(res),
                cfg.channels(res // 2),
                cfg.resample_filter,
                skip=cfg.architecture == "resnet",
                conv_clamp=clamp,
            )
            setattr(self, f"b{res}", block)
        c4 = cfg.channels(4)
        self.conv = EqualConv2d(c4 + cfg.mbstd_num_channels, c4, 3, conv_clamp=clamp)
        self.fc = EqualLinear(c4 * 16, c4)
        self.out = EqualLinear(c4, cfg.projection_dim, activation=False)
        if cfg.c_dim:
            self.mapping = LabelMapping(cfg.c_dim, cfg.projection_dim, cfg.mapping_layers, cfg.mapping_lr_multiplier)

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Activations after FromRGB and after each residual block (resolutions R, R/2, ..., 4)."""
        _check_images(img, self.img_channels, self.img_resolution)
        x = self.fromrgb(img.to(torch.float32).contiguous(memory_format=torch.channels_last))
        feats = [x]
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x)
            feats.append(x)
        return feats

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, 1]; ``c`` [B, c_dim] is required by a conditional D (``c_dim > 0``) and refused otherwise."""
        cfg = self.config
        if cfg.c_dim and (c is None or c.ndim != 2 or c.shape[1] != cfg.c_dim or c.shape[0] != img.shape[0]):
            got = None if c is None else list(c.shape)
            raise ShapeError(f"labels c have shape {got}, expected [{img.shape[0]}, {cfg.c_dim}] (a conditional D)")
        if not cfg.c_dim and c is not None and c.numel():
            raise ShapeError("labels c given to an unconditional discriminator (c_dim=0); pass c=None")
        x = self.features(img)[-1]
        x = minibatch_stddev(x, cfg.mbstd_group_size, cfg.mbstd_num_channels)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if cfg.c_dim:
            x = (x * self.mapping(c)).sum(dim=1, keepdim=True) * (1 / math.sqrt(cfg.projection_dim))
        return x  # [B, 1]


def _check_images(img: torch.Tensor, channels: int, resolution: int) -> None:
    if img.ndim != 4 or img.shape[1] != channels or img.shape[2] != resolution or img.shape[3] != resolution:
        raise ShapeError(f"images have shape {list(img.shape)}, expected [B, {channels}, {resolution}, {resolution}]")
