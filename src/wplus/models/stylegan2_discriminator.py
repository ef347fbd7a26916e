"""StyleGAN2 discriminator (Karras et al., CVPR 2020, the ``resnet`` D of Fig. 7), pure PyTorch, for training.

Structure, from the paper and its appendix: FromRGB (1x1 conv) at full resolution, then one residual block per
resolution down to 8x8 (two 3x3 convs, the second down-sampling 2x after a [1,3,3,1] blur, plus a 1x1 down-sampling
skip, summed and scaled by sqrt(0.5)), then the 4x4 epilogue: minibatch standard deviation (Karras et al. 2018),
a 3x3 conv, a dense layer and the linear output. All layers use the equalised learning rate (weights ~ N(0, 1),
scaled by 1/sqrt(fan_in) at run time) and lrelu(0.2) * sqrt(2).

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
from wplus.models.stylegan2 import setup_filter, upfirdn2d

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
                "mbstd_num_channels": (1, 16),
            },
        )
        check_filter(self, "resample_filter")
        if self.channels(self.img_resolution) < 1:
            raise ConfigError(
                f"channel_base={self.channel_base} gives 0 channels at {self.img_resolution} px; raise it"
            )
        if self.channels(4) < 1 or self.channels(4) % self.mbstd_num_channels:
            raise ConfigError(
                f"mbstd_num_channels={self.mbstd_num_channels} must divide the {self.channels(4)} channels at 4x4"
            )

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


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
    ):
        super().__init__()
        self.down, self.activation, self.kernel_size = down, activation, kernel_size
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
    """Residual block: conv, down-sampling conv, 1x1 down-sampling skip; ``(skip + main) * sqrt(0.5)``."""

    def __init__(self, in_channels: int, out_channels: int, resample_filter: tuple[int, ...]):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, resample_filter=resample_filter)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, down=2, resample_filter=resample_filter)
        self.skip = EqualConv2d(
            in_channels, out_channels, 1, bias=False, activation=False, down=2, resample_filter=resample_filter
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


def minibatch_stddev(x: torch.Tensor, group_size: int, num_channels: int) -> torch.Tensor:
    """Append the std-dev of features across groups of samples as extra channels (Karras et al. 2018, sec. 3)."""
    b, c, h, w = x.shape
    g = min(group_size, b)
    if b % g:
        g = 1  # a batch that does not split into groups: each sample is its own group (std 0)
    f = num_channels
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
        self.fromrgb = EqualConv2d(cfg.img_channels, cfg.channels(cfg.img_resolution), 1)
        for res in self.block_resolutions:
            setattr(self, f"b{res}", DiscriminatorBlock(cfg.channels(res), cfg.channels(res // 2), cfg.resample_filter))
        c4 = cfg.channels(4)
        self.conv = EqualConv2d(c4 + cfg.mbstd_num_channels, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4)
        self.out = EqualLinear(c4, 1, activation=False)

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Activations after FromRGB and after each residual block (resolutions R, R/2, ..., 4)."""
        _check_images(img, self.img_channels, self.img_resolution)
        x = self.fromrgb(img.to(torch.float32).contiguous(memory_format=torch.channels_last))
        feats = [x]
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x)
            feats.append(x)
        return feats

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.features(img)[-1]
        cfg = self.config
        x = minibatch_stddev(x, cfg.mbstd_group_size, cfg.mbstd_num_channels)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        return self.out(x)  # [B, 1]


def _check_images(img: torch.Tensor, channels: int, resolution: int) -> None:
    if img.ndim != 4 or img.shape[1] != channels or img.shape[2] != resolution or img.shape[3] != resolution:
        raise ShapeError(f"images have shape {list(img.shape)}, expected [B, {channels}, {resolution}, {resolution}]")
