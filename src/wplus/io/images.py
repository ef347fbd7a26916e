"""Images: reading any Pillow-readable file, conversions between PIL and tensors, saving atomically.

Tensors are [B, C, H, W] float in [-1, 1] (the generator's range); uint8 conversion is ``(x + 1) * 127.5``,
rounded and clamped.
"""

from __future__ import annotations

import contextlib
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from wplus.errors import ConfigError, ImageError
from wplus.io.atomic import atomic_write

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "load_image",
    "to_rgb",
    "center_crop_resize",
    "fit_image",
    "Crop",
    "load_target",
    "pil_to_tensor",
    "tensor_to_pil",
    "save_image",
    "image_grid",
    "MIN_FRAME_SIZE",
    "frame_scale",
    "upscale",
    "captioned_grid",
]

# The file names every command treats as images (a folder argument, an edit input to project first, a training set).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"})

# Largest image load_image decodes: 100 megapixels is more than any camera photo (phones give 12-50 MP, a 60 MP
# full-frame body 9504x6336) and 300 MB as RGB, while a 30000x30000 "decompression bomb" (a few KB of PNG) would need
# 2.7 GB. The size is read from the file header before anything is decoded. Raise it per call (``max_pixels=``,
# ``--max-pixels``) or for the whole process by assigning this name, as with Pillow's ``Image.MAX_IMAGE_PIXELS``.
MAX_PIXELS = 100_000_000

