"""Attribute probe: a small CNN that reads the attributes of a cartoon face (:mod:`wplus.data.faces`) from its image.

The drawn faces come with exact labels, so the probe is trained on unlimited drawings (:mod:`wplus.train.probe`) and
then scores what the shipped generator renders: the scores an InterFaceGAN fit needs (an SVM on codes labelled by
a classifier, genforce/interfacegan ``train_boundary``), and the per-attribute movement of an edit (a leakage
matrix). One file, top to bottom: the attribute catalogue, the config stored with the weights, the network, and
loading/saving in our safetensors format.

Input: RGB in [-1, 1] (the generator's output range), ``[B, 3, H, W]``; other sides are resized to 64 first.
Outputs of :meth:`AttributeProbe.predict`, each in its natural unit (the one :class:`FaceAttributes` uses):
  smile, jaw, brow_tilt (radians), eye_size, head_width, ... ``[B]``; skin, hair, background ``[B, 3]`` RGB / 255;
  glasses ``[B]`` probability; hair_style ``[B]`` argmax (0 bald, 1 short, 2 long, 3 fringe) and
  hair_style_probs ``[B, 4]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wplus.data.faces import FaceAttributes
from wplus.errors import ConfigError, ShapeError
from wplus.models.config import ModelConfig, check_ranges, check_stage_widths

__all__ = [
    "ARCH",
    "REGRESSION_TARGETS",
    "CLASS_TARGETS",
    "COLOUR_GROUPS",
    "ProbeConfig",
    "AttributeProbe",
    "face_targets",
    "flat_scores",
    "save_probe",
    "load_probe",
    "shipped_probe_path",
]

ARCH = "attribute_probe"
RESOLUTION = 64

# name -> how to read it from the ground truth. Colours are split into channels (RGB / 255) so that every
# regression output is one normalised scalar; predict() groups them back into [B, 3].
REGRESSION_TARGETS: dict[str, Callable[[FaceAttributes], float]] = {
    "smile": lambda a: a.smile,
    "jaw": lambda a: a.jaw,
    "eye_size": lambda a: a.eye_size,
    "eye_spacing": lambda a: a.eye_spacing,
    "brow_tilt": lambda a: a.brow_tilt,
    "brow_thickness": lambda a: a.brow_thickness,
    "mouth_width": lambda a: a.mouth_width,
    "head_width": lambda a: a.head_width,
    "head_height": lambda a: a.head_height,
    "shift_x": lambda a: a.shift_x,
    "shift_y": lambda a: a.shift_y,
    "roll": lambda a: a.roll,
    **{
        f"{part}_{ch}": (lambda a, part=part, i=i: getattr(a, part)[i] / 255.0)
        for part in ("skin", "hair", "background")
        for i, ch in enumerate("rgb")
    },
}
COLOUR_GROUPS = ("skin", "hair", "background")
# Classification heads: name -> number of classes.
CLASS_TARGETS: dict[str, int] = {"glasses": 2, "hair_style": 4}
# Hair colour is only visible on the brows of a bald face: its loss (and R^2) counts faces with hair only.
HAIR_COLOUR = ("hair_r", "hair_g", "hair_b")

# Header bounds: checked before anything is built from a file.
MAX_CHANNELS = 1024
MAX_LAYERS = 12
MAX_HIDDEN = 4096


@dataclass(frozen=True)
class ProbeConfig(ModelConfig):
    """Shape of the probe and the normalisation of its regression targets (stored in the file header).

    Args:
        channels: Width of each conv stage; every stage halves the side (64 -> 4 with 4 stages).
        hidden: Width of the shared fully connected layer.
        regression: Names of the regression outputs (keys of :data:`REGRESSION_TARGETS`), in output order.
        reg_mean, reg_std: Label normalisation per regression output: the network predicts (y - mean) / std.
        classes: Names of the classification heads (keys of :data:`CLASS_TARGETS`), in output order.
    """

    channels: tuple[int, ...] = (32, 48, 96, 96)
    hidden: int = 128
    regression: tuple[str, ...] = tuple(REGRESSION_TARGETS)
    reg_mean: tuple[float, ...] = ()
    reg_std: tuple[float, ...] = ()
    classes: tuple[str, ...] = tuple(CLASS_TARGETS)
    resolution: int = RESOLUTION
    arch: str = field(default=ARCH, init=False)

    def __post_init__(self) -> None:
        check_ranges(self, ints={"hidden": (1, MAX_HIDDEN), "resolution": (RESOLUTION, RESOLUTION)})
        check_stage_widths(self, "channels", lengths=(2, MAX_LAYERS), max_width=MAX_CHANNELS, side=self.resolution)
        for name, known in (("regression", REGRESSION_TARGETS), ("classes", CLASS_TARGETS)):
            names = getattr(self, name)
            bad = [n for n in names if not isinstance(n, str) or n not in known]
            if bad or len(set(names)) != len(names):
                raise ConfigError(f"ProbeConfig.{name} must be distinct names from {sorted(known)}, got {names!r}")
        n = len(self.regression)
        if not (self.reg_mean or self.reg_std):  # an untrained config: identity normalisation
            object.__setattr__(self, "reg_mean", (0.0,) * n)
            object.__setattr__(self, "reg_std", (1.0,) * n)
        for name in ("reg_mean", "reg_std"):
            v = getattr(self, name)
            ok = isinstance(v, tuple) and len(v) == n
            ok = ok and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v)
            ok = ok and all(abs(x) < 1e6 for x in v)
            if not ok:
                raise ConfigError(
                    f"ProbeConfig.{name} must be {n} finite numbers (one per regression output), got {v!r}"
                )
        if any(s <= 0 for s in self.reg_std):
            raise ConfigError(f"ProbeConfig.reg_std must be positive, got {self.reg_std!r}")

    @property
    def num_class_outputs(self) -> int:
        return sum(CLASS_TARGETS[c] for c in self.classes)


def face_targets(attrs: FaceAttributes, config: ProbeConfig) -> tuple[list[float], list[int]]:
    """Ground truth of one face in the probe's output order: regression values (natural units), class indices."""
    reg = [float(REGRESSION_TARGETS[n](attrs)) for n in config.regression]
    cls = [int(getattr(attrs, c)) for c in config.classes]
    return reg, cls


