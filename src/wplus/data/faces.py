"""Procedural cartoon faces: an aligned, varied face dataset that wplus draws itself (no download, no licence).

Every face is a function of a seed: :func:`sample_attributes` draws a :class:`FaceAttributes` from a numpy
``Generator`` seeded with it, :func:`draw_face` renders the attributes. Faces are aligned the way FFHQ is (the eye
line at a fixed height, the face centred), with a small pose jitter (shift and roll) on top.

Shapes are drawn as polygons at ``supersample`` times the output size and downsampled with a Lanczos filter, which
gives anti-aliased edges. Because every point goes through the same pose transform, the eye and mouth boxes are
exact and recorded in output pixel coordinates. :func:`with_attribute` changes one attribute and keeps the rest, so
the same face can be drawn neutral and smiling.

Example:
    >>> attrs = sample_attributes(7)
    >>> neutral, smiling = draw_face(with_attribute(attrs, smile=0.0)), draw_face(with_attribute(attrs, smile=1.0))
    >>> neutral.size
    (64, 64)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from wplus.errors import ConfigError

__all__ = [
    "FaceAttributes",
    "sample_attributes",
    "draw_face",
    "with_attribute",
    "face_array",
    "render_faces",
    "HELD_OUT_SEED_BASE",
    "Box",
]

# Seeds at or above this are never used for training (the demo and the quality checks draw their faces from here).
HELD_OUT_SEED_BASE = 1_000_000

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in output pixels
RGB = tuple[int, int, int]

_SKIN = [(255, 224, 189), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 205, 178)]
_HAIR = [(20, 20, 20), (90, 56, 37), (165, 107, 70), (230, 200, 120), (180, 60, 30), (120, 120, 120)]


@dataclass(frozen=True)
class FaceAttributes:
    """Ground truth of one face. Lengths are fractions of the image side; colours are RGB 0-255.

    ``smile`` runs from -1 (frown) through 0 (neutral, a flat mouth) to 1 (a broad open smile).
    """

    head_width: float
    head_height: float
    jaw: float  # 0 = oval chin, 1 = square jaw
    skin: RGB
    hair: RGB
    hair_style: int  # 0 bald, 1 short, 2 long, 3 fringe
    background: RGB
    eye_size: float
    eye_spacing: float
    iris: RGB
    brow_thickness: float
    brow_tilt: float  # radians; positive = angry-looking inner ends down
    glasses: bool
    mouth_width: float
    smile: float
    shift_x: float  # pose jitter, fractions of the side
    shift_y: float
    roll: float  # degrees

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sample_attributes(seed: int) -> FaceAttributes:
    """Draw the attributes of face ``seed`` (deterministic: the same seed gives the same face everywhere)."""
    rng = np.random.default_rng(seed)

    def colour(base: list[RGB], jitter: float) -> RGB:
        c = np.array(base[rng.integers(len(base))], dtype=np.float64) + rng.normal(0, jitter, 3)
        return tuple(int(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]

    background = tuple(int(v) for v in rng.integers(40, 230, 3))
    return FaceAttributes(
        head_width=float(rng.uniform(0.27, 0.35)),
        head_height=float(rng.uniform(0.34, 0.42)),
        jaw=float(rng.uniform(0.0, 1.0)),
        skin=colour(_SKIN, 8),
        hair=colour(_HAIR, 12),
        hair_style=int(rng.integers(4)),
        background=background,  # type: ignore[arg-type]
        eye_size=float(rng.uniform(0.035, 0.06)),
        eye_spacing=float(rng.uniform(0.16, 0.22)),
        iris=colour([(60, 40, 20), (40, 90, 160), (50, 120, 60), (30, 30, 30)], 10),
        brow_thickness=float(rng.uniform(0.012, 0.03)),
        brow_tilt=float(rng.uniform(-0.35, 0.35)),
        glasses=bool(rng.random() < 0.25),
        mouth_width=float(rng.uniform(0.14, 0.22)),
        smile=float(rng.uniform(-1.0, 1.0)),
        shift_x=float(rng.uniform(-0.03, 0.03)),
        shift_y=float(rng.uniform(-0.02, 0.02)),
        roll=float(rng.uniform(-5.0, 5.0)),
    )


def with_attribute(attrs: FaceAttributes, **changes: Any) -> FaceAttributes:
    """The same face with some attributes changed, e.g. ``with_attribute(a, smile=1.0)``.

    Raises:
        ConfigError: An unknown attribute name.
    """
    names = {f.name for f in dataclasses.fields(FaceAttributes)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"unknown face attribute(s) {unknown}, expected some of {sorted(names)}")
    return dataclasses.replace(attrs, **changes)


# --------------------------------------------------------------------------------------------------------------------
# Geometry: every shape is a polygon in unit coordinates (0..1), posed, then scaled to the drawing canvas.

_EYE_LINE = 0.42  # the aligned eye height, as FFHQ fixes the eye line
_MOUTH_LINE = 0.68


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _head(a: FaceAttributes) -> np.ndarray:
    # A superellipse below the eye line (jaw) and an ellipse above it: exponent 2 = oval, larger = squarer jaw.
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    cx, cy, rx, ry = 0.5, 0.5, a.head_width, a.head_height
    x, y = np.cos(t), np.sin(t)
    p = 2.0 + 2.0 * a.jaw
    lower = y > 0
    x = np.where(lower, np.sign(x) * np.abs(x) ** (2 / p), x)
    y = np.where(lower, np.abs(y) ** (2 / p), y)
    return np.stack([cx + rx * x, cy + ry * y], 1)


def _mouth_curves(a: FaceAttributes, n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lip lines; corners rise and the middle drops as ``smile`` grows (falls for a frown)."""
    u = np.linspace(-1, 1, n)
    x = 0.5 + u * a.mouth_width / 2
    bend = 1 - u**2  # 1 in the middle, 0 at the corners
    amp = 0.06 * a.smile
    lower = _MOUTH_LINE + amp * (bend - 0.5)
    opening = max(a.smile - 0.2, 0.0) * 0.6  # only a real smile opens the mouth
    upper = lower - amp * bend * (1 - opening) - 0.006
    if a.smile < 0:  # a frown: the lip line arches up
        upper = lower - 0.006
    return np.stack([x, upper], 1), np.stack([x, lower], 1)


