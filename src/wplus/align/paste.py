"""Put an aligned (and possibly edited or re-generated) face back into its source photograph.

The aligned square was sampled from a quad of the source (:class:`AlignTransform.quad`). The FFHQ quad is a
parallelogram (corners ``c +- x +- y``), so the bilinear QUAD map is affine and inverts exactly: every source pixel
inside the quad is sampled from the face image at the inverse-mapped position. A mask that is 1 in the middle of
the square and falls smoothly to 0 over the outer ``feather`` fraction of each side hides the seam; pixels where the
mask is 0 keep the original value exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wplus.align.ffhq import AlignTransform, load_transform
from wplus.errors import ConfigError, ImageError
from wplus.io.images import load_image, tensor_to_pil

__all__ = ["paste_back", "face_mask", "source_to_face_affine", "face_landmarks"]


def source_to_face_affine(quad: np.ndarray, face_size: int) -> np.ndarray:
    """The 2x3 affine map from source continuous coordinates to face-image continuous coordinates.

    Args:
        quad: [4, 2] corners NW, SW, SE, NE of the face square in the source.
        face_size: side of the face image.
    """
    q = np.asarray(quad, dtype=np.float64)
    # Forward: p = q0 + u * (q3 - q0) + v * (q1 - q0) for (u, v) in [0, 1]^2 (the uv term vanishes for parallelograms).
    fwd = np.column_stack([q[3] - q[0], q[1] - q[0]])  # [2, 2]
    if abs(np.linalg.det(fwd)) < 1e-9:
        raise ConfigError("degenerate transform quad (zero area)")
    inv = np.linalg.inv(fwd) * face_size
    return np.column_stack([inv, -inv @ q[0]])


def face_landmarks(transform: AlignTransform, face_size: int) -> np.ndarray:
    """The source's 68 landmarks (:attr:`AlignTransform.landmarks`) where they fall in the aligned square, resized
    to ``face_size`` pixels a side.

    Both sides are pixel-centre coordinates; the map between them is :func:`source_to_face_affine` (the aligned
    square was sampled from the quad, and resizing it scales its continuous coordinates).

    Returns:
        [68, 2] float64 (x, y).

    Raises:
        ConfigError: the transform has no landmarks (or a degenerate quad).
    """
    if transform.landmarks is None:
        raise ConfigError("this align transform has no landmarks; expected the JSON `wplus align` writes")
    affine = source_to_face_affine(transform.quad, face_size)
    continuous = np.asarray(transform.landmarks, dtype=np.float64) + 0.5  # pixel centres -> continuous
    return continuous @ affine[:, :2].T + affine[:, 2] - 0.5


def face_mask(size: int, feather: float) -> Image.Image:
    """An L-mode square mask: 255 inside, a smoothstep ramp to 0 over ``feather * size`` pixels at each side."""
    if not 0.0 <= feather <= 0.5:
        raise ConfigError(f"got feather {feather}, expected a fraction of the face side in [0, 0.5]")
    centres = np.arange(size, dtype=np.float64) + 0.5
    dist = np.minimum(centres, size - centres)  # distance of each pixel centre to the nearest side
    width = feather * size
    ramp = np.ones(size) if width <= 0 else np.clip((dist - 0.5) / width, 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)
    m = np.minimum(ramp[:, None], ramp[None, :])
    return Image.fromarray(np.uint8(np.rint(m * 255.0)), "L")


def _as_pil(img: Image.Image | torch.Tensor | str | Path, what: str) -> Image.Image:
    if isinstance(img, str | Path):
        return load_image(img)
    if isinstance(img, torch.Tensor):
        return tensor_to_pil(img).convert("RGB")
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    raise ImageError(None, f"{what}: got {type(img).__name__}, expected a PIL image, a [1, 3, H, W] tensor or a path")


def paste_back(
    original: Image.Image | str | Path,
    face: Image.Image | torch.Tensor | str | Path,
    transform: AlignTransform | dict | str | Path,
    *,
    feather: float = 0.1,
) -> Image.Image:
    """Warp ``face`` (the aligned image, or an edit or projection of it, any square size) back into ``original``.

    Args:
        original: the source photo (a path is read with EXIF orientation, like ``wplus align`` did).
        face: a square image; a tensor is [1, 3, H, W] in [-1, 1].
        transform: the :class:`AlignTransform`, its dict, or the JSON file ``wplus align`` wrote.
        feather: width of the soft edge as a fraction of the face side.

    Returns:
        An RGB image of the original's size.

    Raises:
        ImageError: the original is not the size the transform was made for, or the face is not square.
    """
    if isinstance(transform, str | Path):
        transform = load_transform(transform)
    elif isinstance(transform, dict):
        transform = AlignTransform.from_dict(transform)
    src = _as_pil(original, "original")
    face_img = _as_pil(face, "face")
    if src.size != tuple(transform.source_size):
        raise ImageError(
            original if isinstance(original, str | Path) else None,
            f"got a {src.size[0]}x{src.size[1]} photo, expected {transform.source_size[0]}x{transform.source_size[1]}"
            " (the source the transform was made from)",
        )
    fw, fh = face_img.size
    if fw != fh:
        raise ImageError(face if isinstance(face, str | Path) else None, f"got a {fw}x{fh} face, expected a square")

    # Bring the face to about its size in the photo first, so that the warp does not alias when shrinking.
    q = np.asarray(transform.quad, dtype=np.float64)
    side = max(np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[1] - q[0]))
    n = int(min(fw, max(8, np.ceil(side))))
    if n != fw:
        face_img = face_img.resize((n, n), Image.Resampling.LANCZOS)
    coeffs = tuple(source_to_face_affine(q, n).flatten())
    warped = face_img.transform(src.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC)
    mask = face_mask(n, feather).transform(src.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)

    m = np.asarray(mask, dtype=np.float32)[:, :, None] / 255.0
    a = np.asarray(src, dtype=np.float32)
    b = np.asarray(warped, dtype=np.float32)
    out = np.uint8(np.clip(np.rint(a + (b - a) * m), 0, 255))
    return Image.fromarray(out, "RGB")
