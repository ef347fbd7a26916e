"""Loss masks from files: a grayscale mask image, or the alpha channel of an RGBA target (scribbles).

White / opaque (1) marks pixels the projection loss looks at; black / transparent (0) pixels are ignored.
Masks get the same crop and resize as their target so they line up pixel for pixel; that only works when the mask
has its image's aspect ratio, so :func:`load_mask` refuses one that does not (given the image's size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wplus.errors import ImageError
from wplus.io.images import Crop, fit_image, load_image

__all__ = ["load_mask", "split_alpha", "check_mask_aspect", "ASPECT_TOLERANCE"]

# Relative difference of width/height below which a mask and its image count as the same shape (a 1000x750 mask
# fits a 1001x750 photo; a square mask does not fit a 4:3 one).
ASPECT_TOLERANCE = 0.01


def _to_tensor(gray: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)[None, None]


def check_mask_aspect(
    mask_path: str | Path,
    mask_size: tuple[int, int],
    image_size: tuple[int, int],
    image_path: str | Path | None = None,
) -> None:
    """Refuse a mask whose aspect ratio differs from its image's: cropped alike, the two would not line up.

    Raises:
        ImageError: naming the mask file, both sizes and both aspect ratios.
    """
    (mw, mh), (w, h) = mask_size, image_size
    mask_aspect, image_aspect = mw / mh, w / h
    if abs(mask_aspect - image_aspect) <= ASPECT_TOLERANCE * image_aspect:
        return
    image = f"image {Path(image_path).name} " if image_path is not None else "image "
    raise ImageError(
        mask_path,
        f"mask is {mw}x{mh} (aspect {mask_aspect:.3f}) but its {image}is {w}x{h} (aspect {image_aspect:.3f}); "
        f"a mask is cropped like its image, so it must have the same aspect ratio: resize it to {w}x{h}",
    )


def load_mask(
    path: str | Path,
    resolution: int,
    *,
    image_size: tuple[int, int] | None = None,
    image_path: str | Path | None = None,
    crop: Crop = "center",
    max_pixels: int | None = None,
) -> torch.Tensor:
    """Read a mask image (any mode; converted to grayscale) as [1, 1, R, R] in [0, 1].

    Args:
        path: the mask file (its alpha channel is used when it has a transparent pixel, else its gray levels).
        resolution: the side R of the target.
        image_size: (width, height) of the image the mask belongs to, as loaded; when given, a mask of another
            aspect ratio is refused (:func:`check_mask_aspect`).
        image_path: named in that error.
        crop: the crop the target gets: ``"center"`` (centre crop, resize) or ``"none"`` (resize only).
        max_pixels: as :func:`wplus.io.images.load_image`.

    Raises:
        ImageError: unreadable file, a mask of another aspect ratio than its image, or a mask that is black
            everywhere; the message names the file.
    """
    img = load_image(path, keep_alpha=True, max_pixels=max_pixels)
    if image_size is not None:
        check_mask_aspect(path, img.size, image_size, image_path)
    gray = img.getchannel("A") if img.mode == "RGBA" and img.getextrema()[3][0] < 255 else img.convert("L")
    mask = _to_tensor(fit_image(gray, resolution, crop))
    if mask.max() == 0:
        raise ImageError(path, "mask is black everywhere, expected white where the loss should look")
    return mask


def split_alpha(
    path: str | Path, resolution: int, *, crop: Crop = "center", max_pixels: int | None = None
) -> tuple[Image.Image, torch.Tensor]:
    """Read an RGBA image: its RGB part (cropped and resized) and its alpha as a [1, 1, R, R] mask.

    Raises:
        ImageError: the file has no alpha channel, or its alpha is zero everywhere.
    """
    img = load_image(path, keep_alpha=True, max_pixels=max_pixels)
    if img.mode != "RGBA":
        raise ImageError(path, f"got a {img.mode} image without alpha, expected RGBA for --mask-from-alpha")
    img = fit_image(img, resolution, crop)
    mask = _to_tensor(img.getchannel("A"))
    if mask.max() == 0:
        raise ImageError(path, "alpha is zero everywhere, expected opaque pixels where the loss should look")
    return img.convert("RGB"), mask
