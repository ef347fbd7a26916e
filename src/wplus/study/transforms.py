"""The image transforms of the paper's robustness study (Table 1, Fig. 2), as pure functions on tensors.

Every function takes images ``[..., C, H, W]`` in [-1, 1] and returns a new tensor of the same shape; pixels that
the transform uncovers are ``fill`` (black by default, -1). They are exact: a translation moves pixels by a whole
number of pixels, zooms repeat or average 2 x 2 blocks, rotations are ``torch.rot90``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from wplus.errors import ConfigError

__all__ = ["translate", "zoom_in", "zoom_out", "rotate", "shift_pixels", "table1_transforms", "transform_names"]

# The paper's shifts at 1024 px (Table 1: right 140, left 160), scaled to the model by the fraction of the side.
PAPER_SHIFT_RIGHT = 140 / 1024
PAPER_SHIFT_LEFT = 160 / 1024


def shift_pixels(side: int, fraction: float) -> int:
    """Whole pixels of a shift by ``fraction`` of ``side`` (at least 1 for a positive fraction)."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"shift {fraction}: expected a fraction of the image side in [0, 1)")
    return max(1, round(side * fraction)) if fraction > 0 else 0


def translate(images: torch.Tensor, pixels: int, *, fill: float = -1.0) -> torch.Tensor:
    """Shift right by ``pixels`` (left when negative); uncovered columns are ``fill``.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 1, 4)
        >>> translate(x, 1, fill=9).tolist()
        [[[[9.0, 0.0, 1.0, 2.0]]]]
    """
    out = torch.full_like(images, fill)
    w = images.shape[-1]
    if abs(pixels) >= w:
        return out
    if pixels >= 0:
        out[..., pixels:] = images[..., : w - pixels]
    else:
        out[..., : w + pixels] = images[..., -pixels:]
    return out


def zoom_in(images: torch.Tensor) -> torch.Tensor:
    """2x zoom into the centre: the middle half of the image, every pixel repeated 2 x 2 (sides must be even)."""
    h, w = images.shape[-2:]
    _even(h, w)
    centre = images[..., h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2]
    return centre.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def zoom_out(images: torch.Tensor, *, fill: float = -1.0) -> torch.Tensor:
    """2x zoom out: the image averaged over 2 x 2 blocks, centred on a ``fill`` canvas."""
    h, w = images.shape[-2:]
    _even(h, w)
    flat = images.reshape(-1, *images.shape[-3:])
    small = F.avg_pool2d(flat, 2).reshape(*images.shape[:-2], h // 2, w // 2)
    out = torch.full_like(images, fill)
    out[..., h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2] = small
    return out


def rotate(images: torch.Tensor, degrees: int) -> torch.Tensor:
    """Rotate counter-clockwise by a multiple of 90 degrees (exact)."""
    if degrees % 90:
        raise ConfigError(f"rotation {degrees}: expected a multiple of 90 degrees")
    return torch.rot90(images, (degrees // 90) % 4, dims=(-2, -1))


def _even(h: int, w: int) -> None:
    if h % 4 or w % 4:
        raise ConfigError(f"a 2x zoom needs sides divisible by 4, got {h} x {w}")


def table1_transforms(shift_right: float = PAPER_SHIFT_RIGHT, shift_left: float = PAPER_SHIFT_LEFT) -> dict[
    str, Callable[[torch.Tensor], torch.Tensor]
]:  # fmt: skip
    """Table 1's rows, name -> transform; the shifts are fractions of the side (the paper's 140 / 160 px of 1024)."""

    def right(x: torch.Tensor) -> torch.Tensor:
        return translate(x, shift_pixels(x.shape[-1], shift_right))

    def left(x: torch.Tensor) -> torch.Tensor:
        return translate(x, -shift_pixels(x.shape[-1], shift_left))

    return {
        "none": lambda x: x.clone(),
        "translate_right": right,
        "translate_left": left,
        "zoom_out": zoom_out,
        "zoom_in": zoom_in,
        "rotate_90": lambda x: rotate(x, 90),
        "rotate_180": lambda x: rotate(x, 180),
    }


def transform_names() -> list[str]:
    return list(table1_transforms())
