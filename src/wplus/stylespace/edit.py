"""Channel edits in S: StyleSpace's ``s_c + α·σ_c`` — move listed style channels by a strength in units of each
channel's standard deviation over generator samples (:func:`wplus.stylespace.style_stats`), or in raw style units.

An edit is a list of ``(layer name, channel, weight)``: channel ``c`` of layer ``name`` moves by
``strength · weight · σ_c`` (``σ_c = 1`` without statistics); every other channel is left exactly as it was, and a
strength of 0 returns the styles unchanged, bit for bit.

Example:
    >>> import torch, wplus
    >>> from wplus.stylespace import to_styles, style_stats, edit_channels, sweep_channels
    >>> G = wplus.load_generator("cartoon-faces-64")
    >>> s = to_styles(G, G.mapping(torch.randn(1, G.z_dim)))
    >>> st = style_stats(G, samples=1000)
    >>> e = edit_channels(s, [("synthesis.b16.conv1", 7, 1.0)], st, strength=10)
    >>> sweep_channels(s, [("synthesis.b16.conv1", 7, 1.0)], st, [-10, 0, 10]).batch
    3
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from wplus.errors import ConfigError
from wplus.stylespace.core import StyleLayer, Styles, parse_channel
from wplus.stylespace.stats import StyleStats

__all__ = ["ChannelEdit", "channel_sigma", "edit_channels", "sweep_channels", "parse_channel_edit"]

ChannelEdit = tuple[str, int, float]  # (layer name, channel, weight)


def _check(styles: Styles, edits: Sequence[ChannelEdit]) -> None:
    if not edits:
        raise ConfigError("no channels to edit: give at least one (layer, channel, weight)")
    for name, c, w in edits:
        if name not in styles:
            raise ConfigError(f"unknown style layer {name!r}; these styles have {list(styles)[0]} … {list(styles)[-1]}")
        n = styles[name].shape[1]
        if not 0 <= c < n:
            raise ConfigError(f"channel {c} of {name} is out of range: it has channels 0-{n - 1}")
        if not math.isfinite(w):
            raise ConfigError(f"the weight of channel {c} of {name} is {w}: expected a finite number")


def channel_sigma(stats: StyleStats | None, layer: str, channel: int) -> float:
    """The unit of an edit of one channel: its standard deviation over samples, or 1 (raw units) without stats."""
    return 1.0 if stats is None else float(stats.std[layer][0, channel])


def edit_channels(styles: Styles, edits: Sequence[ChannelEdit], stats: StyleStats | None, strength: float) -> Styles:
    """A copy of ``styles`` with each listed channel moved by ``strength · weight · σ_c`` (every row of the batch).

    Args:
        styles: the styles to edit, [B, C] per layer.
        edits: ``(layer name, channel, weight)`` per channel; a channel listed twice moves by both.
        stats: per-channel statistics giving σ_c; None edits in raw style units (σ_c = 1).
        strength: α, StyleSpace's step (it uses up to ±20 σ on FFHQ).

    Raises:
        ConfigError: an unknown layer, a channel out of range or a weight that is not finite.
    """
    _check(styles, edits)
    values = {k: v.clone() for k, v in styles.items()}
    for name, c, w in edits:
        delta = strength * w * channel_sigma(stats, name, c)
        if delta:
            values[name][:, c] += delta
    return Styles(values)


def sweep_channels(
    styles: Styles, edits: Sequence[ChannelEdit], stats: StyleStats | None, strengths: Sequence[float]
) -> Styles:
    """The edit at several strengths as one batch: for styles of batch B, ``len(strengths) · B`` rows, strength-major
    (a batch of one gives one row per strength, in order)."""
    if not strengths:
        raise ConfigError("no strengths to sweep")
    return Styles.cat([edit_channels(styles, edits, stats, s) for s in strengths])


def parse_channel_edit(
    layers: list[StyleLayer], text: str, *, flag: str = "--channel"
) -> tuple[StyleLayer, int, float]:
    """``'6_501'``, ``'synthesis.b32.conv1:501'``, optionally with a weight: ``'6_501*-1'`` (moves against the
    strength), ``'6_501*0.5'`` -> (layer, channel, weight).

    Raises:
        ConfigError: one line naming the flag and the value.
    """
    spec, star, weight = text.strip().rpartition("*")
    if not star:
        layer, c = parse_channel(layers, text, flag=flag)
        return layer, c, 1.0
    try:
        w = float(weight)
    except ValueError:
        w = math.nan
    if not math.isfinite(w):
        raise ConfigError(f"{flag} {text!r}: the weight after '*' must be a finite number (e.g. 6_501*-1)")
    layer, c = parse_channel(layers, spec, flag=flag)
    return layer, c, w
