"""Parts and part transfer in S: Editing in Style (Collins et al. 2020) and its StyleGAN2 port RIS.

1. **Catalogue** (:func:`part_catalogue`): render generator samples, take the feature maps that enter one layer
   (``--layer``, default the 32-px conv ``synthesis.b32.conv1``'s input), L2-normalise every pixel's activation
   vector and run spherical k-means on them (a short torch loop: k-means++ seeding on cosine distance, then Lloyd
   steps with the normalised mean as the centre — exactly spherical, deterministic for a seed, no dependency).
   Every pixel of an image belongs to the centre it is most similar to: the image's *part masks*
   (:func:`part_masks`), at a common mask resolution (32 px by default).
2. **Contribution** (:func:`contribution`): style channel c of a StyleGAN2 layer scales input channel c of that
   layer's conv, so channel c's reach is where that input feature map is strong. Per style layer, with A the input
   feature maps resized to the mask resolution and U the masks of a partition of the image:

   * ``'fraction'`` (Editing in Style): M[p, c] = Σ U_p·A_c² / Σ A_c², the share of channel c's energy that falls in
     part p (summed over the samples); the rows of a partition sum to 1.
   * ``'ris'`` (RIS): A instance-normalised per image and channel, squared, averaged inside each part mask, then a
     softmax over the parts at temperature 0.1.

3. **Selection** (:func:`select_channels`): per layer, sort channels by M[p]; channel c is taken when M > ρ **and** the
   running sum of (1 − M) up to it is < ε (Editing in Style's rule; ε = inf leaves only the threshold ρ, RIS's rule
   with ρ = 0.8). ToRGB layers are never taken unless asked (both papers zero them).
4. **Transfer** (:func:`transfer_part`): y = (1 − s·q)·y_target + s·q·y_reference with q the selection and s the
   strength.

Catalogues are .npz files read without pickle (:func:`save_catalogue`, :func:`load_catalogue`), cached per model
SHA-256 and settings under ``<cache>/stylespace/`` (:func:`catalogue_cache_path`). For the shipped cartoon faces
the clusters are named automatically (:func:`auto_names`): the attribute probe reads each sample's eye size,
spacing, mouth width and pose, which give the exact boxes the drawing code would have drawn
(:func:`wplus.data.faces.face_boxes`); a cluster takes the name of the box (mouth, left_eye, right_eye) that holds
most of its pixels, when that is a majority.
"""

from __future__ import annotations

import contextlib
import json
import math
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wplus.errors import ConfigError, WplusError
from wplus.io.atomic import atomic_write
from wplus.stylespace.core import StyleLayer, Styles, _layer_modules, render_styles, style_layers

__all__ = [
    "DEFAULT_K",
    "DEFAULT_LAYER",
    "DEFAULT_MASK_SIZE",
    "DEFAULT_SAMPLES",
    "FORMS",
    "DEFAULT_FORM",
    "DEFAULT_RHO",
    "PartCatalogue",
    "Selection",
    "layer_features",
    "spherical_kmeans",
    "part_catalogue",
    "part_masks",
    "contribution",
    "select_channels",
    "transfer_part",
    "region_mask",
    "mix_selected",
    "effect_selection",
    "auto_names",
    "save_catalogue",
    "load_catalogue",
    "catalogue_cache_path",
    "cached_catalogue",
]

DEFAULT_K = 20
DEFAULT_LAYER = "synthesis.b32.conv1"
DEFAULT_MASK_SIZE = 32
DEFAULT_SAMPLES = 200
FORMS = ("fraction", "ris")
DEFAULT_FORM = "fraction"
# measured on the shipped model (benchmarks/stylespace_transfer.py): fraction ρ 0.05 is the largest mouth movement
# that keeps a mean PSNR outside the part above 35 dB on held-out pairs (0.1 keeps 48 dB but hardly moves it)
DEFAULT_RHO = {"fraction": 0.05, "ris": 0.95}
RIS_TEMPERATURE = 0.1
FORMAT = "wplus-part-catalogue-1"
_EXPECTED = "a part catalogue .npz written by `wplus style parts`"


# --------------------------------------------------------------------------------------------------------------------
# Activations


