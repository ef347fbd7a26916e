"""Face alignment (FFHQ recipe), dlib landmarks, and pasting edited faces back into the photo.

Needs the ``align`` extra (``pip install 'wplus[align]'``) for detection; :func:`align_face` with given landmarks
and :func:`paste_back` work without it.
"""

from wplus.align.ffhq import (
    DEFAULT_FACE,
    DEFAULT_MIN_FACE_RATIO,
    FACE_CHOICES,
    AlignedFace,
    AlignTransform,
    align_face,
    align_faces,
    face_size,
    ffhq_quad,
    load_transform,
    select_faces,
)
from wplus.align.landmarks import FaceLandmarks, LandmarkDetector, shape_predictor_path
from wplus.align.paste import face_landmarks, face_mask, paste_back

__all__ = [
    "DEFAULT_FACE",
    "DEFAULT_MIN_FACE_RATIO",
    "FACE_CHOICES",
    "AlignTransform",
    "AlignedFace",
    "FaceLandmarks",
    "LandmarkDetector",
    "align_face",
    "align_faces",
    "face_landmarks",
    "face_mask",
    "face_size",
    "ffhq_quad",
    "load_transform",
    "paste_back",
    "select_faces",
    "shape_predictor_path",
]
