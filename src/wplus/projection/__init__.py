"""Embedding by optimisation: :func:`project` and its result types."""

from wplus.projection.project import ProjectionResult, ProjectionStep, latent_to_ws, project

__all__ = ["project", "ProjectionResult", "ProjectionStep", "latent_to_ws"]
