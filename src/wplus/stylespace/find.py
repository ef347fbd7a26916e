"""The style channels behind an attribute, from a few positive examples (StyleSpace's ``MAdvance.S2N``).

The positives' styles are z-scored with the population's per-channel mean and std; a channel's relevance is
``|mean(z)| / std(z)`` over the positives (large when every positive sits consistently far from the population
mean on it); channels are sorted by relevance and ToRGB channels dropped. StyleSpace draws 10 positives from a
classifier's top 1,000; fewer than :data:`MIN_POSITIVES` are refused. The sign of ``mean(z)`` says which way to
move the channel to add the attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from wplus.errors import ConfigError
from wplus.stylespace.core import StyleLayer, Styles
from wplus.stylespace.stats import StyleStats

__all__ = ["AttributeChannel", "find_channels", "MIN_POSITIVES"]

MIN_POSITIVES = 10


@dataclass
class AttributeChannel:
    """One channel's relevance to the positives' attribute.

    Attributes:
        rank: 1 = most relevant.
        name: StyleSpace name ``L_C``.
        layer: module path; layer_index, channel: its position.
        relevance: |mean(z)| / std(z) over the positives.
        mean_z: mean z-score of the positives (its sign: the direction that adds the attribute).
        std_z: std of the positives' z-scores.
    """

    rank: int
    name: str
    layer: str
    layer_index: int
    channel: int
    relevance: float
    mean_z: float
    std_z: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _kind(name: str) -> str:
    if name.endswith("torgb"):
        return "torgb"
    return "input" if name == "synthesis.input" else "conv"


def find_channels(
    positive_styles: Styles,
    stats: StyleStats,
    top: int | None = 10,
    *,
    include_torgb: bool = False,
    layers: list[StyleLayer] | None = None,
    min_positives: int = MIN_POSITIVES,
) -> list[AttributeChannel]:
    """The ``top`` channels most relevant to what the positives share (all channels for ``top=None``).

    Args:
        positive_styles: styles of the positive examples, batch >= ``min_positives``.
        stats: population mean/std (:func:`~wplus.stylespace.stats.style_stats`) of the same generator.
        top: how many to return.
        include_torgb: keep ToRGB channels (StyleSpace drops them) and StyleGAN3's input transform.
        layers: the generator's :func:`~wplus.stylespace.core.style_layers` (for the layer kinds and indices;
            without it they are read from the layer names: ``…torgb`` is ToRGB, the position is the index).

    Raises:
        ConfigError: fewer positives than ``min_positives``, or styles of other layers than ``stats``.
    """
    n = positive_styles.batch
    if n < min_positives:
        raise ConfigError(
            f"{n} positive{'s' if n != 1 else ''} given; StyleSpace's rule needs at least {min_positives} "
            "(it z-scores them and divides by their spread)"
        )
    if list(positive_styles) != list(stats.mean):
        raise ConfigError("the positives' styles and the statistics come from different generators (layers differ)")
    info = {x.name: x for x in layers} if layers is not None else None
    z = stats.standardise(positive_styles.to("cpu", torch.float32)).flat().double()  # [N, D]
    mean, std = z.mean(0), z.std(0, unbiased=False)  # numpy's np.std, as StyleSpace
    relevance = mean.abs() / std.clamp_min(1e-8)
    rows: list[tuple[float, str, str, int, int, float, float]] = []
    offset = 0
    for i, name in enumerate(positive_styles):
        width = positive_styles[name].shape[1]
        kind = info[name].kind if info is not None else _kind(name)
        index = info[name].index if info is not None else i
        if include_torgb or kind in ("conv", "adain"):
            for c in range(width):
                j = offset + c
                rows.append((float(relevance[j]), f"{index}_{c}", name, index, c, float(mean[j]), float(std[j])))
        offset += width
    rows.sort(key=lambda r: -r[0])
    rows = rows if top is None else rows[:top]
    return [AttributeChannel(rank=k + 1, name=r[1], layer=r[2], layer_index=r[3], channel=r[4], relevance=r[0],
                             mean_z=r[5], std_z=r[6]) for k, r in enumerate(rows)]  # fmt: skip
