"""Transitional: the latent readers moved to :mod:`wplus.io.latents`, where ``--init-latent`` and the edits both
read them. Only ``wplus.cli.edit_common`` and ``wplus.cli.project`` still import these names from here; delete this
module when they import from ``wplus.io.latents`` and ``wplus.io.images``."""

from wplus.io.images import IMAGE_SUFFIXES
from wplus.io.latents import LATENT_READERS, Projector, check_code, load_code, read_float_npy

__all__ = ["load_code", "check_code", "IMAGE_SUFFIXES", "LATENT_READERS", "Projector", "read_float_npy"]
