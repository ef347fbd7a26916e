"""Loss masks from files: a grayscale mask image, or the alpha channel of an RGBA target (scribbles).

White / opaque (1) marks pixels the projection loss looks at; black / transparent (0) pixels are ignored.
Masks get the same centre crop and resize as their target so they line up pixel for pixel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wplus.errors import ImageError
from wplus.io.images import center_crop_resize, load_image

__all__ = ["load_mask", "split_alpha"]


def _to_tensor(gray: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)[None, None]


def load_mask(path: str | Path, resolution: int) -> torch.Tensor:
    """Read a mask image (any mode; converted to grayscale) as [1, 1, R, R] in [0, 1].

    Raises:
        ImageError: unreadable file, or a mask that is black everywhere; the message names the file.
    """
    img = load_image(path, keep_alpha=True)
    gray = img.getchannel("A") if img.mode == "RGBA" and img.getextrema()[3][0] < 255 else img.convert("L")
    mask = _to_tensor(center_crop_resize(gray, resolution))
    if mask.max() == 0:
        raise ImageError(path, "mask is black everywhere, expected white where the loss should look")
    return mask


def split_alpha(path: str | Path, resolution: int) -> tuple[Image.Image, torch.Tensor]:
    """Read an RGBA image: its RGB part (cropped and resized) and its alpha as a [1, 1, R, R] mask.

    Raises:
        ImageError: the file has no alpha channel, or its alpha is zero everywhere.
    """
    img = load_image(path, keep_alpha=True)
    if img.mode != "RGBA":
        raise ImageError(path, f"got a {img.mode} image without alpha, expected RGBA for --mask-from-alpha")
    img = center_crop_resize(img, resolution)
    mask = _to_tensor(img.getchannel("A"))
    if mask.max() == 0:
        raise ImageError(path, "alpha is zero everywhere, expected opaque pixels where the loss should look")
    return img.convert("RGB"), mask
