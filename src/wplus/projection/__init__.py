"""Embedding by optimisation: :func:`project` and its result types, presets, schedules, generic generators."""

from wplus.projection.generic import GenericProjectionResult, ZGenerator, project_generic
from wplus.projection.pairs import PairProjection, project_pairs
from wplus.projection.presets import LOSS_KINDS, PRESETS, ProjectionSettings, build_loss, resolve_settings
from wplus.projection.project import ProjectionResult, ProjectionStep, estimate_w_std, latent_to_ws, project

__all__ = [
    "project",
    "project_pairs",
    "PairProjection",
    "ProjectionResult",
    "ProjectionStep",
    "latent_to_ws",
    "estimate_w_std",
    "ProjectionSettings",
    "PRESETS",
    "LOSS_KINDS",
    "resolve_settings",
    "build_loss",
    "project_generic",
    "GenericProjectionResult",
    "ZGenerator",
]