def _feature_modules(G: nn.Module) -> list[tuple[StyleLayer, nn.Module]]:
    """(layer, the module whose input its styles scale) for every style layer of a StyleGAN2 generator."""
    from wplus.models import stylegan2

    if not isinstance(getattr(G, "synthesis", None), stylegan2.SynthesisNetwork):
        raise ConfigError(
            f"parts and part transfer need a StyleGAN2 generator (its styles scale the input feature maps of each "
            f"conv); this one is a {type(G).__name__} with a {type(getattr(G, 'synthesis', None)).__name__}"
        )
    syn = G.synthesis
    out = []
    for layer, _affine in _layer_modules(G):
        _, block, conv = layer.name.split(".")
        out.append((layer, getattr(getattr(syn, block), conv)))
    return out


def layer_names(G: nn.Module) -> list[str]:
    return [x.name for x in style_layers(G)]


def resolve_layer(G: nn.Module, layer: str | int) -> StyleLayer:
    """A style layer by module path (``synthesis.b32.conv1``) or StyleSpace index (``9``)."""
    layers = style_layers(G)
    text = str(layer).strip()
    if text.isdigit() and int(text) < len(layers):
        return layers[int(text)]
    for x in layers:
        if x.name == text:
            return x
    raise ConfigError(
        f"--layer {text!r}: this model has no such style layer; expected a name such as {layers[0].name} or an "
        f"index 0-{len(layers) - 1} ({', '.join(x.name for x in layers if x.kind == 'conv')})"
    )


class _Captured(Exception):
    """Raised by the last hook once every wanted feature map is stored: the layers above it need not run."""