def _mouth_region(a: FaceAttributes) -> np.ndarray:
    """The region the mouth can occupy at any smile: four corners in unit coordinates (before pose)."""
    half = a.mouth_width / 2 + 0.02
    return np.array([[0.5 - half, _MOUTH_LINE - 0.06], [0.5 + half, _MOUTH_LINE - 0.06],
                     [0.5 + half, _MOUTH_LINE + 0.06], [0.5 - half, _MOUTH_LINE + 0.06]])  # fmt: skip


def _pose(a: FaceAttributes, pts: np.ndarray) -> np.ndarray:
    """Roll about the image centre, then shift (the pose jitter)."""
    th = math.radians(a.roll)
    c, s = math.cos(th), math.sin(th)
    d = pts - 0.5
    rot = np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], 1)
    return rot + 0.5 + np.array([a.shift_x, a.shift_y])


def _bbox(pts: np.ndarray, size: int) -> Box:
    x0, y0 = pts.min(0) * size
    x1, y1 = pts.max(0) * size
    return (float(x0), float(y0), float(x1), float(y1))


def face_boxes(attrs: FaceAttributes, size: int = 64) -> dict[str, Box]:
    """Boxes of the ``mouth`` (everywhere the mouth can be, at any smile) and each eye (with its brow), in pixels."""
    boxes = {"mouth": _bbox(_pose(attrs, _mouth_region(attrs)), size)}
    for side, name in ((-1, "left_eye"), (1, "right_eye")):
        cx = 0.5 + side * attrs.eye_spacing / 2
        r = attrs.eye_size * 1.6
        corners = np.array([[cx - r, _EYE_LINE - 0.09], [cx + r, _EYE_LINE - 0.09], [cx + r, _EYE_LINE + r],
                            [cx - r, _EYE_LINE + r]])  # fmt: skip
        boxes[name] = _bbox(_pose(attrs, corners), size)
    return boxes


# --------------------------------------------------------------------------------------------------------------------
# Drawing


