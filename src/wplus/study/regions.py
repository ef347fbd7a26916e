"""The defect regions of Table 3 (eyes, nose, mouth and their combinations) and blanking them.

A drawn face knows its parts (:func:`wplus.data.faces.face_boxes`: both eyes with their brows, the mouth); the nose
is the box between the eyes' inner edges, from below the eyes to the top of the mouth box. Any other image takes its
regions from a mask folder (``STEM-eyes.png``, ``STEM-nose.png``, ``STEM-mouth.png``, white = the region, the size of
the image), or else from the average drawn face (an aligned face at the model's resolution has its parts there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wplus.errors import ConfigError

__all__ = ["PARTS", "DEFECTS", "part_masks", "defect_mask", "blank", "masks_from_folder", "average_face_masks"]

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
