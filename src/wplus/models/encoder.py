"""Our own W+ encoder: a light residual CNN that reads an image and predicts its W+ code in one pass.

Trained on the generator's own samples (:mod:`wplus.train.encoder`, ``wplus encoder train``), for one generator:
the file records the generator's ``num_ws``, ``w_dim``, its ``w_avg`` and the per-row spread of W+ codes (``w_std``)
that the training saw. The network predicts a *whitened offset*: ``ws = w_avg + w_std * delta`` (pSp's
``start_from_latent_avg``, with the offset measured in units of the codes' own spread so every row and channel is
learned at the same scale).

One file, top to bottom: the config stored with the weights, the network, and loading/saving in our safetensors
format (as :mod:`wplus.models.attribute_probe`). The :class:`Encoder` protocol is what every encoder offers to the
rest of wplus (projection's ``init='encoder'``, benchmarks): ``encode(images) -> ws``.

Architecture (``docs/encoders.md`` has the measurements behind it): a 3x3 stem at the input side, then stages that
each halve the side (a stride-2 conv and ``blocks`` residual blocks, BatchNorm + SiLU) down to 4x4. Heads:

- ``'flat'``: the 4x4 map is flattened (position matters: where the mouth is decides the code), one hidden layer,
  one linear layer to all ``num_ws x w_dim`` numbers.
- ``'grouped'`` (pSp's coarse / middle / fine split, without its 151 M parameters): the rows are split into
  ``groups``; group *i* reads a feature map of its own scale (the coarsest rows the deepest map, the finest rows a
  map one or two stages earlier), pooled to 4x4, flattened, one hidden layer, one linear layer to its rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from wplus.errors import ConfigError, ShapeError
from wplus.models.config import MAX_WIDTH, ModelConfig, check_ranges, check_stage_widths

__all__ = [
    "ARCH",
    "Encoder",
    "EncoderConfig",
    "config_for",
    "WEncoder",
    "save_encoder",
    "load_encoder_file",
    "encoder_metadata",
]

ARCH = "wplus_encoder"
MAX_CHANNELS = 1024
MAX_STAGES = 8
MAX_HIDDEN = 4096
Head = Literal["flat", "grouped"]


@runtime_checkable
class Encoder(Protocol):
    """What wplus asks of an encoder: images in [-1, 1] of any side -> W+ codes ``[B, num_ws, w_dim]``."""

    num_ws: int
    w_dim: int

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class EncoderConfig(ModelConfig):
    """Shape of the encoder and the generator it belongs to (stored in the file header).

    Args:
        num_ws, w_dim: The generator's W+ shape.
        resolution: Input side (a power of two >= 8); images of another side are resized to it.
        channels: Width of each stride-2 stage (the last one ends at ``resolution / 2**len(channels)`` px).
        blocks: Residual blocks per stage after its stride-2 conv.
        stem: Width of the 3x3 stem at full resolution.
        head: ``'flat'`` or ``'grouped'`` (see the module docstring).
        groups: Rows per head group, coarse first, summing to ``num_ws`` (``'grouped'`` only; empty: automatic).
        hidden: Width of each head's hidden layer.
        model_sha256: SHA-256 of the generator file it was trained for ('' when unknown).
        model_id: Name of that generator (e.g. ``'cartoon-faces-64'``), for messages.
    """

    num_ws: int
    w_dim: int
    resolution: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 1
    stem: int = 32
    head: str = "grouped"
    groups: tuple[int, ...] = ()
    hidden: int = 512
    model_sha256: str = ""
    model_id: str = ""
    arch: str = field(default=ARCH, init=False)

    def __post_init__(self) -> None:
        check_ranges(
            self,
            ints={
                "num_ws": (1, 64),
                "w_dim": (1, MAX_WIDTH),
                "resolution": (8, 1024),
                "blocks": (0, 8),
                "stem": (1, MAX_CHANNELS),
                "hidden": (1, MAX_HIDDEN),
            },
        )
        if self.resolution & (self.resolution - 1):
            raise ConfigError(f"EncoderConfig.resolution must be a power of two, got {self.resolution}")
        check_stage_widths(self, "channels", lengths=(1, MAX_STAGES), max_width=MAX_CHANNELS, side=self.resolution)
        ch = self.channels
        if self.head not in ("flat", "grouped"):
            raise ConfigError(f"EncoderConfig.head must be 'flat' or 'grouped', got {self.head!r}")
        for name in ("model_sha256", "model_id"):
            if not isinstance(getattr(self, name), str) or len(getattr(self, name)) > 256:
                raise ConfigError(f"EncoderConfig.{name} must be a short string, got {getattr(self, name)!r}")
        if self.head == "grouped":
            if not self.groups:
                object.__setattr__(self, "groups", default_groups(self.num_ws, len(ch)))
            g = self.groups
            ok = isinstance(g, tuple) and 1 <= len(g) <= len(ch)
            ok = ok and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in g)
            if not ok or sum(g) != self.num_ws:
                raise ConfigError(
                    f"EncoderConfig.groups must be 1 to {len(ch)} positive row counts summing to num_ws="
                    f"{self.num_ws}, got {g!r}"
                )
        elif self.groups:
            raise ConfigError(f"EncoderConfig.groups is for head='grouped', got groups={self.groups!r} with 'flat'")


def config_for(
    num_ws: int, w_dim: int, img_resolution: int, *, head: str = "grouped", model_sha256: str = "", model_id: str = ""
) -> EncoderConfig:
    """The shipped architecture for a generator of this W+ shape and side (``docs/encoders.md``).

    The input side is the generator's, clamped to [32, 128] (a 1024 px face is read at 128 px: the code decides
    shapes and colours, which survive the downscale); stride-2 stages down to 4x4, widths 32, 64, 128, 256, 256...
    """
    res = min(128, max(32, 1 << (int(img_resolution) - 1).bit_length()))
    stages = max(1, res.bit_length() - 3)  # res / 2**stages == 4
    channels = tuple(min(256, 32 << i) for i in range(stages))
    return EncoderConfig(
        num_ws=num_ws, w_dim=w_dim, resolution=res, channels=channels, stem=16, hidden=256, head=head,
        model_sha256=model_sha256, model_id=model_id,
    )  # fmt: skip


def default_groups(num_ws: int, stages: int) -> tuple[int, ...]:
    """Coarse / middle / fine rows as pSp splits 18 (3, 4, 11): 4x4-8x8 layers, 16x16-32x32, the rest."""
    if stages < 2 or num_ws < 3:
        return (num_ws,)
    coarse = min(4, max(1, num_ws // 3))
    middle = min(4, max(1, (num_ws - coarse) // 2))
    fine = num_ws - coarse - middle
    return (coarse, middle, fine) if stages >= 3 and fine > 0 else (coarse, num_ws - coarse)


class ResBlock(nn.Module):
    """x + conv(SiLU(BN(conv(x)))), BN after the second conv zero-initialised (the block starts as identity)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.bn2(self.conv2(F.silu(self.bn1(self.conv1(x))))))