class AttributeProbe(nn.Module):
    """Conv stages (3x3 conv with stride 2, BatchNorm, SiLU) -> flatten -> FC -> linear heads.

    The map is flattened rather than pooled: position matters here (shift_x/y, roll, where the mouth corners sit).
    """

    def __init__(self, config: ProbeConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 3
        for c in config.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c)]
            layers += [nn.SiLU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        side = config.resolution >> len(config.channels)
        self.fc = nn.Linear(c_in * side * side, config.hidden)
        self.head = nn.Linear(config.hidden, len(config.regression) + config.num_class_outputs)
        self.register_buffer("reg_mean", torch.tensor(config.reg_mean, dtype=torch.float32), persistent=False)
        self.register_buffer("reg_std", torch.tensor(config.reg_std, dtype=torch.float32), persistent=False)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Check ``[B, 3, H, W]`` and resize to the probe's side (antialiased when shrinking)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ShapeError(f"expected images [B, 3, H, W] in [-1, 1], got shape {list(images.shape)}")
        res = self.config.resolution
        if images.shape[-2:] != (res, res):
            images = F.interpolate(
                images.float(), size=(res, res), mode="bilinear", antialias=True, align_corners=False
            )
        return images.float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``[B, R + sum(classes)]``: normalised regressions, then the logits of each class head."""
        x = self.features(self.prepare(images))  # [B, C, 4, 4]
        return self.head(F.silu(self.fc(x.flatten(1))))

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Raw outputs -> (normalised regressions [B, R], {class name: logits [B, K]})."""
        r = len(self.config.regression)
        logits, start = {}, r
        for name in self.config.classes:
            k = CLASS_TARGETS[name]
            logits[name] = out[:, start : start + k]
            start += k
        return out[:, :r], logits

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """Every attribute in its natural unit (see the module docstring), on the probe's device, in eval mode.

        Args:
            images: ``[B, 3, H, W]`` RGB in [-1, 1].
            batch_size: Images per forward pass.
        """
        was_training = self.training
        self.eval()
        device = self.head.weight.device
        outs = [self(images[i : i + batch_size].to(device)) for i in range(0, len(images), batch_size)]
        self.train(was_training)
        reg, logits = self.split(torch.cat(outs) if outs else torch.zeros(0, self.head.out_features, device=device))
        values = reg * self.reg_std + self.reg_mean
        result: dict[str, torch.Tensor] = {}
        names = list(self.config.regression)
        for name in names:
            group = name[:-2] if name[-2:] in ("_r", "_g", "_b") and name[:-2] in COLOUR_GROUPS else None
            if group is None:
                result[name] = values[:, names.index(name)]
            elif group not in result and all(f"{group}_{c}" in names for c in "rgb"):
                result[group] = torch.stack([values[:, names.index(f"{group}_{c}")] for c in "rgb"], 1)
        for name, lg in logits.items():
            probs = lg.softmax(1)
            if CLASS_TARGETS[name] == 2:
                result[name] = probs[:, 1]
            else:
                result[name] = probs.argmax(1)
                result[f"{name}_probs"] = probs
        return result


def flat_scores(pred: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One ``[B]`` column per scalar: colours split into ``skin_r``..., class probabilities into ``hair_style_p0``...

    This is the layout of a score table (``wplus probe score``) and of a leakage matrix's columns.
    """
    cols: dict[str, torch.Tensor] = {}
    for name, v in pred.items():
        if v.ndim == 1:
            cols[name] = v.float() if name != "hair_style" else v
        elif name in COLOUR_GROUPS:
            cols.update({f"{name}_{c}": v[:, i] for i, c in enumerate("rgb")})
        else:
            stem = name.removesuffix("_probs")
            cols.update({f"{stem}_p{i}": v[:, i] for i in range(v.shape[1])})
    return cols


# --------------------------------------------------------------------------------------------------------------------
# Files: our safetensors format (wplus.io.checkpoint) with the config and the measured metrics in the header.


def save_probe(path: str | Path, probe: AttributeProbe, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write the probe's weights, config and ``metadata`` (metrics, training provenance) atomically."""
    from wplus.io.checkpoint import write_checkpoint

    meta = {"config": probe.config.to_dict(), **(metadata or {})}
    return write_checkpoint(path, probe.state_dict(), arch=ARCH, metadata=meta)


def shipped_probe_path() -> Path:
    """The probe trained for the shipped cartoon-faces-64 generator (``docs/attribute-probe.md``)."""
    from wplus.shipped import _asset

    return _asset("cartoon-faces-64-probe.safetensors")


def load_probe(path: str | Path | None = None, *, device: str | torch.device = "cpu") -> AttributeProbe:
    """Read a probe file (None: the shipped one), checking the header before allocating anything; eval mode.

    The config is range-checked from the header, the network it describes is built on the ``meta`` device and its
    tensor shapes are compared with the file's, and only then are the weights read.

    Raises:
        CheckpointError: a missing or unreadable file, another architecture, a config out of bounds, tensors that
            do not match the config.
    """
    from wplus.io.checkpoint import json_field, load_module, parse_config, read_metadata

    path = Path(path) if path is not None else shipped_probe_path()
    meta = read_metadata(path, arch=ARCH, what="an attribute probe written by `wplus probe train`")
    config = parse_config(path, ProbeConfig, json_field(path, meta, "config"), what="probe config")
    return load_module(path, AttributeProbe, config, what="its probe config", device=device)


def probe_metadata(path: str | Path | None = None) -> dict[str, Any]:
    """The JSON entries of a probe file's header (config, metrics, training), decoded."""
    from wplus.io.checkpoint import decoded_metadata

    path = Path(path) if path is not None else shipped_probe_path()
    return decoded_metadata(path, arch=ARCH, what="an attribute probe written by `wplus probe train`")