@contextlib.contextmanager
def _captured(G: nn.Module, names: Sequence[str], size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Forward pre-hooks that store the input feature maps of the named style layers, resized to ``size``; once all
    are stored the forward pass stops (:class:`_Captured`)."""
    store: dict[str, torch.Tensor] = {}
    handles = []
    wanted = set(names)
    for layer, module in _feature_modules(G):
        if layer.name not in wanted:
            continue

        def hook(_m: nn.Module, args: tuple[Any, ...], name: str = layer.name) -> None:
            store[name] = _resize(args[0].float(), size)
            if len(store) == len(wanted):
                raise _Captured

        handles.append(module.register_forward_pre_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x.contiguous()
    if x.shape[-1] > size:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def layer_features(
    G: nn.Module,
    styles: Styles,
    layers: Sequence[str] | None = None,
    *,
    size: int = DEFAULT_MASK_SIZE,
    noise: list[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The feature maps each style layer's channels scale (the input of its conv / ToRGB), [B, C, size, size] per
    layer name (default: every style layer), larger maps average-pooled and smaller ones bilinearly enlarged."""
    names = list(layers) if layers is not None else layer_names(G)
    with torch.no_grad(), _captured(G, names, size) as store, contextlib.suppress(_Captured):
        render_styles(G, styles, noise)
    return {n: store[n] for n in names}


def _sample_batches(G: nn.Module, samples: int, seed: int, batch: int, device: Any) -> Iterator[Styles]:
    from wplus.stylespace.core import to_styles

    z = torch.from_numpy(np.random.RandomState(seed).randn(samples, G.z_dim).astype(np.float32))
    with torch.no_grad():
        for chunk in z.split(batch):
            yield to_styles(G, G.mapping(chunk.to(device), None))


# --------------------------------------------------------------------------------------------------------------------
# Spherical k-means


def spherical_kmeans(x: torch.Tensor, k: int, *, iters: int = 30, seed: int = 0) -> torch.Tensor:
    """Unit centres [k, C] of spherical k-means on the rows of ``x`` [N, C] (normalised here): k-means++ seeding on
    cosine distance, then Lloyd steps (assign to the most similar centre; centre = normalised mean). An empty
    cluster is re-seeded with the row least similar to its centre."""
    if not 1 <= k <= x.shape[0]:
        raise ConfigError(f"--k {k}: expected 1 to {x.shape[0]} (the number of pixel vectors)")
    x = F.normalize(x.float(), dim=1)
    gen = torch.Generator().manual_seed(seed)
    centres = [x[int(torch.randint(x.shape[0], (1,), generator=gen))]]
    dist = (1 - x @ centres[0]).clamp_min(0)
    for _ in range(1, k):
        p = dist / dist.sum() if dist.sum() > 0 else torch.full_like(dist, 1 / len(dist))
        i = int(torch.multinomial(p, 1, generator=gen))
        centres.append(x[i])
        dist = torch.minimum(dist, (1 - x @ x[i]).clamp_min(0))
    c = torch.stack(centres)
    for _ in range(iters):
        sim = x @ c.t()
        best, assign = sim.max(1)
        new = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        for j in (counts == 0).nonzero().flatten().tolist():  # re-seed an empty cluster at the worst-fitting row
            far = int(best.argmin())
            new[j], best[far] = x[far], 2.0
        new = F.normalize(new, dim=1)
        if torch.allclose(new, c, atol=1e-6):
            c = new
            break
        c = new
    return c


# --------------------------------------------------------------------------------------------------------------------
# Catalogue


@dataclass
class PartCatalogue:
    """Cluster centres of one layer's pixel features, names for some clusters, and the per-cluster sums that give
    every style channel's contribution to any group of clusters without rendering again.

    Attributes:
        centres: [k, C] unit vectors.
        layer: the style layer whose input features were clustered.
        size: mask resolution (pixels a side).
        samples, seed: the generator samples (NVIDIA's RandomState seed convention) it was built from.
        names: cluster id -> part name (several clusters may share a name: the part is their union).
        model_sha256: the generator it belongs to.
        energy: [k, D] Σ U_j·A_c² over the samples (raw activations), D = every style channel.
        total: [D] Σ A_c².
        density: [k, D] Σ U_j·Â_c² (instance-normalised activations).
        area: [k] Σ U_j (pixels).
        channels: channels per style layer (to split D).
        layers: style layer names in order.
    """

    centres: torch.Tensor
    layer: str
    size: int
    samples: int
    seed: int
    names: dict[int, str] = field(default_factory=dict)
    model_sha256: str = ""
    energy: torch.Tensor | None = None
    total: torch.Tensor | None = None
    density: torch.Tensor | None = None
    area: torch.Tensor | None = None
    layers: list[str] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)

    @property
    def k(self) -> int:
        return int(self.centres.shape[0])

    def parts(self) -> dict[str, list[int]]:
        """Part name -> cluster ids: the named parts, ``eyes`` (every eye cluster), and every cluster by its
        number (``'3'``)."""
        out: dict[str, list[int]] = {}
        for j, n in sorted(self.names.items()):
            out.setdefault(n, []).append(j)
        eyes = sorted({j for n in ("left_eye", "right_eye", "eyes") for j in out.get(n, [])})
        if eyes:
            out["eyes"] = eyes
        for j in range(self.k):
            out.setdefault(str(j), [j])
        return out

    def resolve(self, part: str) -> list[int]:
        """Cluster ids of a part name, a cluster number, or numbers joined with '+' (``'3+5'``).

        Raises:
            ConfigError: one line listing the known part names.
        """
        parts = self.parts()
        ids: list[int] = []
        for item in str(part).split("+"):
            item = item.strip()
            if item not in parts:
                named = [n for n in parts if not n.isdigit()]
                known = (", ".join(named) + f", or cluster numbers 0-{self.k - 1}") if named else (
                    f"cluster numbers 0-{self.k - 1} (this catalogue names none; name them with "
                    "`wplus style parts --catalogue F --names 0=mouth,...`)")  # fmt: skip
                raise ConfigError(f"--part {part!r}: unknown part {item!r}; this catalogue knows {known}")
            ids += parts[item]
        return sorted(set(ids))

    def groups(self) -> list[list[int]]:
        """The partition the contribution softmax runs over: clusters that share a name together, others alone."""
        by_name: dict[str, list[int]] = {}
        for j in range(self.k):
            by_name.setdefault(self.names.get(j, f"#{j}"), []).append(j)
        return list(by_name.values())


