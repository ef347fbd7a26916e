"""Expression transfer (Image2StyleGAN section 4.3): ``w = w1 + λ·(w3 − w2)`` with the paper's clean-up.

w1 is the target's code, w2 a neutral face of a source person and w3 the same person with a distinct expression. The
paper zeroes the "channels" of the difference whose L2 norm is below a threshold (1 in its experiments) to remove
background noise, and normalises the result to control the intensity. It does not define "channel" precisely; here
it is one row of the W+ difference (the w of one layer, w_dim values) and the measure is explicit:

- ``norm='l2'`` (default, the paper's reading): ‖Δ_row‖₂, threshold 1 by default;
- ``norm='rms'``: ‖Δ_row‖₂ / √w_dim, a per-value scale that does not grow with w_dim.

Normalisation (``normalize``): 'none' (default: λ scales the raw cleaned difference, so λ = 1 gives w1 + w3 − w2),
'global' (the cleaned difference is divided by its Frobenius norm, so λ is a distance in W+) or 'rows' (each kept row
is divided by its own L2 norm, so λ is a distance per layer). Z codes are used after mapping (their saved ws).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from wplus.errors import ConfigError, ShapeError
from wplus.io.latents import check_finite

__all__ = ["clean_difference", "expression_transfer", "ExpressionDelta", "row_norms"]

RowNorm = Literal["l2", "rms"]
Normalize = Literal["none", "global", "rows"]


def row_norms(delta: torch.Tensor, norm: RowNorm = "l2") -> torch.Tensor:
    """Per-row magnitude of ``delta`` [..., num_ws, w_dim] -> [..., num_ws] ('l2' or 'rms')."""
    n = delta.norm(dim=-1)
    if norm == "l2":
        return n
    if norm == "rms":
        return n / math.sqrt(delta.shape[-1])
    raise ConfigError(f"norm must be 'l2' or 'rms', got {norm!r}")


@dataclass
class ExpressionDelta:
    """The cleaned difference [1, num_ws, w_dim], which rows were kept [num_ws] and each row's measured norm."""

    delta: torch.Tensor
    kept: torch.Tensor
    norms: torch.Tensor


def clean_difference(
    delta: torch.Tensor,
    *,
    threshold: float = 1.0,
    norm: RowNorm = "l2",
    normalize: Normalize = "none",
) -> ExpressionDelta:
    """Zero the rows of ``delta`` whose ``norm`` is below ``threshold``, then optionally normalise.

    Args:
        delta: [1, num_ws, w_dim] (or [num_ws, w_dim]) difference w3 − w2.
        threshold: rows with norm < threshold become zero vectors (0 keeps every row).
        norm: 'l2' or 'rms' (see the module docstring).
        normalize: 'none', 'global' or 'rows'.

    Returns:
        An :class:`ExpressionDelta`.
    """
    if not math.isfinite(threshold) or threshold < 0:
        raise ConfigError(f"threshold must be a finite number >= 0, got {threshold}")
    if normalize not in ("none", "global", "rows"):
        raise ConfigError(f"normalize must be 'none', 'global' or 'rows', got {normalize!r}")
    norms = row_norms(delta, norm)
    kept = norms >= threshold
    out = delta * kept.unsqueeze(-1).to(delta)
    if normalize == "global":
        total = out.norm()
        out = out / total if total > 0 else out
    elif normalize == "rows":
        out = out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return ExpressionDelta(delta=out, kept=kept.reshape(-1), norms=norms.reshape(-1))


def expression_transfer(
    target: torch.Tensor,
    neutral: torch.Tensor,
    expressive: torch.Tensor,
    *,
    strength: float | Sequence[float] = 1.0,
    threshold: float = 1.0,
    norm: RowNorm = "l2",
    normalize: Normalize = "none",
) -> torch.Tensor:
    """``target + λ·clean(expressive − neutral)`` for one or several strengths λ.

    Args:
        target, neutral, expressive: [1, num_ws, w_dim] codes (w1, w2, w3 of the paper).
        strength: λ, or a list of λ for a sweep.
        threshold, norm, normalize: the clean-up (see :func:`clean_difference`).

    Returns:
        [S, num_ws, w_dim], one code per strength.

    Example:
        >>> w1, w2, w3 = torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), torch.tensor([[[2.0] * 4, [0.1] * 4]])
        >>> expression_transfer(w1, w2, w3, strength=0.5)[0, :, 0]
        tensor([1., 0.])
    """
    if not (target.shape == neutral.shape == expressive.shape):
        raise ShapeError(
            f"target {list(target.shape)}, neutral {list(neutral.shape)} and expressive {list(expressive.shape)} "
            "codes must have the same shape [1, num_ws, w_dim]"
        )
    cleaned = clean_difference(expressive - neutral, threshold=threshold, norm=norm, normalize=normalize).delta
    strengths = [float(strength)] if isinstance(strength, int | float) else [float(s) for s in strength]
    if not strengths:
        raise ConfigError("strength: give at least one value")
    check_finite(strengths, "strength")
    return torch.cat([target + s * cleaned for s in strengths])
