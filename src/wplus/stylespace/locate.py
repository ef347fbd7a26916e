"""The style channels behind an image region (StyleSpace's localisation, Wu et al. 2021, §4 of EDITING.md).

:func:`channel_effects` measures, for every channel, where moving it changes the image: over N sample images the
channel is moved to ``s_c + k·σ_c`` (σ from :func:`~wplus.stylespace.stats.style_stats`) and the change is pooled
to at most 32×32 — StyleSpace's full Jacobian replaced by a forward finite difference (``mode='central'``: ±k·σ,
twice the renders), the directional derivative along the channel up to O(k) (``benchmarks/stylespace_locate.py``
measures the agreement with the exact derivative from forward-mode autograd). Two maps per channel are kept:

* ``maps`` [C, N, P, P]: per image, the mean over RGB of |Δ pooled image| — StyleSpace's map (mean |J| over RGB);
* ``energy`` [C, P, P]: the squared pixel change at full resolution summed over RGB and images, sum-pooled to P.

:func:`locate_region` ranks channels for a region with both rules: the plain **share** of the squared change
inside the region (``energy``) and StyleSpace's vote (per image, threshold the map at the (1−p) percentile, p the
region's area fraction; the channel's top region is argmax n/o² over the regions; localised when the target wins in
more than half of the images and beats the runner-up by more than 0.25). StyleSpace's regions are a face parser's
parts; here the competing regions are the other named parts given plus tiles of the rest of the image about the
size of a face part. Channels are ranked by the share (see ``rank_by``).

A channel of style layer L only changes the layers from L on: for StyleGAN2 (skip or orig architecture) the
features entering every layer are computed once per sample and each batch of moved channels runs from its layer
on; ToRGB channels (linear in the image) cost almost nothing. Other generators render in full.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wplus.errors import ConfigError, ShapeError
from wplus.stylespace.core import (
    StyleLayer,
    Styles,
    _layer_modules,
    channel_label,
    render_styles,
    replaced_styles,
    to_styles,
)
from wplus.stylespace.stats import StyleStats

__all__ = [
    "ChannelEffects",
    "LocatedChannel",
    "channel_effects",
    "locate_region",
    "effects_cache_path",
    "sample_effects",
    "DEFAULT_K",
    "DEFAULT_SAMPLES",
    "Region",
    "parse_region",
    "BUILTIN_REGIONS",
]

DEFAULT_K = 1.0  # move each channel by 1 σ (benchmarks/stylespace_locate.py: agreement with the Jacobian)
DEFAULT_SAMPLES = 8  # sample images per channel (StyleSpace: 1,000 with full Jacobians on GPUs)
DEFAULT_SIZE = 32  # StyleSpace pools the image to 32×32


@dataclass
class ChannelEffects:
    """Where each channel changes the image (see the module docstring).

    Attributes:
        names: StyleSpace names ``L_C``.
        layers: module path of each channel's layer.
        layer_index: StyleSpace layer index of each channel.
        channel: channel within its layer.
        kinds: the layer kind of each channel ('conv', 'torgb', ...).
        maps: [C, N, P, P] mean over RGB of |Δ| of the image pooled to P×P, per sample image (float16).
        mode: 'forward' or 'central' differences.
        energy: [C, P, P] squared full-resolution change summed over RGB and images, sum-pooled to P×P.
        k: the channels were moved by k·σ.
        resolution: the image side R.
        samples: N.
    """

    names: list[str]
    layers: list[str]
    layer_index: list[int]
    channel: list[int]
    kinds: list[str]
    maps: torch.Tensor
    energy: torch.Tensor
    k: float
    resolution: int
    samples: int
    mode: str = "forward"

    @property
    def size(self) -> int:
        return int(self.maps.shape[-1])

    def __len__(self) -> int:
        return len(self.names)

    def save(self, path: str | Path) -> Path:
        from wplus.io.atomic import atomic_write

        arrays = {
            "names": np.array(self.names),
            "layers": np.array(self.layers),
            "layer_index": np.array(self.layer_index, np.int64),
            "channel": np.array(self.channel, np.int64),
            "kinds": np.array(self.kinds),
            "maps": self.maps.to(torch.float16).numpy(),
            "energy": self.energy.float().numpy(),
            "k": np.array(self.k),
            "resolution": np.array(self.resolution),
            "samples": np.array(self.samples),
            "mode": np.array(self.mode),
        }

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        return atomic_write(Path(path), write)

    @classmethod
    def load(cls, path: str | Path) -> ChannelEffects | None:
        """Read a saved object; None for a damaged or foreign file (the caller recomputes)."""
        try:
            with np.load(path, allow_pickle=False) as d:
                out = cls(
                    names=[str(x) for x in d["names"]],
                    layers=[str(x) for x in d["layers"]],
                    layer_index=[int(x) for x in d["layer_index"]],
                    channel=[int(x) for x in d["channel"]],
                    kinds=[str(x) for x in d["kinds"]],
                    maps=torch.from_numpy(np.array(d["maps"])),
                    energy=torch.from_numpy(np.array(d["energy"], np.float32)),
                    k=float(d["k"]),
                    resolution=int(d["resolution"]),
                    samples=int(d["samples"]),
                    mode=str(d["mode"]),
                )
        except (OSError, ValueError, KeyError, EOFError):
            return None
        c = len(out.names)
        if out.maps.ndim != 4 or out.maps.shape[0] != c or out.energy.shape[0] != c:
            return None
        return out


# --------------------------------------------------------------------------------------------------------------------
# Rendering from a style layer on


class _Renderer:
    """Renders styles, optionally from a style layer on with the state cached for the base samples."""

    def __init__(self, G: nn.Module, base: Styles, noise_mode: str = "const"):
        from wplus.models import stylegan2

        self.G, self.base, self.noise_mode = G, base, noise_mode
        self.pairs = _layer_modules(G)
        syn = G.synthesis
        self.fast = isinstance(syn, stylegan2.SynthesisNetwork) and all(
            b.architecture in ("skip", "orig") for b in syn.blocks()
        )
        self.states: list[tuple[torch.Tensor | None, torch.Tensor | None]] = []
        if self.fast:
            self.steps: list[tuple[str, nn.Module, nn.Module]] = []
            for block in syn.blocks():
                self.steps += [("conv", block, getattr(block, n)) for n in ("conv0", "conv1") if hasattr(block, n)]
                if block.num_torgb:
                    self.steps.append(("torgb", block, block.torgb))
            affines = [m.affine for _, _, m in self.steps]
            if len(affines) != len(self.pairs) or any(
                a is not b for a, (_, b) in zip(affines, self.pairs, strict=True)
            ):
                self.fast = False  # not the layer order this renderer assumes: render in full
        with torch.no_grad():
            self.image = self._run(base, 0, record=True)

    def _run(self, styles: Styles, start: int, *, record: bool = False) -> torch.Tensor:
        """Images of ``styles`` (every layer's for start 0; from layer ``start`` on otherwise, the batch a whole
        multiple of the base batch, repeating the base samples' state)."""
        if not self.fast:
            full = styles
            if start > 0:
                reps = styles.batch // self.base.batch
                full = Styles({n: styles[n] if n in styles else self.base[n].repeat(reps, 1) for n in self.base})
            return render_styles(self.G, full, noise_mode=self.noise_mode)
        p = next(self.G.synthesis.parameters())
        b = styles.batch
        dummy = torch.zeros(b, self.G.w_dim, device=p.device, dtype=p.dtype)
        if start == 0:
            x = img = None
        else:
            reps = b // self.base.batch
            x0, img0 = self.states[start]
            x = x0.repeat(reps, 1, 1, 1).contiguous(memory_format=torch.channels_last)
            img = None if img0 is None else img0.repeat(reps, 1, 1, 1)
        with replaced_styles(self.pairs[start:], styles):
            for i in range(start, len(self.steps)):
                kind, block, module = self.steps[i]
                if record:
                    self.states.append((x, img))
                if kind == "conv":
                    if x is None:
                        x = block.const.unsqueeze(0).repeat(b, 1, 1, 1).contiguous(memory_format=torch.channels_last)
                    x = module(x, dummy, self.noise_mode, None)
                else:
                    y = module(x, dummy)
                    img = y if img is None else upsample_img(img, block) + y
        assert img is not None
        # the image of the last ToRGB is the output; blocks without ToRGB after it (none in skip/orig) would upsample
        return img

    def render_moved(self, layer_pos: int, styles_layer: torch.Tensor) -> torch.Tensor:
        """Images with layer ``layer_pos``'s styles replaced by ``styles_layer`` [reps·N, C] (every other layer as
        the base samples'), rendered from that layer on."""
        reps = styles_layer.shape[0] // self.base.batch
        names = [layer.name for layer, _ in self.pairs]
        moved = {n: (styles_layer if i == layer_pos else self.base[n].repeat(reps, 1))
                 for i, n in enumerate(names) if i >= layer_pos or not self.fast}  # fmt: skip
        return self._run(Styles(moved), layer_pos)


def upsample_img(img: torch.Tensor, block: nn.Module) -> torch.Tensor:
    from wplus.models.stylegan2 import upsample2d

    return upsample2d(img, block.resample_filter)


# --------------------------------------------------------------------------------------------------------------------
# Effects


def _select_channels(
    layers: list[StyleLayer], channels: str | Sequence[tuple[StyleLayer, int]]
) -> list[tuple[int, list[int]]]:
    """(layer position, [channels]) groups in layer order."""
    pos = {layer.name: i for i, layer in enumerate(layers)}
    if isinstance(channels, str):
        if channels not in ("modulating", "all"):
            raise ConfigError(f"channels {channels!r}: expected 'modulating', 'all' or a list of (layer, channel)")
        keep = [i for i, x in enumerate(layers) if channels == "all" or x.modulates]
        return [(i, list(range(layers[i].channels))) for i in keep]
    groups: dict[int, list[int]] = {}
    for layer, c in channels:
        if layer.name not in pos:
            raise ConfigError(f"channel {layer.name}:{c}: not a style layer of this generator")
        groups.setdefault(pos[layer.name], []).append(int(c))
    return sorted(groups.items())


def _pool(x: torch.Tensor, size: int) -> torch.Tensor:
    r = x.shape[-1]
    return x if r <= size else F.adaptive_avg_pool2d(x, size)


@torch.no_grad()
def channel_effects(
    G: nn.Module,
    styles_or_ws: Styles | torch.Tensor,
    stats: StyleStats,
    *,
    k: float = DEFAULT_K,
    size: int = DEFAULT_SIZE,
    channels: str | Sequence[tuple[StyleLayer, int]] = "modulating",
    batch: int | None = None,
    mode: str = "forward",
    callback: Callable[[int, int], None] | None = None,
) -> ChannelEffects:
    """Where moving each channel by k·σ changes the images of ``styles_or_ws`` (finite differences).

    Args:
        G: the generator.
        styles_or_ws: the N sample images' styles, or their W / W+ codes.
        stats: per-channel σ (:func:`~wplus.stylespace.stats.style_stats`).
        k: the step, in σ of each channel.
        size: side P of the pooled maps (images larger than P are average-pooled to it).
        channels: 'modulating' (conv / AdaIN: StyleSpace's), 'all' (ToRGB too) or a list of (layer, channel).
        batch: images per render (default: about 128 at 64 px, fewer for larger models).
        mode: 'forward' (image at +k·σ − image) or 'central' ((image at +k·σ − image at −k·σ) / 2: second-order
            accurate, twice the renders).
        callback: called with (channels done, channels in all) after every render.

    Returns:
        :class:`ChannelEffects` (on the CPU).
    """
    if not math.isfinite(k) or k <= 0:
        raise ConfigError(f"k {k}: expected a positive number of σ")
    if size < 1:
        raise ConfigError(f"size {size}: expected at least 1")
    if mode not in ("central", "forward"):
        raise ConfigError(f"mode {mode!r}: expected 'central' or 'forward'")
    signs = 2 if mode == "central" else 1
    styles = styles_or_ws if isinstance(styles_or_ws, Styles) else to_styles(G, styles_or_ws)
    p = next(G.parameters())
    styles = styles.to(p.device, torch.float32)
    n = styles.batch
    if n < 1:
        raise ShapeError("channel_effects needs at least one sample image")
    layers = [layer for layer, _ in _layer_modules(G)]
    groups = _select_channels(layers, channels)
    res = int(G.img_resolution)
    psize = min(size, res)
    per_render = batch or max(2 * n, (128 * 64 * 64) // (res * res))
    per_chunk = max(1, per_render // (signs * n))
    renderer = _Renderer(G, styles)
    base_img = renderer.image.float()
    total = sum(len(cs) for _, cs in groups)
    names, lnames, lidx, chans, kinds, maps, energy = [], [], [], [], [], [], []
    done = 0
    for pos, cs in groups:
        layer = layers[pos]
        sigma = stats.std[layer.name][0].to(p.device, torch.float32)
        base_l = styles[layer.name]
        for start in range(0, len(cs), per_chunk):
            chunk = cs[start : start + per_chunk]
            m = len(chunk)
            moved = base_l.repeat(signs * m, 1)  # rows: (channel j, sign) outer, sample inner
            for j, c in enumerate(chunk):
                step = k * float(sigma[c])
                moved[(signs * j) * n : (signs * j + 1) * n, c] += step
                if signs == 2:
                    moved[(2 * j + 1) * n : (2 * j + 2) * n, c] -= step
            img = renderer.render_moved(pos, moved).float().reshape(m, signs, n, *base_img.shape[1:])
            # [m, N, 3, R, R]: the change per k·σ step
            delta = (img[:, 0] - img[:, 1]) / 2 if signs == 2 else img[:, 0] - base_img[None]
            flat = delta.reshape(m * n, *delta.shape[2:])
            maps.append(_pool(flat, psize).abs().mean(1).reshape(m, n, psize, psize).half().cpu())
            sq = _pool(flat.square().sum(1, keepdim=True), psize) * (res / psize) ** 2  # sum-pooled
            energy.append(sq.reshape(m, n, psize, psize).sum(1).cpu())
            for c in chunk:
                names.append(channel_label(layer, c))
                lnames.append(layer.name)
                lidx.append(layer.index)
                chans.append(c)
                kinds.append(layer.kind)
            done += m
            if callback is not None:
                callback(done, total)
    return ChannelEffects(names, lnames, lidx, chans, kinds, torch.cat(maps), torch.cat(energy), float(k), res, n, mode)


def effects_cache_path(
    model_sha256: str, *, samples: int, seed: int, k: float, size: int, channels: str, cache: str | Path | None = None
) -> Path:
    from wplus.hub.download import cache_dir

    return (
        cache_dir(cache)
        / "stylespace"
        / f"effects-{model_sha256[:16]}-n{samples}-s{seed}-k{k:g}-p{size}-{channels}.npz"
    )


def sample_effects(
    G: nn.Module,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    k: float = DEFAULT_K,
    size: int = DEFAULT_SIZE,
    channels: str = "modulating",
    mode: str = "forward",
    stats: StyleStats | None = None,
    model_sha256: str = "",
    cache: str | Path | None = None,
    device: torch.device | str = "cpu",
    callback: Callable[[int, int], None] | None = None,
) -> tuple[ChannelEffects, bool]:
    """:func:`channel_effects` over ``samples`` generator samples (NVIDIA's seed convention from ``seed``), cached
    per model SHA-256 and settings when ``model_sha256`` is given. Returns (effects, read from the cache)."""
    from wplus.stylespace.stats import sample_styles, style_stats

    if samples < 1:
        raise ConfigError(f"--samples {samples}: expected at least 1")
    path = None
    if model_sha256:
        path = effects_cache_path(model_sha256, samples=samples, seed=seed, k=k, size=size,
                                  channels=f"{channels}-{mode}", cache=cache)  # fmt: skip
        if path.is_file():
            hit = ChannelEffects.load(path)
            if hit is not None:
                return hit, True
    if stats is None:
        stats = style_stats(G, model_sha256=model_sha256, cache=cache, device=device)
    styles = sample_styles(G, samples, seed=seed, device=device)
    eff = channel_effects(G, styles, stats, k=k, size=size, channels=channels, mode=mode, callback=callback)
    if path is not None:
        with contextlib.suppress(OSError):  # a read-only cache only costs the recomputation next time
            eff.save(path)
    return eff, False


# --------------------------------------------------------------------------------------------------------------------
# Ranking for a region


@dataclass
class LocatedChannel:
    """One channel's localisation for a region.

    Attributes:
        rank: 1 = best.
        name: StyleSpace name ``L_C``.
        layer: module path; layer_index, channel: its position.
        share: share of the squared pixel change inside the region (over the sample images).
        score: StyleSpace's fraction of the sample images whose top region (argmax n/o²) is the region.
        runner_up: the largest such fraction of any other region.
        localised: StyleSpace's rule: score > 0.5 and score − runner_up > 0.25.
        rms: root mean square pixel change of a k·σ step (images in [-1, 1]), over the sample images.
    """

    rank: int
    name: str
    layer: str
    layer_index: int
    channel: int
    share: float
    score: float
    runner_up: float
    localised: bool
    rms: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _as_mask(mask: torch.Tensor, size: int, resolution: int, what: str = "mask") -> torch.Tensor:
    m = torch.as_tensor(mask).float()
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ShapeError(f"{what} has shape {list(m.shape)}, expected [{resolution}, {resolution}]")
    if m.shape[0] != size:
        m = F.adaptive_avg_pool2d(m[None, None], size)[0, 0] if m.shape[0] > size else F.interpolate(
            m[None, None], size=(size, size), mode="nearest")[0, 0]  # fmt: skip
    return m.clamp(0, 1)


def default_regions(target: torch.Tensor, others: Mapping[str, torch.Tensor] | None = None, *, tiles: int = 4
                    ) -> dict[str, torch.Tensor]:  # fmt: skip
    """The regions competing with ``target`` [P, P] (binary) in StyleSpace's vote: ``others`` (binary, minus the
    target) and ``tiles``×``tiles`` tiles of what is left; a remainder under half a tile is left out (the n/o² rule
    would favour it for its size alone)."""
    size = target.shape[-1]
    taken = target.bool().clone()
    out: dict[str, torch.Tensor] = {}
    for name, m in (others or {}).items():
        r = m.bool() & ~taken
        if int(r.sum()) >= 1:
            out[name] = r
            taken |= r
    edges = [round(i * size / tiles) for i in range(tiles + 1)]
    for i in range(tiles):
        for j in range(tiles):
            r = torch.zeros_like(taken)
            r[edges[i] : edges[i + 1], edges[j] : edges[j + 1]] = True
            full = int(r.sum())
            r &= ~taken
            if int(r.sum()) * 2 >= full:
                out[f"tile{i}{j}"] = r
    return out


def stylespace_votes(maps: torch.Tensor, regions: Sequence[torch.Tensor], chunk: int = 256) -> torch.Tensor:
    """StyleSpace's per-image top region: maps [C, N, P, P], disjoint binary regions [P, P] -> [C, R] fraction of
    images whose argmax over regions of n/o² is each region (n: pixels of the region among the map's top o — the
    map thresholded at its (1 − o/P²) quantile, ties kept — o the region's size; a map without any change votes
    for none)."""
    c, n = maps.shape[:2]
    flat_regions = torch.stack([r.reshape(-1).bool() for r in regions]).float()  # [R, P²]
    if bool((flat_regions.sum(0) > 1).any()):
        raise ConfigError("stylespace_votes: the regions overlap")
    sizes = flat_regions.sum(1)  # o per region
    pixel_o = (flat_regions * sizes[:, None]).sum(0).long()  # o of each pixel's region, 0 outside every region
    votes = torch.zeros(c, len(regions))
    for start in range(0, c, chunk):
        m = maps[start : start + chunk].float().reshape(-1, maps.shape[-1] * maps.shape[-2])  # [c·N, P²]
        ordered = m.topk(int(sizes.max()), 1).values  # descending; the largest region needs its o-th value
        thr = ordered[:, (pixel_o - 1).clamp_min(0)]  # each pixel's threshold: its region's o-th largest value
        top = (m >= thr) & (pixel_o > 0)
        score = (top.float() @ flat_regions.T) / sizes.square()  # [c·N, R]: n / o²
        best = score.argmax(1)
        alive = m.amax(1) > 0
        onehot = F.one_hot(best, len(regions)).float() * alive[:, None]
        votes[start : start + chunk] = onehot.reshape(-1, n, len(regions)).mean(1)
    return votes


def locate_region(
    effects: ChannelEffects,
    mask: torch.Tensor,
    *,
    others: Mapping[str, torch.Tensor] | None = None,
    rank_by: str = "share",
) -> list[LocatedChannel]:
    """Rank the channels of ``effects`` for the region ``mask`` ([R, R] or [P, P], 1 inside; fractional values are
    weights for the share and inside where ≥ 0.5 for StyleSpace's vote).

    Args:
        effects: from :func:`channel_effects`.
        mask: the region.
        others: named regions that also compete in StyleSpace's vote (other face parts), at any size.
        rank_by: 'share' (default: the share of the squared change inside, what an edit's locality is judged by)
            or 'stylespace' (StyleSpace's vote fraction, ties broken by the share).

    Returns:
        The channels, best first.
    """
    if rank_by not in ("share", "stylespace"):
        raise ConfigError(f"rank_by {rank_by!r}: expected 'share' or 'stylespace'")
    size, res = effects.size, effects.resolution
    m = _as_mask(mask, size, res)
    inside = m >= 0.5
    if not bool(inside.any()) or bool(inside.all()):
        raise ConfigError("the region must hold some of the image and leave some out")
    total = effects.energy.sum((1, 2)).double()
    share = ((effects.energy.double() * m.double()).sum((1, 2)) / total.clamp_min(1e-30)).float()
    other_masks = {k: _as_mask(v, size, res, k) >= 0.5 for k, v in (others or {}).items()}
    regions = default_regions(inside, other_masks)
    votes = stylespace_votes(effects.maps, [inside, *regions.values()])
    score = votes[:, 0]
    runner = votes[:, 1:].amax(1) if votes.shape[1] > 1 else torch.zeros_like(score)
    localised = (score > 0.5) & (score - runner > 0.25)
    rms = (total / (effects.samples * 3 * res * res)).sqrt().float()
    key = share if rank_by == "share" else score + 1e-3 * share
    order = torch.argsort(key, descending=True, stable=True).tolist()
    return [
        LocatedChannel(rank=r + 1, name=effects.names[i], layer=effects.layers[i], layer_index=effects.layer_index[i],
                       channel=effects.channel[i], share=float(share[i]), score=float(score[i]),
                       runner_up=float(runner[i]), localised=bool(localised[i]), rms=float(rms[i]))
        for r, i in enumerate(order)
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# Regions as the command line names them

BUILTIN_REGIONS = ("mouth", "left_eye", "right_eye")  # boxes of the drawn faces (the shipped model's)
_BOX = re.compile(r"^\s*-?\d+\s*,\s*-?\d+\s*,\s*-?\d+\s*,\s*-?\d+\s*$")


@dataclass
class Region:
    """A region of a generator's images: its [R, R] mask (1 inside), a label, and the other named regions that
    compete with it in StyleSpace's vote."""

    label: str
    mask: torch.Tensor
    others: dict[str, torch.Tensor]
    path: Path | None = None

    @property
    def area(self) -> float:
        return float(self.mask.mean())


def parse_region(text: str, resolution: int, *, flag: str = "--region") -> Region:
    """``mouth`` / ``left_eye`` / ``right_eye`` (the drawn faces' boxes), ``x0,y0,x1,y1`` (pixels, x1 and y1
    excluded) or a mask image file (white = inside) of the generator's size.

    Raises:
        ConfigError / ImageError: one line naming the value and what was expected.
    """
    from wplus.edits.measure import face_part_mask
    from wplus.errors import ImageError
    from wplus.io.images import IMAGE_SUFFIXES

    text = text.strip()
    r = resolution
    if text in BUILTIN_REGIONS:
        masks = {p: face_part_mask(p, size=r) for p in BUILTIN_REGIONS}
        return Region(text, masks.pop(text), masks)
    path = Path(text)
    if path.is_file() or path.suffix.lower() in IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        if not path.is_file():
            raise ImageError(path, f"no such file ({flag} takes a mask image, x0,y0,x1,y1 or a part name)")
        try:
            with Image.open(path) as im:
                size = im.size
                gray = np.asarray(im.convert("L"), dtype=np.float32)
        except (OSError, UnidentifiedImageError) as e:
            raise ImageError(path, f"not a readable image ({type(e).__name__})") from None
        if size != (r, r):
            raise ConfigError(
                f"{flag} {path}: the mask is {size[0]}x{size[1]} px; this model renders {r}x{r} images "
                "(give a mask of that size, white = inside)"
            )
        mask = torch.from_numpy((gray > 127).astype(np.float32))
        _check_extent(mask, f"{flag} {path}")
        return Region(path.name, mask, {}, path)
    if "," in text:
        if not _BOX.match(text):
            raise ConfigError(f"{flag} {text!r}: expected a box x0,y0,x1,y1 in whole pixels (e.g. 20,40,44,56)")
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
        if not (0 <= x0 < x1 <= r and 0 <= y0 < y1 <= r):
            raise ConfigError(
                f"{flag} {text!r}: expected 0 <= x0 < x1 <= {r} and 0 <= y0 < y1 <= {r} (pixels of the "
                f"{r}x{r} images; x1 and y1 excluded)"
            )
        mask = torch.zeros(r, r)
        mask[y0:y1, x0:x1] = 1
        _check_extent(mask, f"{flag} {text!r}")
        return Region(f"box {x0},{y0},{x1},{y1}", mask, {})
    raise ConfigError(
        f"{flag} {text!r}: unknown region; expected {', '.join(BUILTIN_REGIONS)} (the drawn faces' boxes), "
        "x0,y0,x1,y1 in pixels, or a mask image (white = inside)"
    )


def _check_extent(mask: torch.Tensor, what: str) -> None:
    inside = float(mask.mean())
    if inside == 0 or inside == 1:
        raise ConfigError(f"{what}: the region must hold some of the image and leave some out "
                          f"({'nothing' if inside == 0 else 'everything'} is inside)")  # fmt: skip
