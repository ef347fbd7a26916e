"""FFHQ face alignment (Karras et al. 2019, the FFHQ dataset's ``recreate_aligned_images``), written from the recipe.

Steps, as in the FFHQ dataset's face-alignment script (NVlabs/ffhq-dataset): landmark groups -> oriented quad ->
shrink -> crop with border ->
reflect padding blended with blur and median -> QUAD transform at ``transform_size`` -> Lanczos to ``output_size``.

Every aligned face carries an :class:`AlignTransform`: the quad in the source photo's continuous pixel coordinates
(pixel (i, j) covers [i, i+1) x [j, j+1)) that the output square was sampled from. It is saved as JSON beside the
aligned image and is all :func:`wplus.align.paste_back` needs to put an (edited) face back into the photo.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from wplus.align.landmarks import FaceLandmarks, LandmarkDetector
from wplus.errors import ConfigError, ImageError, NoFaceFoundError
from wplus.io.atomic import write_json
from wplus.io.images import load_image
from wplus.text import plural

__all__ = [
    "AlignTransform",
    "AlignedFace",
    "ffhq_quad",
    "face_size",
    "select_faces",
    "align_face",
    "align_faces",
    "load_transform",
    "FACE_CHOICES",
    "DEFAULT_FACE",
    "DEFAULT_MIN_FACE_RATIO",
]

log = logging.getLogger(__name__)

TRANSFORM_FORMAT = "wplus-align-transform"

FACE_CHOICES = ("largest", "all")
DEFAULT_FACE: Literal["largest", "all"] = "largest"
# With face="all", a face whose size (face_size) is below this share of the largest one's is dropped: a detector
# also finds faces on badges, prints and posters, and those are small beside the photo's subject. 0 keeps them all.
DEFAULT_MIN_FACE_RATIO = 0.25


@dataclass(frozen=True)
class AlignTransform:
    """Where an aligned square came from in its source photo.

    Attributes:
        quad: [4, 2] corners NW, SW, SE, NE of the output square, continuous pixel coordinates in the source.
        source_size: (width, height) of the source after EXIF orientation.
        output_size: side of the aligned image.
        transform_size: side of the intermediate QUAD transform.
        enable_padding, rotate: the options used.
        landmarks: [68, 2] source landmarks (pixel centres) or None.
        box: the face detection rectangle (left, top, right, bottom) or None.
        source: file name of the source, for the record.
        face_index: 1-based rank of the face in the photo (largest first).
    """

    quad: np.ndarray
    source_size: tuple[int, int]
    output_size: int
    transform_size: int = 4096
    enable_padding: bool = True
    rotate: bool = True
    landmarks: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    source: str | None = None
    face_index: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TRANSFORM_FORMAT,
            "version": 1,
            "quad": np.asarray(self.quad, dtype=np.float64).tolist(),
            "quad_order": "NW, SW, SE, NE; continuous pixel coordinates of the EXIF-oriented source",
            "source_size": list(self.source_size),
            "output_size": self.output_size,
            "transform_size": self.transform_size,
            "enable_padding": self.enable_padding,
            "rotate": self.rotate,
            "landmarks": None if self.landmarks is None else np.asarray(self.landmarks).tolist(),
            "box": None if self.box is None else list(self.box),
            "source": self.source,
            "face_index": self.face_index,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, origin: str | Path | None = None) -> AlignTransform:
        where = f"{origin}: " if origin is not None else ""
        if not isinstance(d, dict) or d.get("format") != TRANSFORM_FORMAT:
            raise ConfigError(f"{where}got no '{TRANSFORM_FORMAT}' record, expected the JSON written by `wplus align`")
        try:
            quad = np.asarray(d["quad"], dtype=np.float64)
            size = tuple(int(v) for v in d["source_size"])
            out = int(d["output_size"])
        except (KeyError, TypeError, ValueError) as e:
            msg = f"{where}transform is incomplete ({e}); expected quad, source_size, output_size"
            raise ConfigError(msg) from None
        if quad.shape != (4, 2) or len(size) != 2 or min(size) < 1 or out < 1:
            raise ConfigError(f"{where}got quad {list(quad.shape)}, source_size {size}; expected [4, 2] and 2 sizes")
        lm = d.get("landmarks")
        box = d.get("box")
        return cls(
            quad=quad,
            source_size=(size[0], size[1]),
            output_size=out,
            transform_size=int(d.get("transform_size", 4096)),
            enable_padding=bool(d.get("enable_padding", True)),
            rotate=bool(d.get("rotate", True)),
            landmarks=None if lm is None else np.asarray(lm, dtype=np.float64),
            box=None if box is None else tuple(float(v) for v in box),
            source=d.get("source"),
            face_index=int(d.get("face_index", 1)),
        )

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


def load_transform(path: str | Path) -> AlignTransform:
    """Read a transform JSON written by :meth:`AlignTransform.save` (``wplus align``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"{path}: no such transform file; expected the .json written beside an aligned image"
        raise ConfigError(msg) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read transform JSON ({e})") from None
    return AlignTransform.from_dict(data, origin=path)


@dataclass
class AlignedFace:
    """An aligned face image and the transform that produced it."""

    image: Image.Image
    transform: AlignTransform = field(repr=False)

    @property
    def quad(self) -> np.ndarray:
        return self.transform.quad

    @property
    def source_size(self) -> tuple[int, int]:
        return self.transform.source_size

    @property
    def landmarks(self) -> np.ndarray | None:
        return self.transform.landmarks


def ffhq_quad(landmarks: np.ndarray, *, rotate: bool = True) -> tuple[np.ndarray, float]:
    """The oriented crop quad of FFHQ from 68 dlib landmarks.

    Args:
        landmarks: [68, 2] (x, y) pixel-centre coordinates.
        rotate: level the eyes (FFHQ's ``rotate_level``); False keeps the crop axis-aligned.

    Returns:
        (quad [4, 2] as NW, SW, SE, NE in pixel-centre coordinates, qsize = side length of the quad).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ConfigError(f"got landmarks of shape {list(lm.shape)}, expected [68, 2] (dlib's 68-point layout)")
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    if rotate:
        # x = eye_to_eye - (-my, mx): the eye axis averaged with the eye->mouth axis turned by -90 degrees.
        x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
        norm = math.hypot(*x)
        if norm == 0:
            raise ConfigError("degenerate landmarks: eyes and mouth coincide")
        x = x / norm
    else:
        x = np.array([1.0, 0.0])
    x = x * max(math.hypot(*eye_to_eye) * 2.0, math.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])  # x turned by +90 degrees: "down" in image coordinates
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, 2.0 * math.hypot(*x)


def face_size(landmarks: np.ndarray) -> float:
    """The side of the face's FFHQ crop (``qsize`` of :func:`ffhq_quad`), in pixels: twice the larger of 2 x the
    eye-to-eye and 1.8 x the eye-to-mouth distance. It measures the face's landmarks, not the detector's box."""
    return ffhq_quad(landmarks, rotate=False)[1]


def select_faces(
    found: list[FaceLandmarks],
    *,
    face: Literal["largest", "all"] = DEFAULT_FACE,
    min_face_ratio: float = DEFAULT_MIN_FACE_RATIO,
) -> tuple[list[FaceLandmarks], list[FaceLandmarks]]:
    """The detections to align and those left out, each in the detector's order (largest first).

    Args:
        found: detections, largest first (:meth:`LandmarkDetector.detect`).
        face: ``"largest"``: the first detection only; ``"all"``: every face whose :func:`face_size` is at least
            ``min_face_ratio`` times the largest face's.
        min_face_ratio: in [0, 1]; 0 keeps every detection.

    Raises:
        ConfigError: ``face`` or ``min_face_ratio`` out of range.
    """
    if face not in FACE_CHOICES:
        raise ConfigError(f"got face={face!r}, expected 'largest' or 'all'")
    if not (isinstance(min_face_ratio, int | float) and 0.0 <= min_face_ratio <= 1.0):
        raise ConfigError(f"got min_face_ratio={min_face_ratio!r}, expected a number from 0 (keep every face) to 1")
    if face == "largest":
        return found[:1], found[1:]
    sizes = [face_size(f.points) for f in found]
    floor = min_face_ratio * max(sizes, default=0.0)
    kept = [f for f, size in zip(found, sizes, strict=True) if size >= floor]
    return kept, [f for f, size in zip(found, sizes, strict=True) if size < floor]


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(img, (sigma, sigma, 0))


def align_face(
    img: Image.Image,
    landmarks: np.ndarray,
    *,
    output_size: int = 1024,
    transform_size: int = 4096,
    enable_padding: bool = True,
    rotate: bool = True,
    box: tuple[float, float, float, float] | None = None,
    source: str | None = None,
    face_index: int = 1,
) -> AlignedFace:
    """Align one face of ``img`` exactly as FFHQ was made.

    Args:
        img: the RGB source photo.
        landmarks: its [68, 2] dlib landmarks.
        output_size: side of the result (FFHQ: 1024; use the generator's ``img_resolution``).
        transform_size: side of the intermediate QUAD transform (FFHQ: 4096), >= output_size.
        enable_padding: fill the parts of the quad outside the photo by blurred reflection (else black).
        rotate: level the eyes.

    Returns:
        AlignedFace with an ``output_size`` square RGB image and its :class:`AlignTransform`.
    """
    if output_size < 1 or transform_size < output_size:
        raise ConfigError(
            f"got output_size {output_size}, transform_size {transform_size}; expected 1 <= output_size <= "
            "transform_size (raise --transform-size)"
        )
    img = img.convert("RGB")
    src_w, src_h = img.size
    quad, qsize = ffhq_quad(landmarks, rotate=rotate)
    lm = np.asarray(landmarks, dtype=np.float64)
    scale = (1.0, 1.0)  # processed (shrunk) pixel -> source pixel

    # Shrink: keep the quad at most ~2x the output side before the transform.
    shrink = int(math.floor(qsize / output_size * 0.5))
    if shrink > 1:
        rsize = (max(1, int(np.rint(src_w / shrink))), max(1, int(np.rint(src_h / shrink))))
        img = img.resize(rsize, Image.Resampling.LANCZOS)
        quad = quad / shrink
        qsize = qsize / shrink
        scale = (src_w / rsize[0], src_h / rsize[1])

    # Crop to the quad's bounding box grown by a border.
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (
        int(math.floor(quad[:, 0].min())) - border,
        int(math.floor(quad[:, 1].min())) - border,
        int(math.ceil(quad[:, 0].max())) + border,
        int(math.ceil(quad[:, 1].max())) + border,
    )
    crop = (max(crop[0], 0), max(crop[1], 0), min(crop[2], img.size[0]), min(crop[3], img.size[1]))
    offset = np.zeros(2)  # processed image origin in shrunk coordinates
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad = quad - np.array(crop[:2], dtype=np.float64)
        offset += crop[:2]

    # Pad: reflect, then blend towards a blurred copy and the median colour the further out a pixel is.
    w, h = img.size
    pad = (
        max(-int(math.floor(quad[:, 0].min())) + border, 0),
        max(-int(math.floor(quad[:, 1].min())) + border, 0),
        max(int(math.ceil(quad[:, 0].max())) - w + border, 0),
        max(int(math.ceil(quad[:, 1].max())) - h + border, 0),
    )
    if enable_padding and max(pad) > border - 4:
        pad = tuple(max(p, int(np.rint(qsize * 0.3))) for p in pad)
        arr = np.pad(np.asarray(img, dtype=np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode="reflect")
        ph, pw, _ = arr.shape
        yy, xx = np.ogrid[:ph, :pw]
        pl, pt, pr, pb = (max(p, 1) for p in pad)
        mask = np.maximum(
            1.0 - np.minimum(xx / pl, (pw - 1 - xx) / pr), 1.0 - np.minimum(yy / pt, (ph - 1 - yy) / pb)
        ).astype(np.float32)[:, :, None]
        blur = qsize * 0.02
        arr += (_gaussian_blur(arr, blur) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
        quad = quad + np.array(pad[:2], dtype=np.float64)
        offset -= pad[:2]

    # Transform: +0.5 turns pixel-centre coordinates into PIL's continuous ones.
    cont = quad + 0.5
    out = img.transform((transform_size, transform_size), Image.Transform.QUAD, tuple(cont.flatten()), Image.BILINEAR)
    if output_size < transform_size:
        out = out.resize((output_size, output_size), Image.Resampling.LANCZOS)

    source_quad = (cont + offset) * np.array(scale)
    transform = AlignTransform(
        quad=source_quad,
        source_size=(src_w, src_h),
        output_size=output_size,
        transform_size=transform_size,
        enable_padding=enable_padding,
        rotate=rotate,
        landmarks=lm,
        box=box,
        source=source,
        face_index=face_index,
    )
    return AlignedFace(image=out, transform=transform)


def align_faces(
    image: Image.Image | str | Path,
    *,
    detector: LandmarkDetector | None = None,
    face: Literal["largest", "all"] = DEFAULT_FACE,
    min_face_ratio: float = DEFAULT_MIN_FACE_RATIO,
    output_size: int = 1024,
    transform_size: int = 4096,
    enable_padding: bool = True,
    rotate: bool = True,
    max_pixels: int | None = None,
    notice: Callable[[str], None] | None = None,
) -> list[AlignedFace]:
    """Detect the faces in a photo (or file) and align the largest, or each one, largest first.

    Args:
        image: an RGB image, or a path read with :func:`wplus.io.images.load_image` (EXIF orientation, any mode).
        detector: a :class:`LandmarkDetector` to reuse (its models load once); default: a new one.
        face: ``"largest"`` (default): the largest face only; ``"all"``: every face but those far smaller than the
            largest (see ``min_face_ratio`` and :func:`select_faces`).
        min_face_ratio: with ``face="all"``, drop faces whose :func:`face_size` is below this share of the largest
            face's (default :data:`DEFAULT_MIN_FACE_RATIO`: a badge or a print on a shirt); 0 keeps every face.
        max_pixels: a file with more pixels is refused before decoding (default
            :data:`wplus.io.images.MAX_PIXELS`).
        notice: receives one line when faces were dropped for their size; without it the line is logged.

    Returns:
        One AlignedFace per face kept; ``transform.face_index`` is 1, 2, ... in that order.

    Raises:
        NoFaceFoundError: no face was detected; the message names the file.
        ImageError: the file cannot be read.
        ConfigError: ``face`` or ``min_face_ratio`` out of range.
    """
    select_faces([], face=face, min_face_ratio=min_face_ratio)  # check the options before reading anything
    source: str | None = None
    if isinstance(image, str | Path):
        source = str(image)
        image = load_image(image, max_pixels=max_pixels)
    elif not isinstance(image, Image.Image):
        raise ImageError(None, f"got {type(image).__name__}, expected a PIL image or a path")
    detector = detector or LandmarkDetector()
    found: list[FaceLandmarks] = detector.detect(image)
    if not found:
        w, h = image.size
        raise NoFaceFoundError(source or "image", f"no face found in {w}x{h} image; expected a visible frontal face")
    kept, dropped = select_faces(found, face=face, min_face_ratio=min_face_ratio)
    if dropped and face == "all":
        line = (
            f"{source or 'image'}: skipped {plural(len(dropped), 'face')} smaller than {min_face_ratio:g} of the "
            "largest face's size (a badge or a print?); a minimum face ratio of 0 keeps every face"
        )
        (notice or log.info)(line)
    return [
        align_face(
            image,
            f.points,
            output_size=output_size,
            transform_size=transform_size,
            enable_padding=enable_padding,
            rotate=rotate,
            box=f.box,
            source=None if source is None else Path(source).name,
            face_index=i,
        )
        for i, f in enumerate(kept, start=1)
    ]
