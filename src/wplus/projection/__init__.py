"""Embedding by optimisation: :func:`project` and its result types, presets, schedules, generic generators."""

from wplus.projection.generic import GenericProjectionResult, ZGenerator, project_generic
from wplus.projection.pairs import PairProjection, project_pairs
from wplus.projection.project import ProjectionResult, ProjectionStep, estimate_w_std, latent_to_ws, project
from wplus.projection.settings import (
    LOSS_KINDS,
    PRESETS,
    ProjectionSettings,
    SettingError,
    build_loss,
    resolve_settings,
)

__all__ = [
    "project",
    "project_pairs",
    "PairProjection",
    "ProjectionResult",
    "ProjectionStep",
    "latent_to_ws",
    "estimate_w_std",
    "ProjectionSettings",
    "SettingError",
    "PRESETS",
    "LOSS_KINDS",
    "resolve_settings",
    "build_loss",
    "project_generic",
    "GenericProjectionResult",
    "ZGenerator",
]
