"""The defect regions of Table 3 (eyes, nose, mouth and their combinations) and blanking them.

A drawn face knows its parts (:func:`wplus.data.faces.face_boxes`: both eyes with their brows, the mouth); the nose
is the box between the eyes' inner edges, from below the eyes to the top of the mouth box. Any other image takes its
regions from a mask folder (``STEM-eyes.png``, ``STEM-nose.png``, ``STEM-mouth.png``, white = the region, the size of
the image); or, when ``wplus align`` made it (``STEM.json`` beside it), from its 68 alignment landmarks carried into
the aligned square (:func:`landmark_masks`: each eye with its brow, the mouth and the nose as padded boxes); or else
from the average drawn face (an aligned face at the model's resolution has its parts there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wplus.errors import ConfigError

__all__ = [
    "PARTS",
    "DEFECTS",
    "part_masks",
    "landmark_masks",
    "alignment_masks",
    "defect_mask",
    "blank",
    "masks_from_folder",
    "average_face_masks",
]

PARTS = ("eyes", "nose", "mouth")
# Table 3's rows, name -> parts blanked.
DEFECTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "eyes": ("eyes",),
    "nose": ("nose",),
    "mouth": ("mouth",),
    "eyes+mouth": ("eyes", "mouth"),
    "eyes+nose+mouth": ("eyes", "nose", "mouth"),
}


def _box_mask(box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    x0, y0, x1, y1 = box
    m = torch.zeros(size, size)
    xa, ya = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    xb, yb = min(size, int(np.ceil(x1))), min(size, int(np.ceil(y1)))
    if xb > xa and yb > ya:
        m[ya:yb, xa:xb] = 1
    return m


def part_masks(attrs: object, size: int) -> dict[str, torch.Tensor]:
    """{part: [size, size] 0/1 mask} of a drawn face with attributes ``attrs``."""
    from wplus.data.faces import face_boxes

    b = face_boxes(attrs, size)  # type: ignore[arg-type]
    le, re_, mo = b["left_eye"], b["right_eye"], b["mouth"]
    nose_x0, nose_x1 = min(le[2], re_[2]), max(le[0], re_[0])
    if nose_x1 - nose_x0 < 2:  # eye boxes meet: a nose as wide as a tenth of the face
        cx = (le[2] + re_[0]) / 2
        nose_x0, nose_x1 = cx - size * 0.05, cx + size * 0.05
    nose_y0, nose_y1 = max(le[3], re_[3]), mo[1]
    if nose_y1 - nose_y0 < 2:
        nose_y0, nose_y1 = min(le[3], re_[3]) - 1, mo[1] + 1
    eyes = torch.maximum(_box_mask(le, size), _box_mask(re_, size))
    mouth = _box_mask(mo, size)
    nose = _box_mask((nose_x0, nose_y0, nose_x1, nose_y1), size) * (1 - eyes) * (1 - mouth)
    return {"eyes": eyes, "nose": nose, "mouth": mouth}


# dlib's 68-point layout (iBUG 300-W), as index ranges: brows 17-21 and 22-26, nose 27-35, eyes 36-41 and 42-47,
# mouth 48-67 (outer lip 48-59, inner 60-67).
_LEFT_EYE_AND_BROW = [*range(17, 22), *range(36, 42)]
_RIGHT_EYE_AND_BROW = [*range(22, 27), *range(42, 48)]
_NOSE = list(range(27, 36))
_MOUTH = list(range(48, 68))
LANDMARK_PAD = 0.08  # each box grows by this fraction of the distance between the eyes' centres, on every side


def _points_box(points: np.ndarray, pad: float) -> tuple[float, float, float, float]:
    return (points[:, 0].min() - pad, points[:, 1].min() - pad, points[:, 0].max() + pad, points[:, 1].max() + pad)


def _covered(box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    """0/1 [size, size]: the pixels whose centres (pixel-centre coordinates: pixel (i, j) is at x = j, y = i) lie in
    ``box`` (x0, y0, x1, y1), edges included."""
    x0, y0, x1, y1 = box
    c = torch.arange(size, dtype=torch.float64)
    cols = (c >= x0) & (c <= x1)
    rows = (c >= y0) & (c <= y1)
    return (rows[:, None] & cols[None, :]).float()


def landmark_masks(landmarks: np.ndarray, size: int, *, pad: float = LANDMARK_PAD) -> dict[str, torch.Tensor]:
    """{part: [size, size] 0/1 mask} from a face's 68 landmarks in the pixel-centre coordinates of the image.

    Each eye with its brow and the mouth are the boxes around their points; the nose the box around its points, less
    the eyes and the mouth (it never overlaps them). Every box grows by ``pad`` times the distance between the eyes'
    centres on each side, so the lids, the lips' edges and the nostrils' wings are inside. Boxes are axis-aligned: an
    aligned face is upright.

    Raises:
        ConfigError: not [68, 2] landmarks.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ConfigError(f"got landmarks of shape {list(lm.shape)}, expected [68, 2] (dlib's 68-point layout)")
    margin = pad * float(np.linalg.norm(lm[42:48].mean(axis=0) - lm[36:42].mean(axis=0)))
    eyes = torch.maximum(_covered(_points_box(lm[_LEFT_EYE_AND_BROW], margin), size),
                         _covered(_points_box(lm[_RIGHT_EYE_AND_BROW], margin), size))  # fmt: skip
    mouth = _covered(_points_box(lm[_MOUTH], margin), size)
    nose = _covered(_points_box(lm[_NOSE], margin), size) * (1 - eyes) * (1 - mouth)
    return {"eyes": eyes, "nose": nose, "mouth": mouth}