def _accumulate(
    G: nn.Module,
    styles: Styles,
    masks: torch.Tensor | PartCatalogue | Any,
    noise: list[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-part sums over a batch: energy [P, D], total [D], density [P, D], area [P]. ``masks``: [B, P, s, s], or a
    catalogue (its hard masks, from the same render), or a function of such masks returning the partition."""
    cat = masks if isinstance(masks, PartCatalogue) else getattr(masks, "catalogue", None)
    size = cat.size if cat is not None else masks.shape[-1]
    feats = layer_features(G, styles, size=size, noise=noise)
    if cat is not None:
        hard = _assign(feats[cat.layer], cat.centres)
        masks = hard if isinstance(masks, PartCatalogue) else masks(hard)
    energy, density, total = [], [], []
    u = masks.float().flatten(2)  # [B, P, HW]
    ut = u.transpose(0, 1).reshape(u.shape[1], -1)  # [P, B*HW]
    for a in feats.values():
        a = a.flatten(2)  # [B, C, HW]
        sq = a.square()
        energy.append(ut @ sq.transpose(0, 1).reshape(sq.shape[1], -1).t())
        total.append(sq.sum((0, 2)))
        var, mean = torch.var_mean(a, 2, keepdim=True)
        norm_sq = (a - mean).square_().div_(var + 1e-5)
        density.append(ut @ norm_sq.transpose(0, 1).reshape(sq.shape[1], -1).t())
    return {"energy": torch.cat(energy, 1), "total": torch.cat(total), "density": torch.cat(density, 1),
            "area": u.sum((0, 2))}  # fmt: skip


def _add(acc: dict[str, torch.Tensor] | None, new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return new if acc is None else {k: acc[k] + new[k] for k in acc}


def _assign(feats: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Hard masks [B, k, s, s]: each pixel to its most similar centre."""
    sim = torch.einsum("bchw,kc->bkhw", F.normalize(feats, dim=1), centres.to(feats))
    return F.one_hot(sim.argmax(1), centres.shape[0]).permute(0, 3, 1, 2).float()


def part_catalogue(
    G: nn.Module,
    *,
    k: int = DEFAULT_K,
    layer: str | int = DEFAULT_LAYER,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    size: int = DEFAULT_MASK_SIZE,
    iters: int = 30,
    batch: int = 32,
    model_sha256: str = "",
    names: Mapping[int, str] | None = None,
    device: torch.device | str = "cpu",
) -> PartCatalogue:
    """Spherical k-means of ``layer``'s input features over ``samples`` generator samples (every pixel of every
    sample at the mask resolution ``size``), then the per-cluster contribution sums over the same samples."""
    if samples < 1:
        raise ConfigError(f"--samples {samples}: expected at least 1")
    if not 4 <= size <= 256:
        raise ConfigError(f"mask size {size}: expected 4 to 256 pixels")
    target = resolve_layer(G, layer)
    vecs = []
    batches = []
    for s in _sample_batches(G, samples, seed, batch, device):
        f = layer_features(G, s, [target.name], size=size)[target.name]
        vecs.append(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).cpu())
        batches.append(s)
    x = torch.cat(vecs)
    centres = spherical_kmeans(x, k, iters=iters, seed=seed)
    cat = PartCatalogue(centres, target.name, size, samples, seed, dict(names or {}), model_sha256,
                        layers=layer_names(G), channels=[x.channels for x in style_layers(G)])  # fmt: skip
    acc = None
    for s in batches:
        acc = _add(acc, {k_: v.cpu() for k_, v in _accumulate(G, s, cat).items()})
    assert acc is not None
    cat.energy, cat.total, cat.density, cat.area = acc["energy"], acc["total"], acc["density"], acc["area"]
    return cat


def part_masks(
    G: nn.Module,
    styles: Styles,
    catalogue: PartCatalogue,
    *,
    noise: list[torch.Tensor] | None = None,
    soft: float | None = None,
) -> torch.Tensor:
    """Masks [B, k, size, size] of the catalogue's clusters in each image: hard (one-hot: the most similar centre)
    or, with ``soft`` = a temperature, a softmax of the cosine similarities divided by it."""
    f = layer_features(G, styles, [catalogue.layer], size=catalogue.size, noise=noise)[catalogue.layer]
    if soft is None:
        return _assign(f, catalogue.centres)
    sim = torch.einsum("bchw,kc->bkhw", F.normalize(f, dim=1), catalogue.centres.to(f))
    return (sim / soft).softmax(1)


# --------------------------------------------------------------------------------------------------------------------
# Contribution and selection


def _form(form: str) -> str:
    if form not in FORMS:
        raise ConfigError(f"contribution form {form!r}: expected one of {', '.join(FORMS)}")
    return form


def _from_sums(sums: Mapping[str, torch.Tensor], form: str, temperature: float = RIS_TEMPERATURE) -> torch.Tensor:
    """M [P, D] from per-part sums of a partition."""
    if _form(form) == "fraction":
        return sums["energy"] / sums["total"].clamp_min(1e-12)
    mean = sums["density"] / sums["area"].clamp_min(1e-12)[:, None]
    mean = torch.where(sums["area"][:, None] > 0, mean, torch.full_like(mean, -1e4))  # an empty part takes nothing
    return (mean / temperature).softmax(0)


def _split(flat: torch.Tensor, layers: Sequence[str], channels: Sequence[int]) -> dict[str, torch.Tensor]:
    return dict(zip(layers, flat.split(list(channels), dim=-1), strict=True))


def contribution(
    G: nn.Module,
    styles: Styles,
    masks: torch.Tensor,
    *,
    form: str = "fraction",
    noise: list[torch.Tensor] | None = None,
    temperature: float = RIS_TEMPERATURE,
    batch: int = 32,
) -> dict[str, torch.Tensor]:
    """M per style layer, [P, C]: how much each channel acts in each of the P parts of ``masks`` [B, P, s, s] (a
    partition of every image, hard or soft), pooled over the batch. ``form`` 'fraction' (Editing in Style) or
    'ris' (see the module docstring)."""
    _form(form)
    acc = None
    for i in range(0, styles.batch, batch):
        sel = list(range(i, min(i + batch, styles.batch)))
        acc = _add(acc, _accumulate(G, styles.select(sel), masks[sel], noise))
    assert acc is not None
    return _split(_from_sums(acc, form, temperature), layer_names(G), [x.channels for x in style_layers(G)])


def select_channels(m: torch.Tensor, *, rho: float, eps: float = math.inf) -> torch.Tensor:
    """Editing in Style's rule on one layer's contributions ``m`` [C] to a part: sort by m (largest first); take c
    when m_c > rho and the running sum of (1 - m) up to and including c is < eps. Returns a bool mask [C]."""
    order = m.argsort(descending=True)
    run = (1 - m[order]).cumsum(0)
    take = (m[order] > rho) & (run < eps)
    out = torch.zeros_like(m, dtype=torch.bool)
    out[order[take]] = True
    return out


@dataclass
class Selection:
    """Which channels a transfer takes: a bool mask [C] per style layer, and their contributions to the part."""

    mask: dict[str, torch.Tensor]
    contribution: dict[str, torch.Tensor]

    @property
    def count(self) -> int:
        return int(sum(int(v.sum()) for v in self.mask.values()))

    def per_layer(self) -> dict[str, list[int]]:
        return {k: v.nonzero().flatten().tolist() for k, v in self.mask.items() if v.any()}


def part_contribution(catalogue: PartCatalogue, clusters: Sequence[int], *, form: str = "fraction") -> torch.Tensor:
    """M [D] of a union of clusters from the catalogue's stored sums (the partition: this union, and the
    catalogue's other groups)."""
    if catalogue.energy is None or catalogue.total is None or catalogue.density is None or catalogue.area is None:
        raise WplusError("this catalogue holds no contribution sums; build it again with `wplus style parts`")
    chosen = set(clusters)
    rows = [sorted(chosen)] + [[j for j in g if j not in chosen] for g in catalogue.groups()]
    rows = [r for r in rows if r]
    sums = {
        "energy": torch.stack([catalogue.energy[r].sum(0) for r in rows]),
        "density": torch.stack([catalogue.density[r].sum(0) for r in rows]),
        "area": torch.stack([catalogue.area[r].sum() for r in rows]),
        "total": catalogue.total,
    }
    return _from_sums(sums, form)[0]


def region_contribution(
    G: nn.Module,
    catalogue: PartCatalogue,
    region: torch.Tensor,
    *,
    form: str = "fraction",
    batch: int = 32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """M [D] of a fixed region (a [size, size] mask in [0, 1]) over the catalogue's samples: the partition is the
    region and each cluster outside it."""
    r = region.float().to(device)
    acc = None

    class _Partition:
        def __init__(self) -> None:
            self.catalogue = catalogue

        def __call__(self, m: torch.Tensor) -> torch.Tensor:
            return torch.cat([r.expand(m.shape[0], 1, *r.shape), m * (1 - r)], 1)

    for s in _sample_batches(G, catalogue.samples, catalogue.seed, batch, device):
        acc = _add(acc, _accumulate(G, s, _Partition()))
    assert acc is not None
    return _from_sums(acc, form)[0].cpu()


def transfer_part(
    G: nn.Module,
    target: Styles,
    reference: Styles,
    catalogue: PartCatalogue,
    part: str | None = None,
    *,
    region: torch.Tensor | None = None,
    rho: float = 0.5,
    eps: float = math.inf,
    form: str = "fraction",
    strength: float = 1.0,
    torgb: bool = False,
    device: torch.device | str = "cpu",
) -> tuple[Styles, Selection]:
    """``target``'s styles with the channels of ``part`` (a name or cluster numbers, see
    :meth:`PartCatalogue.resolve`) or of ``region`` (a [size, size] mask) moved ``strength`` of the way to
    ``reference``'s (batches of one, or ``reference`` broadcast). Only the selected channels change: every other
    channel is exactly the target's.
    """
    if (part is None) == (region is None):
        raise ConfigError("give a part name or a region, not both")
    if not 0 <= strength <= 1 or not math.isfinite(strength):
        raise ConfigError(f"--strength {strength}: expected a number from 0 to 1")
    if region is not None:
        if tuple(region.shape) != (catalogue.size, catalogue.size):
            raise ConfigError(f"region mask is {tuple(region.shape)}, expected ({catalogue.size}, {catalogue.size})")
        m = region_contribution(G, catalogue, region, form=form, device=device)
    else:
        m = part_contribution(catalogue, catalogue.resolve(str(part)), form=form)
    layers = style_layers(G)
    per_layer = _split(m, [x.name for x in layers], [x.channels for x in layers])
    mask = {}
    for x in layers:
        take = select_channels(per_layer[x.name], rho=rho, eps=eps)
        if not (x.modulates or torgb):
            take = torch.zeros_like(take)
        mask[x.name] = take
    return mix_selected(target, reference, mask, strength), Selection(mask, per_layer)


def mix_selected(target: Styles, reference: Styles, mask: Mapping[str, torch.Tensor], strength: float = 1.0) -> Styles:
    """``target`` with the channels in ``mask`` (bool [C] per layer; absent layers: none) moved ``strength`` of the
    way to ``reference``'s; every other channel is exactly the target's."""
    out = {}
    for name in target:
        if name not in mask or not bool(mask[name].any()):
            out[name] = target[name]
            continue
        m = mask[name].to(target[name].device)
        q = m.to(target[name].dtype) * strength
        out[name] = torch.where(m, (1 - q) * target[name] + q * reference[name].to(target[name]), target[name])
    return Styles(out)


def effect_selection(G: nn.Module, effects: Any, region: torch.Tensor, *, min_share: float = 0.4) -> Selection:
    """The channels whose measured effect on the image (:func:`wplus.stylespace.locate.sample_effects`) falls at
    least ``min_share`` inside ``region`` ([R, R] or [P, P]): StyleSpace's localisation used to pick what a part
    transfer takes, instead of the activation contribution. ``contribution`` holds each channel's share."""
    from wplus.stylespace.locate import locate_region

    if not 0 < min_share <= 1:
        raise ConfigError(f"--min-share {min_share}: expected a share in (0, 1]")
    located = locate_region(effects, region)
    layers = style_layers(G)
    mask = {x.name: torch.zeros(x.channels, dtype=torch.bool) for x in layers}
    share = {x.name: torch.zeros(x.channels) for x in layers}
    for c in located:
        share[c.layer][c.channel] = c.share
        if c.share >= min_share:
            mask[c.layer][c.channel] = True
    return Selection(mask, share)


# --------------------------------------------------------------------------------------------------------------------
# Regions


def region_mask(text: str, size: int, resolution: int) -> torch.Tensor:
    """``--region`` (a built-in part's box, x0,y0,x1,y1 or a mask image; :func:`wplus.stylespace.locate.parse_region`
    reads it and names what is wrong) as a [size, size] mask in [0, 1], averaged down from ``resolution``."""
    from wplus.stylespace.locate import parse_region

    full = parse_region(text, resolution).mask
    return F.adaptive_avg_pool2d(full[None, None], size)[0, 0] if size != resolution else full


# --------------------------------------------------------------------------------------------------------------------
# Automatic names (the shipped cartoon faces)


def predicted_boxes(images: torch.Tensor, probe: Any) -> list[dict[str, tuple[float, float, float, float]]]:
    """Face-part boxes of rendered cartoon faces, from the probe's reading of the geometry the boxes depend on."""
    from wplus.data.faces import face_boxes, sample_attributes, with_attribute

    pred = probe.predict(images)
    base = sample_attributes(0)
    keys = ("eye_size", "eye_spacing", "mouth_width", "shift_x", "shift_y", "roll")
    out = []
    for i in range(images.shape[0]):
        a = with_attribute(base, **{k: float(pred[k][i]) for k in keys})
        out.append(face_boxes(a, images.shape[-1]))
    return out


def auto_names(
    G: nn.Module, catalogue: PartCatalogue, *, samples: int = 64, seed: int = 0, majority: float = 0.5
) -> tuple[dict[int, str], dict[int, dict[str, float]]]:
    """Names for the clusters of a cartoon-faces catalogue: each sample's boxes (mouth, left_eye, right_eye) come
    from the attribute probe; a cluster is named after the box that holds the largest share of its pixels, when
    that share is over ``majority``. Returns (names, share of each cluster's pixels in each box)."""
    from wplus.models.attribute_probe import load_probe

    probe = load_probe()
    inside: torch.Tensor | None = None
    counts = torch.zeros(catalogue.k)
    box_names: list[str] = []
    for s in _sample_batches(G, samples, seed, 32, "cpu"):
        with torch.no_grad():
            img = render_styles(G, s)
        m = part_masks(G, s, catalogue)  # [B, k, s, s]
        boxes = predicted_boxes(img.float(), probe)
        box_names = list(boxes[0])
        scale = catalogue.size / img.shape[-1]
        box_masks = torch.zeros(m.shape[0], len(box_names), catalogue.size, catalogue.size)
        ys = (torch.arange(catalogue.size) + 0.5) / scale
        for i, b in enumerate(boxes):
            for j, n in enumerate(box_names):
                x0, y0, x1, y1 = b[n]
                inb = ((ys >= y0) & (ys <= y1))[:, None] & ((ys >= x0) & (ys <= x1))[None, :]
                box_masks[i, j] = inb.float()
        part = torch.einsum("bkhw,bnhw->kn", m, box_masks)
        inside = part if inside is None else inside + part
        counts += m.sum((0, 2, 3))
    assert inside is not None
    share = inside / counts.clamp_min(1)[:, None]
    names: dict[int, str] = {}
    shares: dict[int, dict[str, float]] = {}
    for j in range(catalogue.k):
        shares[j] = {n: round(float(share[j, i]), 3) for i, n in enumerate(box_names)}
        best = int(share[j].argmax())
        eyes = float(share[j, box_names.index("left_eye")] + share[j, box_names.index("right_eye")])
        if float(share[j, best]) > majority:
            names[j] = box_names[best]
        elif eyes > majority:  # one cluster for both eyes (their features are alike)
            names[j] = "eyes"
    return names, shares


# --------------------------------------------------------------------------------------------------------------------
# Files


def catalogue_cache_path(
    model_sha256: str, *, k: int, layer: str, samples: int, seed: int, size: int, cache: str | Path | None = None
) -> Path:
    from wplus.hub.download import cache_dir

    return cache_dir(cache) / "stylespace" / f"parts-{model_sha256[:16]}-k{k}-{layer}-n{samples}-s{seed}-m{size}.npz"


def save_catalogue(path: str | Path, cat: PartCatalogue) -> Path:
    """Write a catalogue as .npz (no pickle: arrays and one JSON string), atomically."""
    meta = {"format": FORMAT, "layer": cat.layer, "size": cat.size, "samples": cat.samples, "seed": cat.seed,
            "names": {str(k): v for k, v in sorted(cat.names.items())}, "model_sha256": cat.model_sha256,
            "layers": cat.layers, "channels": cat.channels}  # fmt: skip
    arrays = {"__meta__": np.array(json.dumps(meta)), "centres": cat.centres.float().cpu().numpy()}
    for key in ("energy", "total", "density", "area"):
        v = getattr(cat, key)
        if v is not None:
            arrays[key] = v.double().cpu().numpy()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(Path(path), write)


def load_catalogue(path: str | Path, G: nn.Module | None = None, *, model_sha256: str | None = None) -> PartCatalogue:
    """Read a catalogue (no pickle). With ``G`` its layer and channel counts are checked against the generator;
    with ``model_sha256`` a catalogue of another model is refused.

    Raises:
        WplusError / ConfigError: one line naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise WplusError(f"{path}: no such file; expected {_EXPECTED}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "__meta__" not in data:
                raise WplusError(f"{path}: not a part catalogue (no '__meta__' entry); expected {_EXPECTED}")
            meta = json.loads(str(data["__meta__"]))
            arrays = {k: torch.from_numpy(np.array(data[k])) for k in data.files if k != "__meta__"}
    except WplusError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise WplusError(f"{path}: cannot read part catalogue ({e}); expected {_EXPECTED}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WplusError(f"{path}: not a part catalogue this wplus reads (format {FORMAT!r}); expected {_EXPECTED}")
    sha = str(meta.get("model_sha256", ""))
    if model_sha256 and sha and sha != model_sha256:
        raise ConfigError(
            f"{path}: a part catalogue of model {sha[:12]}, but --model is {model_sha256[:12]}; build one for this "
            "model with `wplus style parts MODEL`"
        )
    try:
        cat = PartCatalogue(
            centres=arrays["centres"].float(), layer=str(meta["layer"]), size=int(meta["size"]),
            samples=int(meta["samples"]), seed=int(meta["seed"]),
            names={int(k): str(v) for k, v in dict(meta.get("names", {})).items()}, model_sha256=sha,
            energy=arrays.get("energy"), total=arrays.get("total"), density=arrays.get("density"),
            area=arrays.get("area"), layers=[str(x) for x in meta.get("layers", [])],
            channels=[int(x) for x in meta.get("channels", [])],
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
        raise WplusError(f"{path}: damaged part catalogue ({e}); expected {_EXPECTED}") from None
    if cat.centres.ndim != 2 or not 1 <= cat.k <= 4096:
        raise WplusError(f"{path}: centres are {list(cat.centres.shape)}, expected [k, C]; the file is damaged")
    if G is not None:
        layers = style_layers(G)
        names = [x.name for x in layers]
        by = {x.name: x for x in layers}
        if cat.layers and (cat.layers != names or cat.channels != [x.channels for x in layers]):
            raise ConfigError(
                f"{path}: a part catalogue of another generator ({len(cat.layers)} style layers, "
                f"{sum(cat.channels)} channels; this one has {len(names)} and {sum(x.channels for x in layers)})"
            )
        if cat.layer not in by or cat.centres.shape[1] != by[cat.layer].channels:
            raise ConfigError(f"{path}: a part catalogue of another generator (layer {cat.layer}, "
                              f"{cat.centres.shape[1]} features)")  # fmt: skip
    return cat


def cached_catalogue(
    G: nn.Module,
    *,
    model_sha256: str,
    k: int = DEFAULT_K,
    layer: str | int = DEFAULT_LAYER,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    size: int = DEFAULT_MASK_SIZE,
    name_parts: bool = False,
    cache: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> tuple[PartCatalogue, bool]:
    """The catalogue for these settings from the cache, else built (and named with :func:`auto_names` when
    ``name_parts``) and cached. Returns (catalogue, whether it came from the cache)."""
    name = resolve_layer(G, layer).name
    path = catalogue_cache_path(model_sha256, k=k, layer=name, samples=samples, seed=seed, size=size, cache=cache)
    if path.is_file():
        with contextlib.suppress(WplusError):
            return load_catalogue(path, G, model_sha256=model_sha256), True
    cat = part_catalogue(G, k=k, layer=name, samples=samples, seed=seed, size=size, model_sha256=model_sha256,
                         device=device)  # fmt: skip
    if name_parts:
        cat.names = auto_names(G, cat)[0]
    with contextlib.suppress(OSError):
        save_catalogue(path, cat)
    return cat, False
