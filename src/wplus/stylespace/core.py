"""The style space S: every style-affine output of a synthesis network, read from W+ codes and rendered back.

A *style layer* is one module of the synthesis network that turns its W+ row into per-channel styles:

* StyleGAN2 (every format we read): each conv's ``affine`` (``synthesis.b8.conv0``, ``…conv1``) and each ToRGB's
  (``synthesis.b8.torgb``), in the order the forward pass runs them — StyleSpace's 26 layers and 9,088 channels for
  FFHQ 1024. The ToRGB style includes its weight gain 1/sqrt(C_in), as NVIDIA's ``ToRGBLayer`` computes it.
* StyleGAN (v1): each layer's AdaIN ``style`` dense output, [B, 2C]: channels 0..C-1 scale (added to 1), C..2C-1 shift.
* StyleGAN3: the input's affine (``synthesis.input``: 4 numbers, the rotation and translation of the Fourier
  features, before their normalisation) and each layer's ``affine`` (``synthesis.L0_36_512`` …), ToRGB with its gain.

:func:`to_styles` computes them straight from the affines (no render); :func:`render_styles` renders styles by
replacing each affine's output during one forward pass, so ``render_styles(G, to_styles(G, ws))`` is ``G(ws)``.

Channel names: StyleSpace's ``L_C`` (layer index in this order, ToRGB layers counted, e.g. ``6_501``) or
``module.path:C`` (``synthesis.b32.conv1:501``); :func:`parse_channel` reads both, :func:`channel_label` writes
the first.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from wplus.errors import ConfigError, ShapeError

__all__ = [
    "StyleLayer",
    "Styles",
    "style_layers",
    "to_styles",
    "render_styles",
    "parse_channel",
    "channel_label",
    "style_dims",
]


@dataclass(frozen=True)
class StyleLayer:
    """One style layer of a synthesis network.

    Attributes:
        name: module path of the layer (``synthesis.b4.conv1``); the key of its styles.
        index: StyleSpace layer index (position in forward order, ToRGB layers counted).
        w_row: the W+ row its affine reads.
        channels: number of style channels.
        kind: 'conv', 'torgb', 'adain' (v1: scale then shift) or 'input' (v3: Fourier-feature transform).
        gain: the factor the layer multiplies its affine's output by (1/sqrt(C_in) for ToRGB, else 1).
    """

    name: str
    index: int
    w_row: int
    channels: int
    kind: str
    gain: float = 1.0

    @property
    def modulates(self) -> bool:
        """Whether the channels scale feature maps (conv / AdaIN); ToRGB and v3's input transform do not count as
        StyleSpace's localised, editable channels and are left out of ``locate`` and ``find`` by default."""
        return self.kind in ("conv", "adain")