class Stage(nn.Module):
    """Halve the side with a stride-2 3x3 conv, then ``blocks`` residual blocks."""

    def __init__(self, c_in: int, c_out: int, blocks: int):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.blocks = nn.Sequential(*[ResBlock(c_out) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(F.silu(self.down(x)))


class RowHead(nn.Module):
    """A feature map -> pooled to at most 4x4 -> flatten -> hidden -> ``rows x w_dim`` whitened offsets."""

    def __init__(self, c: int, side: int, hidden: int, rows: int, w_dim: int):
        super().__init__()
        self.side = min(4, side)
        self.rows, self.w_dim = rows, w_dim
        self.fc = nn.Linear(c * self.side * self.side, hidden)
        self.out = nn.Linear(hidden, rows * w_dim)
        nn.init.zeros_(self.out.weight)  # start at w_avg: the offset grows from zero
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.side:
            x = F.adaptive_avg_pool2d(x, self.side)
        return self.out(F.silu(self.fc(x.flatten(1)))).view(-1, self.rows, self.w_dim)


class WEncoder(nn.Module):
    """Images ``[B, 3, H, W]`` in [-1, 1] -> W+ codes ``[B, num_ws, w_dim]`` (see the module docstring).

    Buffers stored with the weights: ``w_avg`` ``[w_dim]`` and ``w_std`` ``[num_ws, w_dim]`` (the generator's
    average code and the spread of the training codes around it).
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.num_ws, self.w_dim = config.num_ws, config.w_dim
        self.stem = nn.Sequential(nn.Conv2d(3, config.stem, 3, padding=1, bias=False), nn.BatchNorm2d(config.stem))
        stages, c_in = [], config.stem
        for c in config.channels:
            stages.append(Stage(c_in, c, config.blocks))
            c_in = c
        self.stages = nn.ModuleList(stages)
        sides = [config.resolution >> (i + 1) for i in range(len(config.channels))]
        if config.head == "flat":
            self.heads = nn.ModuleList([RowHead(c_in, sides[-1], config.hidden, config.num_ws, config.w_dim)])
            self.taps = [len(stages) - 1]
        else:
            # Group 0 (coarse rows) reads the last stage, group 1 the one before, ... (pSp: c3, p2, p1).
            self.taps = [len(stages) - 1 - i for i in range(len(config.groups))]
            self.heads = nn.ModuleList(
                RowHead(config.channels[t], sides[t], config.hidden, rows, config.w_dim)
                for t, rows in zip(self.taps, config.groups, strict=True)
            )
        self.register_buffer("w_avg", torch.zeros(config.w_dim))
        self.register_buffer("w_std", torch.ones(config.num_ws, config.w_dim))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Check ``[B, 3, H, W]`` and resize to the encoder's side (antialiased when shrinking)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ShapeError(f"expected images [B, 3, H, W] in [-1, 1], got shape {list(images.shape)}")
        res = self.config.resolution
        images = images.to(self.w_avg.device, torch.float32)
        if images.shape[-2:] != (res, res):
            images = F.interpolate(images, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Whitened offsets ``delta`` ``[B, num_ws, w_dim]`` (``ws = w_avg + w_std * delta``)."""
        x = F.silu(self.stem(self.prepare(images)))
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return torch.cat([head(feats[t]) for head, t in zip(self.heads, self.taps, strict=True)], dim=1)

    def to_ws(self, delta: torch.Tensor) -> torch.Tensor:
        return self.w_avg + self.w_std * delta  # [B, num_ws, w_dim]

    def encode(self, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """W+ codes ``[B, num_ws, w_dim]`` of ``images`` ``[B, 3, H, W]`` in [-1, 1], without gradients, in eval
        mode (the module's mode is restored)."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = [self.to_ws(self(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, self.num_ws, self.w_dim, device=self.w_avg.device)


# --------------------------------------------------------------------------------------------------------------------
# Files: our safetensors format (wplus.io.checkpoint) with the config and the measured metrics in the header.


def save_encoder(path: str | Path, encoder: WEncoder, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write the encoder's weights (w_avg and w_std included), its config and ``metadata`` atomically."""
    from wplus.io.checkpoint import write_checkpoint

    meta = {"config": encoder.config.to_dict(), **(metadata or {})}
    return write_checkpoint(path, encoder.state_dict(), arch=ARCH, metadata=meta)


def load_encoder_file(path: str | Path, *, device: str | torch.device = "cpu") -> WEncoder:
    """Read an encoder written by ``wplus encoder train``, checking the header before allocating anything.

    Raises:
        CheckpointError: a missing or unreadable file, another architecture, a config out of bounds, tensors that
            do not match the config.
    """
    from wplus.io.checkpoint import json_field, load_module, parse_config, read_metadata

    path = Path(path)
    meta = read_metadata(path, arch=ARCH, what="an encoder written by `wplus encoder train`")
    config = parse_config(path, EncoderConfig, json_field(path, meta, "config"), what="encoder config")
    return load_module(path, WEncoder, config, what="its encoder config", device=device)


def encoder_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON entries of an encoder file's header (config, metrics, training), decoded."""
    from wplus.io.checkpoint import decoded_metadata

    return decoded_metadata(Path(path), arch=ARCH, what="an encoder written by `wplus encoder train`")
