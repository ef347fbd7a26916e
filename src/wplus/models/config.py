"""What every architecture's config dataclass shares: a JSON round trip that rejects unknown keys, and range checks.

A config arrives from a file header (our safetensors metadata, a pickle's ``init_kwargs``) before any weight is
read, so each config checks its own fields against generous bounds (:func:`check_ranges`): a width, depth or side
that no published StyleGAN comes near is refused before it can describe a network that would not fit in memory.
The bounds are a first line only; :mod:`wplus.io.checkpoint` also checks the config against the stored tensor shapes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Self

from wplus.errors import ConfigError

__all__ = ["ModelConfig", "check_ranges", "check_filter", "MAX_WIDTH", "MAX_RESOLUTION"]

# The bounds: published StyleGAN models use widths of 512 (1024 for StyleGAN3-R), sides up to 1024 px.
MAX_WIDTH = 4096  # z_dim, w_dim, channel_max, hidden mapping widths
MAX_RESOLUTION = 4096
MAX_CHANNEL_BASE = 1 << 22  # config-f uses 32768
MAX_FILTER_TAPS = 16


class ModelConfig:
    """Mixin for frozen config dataclasses stored next to the weights (our safetensors header holds ``to_dict()``).

    Tuple fields travel as JSON lists and come back as tuples; ``arch`` (a non-init field naming the module) is
    written but not read back.
    """

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        if not isinstance(d, dict):
            raise ConfigError(f"a {cls.__name__} is a JSON object, got a {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        unknown = set(d) - set(fields) - {"arch"}
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys {sorted(unknown)}; expected a subset of {sorted(fields)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields}
        return cls(**kwargs)


def check_ranges(
    config: Any,
    ints: Mapping[str, tuple[int, int]] | None = None,
    floats: Mapping[str, tuple[float, float]] | None = None,
    *,
    optional: tuple[str, ...] = (),
) -> None:
    """Raise ConfigError naming the first field of ``config`` outside its closed range ``(lo, hi)``.

    ``ints`` must be integers (not bools), ``floats`` finite numbers; fields named in ``optional`` may be None.
    """
    name = type(config).__name__
    for field, (lo, hi) in (ints or {}).items():
        v = getattr(config, field)
        if v is None and field in optional:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"{name}.{field} must be an integer in [{lo}, {hi}], got {v!r}")
    for field, (lo, hi) in (floats or {}).items():
        v = getattr(config, field)
        if v is None and field in optional:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and lo <= v <= hi):
            raise ConfigError(f"{name}.{field} must be a finite number in [{lo:g}, {hi:g}], got {v!r}")


def check_filter(config: Any, field: str) -> None:
    """A FIR filter field: 1 to 16 finite taps with a positive sum (it is normalised by that sum)."""
    taps = getattr(config, field)
    ok = isinstance(taps, tuple) and 1 <= len(taps) <= MAX_FILTER_TAPS
    ok = ok and all(isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) for t in taps)
    if not ok or sum(taps) <= 0:
        raise ConfigError(
            f"{type(config).__name__}.{field} must be 1 to {MAX_FILTER_TAPS} finite taps with a positive sum, "
            f"got {taps!r}"
        )


def check_stage_widths(config: Any, field: str, *, lengths: tuple[int, int], max_width: int, side: int) -> None:
    """A tuple of stride-2 stage widths: ``lengths`` (min, max) entries, integers in [1, max_width], and not so
    many stages that they halve ``side`` px below one pixel (the encoder's and the attribute probe's)."""
    ch = getattr(config, field)
    name = f"{type(config).__name__}.{field}"
    if not (isinstance(ch, tuple) and lengths[0] <= len(ch) <= lengths[1]):
        raise ConfigError(f"{name} must be {lengths[0]} to {lengths[1]} widths, got {ch!r}")
    if any(isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= max_width for c in ch):
        raise ConfigError(f"{name} must be integers in [1, {max_width}], got {ch!r}")
    if side >> len(ch) < 1:
        raise ConfigError(f"{name}: {len(ch)} stride-2 stages halve {side} px below one pixel")


def check_resolution(config: Any, field: str, lo: int) -> None:
    """A power of two in [lo, MAX_RESOLUTION]."""
    res = getattr(config, field)
    if isinstance(res, bool) or not isinstance(res, int) or res < lo or res > MAX_RESOLUTION or res & (res - 1):
        raise ConfigError(f"{field} must be a power of two in [{lo}, {MAX_RESOLUTION}], got {res!r}")