def draw_face(attrs: FaceAttributes, *, size: int = 64, supersample: int = 4) -> Image.Image:
    """Render one face as an RGB image of ``size x size`` pixels, anti-aliased.

    Args:
        attrs: The face (see :func:`sample_attributes`).
        size: Output side in pixels.
        supersample: Drawing scale before the Lanczos downsampling (1 draws aliased).

    Raises:
        ConfigError: A non-positive size or supersample factor.
    """
    if size < 8 or supersample < 1:
        raise ConfigError(f"got size={size}, supersample={supersample}; expected size >= 8 and supersample >= 1")
    side = size * supersample
    img = Image.new("RGB", (side, side), attrs.background)
    draw = ImageDraw.Draw(img)

    def poly(pts: np.ndarray, fill: RGB | None = None, outline: RGB | None = None, width: int = 0) -> None:
        xy = [tuple(p) for p in (_pose(attrs, pts) * side).tolist()]
        draw.polygon(xy, fill=fill, outline=outline, width=width)

    def line(pts: np.ndarray, fill: RGB, width_frac: float) -> None:
        xy = [tuple(p) for p in (_pose(attrs, pts) * side).tolist()]
        w = max(1, round(width_frac * side))
        draw.line(xy, fill=fill, width=w, joint="curve")
        r = w / 2  # round caps
        for x, y in (xy[0], xy[-1]):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)

    a = attrs
    hw, hh = a.head_width, a.head_height
    top = 0.5 - hh
    if a.hair_style == 2:  # long hair falls behind the head
        poly(np.array([[0.5 - hw * 1.15, 0.5 - hh * 0.4], [0.5 + hw * 1.15, 0.5 - hh * 0.4],
                       [0.5 + hw * 1.2, 0.5 + hh * 0.8], [0.5 - hw * 1.2, 0.5 + hh * 0.8]]), fill=a.hair)  # fmt: skip
        poly(_ellipse(0.5, 0.5 - hh * 0.4, hw * 1.15, hh * 0.75), fill=a.hair)
    # neck, then head
    poly(np.array([[0.5 - hw * 0.35, 0.5 + hh * 0.6], [0.5 + hw * 0.35, 0.5 + hh * 0.6], [0.5 + hw * 0.4, 1.05],
                   [0.5 - hw * 0.4, 1.05]]), fill=tuple(int(c * 0.85) for c in a.skin))  # fmt: skip
    poly(_head(a), fill=a.skin)
    # ears
    for side_ in (-1, 1):
        poly(_ellipse(0.5 + side_ * hw * 0.98, _EYE_LINE + 0.04, 0.035, 0.055, 24), fill=a.skin)
    if a.hair_style in (1, 2, 3):  # hair cap over the top of the head
        t = np.linspace(np.pi, 2 * np.pi, 36)
        cap_depth = {1: 0.35, 2: 0.45, 3: 0.55}[a.hair_style]
        cap = np.stack([0.5 + hw * 1.04 * np.cos(t), 0.5 - hh * 0.3 + (hh * 0.75) * np.sin(t)], 1)
        base = 0.5 - hh * 0.3 + hh * cap_depth * 0.35
        cap = np.concatenate([cap, [[0.5 + hw * 1.04, base], [0.5 - hw * 1.04, base]]])
        poly(cap, fill=a.hair)
        if a.hair_style == 3:  # fringe: a band down to the brows
            brow = _EYE_LINE - 0.09
            band = [
                [0.5 - hw * 0.9, top + 0.05],
                [0.5 + hw * 0.9, top + 0.05],
                [0.5 + hw * 0.8, brow],
                [0.5 - hw * 0.8, brow],
            ]
            poly(np.array(band), fill=a.hair)
    # eyes: white, iris, pupil
    for side_ in (-1, 1):
        cx = 0.5 + side_ * a.eye_spacing / 2
        r = a.eye_size
        poly(_ellipse(cx, _EYE_LINE, r * 1.3, r), fill=(250, 250, 250))
        poly(_ellipse(cx, _EYE_LINE, r * 0.6, r * 0.6), fill=a.iris)
        poly(_ellipse(cx, _EYE_LINE, r * 0.28, r * 0.28), fill=(10, 10, 10))
        # brow: inner end tilts by brow_tilt
        by = _EYE_LINE - r - 0.035
        inner, outer = cx - side_ * r * 1.3, cx + side_ * r * 1.4
        dy = math.tan(a.brow_tilt) * r * 1.3
        line(np.array([[outer, by - dy * 0.2], [cx, by - 0.008], [inner, by + dy]]), a.hair, a.brow_thickness)
        if a.glasses:
            ring = _ellipse(cx, _EYE_LINE, r * 1.3 + 0.03, r + 0.03)
            line(np.concatenate([ring, ring[:1]]), (30, 30, 30), 0.012)
    if a.glasses:
        gap = a.eye_spacing / 2 - a.eye_size * 1.3 - 0.03
        line(np.array([[0.5 - gap, _EYE_LINE], [0.5 + gap, _EYE_LINE]]), (30, 30, 30), 0.012)
    # nose: a small shaded triangle
    shade = tuple(int(c * 0.8) for c in a.skin)
    poly(np.array([[0.5, _EYE_LINE + 0.06], [0.5 - 0.025, _EYE_LINE + 0.16], [0.5 + 0.025, _EYE_LINE + 0.16]]),
         fill=shade)  # fmt: skip
    # mouth: an open smile is a filled dark shape with a lip outline; otherwise a lip line
    upper, lower = _mouth_curves(a)
    lip = (150, 40, 50)
    if a.smile > 0.2:
        poly(np.concatenate([upper, lower[::-1]]), fill=(90, 20, 30))
        line(upper, lip, 0.012)
        line(lower, lip, 0.014)
    else:
        line(lower, lip, 0.016)
    return img.resize((size, size), Image.Resampling.LANCZOS) if supersample > 1 else img


def face_array(seed: int, *, size: int = 64, **changes: Any) -> np.ndarray:
    """Face ``seed`` (optionally with attributes changed) as a uint8 array [size, size, 3]."""
    attrs = sample_attributes(seed)
    if changes:
        attrs = with_attribute(attrs, **changes)
    return np.asarray(draw_face(attrs, size=size))


def render_faces(seeds: Iterable[int], *, size: int = 64) -> np.ndarray:
    """Faces for ``seeds`` as one uint8 array [N, size, size, 3] (the training set of ``wplus train cartoon-faces``)."""
    return np.stack([face_array(int(s), size=size) for s in seeds])
