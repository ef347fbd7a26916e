"""Registry entries for the original StyleGAN (v1) TF pickles used by Image2StyleGAN.

File names and Google Drive ids are the ones in NVlabs/stylegan's ``pretrained_example.py`` / ``generate_figures.py``
(source page below). NVIDIA publishes no checksums for them, so ``sha256`` and ``size`` are None: the first download
is recorded and later ones are compared against it (see :func:`wplus.hub.download.download`). The weights are
CC BY-NC 4.0 (NVlabs/stylegan README). Read them with :func:`wplus.formats.tf_stylegan1.load_tf_stylegan1`.

The car model renders 512x384 pictures letterboxed in a 512x512 frame (64 black rows above and below): use
:func:`wplus.models.stylegan1.letterbox_mask` to leave the bands out of a projection loss.
"""

from __future__ import annotations

from wplus.hub.registry import register_drive_file

__all__ = ["STYLEGAN1_SPECS"]

_SOURCE = "https://github.com/NVlabs/stylegan"
_LICENSE = "CC-BY-NC-4.0"

# (registry name, file name, Google Drive id, resolution, description)
_ENTRIES = (
    (
        "stylegan1-ffhq-1024",
        "karras2019stylegan-ffhq-1024x1024.pkl",
        "1MEGjdvVpUsu1jB4zrXZN7Y4kBBOzizDQ",
        1024,
        "StyleGAN (v1) FFHQ faces 1024x1024, TF pickle (Image2StyleGAN's main generator)",
    ),
    (
        "stylegan1-celebahq-1024",
        "karras2019stylegan-celebahq-1024x1024.pkl",
        "1MGqJl28pN4t7SAtSrPdSRJSQJqahkzUf",
        1024,
        "StyleGAN (v1) CelebA-HQ faces 1024x1024, TF pickle",
    ),
    (
        "stylegan1-bedrooms-256",
        "karras2019stylegan-bedrooms-256x256.pkl",
        "1MOSKeGF0FJcivpBI7s63V9YHloUTORiF",
        256,
        "StyleGAN (v1) LSUN bedroom 256x256, TF pickle",
    ),
    (
        "stylegan1-cats-256",
        "karras2019stylegan-cats-256x256.pkl",
        "1MQywl0FNt6lHu8E_EUqnRbviagS7fbiJ",
        256,
        "StyleGAN (v1) LSUN cat 256x256, TF pickle",
    ),
    (
        "stylegan1-cars-512",
        "karras2019stylegan-cars-512x384.pkl",
        "1MJ6iCfNtMIRicihwRorsM3b7mmtmK9c3",
        512,
        "StyleGAN (v1) LSUN car 512x384 letterboxed in 512x512 (64 black rows top and bottom), TF pickle",
    ),
)

STYLEGAN1_SPECS = tuple(
    register_drive_file(name, filename, drive_id, license=_LICENSE, source=_SOURCE, description=description,
                        kind="stylegan1", resolution=resolution, format="tf-pkl")
    for name, filename, drive_id, resolution, description in _ENTRIES
)  # fmt: skip
