"""Per-channel statistics of S over a generator's samples: the unit of every style edit (StyleSpace moves a channel
by α·σ_c) and the population that ``find`` standardises positives against.

Samples follow NVIDIA's seed convention (``np.random.RandomState(seed).randn(n, z_dim)``, untruncated, as
StyleSpace's DCI and GetCode draw them). :func:`style_stats` caches the result per model SHA-256, sample count and
seed under ``<cache>/stylespace/`` (``$WPLUS_CACHE``), as an .npz read without pickle.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wplus.errors import ConfigError, WplusError
from wplus.io.atomic import atomic_write
from wplus.stylespace.core import Styles, style_layers, to_styles

__all__ = ["StyleStats", "style_stats", "stats_cache_path", "sample_styles"]

DEFAULT_SAMPLES = 10_000


@dataclass
class StyleStats:
    """Mean and standard deviation of every style channel (each a batch-of-one :class:`Styles`)."""

    mean: Styles
    std: Styles
    samples: int
    seed: int

    def standardise(self, styles: Styles) -> Styles:
        """``(s - mean) / std`` per channel (a channel that never varies gets std 1)."""
        m, sd = self.mean.flat(), self.std.flat().clamp_min(1e-8)
        return styles.unflatten((styles.flat() - m.to(styles.flat())) / sd.to(styles.flat()))


def sample_styles(
    G: nn.Module, samples: int, *, seed: int = 0, batch: int = 256, device: torch.device | str = "cpu"
) -> Styles:
    """Styles of ``samples`` codes mapped from ``RandomState(seed).randn(samples, z_dim)`` (untruncated)."""
    if samples < 1:
        raise ConfigError(f"--samples {samples}: expected at least 1")
    z = torch.from_numpy(np.random.RandomState(seed).randn(samples, G.z_dim).astype(np.float32))
    out = []
    with torch.no_grad():
        for chunk in z.split(batch):
            out.append(to_styles(G, G.mapping(chunk.to(device), None)).to("cpu"))
    return Styles.cat(out)


def stats_cache_path(model_sha256: str, samples: int, seed: int, cache: str | Path | None = None) -> Path:
    from wplus.hub.download import cache_dir

    return cache_dir(cache) / "stylespace" / f"{model_sha256[:16]}-n{samples}-s{seed}.npz"


def _read(path: Path, G: nn.Module) -> StyleStats | None:
    layers = style_layers(G)
    try:
        with np.load(path, allow_pickle=False) as data:
            mean = {x.name: torch.from_numpy(np.array(data[f"mean/{x.name}"], np.float32)) for x in layers}
            std = {x.name: torch.from_numpy(np.array(data[f"std/{x.name}"], np.float32)) for x in layers}
            n, seed = int(data["samples"]), int(data["seed"])
    except (OSError, ValueError, KeyError, EOFError):
        return None  # a damaged or foreign cache entry is recomputed
    if any(mean[x.name].shape != (1, x.channels) or std[x.name].shape != (1, x.channels) for x in layers):
        return None
    return StyleStats(Styles(mean), Styles(std), n, seed)


def style_stats(
    G: nn.Module,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    model_sha256: str = "",
    cache: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> StyleStats:
    """Per-channel mean and std of S over ``samples`` generator samples.

    With ``model_sha256`` the result is cached (and read back on the next call with the same samples and seed).
    """
    path = stats_cache_path(model_sha256, samples, seed, cache) if model_sha256 else None
    if path is not None and path.is_file():
        hit = _read(path, G)
        if hit is not None:
            return hit
    flat_sum = flat_sq = None
    count = 0
    z_all = np.random.RandomState(seed).randn(samples, G.z_dim).astype(np.float32) if samples >= 1 else None
    if z_all is None:
        raise ConfigError(f"--samples {samples}: expected at least 1")
    ref = None
    with torch.no_grad():
        for chunk in torch.from_numpy(z_all).split(512):
            s = to_styles(G, G.mapping(chunk.to(device), None))
            f = s.flat().double().cpu()
            flat_sum = f.sum(0) if flat_sum is None else flat_sum + f.sum(0)
            flat_sq = f.square().sum(0) if flat_sq is None else flat_sq + f.square().sum(0)
            count += f.shape[0]
            ref = s.select(0).to("cpu")
    assert flat_sum is not None and flat_sq is not None and ref is not None
    mean = flat_sum / count
    var = (flat_sq / count - mean.square()).clamp_min(0) * (count / max(count - 1, 1))
    stats = StyleStats(ref.unflatten(mean[None].float()), ref.unflatten(var.sqrt()[None].float()), samples, seed)
    if not torch.isfinite(stats.std.flat()).all():
        raise WplusError("style statistics are not finite: the generator renders NaN for some samples")
    if path is not None:
        arrays = {"samples": np.array(samples), "seed": np.array(seed)}
        for k in stats.mean:
            arrays[f"mean/{k}"] = stats.mean[k].numpy()
            arrays[f"std/{k}"] = stats.std[k].numpy()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        with contextlib.suppress(OSError):  # a read-only cache only costs the recomputation next time
            atomic_write(path, write)
    return stats
