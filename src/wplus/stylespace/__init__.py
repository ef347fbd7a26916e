"""The style space S of a StyleGAN (StyleSpace, Wu et al. 2021): styles from W+ codes, rendering from styles,
channel names, and styles files. ``docs/stylespace.md`` is the guide.

Example:
    >>> import torch, wplus
    >>> from wplus.stylespace import to_styles, render_styles, style_layers
    >>> G = wplus.load_generator("cartoon-faces-64")
    >>> s = to_styles(G, G.mapping(torch.randn(1, G.z_dim)))
    >>> len(style_layers(G)), s.dims
    (14, 2240)
"""

from wplus.stylespace.core import (
    StyleLayer,
    Styles,
    channel_label,
    parse_channel,
    render_styles,
    style_dims,
    style_layers,
    to_styles,
)
from wplus.stylespace.edit import ChannelEdit, channel_sigma, edit_channels, parse_channel_edit, sweep_channels
from wplus.stylespace.find import AttributeChannel, find_channels
from wplus.stylespace.io import StylesFile, is_styles_file, load_styles, save_styles
from wplus.stylespace.locate import ChannelEffects, LocatedChannel, channel_effects, locate_region, sample_effects
from wplus.stylespace.stats import StyleStats, sample_styles, style_stats

__all__ = [
    "ChannelEdit",
    "channel_sigma",
    "edit_channels",
    "parse_channel_edit",
    "sweep_channels",
    "AttributeChannel",
    "ChannelEffects",
    "LocatedChannel",
    "channel_effects",
    "find_channels",
    "locate_region",
    "sample_effects",
    "StyleLayer",
    "Styles",
    "StylesFile",
    "StyleStats",
    "sample_styles",
    "style_stats",
    "channel_label",
    "is_styles_file",
    "load_styles",
    "parse_channel",
    "render_styles",
    "save_styles",
    "style_dims",
    "style_layers",
    "to_styles",
]
