"""The released encoder architectures of pSp, e4e and ReStyle, under their checkpoints' module names.

Written from the facts in the papers' public code (module names, shapes, constants), not copied from it:

* IR-SE50 backbone (``input_layer``, ``body.0`` ... ``body.23``): stem 3x3 conv -> BatchNorm -> PReLU at full
  resolution, then 3, 4, 14 and 3 bottleneck units at 64, 128, 256 and 512 channels, each stage opening with a
  stride-2 unit. A unit is ``res_layer`` = BN -> 3x3 conv -> PReLU -> 3x3 conv (the stride) -> BN -> SE (squeeze
  and excite, reduction 16, bias-free 1x1 convs ``fc1``, ``fc2``), plus ``shortcut_layer``: a 1x1 stride conv + BN
  where the width changes, else a plain subsampling (``MaxPool2d(1, stride)``, no tensors).
* ``GradualStyleBlock`` (map2style): log2(spatial) stride-2 3x3 convs with LeakyReLU(0.01), then an EqualLinear
  (weight scaled by 1/sqrt(in) at run time, ``lr_mul`` 1).
* pSp ``GradualStyleEncoder``: features after units 6 (c1), 20 (c2) and 23 (c3); FPN ``p2 = up(c3) + latlayer1(c2)``,
  ``p1 = up(p2) + latlayer2(c1)`` (bilinear, align_corners=True); styles 0-2 read c3 (spatial 16), 3-6 read p2 (32),
  the rest p1 (64).
* e4e ``Encoder4Editing``: the same layers; ``w0 = styles[0](c3)`` repeated on every row, then row i >= 1 gets
  ``+ styles[i](features)`` (c3, p2 from row 3, p1 from row 7). Inference uses every delta.
* ReStyle ``BackboneEncoder`` / ``ProgressiveBackboneEncoder``: every style block (spatial 16) reads the last map
  (c3); the progressive one is e4e's w0 + deltas over that map. ReStyle feeds 6 channels (image || reconstruction).
* ``BackboneEncoderUsingLastLayerIntoW`` (pSp's W encoder, opts ``SingleStyleCodeEncoder`` in e4e): global average
  pool of c3 -> EqualLinear -> one w.

The widths are parameters (``width``: the stem's channels, stage widths width * (1, 2, 4, 8); ``style_dim``: the
map2style width) so that tests can build thin networks with the released names; the released files have 64 and 512.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wplus.errors import ConfigError

__all__ = [
    "ENCODER_TYPES",
    "EncoderArch",
    "IRSE50",
    "GradualStyleBlock",
    "GradualStyleEncoder",
    "Encoder4Editing",
    "BackboneEncoder",
    "ProgressiveBackboneEncoder",
    "BackboneEncoderUsingLastLayerIntoW",
    "build_encoder",
    "n_styles_for",
]

UNITS = (3, 4, 14, 3)  # IR-SE50's units per stage
TAPS = (6, 20, 23)  # the last unit of stages 2, 3 and 4: c1 (128 ch), c2 (256 ch), c3 (512 ch)
COARSE, MIDDLE = 3, 7  # style rows read from c3 before COARSE, from p2 before MIDDLE, then from p1


def n_styles_for(resolution: int) -> int:
    """The number of W+ rows of a StyleGAN2 generator: 2 log2(R) - 2 (18 at 1024, 14 at 256, 10 at 64)."""
    return 2 * int(math.log2(resolution)) - 2


class EqualLinear(nn.Module):
    """rosinality's EqualLinear without activation: ``x @ (weight / sqrt(in) * lr_mul).T + bias * lr_mul``."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale, self.lr_mul = lr_mul / math.sqrt(in_dim), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class SEModule(nn.Module):
    """Squeeze and excite: x * sigmoid(fc2(relu(fc1(mean over space)))), bias-free 1x1 convs."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, max(channels // reduction, 1), 1, bias=False)
        self.fc2 = nn.Conv2d(max(channels // reduction, 1), channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class _Subsample(nn.Module):
    """The identity shortcut of a unit that keeps its width: every ``stride``-th pixel (MaxPool2d(1, stride))."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride]


class BottleneckIRSE(nn.Module):
    """One IR-SE unit: ``res_layer(x) + shortcut_layer(x)``."""

    def __init__(self, in_c: int, depth: int, stride: int):
        super().__init__()
        if in_c == depth:
            self.shortcut_layer: nn.Module = _Subsample(stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_c, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_c),
            nn.Conv2d(in_c, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth, 16),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE50(nn.Module):
    """The IR-SE50 trunk: ``input_layer`` and ``body``; :meth:`features` returns (c1, c2, c3)."""

    def __init__(self, input_nc: int = 3, width: int = 64):
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(input_nc, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width)
        )
        units: list[nn.Module] = []
        in_c = width
        for stage, n in enumerate(UNITS):
            depth = width * 2**stage
            for k in range(n):
                units.append(BottleneckIRSE(in_c, depth, 2 if k == 0 else 1))
                in_c = depth
        self.body = nn.Sequential(*units)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in TAPS:
                taps.append(x)
        return taps[0], taps[1], taps[2]


