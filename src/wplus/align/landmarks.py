"""Face detection and dlib's 68-point landmarks, loaded lazily from the ``align`` extra.

The detector is dlib's HOG frontal-face detector called with ``upsample = 1`` and the landmarks come from
``shape_predictor_68_face_landmarks.dat`` as shipped by the ``face-recognition-models`` package (no download at
run time). This is what FFHQ's landmarks were made with (the ffhq-dataset README names dlib's 68-point model).

Large photographs are downscaled to ``detect_max_side`` for detection only; the face rectangles are mapped back and
the landmark predictor runs on the full-resolution image, so landmark precision does not depend on that limit.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wplus.errors import ConfigError

__all__ = ["FaceLandmarks", "LandmarkDetector", "shape_predictor_path"]

log = logging.getLogger(__name__)

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
INSTALL_HINT = "install the align extra: pip install 'wplus[align]' (dlib-bin, face-recognition-models)"


def shape_predictor_path() -> Path:
    """Path of dlib's 68-point model inside the installed ``face_recognition_models`` package.

    The package is located without importing it: its ``__init__`` imports ``pkg_resources``, which recent setuptools
    no longer provides.

    Raises:
        ConfigError: the package or the model file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"got no face_recognition_models package, expected {PREDICTOR_FILE}; {INSTALL_HINT}")
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / PREDICTOR_FILE
        if path.is_file():
            return path
    raise ConfigError(f"face_recognition_models has no models/{PREDICTOR_FILE}; reinstall it ({INSTALL_HINT})")


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise ConfigError(f"got no dlib module, expected it for face alignment; {INSTALL_HINT}") from None
    return dlib


@dataclass(frozen=True)
class FaceLandmarks:
    """One detected face in the coordinates of the image passed to :meth:`LandmarkDetector.detect`.

    Attributes:
        points: [68, 2] float64 (x, y) landmarks, pixel-centre coordinates (dlib's convention).
        box: detection rectangle (left, top, right, bottom).
    """

    points: np.ndarray
    box: tuple[float, float, float, float]

    @property
    def area(self) -> float:
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)


class LandmarkDetector:
    """dlib HOG face detector + 68-point shape predictor; the models load on first use and are kept.

    Args:
        predictor_path: a ``shape_predictor_68_face_landmarks.dat``; default: the one in face-recognition-models.
        upsample: times dlib enlarges the image 2x before detecting (FFHQ's tools use 1).
        detect_max_side: images with a longer side are downscaled to it for detection (0: never).

    Example:
        >>> det = LandmarkDetector()                                  # doctest: +SKIP
        >>> faces = det.detect(load_image("photo.jpg"))               # doctest: +SKIP
    """

    def __init__(self, predictor_path: str | Path | None = None, *, upsample: int = 1, detect_max_side: int = 1024):
        if upsample < 0:
            raise ConfigError(f"upsample must be >= 0, got {upsample}")
        if detect_max_side < 0:
            raise ConfigError(f"detect_max_side must be >= 0, got {detect_max_side}")
        self.predictor_path = None if predictor_path is None else Path(predictor_path)
        self.upsample = upsample
        self.detect_max_side = detect_max_side
        self._detector: Any = None
        self._predictor: Any = None

    def _load(self) -> None:
        if self._detector is not None:
            return
        dlib = _import_dlib()
        path = self.predictor_path or shape_predictor_path()
        if not path.is_file():
            raise ConfigError(f"{path}: no such landmark model; expected {PREDICTOR_FILE}")
        log.info("loading %s", path)
        self._predictor = dlib.shape_predictor(str(path))
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, img: Image.Image) -> list[FaceLandmarks]:
        """Detect faces and their 68 landmarks, largest detection first (ties: top-left first).

        Args:
            img: an RGB image (see :func:`wplus.io.images.load_image`).

        Returns:
            A list, empty when there is no face.
        """
        self._load()
        dlib = _import_dlib()
        rgb = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
        w, h = img.size
        scale = 1.0
        small = rgb
        if self.detect_max_side and max(w, h) > self.detect_max_side:
            scale = max(w, h) / self.detect_max_side
            size = (max(1, round(w / scale)), max(1, round(h / scale)))
            small = np.ascontiguousarray(np.asarray(img.convert("RGB").resize(size, Image.Resampling.LANCZOS)))
            scale = w / size[0]
        faces = []
        for r in self._detector(small, self.upsample):
            box = (r.left() * scale, r.top() * scale, r.right() * scale, r.bottom() * scale)
            rect = dlib.rectangle(*(round(v) for v in box))
            shape = self._predictor(rgb, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            faces.append(FaceLandmarks(points=points, box=box))
        faces.sort(key=lambda f: (-f.area, f.box[1], f.box[0]))
        return faces
