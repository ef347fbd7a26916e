"""Latent edits of embedded images (Image2StyleGAN section 4 and the StyleGAN2 projecting toolkit).

- :mod:`~wplus.edits.morph` — morphing along keyframes (W / W+ linear, Z linear or slerp);
- :mod:`~wplus.edits.crossover` — style transfer by crossover, style-mixing grids and style videos;
- :mod:`~wplus.edits.expression` — expression transfer with the paper's row clean-up;
- :mod:`~wplus.edits.directions` — attribute direction files (toolkit, InterFaceGAN, e4e, GANSpace, SeFa, ours);
- :mod:`~wplus.edits.discovery` — finding directions: SeFa, GANSpace's PCA, InterFaceGAN boundaries from scores
  (files in :mod:`~wplus.edits.discovery_io`; :mod:`wplus.directions` gathers both);
- :mod:`~wplus.edits.render` — rendering codes with their noise, strips, GIF / MP4.

Every edit reads its inputs with :func:`wplus.io.latents.load_code` (re-exported here); ``wplus render`` reads every
code of a file with :func:`wplus.io.latents.load_codes`.
"""

from wplus.edits.crossover import mix_styles, named_layer_ranges, parse_layers, style_mixing_grid, style_morph
from wplus.edits.directions import (
    Direction,
    apply_direction,
    direction_from_pairs,
    load_direction,
    move_to_coordinate,
    save_direction,
)
from wplus.edits.discovery import fit_boundary, pca, project_out, sample_codes, sefa
from wplus.edits.expression import ExpressionDelta, clean_difference, expression_transfer
from wplus.edits.morph import MorphResult, interpolate, morph, slerp
from wplus.edits.render import render, render_latents, save_frames, save_strip
from wplus.io.latents import check_code, load_code, load_codes

__all__ = [
    "interpolate",
    "slerp",
    "morph",
    "MorphResult",
    "mix_styles",
    "named_layer_ranges",
    "parse_layers",
    "style_mixing_grid",
    "style_morph",
    "expression_transfer",
    "clean_difference",
    "ExpressionDelta",
    "Direction",
    "load_direction",
    "save_direction",
    "apply_direction",
    "move_to_coordinate",
    "direction_from_pairs",
    "sefa",
    "pca",
    "sample_codes",
    "fit_boundary",
    "project_out",
    "load_code",
    "load_codes",
    "check_code",
    "render",
    "render_latents",
    "save_strip",
    "save_frames",
]