def alignment_masks(image_path: Path, size: int) -> dict[str, torch.Tensor] | None:
    """The parts of an image ``wplus align`` made, from the landmarks in the transform beside it (``STEM.json``),
    at ``size`` pixels a side; None when there is no such transform, it has no landmarks, or the image is not the
    square it describes (a crop of it would move the parts). Needs no dlib: the landmarks are in the JSON."""
    from wplus.align import face_landmarks, load_transform

    json_path = Path(image_path).with_suffix(".json")
    if not json_path.is_file():
        return None
    try:
        transform = load_transform(json_path)
        with Image.open(image_path) as im:
            width, height = im.size
        if transform.landmarks is None or width != height:
            return None
        return landmark_masks(face_landmarks(transform, size), size)
    except (ConfigError, OSError):  # another kind of JSON, or one that cannot be read: not an alignment
        return None


def average_face_masks(size: int, num_faces: int = 50) -> dict[str, torch.Tensor]:
    """The parts of ``num_faces`` held-out drawn faces joined: where an aligned face has them."""
    from wplus.data.faces import HELD_OUT_SEED_BASE, sample_attributes

    out = {p: torch.zeros(size, size) for p in PARTS}
    for i in range(num_faces):
        for p, m in part_masks(sample_attributes(HELD_OUT_SEED_BASE + 3000 + i), size).items():
            out[p] = torch.maximum(out[p], m)
    return out


def masks_from_folder(folder: Path, stem: str, image_size: tuple[int, int], resolution: int) -> dict[str, torch.Tensor]:
    """The masks ``folder/STEM-PART.png`` of one image, cropped and resized as the image was; missing parts are empty.

    Raises:
        ConfigError: a mask whose size is not the image's (naming the file).
    """
    from wplus.io.images import center_crop_resize

    out = {}
    for part in PARTS:
        path = folder / f"{stem}-{part}.png"
        if not path.exists():
            out[part] = torch.zeros(resolution, resolution)
            continue
        img = Image.open(path).convert("L")
        if img.size != image_size:
            raise ConfigError(
                f"{path}: mask is {img.size[0]}x{img.size[1]}, expected {image_size[0]}x{image_size[1]} "
                "(the size of its image)"
            )
        img = center_crop_resize(img, resolution)
        out[part] = torch.from_numpy((np.asarray(img) >= 128).astype(np.float32))
    return out


def defect_mask(masks: dict[str, torch.Tensor], defect: str) -> torch.Tensor:
    """The union of the parts a Table 3 row blanks ([size, size] 0/1)."""
    if defect not in DEFECTS:
        raise ConfigError(f"unknown defect {defect!r}, expected one of: {', '.join(DEFECTS)}")
    some = next(iter(masks.values()))
    out = torch.zeros_like(some)
    for part in DEFECTS[defect]:
        out = torch.maximum(out, masks[part])
    return out


def blank(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``image`` [C, H, W] with the pixels where ``mask`` [H, W] is on set to the median colour of the ring of pixels
    just outside the region (skin around an eye, say); every other pixel is unchanged."""
    on = mask > 0.5
    if not on.any():
        return image.clone()
    grown = F.max_pool2d(on[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0.5
    ring = grown & ~on
    source = ring if ring.any() else ~on
    fill = image[:, source].median(dim=1).values if source.any() else torch.zeros(image.shape[0])
    out = image.clone()
    out[:, on] = fill[:, None]
    return out