class GradualStyleBlock(nn.Module):
    """map2style: ``log2(spatial)`` stride-2 3x3 convs (LeakyReLU 0.01) to 1x1, then ``linear`` (EqualLinear)."""

    def __init__(self, in_c: int, out_c: int, spatial: int):
        super().__init__()
        layers: list[nn.Module] = []
        for k in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(in_c if k == 0 else out_c, out_c, 3, 2, 1), nn.LeakyReLU(0.01)]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_c, out_c)
        self.out_c = out_c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).reshape(-1, self.out_c))


def _up_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class _Encoder(IRSE50):
    """The trunk plus ``styles``; subclasses decide which map each style block reads and how rows combine."""

    fpn = True  # GradualStyleEncoder / Encoder4Editing: latlayers and 16/32/64 blocks; ReStyle's: all 16 on c3

    def __init__(self, input_nc: int, n_styles: int, width: int = 64, style_dim: int = 512):
        super().__init__(input_nc, width)
        top = width * 8
        self.n_styles, self.style_dim = n_styles, style_dim

        def spatial(i: int) -> int:
            return 16 if not self.fpn or i < COARSE else (32 if i < MIDDLE else 64)

        self.styles = nn.ModuleList(GradualStyleBlock(top, style_dim, spatial(i)) for i in range(n_styles))
        if self.fpn:
            self.latlayer1 = nn.Conv2d(width * 4, top, 1)
            self.latlayer2 = nn.Conv2d(width * 2, top, 1)

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature map each style row reads."""
        c1, c2, c3 = self.features(x)
        if not self.fpn:
            return [c3] * self.n_styles
        p2 = _up_add(c3, self.latlayer1(c2))
        p1 = _up_add(p2, self.latlayer2(c1))
        return [c3 if i < COARSE else (p2 if i < MIDDLE else p1) for i in range(self.n_styles)]


class GradualStyleEncoder(_Encoder):
    """pSp: one map2style block per W+ row over the FPN maps. Output [B, n_styles, style_dim]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.maps(x)
        return torch.stack([block(m) for block, m in zip(self.styles, maps, strict=True)], dim=1)


class Encoder4Editing(_Encoder):
    """e4e: ``w0`` from row 0 on every row, plus a delta per later row. Output [B, n_styles, style_dim]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.maps(x)
        w0 = self.styles[0](maps[0])
        deltas = [torch.zeros_like(w0)] + [self.styles[i](maps[i]) for i in range(1, self.n_styles)]
        return w0[:, None] + torch.stack(deltas, dim=1)


class BackboneEncoder(GradualStyleEncoder):
    """ReStyle-pSp: every row's map2style block (spatial 16) reads the last map."""

    fpn = False


class ProgressiveBackboneEncoder(Encoder4Editing):
    """ReStyle-e4e: w0 + deltas, every block reading the last map."""

    fpn = False


class BackboneEncoderUsingLastLayerIntoW(IRSE50):
    """pSp's W encoder: mean of the last map -> ``linear`` -> one w [B, style_dim]."""

    def __init__(self, input_nc: int, n_styles: int, width: int = 64, style_dim: int = 512):
        super().__init__(input_nc, width)
        self.n_styles, self.style_dim = n_styles, style_dim
        self.linear = EqualLinear(width * 8, style_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x)[2].mean((2, 3)))


# encoder_type (as in the checkpoints' opts) -> class. 'SingleStyleCodeEncoder' is e4e's name for the W encoder.
ENCODER_TYPES: dict[str, type[nn.Module]] = {
    "GradualStyleEncoder": GradualStyleEncoder,
    "Encoder4Editing": Encoder4Editing,
    "BackboneEncoder": BackboneEncoder,
    "ProgressiveBackboneEncoder": ProgressiveBackboneEncoder,
    "BackboneEncoderUsingLastLayerIntoW": BackboneEncoderUsingLastLayerIntoW,
    "SingleStyleCodeEncoder": BackboneEncoderUsingLastLayerIntoW,
}


@dataclass(frozen=True)
class EncoderArch:
    """What builds one released encoder: ``encoder_type`` (an :data:`ENCODER_TYPES` key), input channels (3, or 6
    for ReStyle), W+ rows, the stem width (64 released) and the style width (512 released)."""

    encoder_type: str
    input_nc: int = 3
    n_styles: int = 18
    width: int = 64
    style_dim: int = 512

    def __post_init__(self) -> None:
        if self.encoder_type not in ENCODER_TYPES:
            known = ", ".join(ENCODER_TYPES)
            raise ConfigError(f"encoder_type {self.encoder_type!r} is not one of the released encoders ({known})")
        if self.input_nc not in (3, 6):
            raise ConfigError(f"input_nc {self.input_nc}: expected 3 (pSp, e4e) or 6 (ReStyle)")
        if not 1 <= self.n_styles <= 32 or not 1 <= self.width <= 512 or not 1 <= self.style_dim <= 4096:
            raise ConfigError(f"encoder sizes out of range: n_styles {self.n_styles}, width {self.width}, "
                              f"style_dim {self.style_dim}")  # fmt: skip

    @property
    def w_only(self) -> bool:
        return ENCODER_TYPES[self.encoder_type] is BackboneEncoderUsingLastLayerIntoW


def build_encoder(arch: EncoderArch, *, device: str | torch.device | None = None) -> nn.Module:
    """The module of ``arch`` (on ``device``: 'meta' builds the shapes without memory), in eval mode."""
    with torch.device(device) if device is not None else contextlib.nullcontext():
        net = ENCODER_TYPES[arch.encoder_type](arch.input_nc, arch.n_styles, arch.width, arch.style_dim)
    return net.eval()
