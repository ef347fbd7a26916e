"""The images a study embeds: a class per folder, or the offline defaults (drawn faces, faces with attributes the
shipped model never saw, and scikit-image's sample photographs grouped as out-of-domain classes)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wplus.errors import ConfigError
from wplus.io.images import center_crop_resize, load_image, pil_to_tensor

__all__ = ["Item", "default_items", "items_from_paths", "IMAGE_SUFFIXES", "FACE_CLASSES", "UNSEEN_FACES"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
FACE_CLASSES = ("faces",)  # the in-domain class of the defaults (Table 2's "Face")

# Attributes pushed beyond the ranges sample_attributes draws from (wplus.data.faces): the shipped model never saw
# them. name -> changes applied to a held-out face.
UNSEEN_FACES: dict[str, dict[str, float]] = {
    "tilted": {"roll": 30.0},  # trained: |roll| <= 5 degrees
    "big-eyes": {"eye_size": 0.1},  # trained: 0.035 .. 0.06
    "off-centre": {"shift_x": 0.15},  # trained: |shift_x| <= 0.03
    "huge-head": {"head_width": 0.45, "head_height": 0.5},  # trained: <= 0.35, <= 0.42
}
# scikit-image's bundled sample photographs (no download), grouped as the out-of-domain classes.
SKIMAGE_CLASSES: dict[str, tuple[str, ...]] = {
    "people": ("astronaut", "camera"),
    "animals": ("chelsea",),
    "objects": ("coffee", "rocket"),
}


@dataclass
class Item:
    """One image of a study: its class, a unique name, the target [C, R, R] in [-1, 1], and where it came from.

    ``attrs`` are a drawn face's attributes (its eyes, nose and mouth boxes are known); ``path`` a file's path."""

    cls: str
    name: str
    image: torch.Tensor
    sha256: str
    source: str
    attrs: object | None = None
    path: Path | None = None

    def record(self) -> dict[str, str]:
        return {"class": self.cls, "name": self.name, "source": self.source, "sha256": self.sha256}


def _array_sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _to_item(cls: str, name: str, arr: np.ndarray, source: str, resolution: int, **kw: object) -> Item:
    img = Image.fromarray(arr).convert("RGB")
    if img.size != (resolution, resolution):
        img = center_crop_resize(img, resolution)
    return Item(cls, name, pil_to_tensor(img)[0], _array_sha(arr), source, **kw)  # type: ignore[arg-type]


def default_items(resolution: int, *, per_class: int, classes: tuple[str, ...] | None = None) -> list[Item]:
    """The offline defaults, ``per_class`` images of each class (drawn at the model's resolution).

    Classes: ``faces`` (held-out drawn faces), ``unseen-faces`` (held-out faces with an attribute pushed beyond the
    training range), and scikit-image's ``people``, ``animals``, ``objects`` (skipped when scikit-image is missing).
    """
    from wplus.data.faces import HELD_OUT_SEED_BASE, draw_face, sample_attributes, with_attribute

    want = classes or ("faces", "unseen-faces", *SKIMAGE_CLASSES)
    items: list[Item] = []
    if "faces" in want:
        for i in range(per_class):
            seed = HELD_OUT_SEED_BASE + 7000 + i
            attrs = sample_attributes(seed)
            arr = np.asarray(draw_face(attrs, size=resolution))
            source = f"wplus.data.faces seed {seed}"
            items.append(_to_item("faces", f"face-{seed}", arr, source, resolution, attrs=attrs))
    if "unseen-faces" in want:
        names = list(UNSEEN_FACES)
        for i in range(per_class):
            variant = names[i % len(names)]
            seed = HELD_OUT_SEED_BASE + 7100 + i
            attrs = with_attribute(sample_attributes(seed), **UNSEEN_FACES[variant])
            arr = np.asarray(draw_face(attrs, size=resolution))
            source = f"wplus.data.faces seed {seed} with {UNSEEN_FACES[variant]}"
            items.append(_to_item("unseen-faces", f"{variant}-{seed}", arr, source, resolution, attrs=attrs))
    wanted_photos = [c for c in SKIMAGE_CLASSES if c in want]
    if wanted_photos:
        try:
            from skimage import data
        except ImportError:
            return items
        for cls in wanted_photos:
            for name in SKIMAGE_CLASSES[cls][:per_class]:
                arr = getattr(data, name)()
                if arr.ndim == 2:
                    arr = np.stack([arr] * 3, axis=-1)
                items.append(_to_item(cls, name, arr[..., :3], f"skimage.data.{name}()", resolution))
    return items


def items_from_paths(paths: list[Path], resolution: int) -> list[Item]:
    """Images from the command line: a folder is a class (its name) of the images in it; files form ``images``.

    Raises:
        ConfigError: a folder with no images, or a file that is not an image, naming it.
    """
    items: list[Item] = []
    for p in paths:
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ConfigError(f"{p}: no images in this class folder (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
            items += [_file_item(p.name, f, resolution) for f in files]
        else:
            items.append(_file_item("images", p, resolution))
    names = [i.name for i in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"two inputs share the name {dupes[0]!r}; give each image a unique class/file name")
    return items


def _file_item(cls: str, path: Path, resolution: int) -> Item:
    img = center_crop_resize(load_image(path), resolution)
    return Item(cls, f"{cls}/{path.stem}", pil_to_tensor(img)[0], _file_sha(path), str(path), path=path)