class Styles(Mapping[str, torch.Tensor]):
    """Styles of a batch of images: an ordered mapping layer name -> [B, C] tensor (the order of the forward pass).

    Example:
        >>> s = Styles({"synthesis.b4.conv1": torch.zeros(1, 4), "synthesis.b4.torgb": torch.ones(1, 4)})
        >>> s.flat().shape, s.batch, s.dims
        (torch.Size([1, 8]), 1, 8)
    """

    def __init__(self, values: Mapping[str, torch.Tensor]):
        self._values = dict(values)
        batches = {v.shape[0] for v in self._values.values()}
        if any(v.ndim != 2 for v in self._values.values()) or len(batches) > 1:
            shapes = {k: list(v.shape) for k, v in self._values.items()}
            raise ShapeError(f"styles must be [B, C] per layer with one batch size, got {shapes}")

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Styles({len(self)} layers, batch {self.batch}, {self.dims} channels)"

    @property
    def batch(self) -> int:
        return next(iter(self._values.values())).shape[0] if self._values else 0

    @property
    def dims(self) -> int:
        return sum(v.shape[1] for v in self._values.values())

    def flat(self) -> torch.Tensor:
        """All channels side by side, [B, dims], in layer order."""
        return torch.cat(list(self._values.values()), dim=1)

    def unflatten(self, flat: torch.Tensor) -> Styles:
        """The inverse of :meth:`flat` with this object's layer sizes."""
        if flat.ndim != 2 or flat.shape[1] != self.dims:
            raise ShapeError(f"expected [B, {self.dims}] flat styles, got {list(flat.shape)}")
        sizes = [v.shape[1] for v in self._values.values()]
        return Styles(dict(zip(self._values, flat.split(sizes, dim=1), strict=True)))

    def map(self, fn: Any) -> Styles:
        """A new Styles with ``fn(tensor)`` applied to every layer."""
        return Styles({k: fn(v) for k, v in self._values.items()})

    def clone(self) -> Styles:
        return self.map(lambda v: v.clone())

    def to(self, *args: Any, **kwargs: Any) -> Styles:
        return self.map(lambda v: v.to(*args, **kwargs))

    def detach(self) -> Styles:
        return self.map(lambda v: v.detach())

    def select(self, index: int | slice | list[int] | torch.Tensor) -> Styles:
        """Rows of the batch, kept 2-D (``select(0)`` is a batch of one)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return self.map(lambda v: v[index])

    def repeat(self, n: int) -> Styles:
        """The batch repeated ``n`` times (a batch of one becomes ``n`` identical rows)."""
        return self.map(lambda v: v.repeat(n, 1))

    @staticmethod
    def cat(items: list[Styles]) -> Styles:
        """Batches joined in order (same layers)."""
        if not items:
            raise ShapeError("Styles.cat needs at least one Styles")
        return Styles({k: torch.cat([s[k] for s in items], dim=0) for k in items[0]})

    def with_channel(self, layer: str, channel: int, value: torch.Tensor | float, *, add: bool = True) -> Styles:
        """A copy with one channel moved by ``value`` (``add=False``: set to it), every other channel untouched."""
        out = self.clone()
        col = out._values[layer][:, channel]
        out._values[layer][:, channel] = col + value if add else torch.as_tensor(value, dtype=col.dtype)
        return out


def _affine(module: nn.Module) -> nn.Module:
    return module.style if hasattr(module, "style") and not hasattr(module, "affine") else module.affine


def _layer_modules(G: nn.Module) -> list[tuple[StyleLayer, nn.Module]]:
    """(StyleLayer, the module whose output is the style) per style layer, in forward order."""
    from wplus.models import stylegan1, stylegan2, stylegan3

    syn = G.synthesis
    out: list[tuple[str, int, int, str, float, nn.Module]] = []  # name, row, channels, kind, gain, module
    if isinstance(syn, stylegan2.SynthesisNetwork):
        row = 0
        for block in syn.blocks():
            prefix = f"synthesis.b{block.resolution}"
            convs = [n for n in ("conv0", "conv1") if hasattr(block, n)]
            for k, n in enumerate(convs):
                layer = getattr(block, n)
                out.append((f"{prefix}.{n}", row + k, layer.in_channels, "conv", 1.0, layer.affine))
            if block.num_torgb:
                t = block.torgb
                out.append((f"{prefix}.torgb", row + len(convs), t.affine.out_features, "torgb", t.weight_gain,
                            t.affine))  # fmt: skip
            row += block.num_conv
    elif isinstance(syn, stylegan1.SynthesisNetwork):
        for i, res in enumerate(syn.block_resolutions):
            block = getattr(syn, f"b{res}")
            for k, n in enumerate(("layer0", "layer1")):
                layer = getattr(block, n)
                out.append((f"synthesis.b{res}.{n}", 2 * i + k, 2 * layer.out_channels, "adain", 1.0, layer.style))
    elif isinstance(syn, stylegan3.SynthesisNetwork):
        out.append(("synthesis.input", 0, 4, "input", 1.0, syn.input.affine))
        for i, layer in enumerate(syn.layers()):
            gain = 1 / math.sqrt(layer.in_channels) if layer.is_torgb else 1.0
            kind = "torgb" if layer.is_torgb else "conv"
            out.append((f"synthesis.{layer.spec.name}", i + 1, layer.in_channels, kind, gain, layer.affine))
    else:
        raise ConfigError(
            f"no style space for a {type(G).__name__} with a {type(syn).__name__}: expected a StyleGAN, StyleGAN2 "
            "or StyleGAN3 generator as wplus loads it"
        )
    return [(StyleLayer(n, i, r, c, k, g), m) for i, (n, r, c, k, g, m) in enumerate(out)]


def style_layers(G: nn.Module) -> list[StyleLayer]:
    """The style layers of ``G`` in forward order (StyleSpace's layer index is the position)."""
    return [layer for layer, _ in _layer_modules(G)]


def style_dims(G: nn.Module) -> int:
    """Number of style channels of ``G`` (9,088 for FFHQ-1024 StyleGAN2, 2,240 for the shipped 64-px model)."""
    return sum(layer.channels for layer in style_layers(G))


def _as_ws(G: nn.Module, ws: torch.Tensor) -> torch.Tensor:
    if ws.ndim == 2 and ws.shape[1] == G.w_dim:
        ws = ws[:, None].expand(-1, G.num_ws, -1)  # W codes: one row for every layer
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
        raise ShapeError(
            f"expected W+ codes [B, {G.num_ws}, {G.w_dim}] (or W codes [B, {G.w_dim}]) for this generator, got "
            f"{list(ws.shape)}"
        )
    return ws


def to_styles(G: nn.Module, ws: torch.Tensor) -> Styles:
    """The style code S of W+ codes ``ws`` [B, num_ws, w_dim] (or W codes [B, w_dim]): what each style layer's
    forward pass modulates with. Differentiable; no image is rendered.

    Example:
        >>> from wplus.models.stylegan2 import Generator
        >>> G = Generator(img_resolution=16, channel_base=256, channel_max=32, mapping_layers=2, z_dim=32, w_dim=32)
        >>> s = to_styles(G, G.mapping(torch.randn(2, 32)))
        >>> list(s)[:3], s.dims
        (['synthesis.b4.conv1', 'synthesis.b4.torgb', 'synthesis.b8.conv0'], 224)
    """
    ws = _as_ws(G, ws)
    out = {}
    for layer, module in _layer_modules(G):
        w = ws[:, layer.w_row].to(_dtype(module))
        s = module(w)
        out[layer.name] = s * layer.gain if layer.gain != 1 else s
    return Styles(out)


def _dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _check_styles(G: nn.Module, styles: Mapping[str, torch.Tensor], layers: list[StyleLayer]) -> int:
    names = [layer.name for layer in layers]
    missing = [n for n in names if n not in styles]
    extra = [n for n in styles if n not in names]
    if missing or extra:
        detail = (f"missing {missing[:3]}" if missing else "") + (f" unknown {extra[:3]}" if extra else "")
        raise ShapeError(
            f"these styles do not fit this generator ({detail.strip()}); expected its {len(names)} style layers "
            f"{names[0]} … {names[-1]} (were they made with another model?)"
        )
    batch = None
    for layer in layers:
        s = styles[layer.name]
        if s.ndim != 2 or s.shape[1] != layer.channels or (batch is not None and s.shape[0] != batch):
            raise ShapeError(f"styles of {layer.name} are {list(s.shape)}, expected [{batch or 'B'}, {layer.channels}]")
        batch = s.shape[0]
    return int(batch or 0)


@contextlib.contextmanager
def replaced_styles(pairs: list[tuple[StyleLayer, nn.Module]], styles: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """For the duration, the affines of the layers named in ``styles`` (a subset is fine) output those styles
    (divided by the layer's gain, which the layer multiplies back). ``pairs``: ``_layer_modules(G)`` or a slice."""
    handles = []
    for layer, module in pairs:
        if layer.name not in styles:
            continue
        s = styles[layer.name]
        raw = s / layer.gain if layer.gain != 1 else s

        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor, raw: torch.Tensor = raw) -> torch.Tensor:
            return raw.to(device=out.device, dtype=out.dtype)

        handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def render_styles(
    G: nn.Module,
    styles: Mapping[str, torch.Tensor],
    noise: list[torch.Tensor] | None = None,
    *,
    noise_mode: str = "const",
) -> torch.Tensor:
    """Render style codes: images [B, C, R, R] in about [-1, 1]. ``noise`` as ``G.synthesis`` takes it (one map per
    conv layer), else ``noise_mode``. Differentiable in the styles.

    Every affine's output is replaced by the given styles for the duration of one forward pass; the same
    generator must not render elsewhere (another thread) meanwhile.
    """
    layers = style_layers(G)
    batch = _check_styles(G, styles, layers)
    p = next(G.synthesis.parameters())
    ws = torch.zeros(batch, G.num_ws, G.w_dim, device=p.device, dtype=p.dtype)  # the affines' inputs: unused
    with replaced_styles(_layer_modules(G), styles):
        if noise is not None:
            return G.synthesis(ws, noise=noise)
        return G.synthesis(ws, noise_mode=noise_mode)


def channel_label(layer: StyleLayer, channel: int) -> str:
    """StyleSpace's name of a channel: ``'{layer index}_{channel}'``."""
    return f"{layer.index}_{channel}"


def parse_channel(layers: list[StyleLayer], text: str, *, flag: str = "--channel") -> tuple[StyleLayer, int]:
    """``'6_501'`` (StyleSpace layer index, ToRGB counted) or ``'synthesis.b32.conv1:501'`` -> (layer, channel).

    Raises:
        ConfigError: one line naming the flag, the value and what this model has.
    """
    text = text.strip()
    example = (
        f"expected LAYER_CHANNEL as StyleSpace prints it (e.g. 6_501) or module.path:CHANNEL (e.g. {layers[0].name}:0)"
    )
    name, sep, c = text.rpartition(":") if ":" in text else text.partition("_")
    try:
        idx, channel = (None, int(c)) if ":" in text else (int(name), int(c))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: {example}") from None
    if not sep:
        raise ConfigError(f"{flag} {text!r}: {example}")
    if idx is None:
        by_name = {x.name: x for x in layers}
        if name not in by_name:
            near = [x.name for x in layers if x.name.split(".")[-1] == name.split(".")[-1]][:4]
            hint = f" (e.g. {', '.join(near)})" if near else f" ({layers[0].name} … {layers[-1].name})"
            raise ConfigError(f"{flag} {text!r}: this model has no style layer {name!r}{hint}")
        layer = by_name[name]
    elif not 0 <= idx < len(layers):
        raise ConfigError(
            f"{flag} {text!r}: layer index {idx} is out of range; this model has style layers 0-{len(layers) - 1}"
        )
    else:
        layer = layers[idx]
    if not 0 <= channel < layer.channels:
        raise ConfigError(
            f"{flag} {text!r}: channel {channel} is out of range; {layer.name} (layer {layer.index}) has channels "
            f"0-{layer.channels - 1}"
        )
    return layer, channel