_PIL_LIMIT_LOCK = threading.Lock()


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB deliberately: alpha is composited on white, 16-bit and float are rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "F" and arr.max() <= 1.0:
            hi = 1.0
        arr8 = np.clip(np.round(arr / hi * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def load_image(path: str | Path, *, keep_alpha: bool = False, max_pixels: int | None = None) -> Image.Image:
    """Read an image file, apply its EXIF orientation and convert it to RGB (or RGBA with ``keep_alpha``).

    Args:
        path: any file Pillow reads.
        keep_alpha: keep an alpha channel (RGBA) instead of compositing it on white.
        max_pixels: refuse images with more pixels than this (width x height from the header, checked before
            decoding); default :data:`MAX_PIXELS`.

    Raises:
        ImageError: the file is missing, not an image, truncated or larger than ``max_pixels``; the message names
            the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "no such file")
    limit = _pixel_limit(max_pixels)
    try:
        with _pil_allows(limit), Image.open(path) as im:
            _check_pixels(path, im.size, limit)
            im.load()
            im = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as e:  # Pillow's own limit, met before ours could look at the header
        raise ImageError(path, _too_large(_pixels_in(str(e)), limit)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(path, f"cannot read image ({e}); expected a complete PNG/JPEG/... file") from None
    if keep_alpha and im.mode in ("RGBA", "LA", "PA", "P"):
        return im.convert("RGBA")
    return to_rgb(im)


def _pixel_limit(max_pixels: int | None) -> int:
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"max_pixels must be a positive integer, got {limit!r}")
    return limit


def _check_pixels(path: Path, size: tuple[int, int], limit: int) -> None:
    w, h = size
    if w * h > limit:
        raise ImageError(path, _too_large(w * h, limit, f"{w}x{h} = "))


def _too_large(pixels: int | None, limit: int, size: str = "") -> str:
    got = f"{size}{pixels:,} pixels" if pixels is not None else "an image size Pillow refuses"
    return (
        f"{got}, more than the limit of {limit:,}; if it really is a photo, raise the limit with --max-pixels "
        "(max_pixels= in Python), else it is a decompression bomb"
    )


def _pixels_in(message: str) -> int | None:
    found = re.search(r"\((\d+) pixels\)", message)
    return int(found.group(1)) if found else None


@contextlib.contextmanager
def _pil_allows(limit: int) -> Iterator[None]:
    """Let Pillow open images up to ``limit`` pixels: our limit, checked on the header, is the one that counts.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` and refuses above twice that (179 MP by default). The warning is
    silenced here; the refusal is lifted, for the duration of one open, only when the caller raised our limit past
    it (Pillow reads its limit from a module global, so the change is made under a lock and undone).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        pil = Image.MAX_IMAGE_PIXELS
        if pil is None or limit <= 2 * pil:
            yield
            return
        with _PIL_LIMIT_LOCK:
            Image.MAX_IMAGE_PIXELS = limit
            try:
                yield
            finally:
                Image.MAX_IMAGE_PIXELS = pil


def center_crop_resize(img: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """Centre-crop to the short side, then resize with Lanczos (NVIDIA projector's target preprocessing)."""
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    size = (size, size) if isinstance(size, int) else size
    return img.resize(size, Image.Resampling.LANCZOS)


Crop = Literal["center", "none"]


def fit_image(img: Image.Image, size: int, crop: Crop = "center") -> Image.Image:
    """A target's geometry (``wplus project --crop``): centre crop + Lanczos resize to ``size`` x ``size``, or
    (``crop='none'``) a plain resize that squashes. Masks get the same, so they line up with their image."""
    if crop not in ("center", "none"):
        raise ConfigError(f"got crop={crop!r}, expected 'center' or 'none'")
    return center_crop_resize(img, size) if crop == "center" else img.resize((size, size))


def load_target(
    image: str | Path | Image.Image,
    G_or_size: torch.nn.Module | int,
    *,
    crop: Crop = "center",
    max_pixels: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """An image as :func:`wplus.project` takes it: [1, 3, R, R] in [-1, 1] at the generator's resolution, on its
    device; read and cropped the way ``wplus project`` does (EXIF orientation, RGB, :func:`fit_image`).

    Args:
        image: an image file, or a PIL image.
        G_or_size: the generator (its ``img_resolution`` and device), or the side in pixels.
        crop: ``'center'`` (centre crop, then resize) or ``'none'`` (resize the whole image).
        max_pixels: refuse larger files (default :data:`MAX_PIXELS`).
        device: where the tensor goes (default: the generator's device, else the CPU).

    Raises:
        ImageError: the file is missing, unreadable or too large (the message names it).

    Example:
        >>> load_target(Image.new("RGB", (80, 60)), 64).shape
        torch.Size([1, 3, 64, 64])
    """
    if isinstance(G_or_size, torch.nn.Module):
        size = int(G_or_size.img_resolution)
        if device is None:
            device = next((p.device for p in G_or_size.parameters()), None)
    else:
        size = int(G_or_size)
    img = to_rgb(image) if isinstance(image, Image.Image) else load_image(image, max_pixels=max_pixels)
    return pil_to_tensor(fit_image(img, size, crop)).to(device or "cpu")


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB(A) image -> [1, C, H, W] float32 in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """[B, C, H, W] or [C, H, W] in [-1, 1] -> uint8 [B, H, W, C] (or [H, W, C])."""
    x = x.detach().to("cpu", torch.float32)
    arr = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return arr.permute(*range(arr.ndim - 3), arr.ndim - 2, arr.ndim - 1, arr.ndim - 3).numpy()


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """A single image [1, C, H, W] or [C, H, W] in [-1, 1] -> PIL image."""
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"tensor_to_pil takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    arr = tensor_to_uint8(x)
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def save_image(img: Image.Image | torch.Tensor, path: str | Path) -> Path:
    """Save atomically; the format follows the extension."""
    pil = tensor_to_pil(img) if isinstance(img, torch.Tensor) else img
    return atomic_write(path, lambda p: pil.save(p))


def image_grid(
    images: list[Image.Image], cols: int, *, pad: int = 2, bg: tuple[int, int, int] = (255, 255, 255)
) -> Image.Image:
    """Lay out equally sized images row by row."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    w, h = images[0].size
    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad), bg)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        sheet.paste(im.convert("RGB"), (pad + c * (w + pad), pad + r * (h + pad)))
    return sheet


# Pictures of edits show frames at least this wide: a 64-px frame is a thumbnail nobody can judge an edit on.
MIN_FRAME_SIZE = 256


def frame_scale(size: int, scale: int | None = None, *, min_size: int = MIN_FRAME_SIZE) -> int:
    """The upscale factor for frames ``size`` px wide: ``scale`` when given, else the smallest integer making a
    frame at least ``min_size`` px (1 for frames that already are).

    Example:
        >>> frame_scale(64), frame_scale(100), frame_scale(256), frame_scale(64, 1)
        (4, 3, 1, 1)
    """
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ConfigError(f"scale must be a positive integer, got {scale!r}")
        return scale
    return max(1, -(-min_size // max(size, 1)))


def upscale(img: Image.Image, scale: int) -> Image.Image:
    """Enlarge by an integer factor with nearest-neighbour: every pixel becomes a ``scale`` x ``scale`` block of its
    own colour, so nothing is invented (unlike a smooth resize)."""
    if scale == 1:
        return img
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _fitting_font(texts: list[str], width: int, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The largest default font up to ``size`` px (down to 8) in which every text fits in ``width`` px."""
    font = _font(size)
    while size > 8 and any(font.getlength(t) > width - 4 for t in texts):
        size -= 1
        font = _font(size)
    return font


def captioned_grid(
    images: list[Image.Image],
    captions: list[str] | None = None,
    *,
    cols: int,
    scale: int = 1,
    pad: int = 2,
    bg: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Frames enlarged ``scale`` times (nearest-neighbour), each with its caption in a white band below, laid out
    row by row.

    Args:
        images: equally sized frames.
        captions: one text per frame ('' leaves its band empty); None draws no bands.
        cols: frames per row.
        scale: integer upscale factor (:func:`frame_scale` picks one).
        pad: pixels between frames.
        bg: background and band colour.

    Returns:
        The sheet: each cell is ``scale * w`` wide and ``scale * h`` plus the band high.

    Raises:
        ValueError: no images, or captions that do not match the images one to one.
    """
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"captioned_grid got {len(images)} images and {len(captions)} captions")
    big = [upscale(im.convert("RGB"), scale) for im in images]
    if captions is None or not big:
        return image_grid(big, cols, pad=pad, bg=bg)
    w, h = big[0].size
    font = _fitting_font(captions, w, max(10, min(w // 12, 32)))
    scalable = isinstance(font, ImageFont.FreeTypeFont)
    band = font.size + 8 if scalable else 16
    cells = []
    for im, text in zip(big, captions, strict=True):
        cell = Image.new("RGB", (w, h + band), bg)
        cell.paste(im, (0, 0))
        if text:
            draw = ImageDraw.Draw(cell)
            if scalable:  # centred on the band
                draw.text((w / 2, h + band / 2), text, fill=(0, 0, 0), font=font, anchor="mm")
            else:  # Pillow's bitmap font takes no anchor
                draw.text((2, h + 3), text, fill=(0, 0, 0), font=font)
        cells.append(cell)
    return image_grid(cells, cols, pad=pad, bg=bg)
