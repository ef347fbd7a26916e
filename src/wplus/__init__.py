"""wplus: embed real photographs into StyleGAN's Z, W and W+ spaces and edit them.

Example (docs/python.md has the whole walk-through, tested offline):
    >>> import wplus
    >>> G = wplus.load_generator("cartoon-faces-64")             # the shipped model; a file, name or URL works too
    >>> target = wplus.load_target("photo.png", G)                # [1, 3, 64, 64] in [-1, 1]      # doctest: +SKIP
    >>> result = wplus.project(G, target, num_steps=200)          # loss: wplus.default_loss(G)   # doctest: +SKIP
    >>> result.settings.loss                  # 'perceptual+mse' (VGG-16), offline 'dfeat+mse'  # doctest: +SKIP
    'dfeat+mse'
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from wplus.runtime import prefer_passive_openmp_wait

prefer_passive_openmp_wait()  # before torch is first imported: idle OpenMP threads sleep instead of spinning

from wplus.align import align_faces, paste_back
from wplus.edits import (
    Direction,
    apply_direction,
    direction_from_pairs,
    expression_transfer,
    interpolate,
    load_code,
    load_codes,
    load_direction,
    mix_styles,
    morph,
    render,
    render_latents,
    save_direction,
    style_mixing_grid,
)
from wplus.encoders import encode_for, load_encoder
from wplus.errors import (
    CheckpointError,
    ChecksumMismatchError,
    ConfigError,
    ImageError,
    NoFaceFoundError,
    OfflineError,
    ShapeError,
    WplusError,
)
from wplus.formats.latents import load_foreign_latents
from wplus.formats.psp import ReleasedEncoder
from wplus.io.images import load_target
from wplus.io.latents import Latent, load_latent, save_latent
from wplus.loading import ModelFile, load_generator, load_generator_info, resolve_model
from wplus.losses import ImageLoss, PerceptualLoss, load_lpips
from wplus.models.stylegan2 import Generator, StyleGAN2Config, random_generator
from wplus.models.vgg16 import load_vgg16
from wplus.projection import PRESETS, ProjectionSettings, build_loss, project_generic, resolve_settings
from wplus.projection.choice import default_loss
from wplus.projection.project import ProjectionResult, ProjectionStep, project
from wplus.seeds import z_from_seed
from wplus.tuning import Tuning, load_tuning, save_tuning, tune

try:
    __version__ = version("wplus")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = [
    "__version__",
    "tune",
    "Tuning",
    "load_tuning",
    "save_tuning",
    "load_generator",
    "load_target",
    "project",
    "default_loss",
    "load_encoder",
    "encode_for",
    "project_generic",
    "resolve_settings",
    "ProjectionSettings",
    "build_loss",
    "PRESETS",
    "ImageLoss",
    "load_lpips",
    "ProjectionResult",
    "ProjectionStep",
    "PerceptualLoss",
    "load_vgg16",
    "Generator",
    "StyleGAN2Config",
    "random_generator",
    "Latent",
    "load_latent",
    "save_latent",
    "WplusError",
    "CheckpointError",
    "ChecksumMismatchError",
    "ConfigError",
    "ImageError",
    "NoFaceFoundError",
    "OfflineError",
    "ShapeError",
    "load_generator_info",
    "resolve_model",
    "ModelFile",
    "z_from_seed",
    "load_foreign_latents",
    "load_encoder",
    "ReleasedEncoder",
    "align_faces",
    "paste_back",
    "interpolate",
    "morph",
    "mix_styles",
    "style_mixing_grid",
    "expression_transfer",
    "Direction",
    "apply_direction",
    "load_direction",
    "save_direction",
    "direction_from_pairs",
    "load_code",
    "load_codes",
    "render",
    "render_latents",
]
