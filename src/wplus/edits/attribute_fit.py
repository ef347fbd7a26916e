"""Fitting named attribute directions with a scorer: sample, render, score every attribute, fit InterFaceGAN
boundaries, and condition each one on the others where that measurably helps.

A *scorer* is any callable ``images [B, 3, R, R] in [-1, 1] -> {attribute: Tensor [B] or [B, K]}`` (the attribute
probe's ``predict``; a tiny function in the tests). A [B, K] output (a class attribute such as ``hair_style``) gives
one direction per class, named ``<attribute>-<class>``, scored by that column.

Conditioning (InterFaceGAN's ``project_boundary``) is kept only where it helps, which is measured, not assumed: for
each attribute the boundaries of the others within ``min_cos`` of it are projected out; both the plain and the
conditioned normal then move held-out codes by one standard deviation of the codes along them, the edits are rendered
and scored, and the conditioned one is chosen when its *selectivity* (|change of the attribute| over the RMS change
of the others, each in standard deviations of its scores) beats the plain one's by ``min_gain``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from wplus.edits.discovery import Boundary, fit_boundary, sample_codes
from wplus.errors import ConfigError, ShapeError

__all__ = ["Scorer", "AttributeScores", "FittedDirection", "score_samples", "fit_attribute_directions"]

log = logging.getLogger(__name__)

Scorer = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
Conditioning = Literal["auto", "none", "all"]

#: Class names of the built-in faces' class attributes (``wplus.data.faces.FaceAttributes.hair_style``).
CLASS_NAMES: dict[str, tuple[str, ...]] = {"hair_style": ("bald", "short", "long", "fringe")}


@dataclass
class AttributeScores:
    """Seeded samples and their scores: ``seeds`` [N], ``w`` [N, w_dim], ``scores`` name -> [N] float64."""

    seeds: np.ndarray
    w: torch.Tensor
    scores: dict[str, np.ndarray]
    truncation_psi: float = 1.0


@dataclass
class FittedDirection:
    """One fitted direction.

    Attributes:
        name: the attribute (``glasses``, ``hair_style-long``).
        boundary: the boundary kept (plain or conditioned); ``boundary.normal`` [1, w_dim] is the direction.
        conditions: the attributes projected out of it (empty when the plain one was kept).
        sigma: standard deviation of the codes along the normal (the strength of one "typical" step).
        evaluation: what the edit test measured, for ``plain`` and (when tried) ``conditioned``: the change of each
            attribute per +1 sigma, in standard deviations of its scores, and the selectivity.
        choice: why this boundary was kept, in words.
    """

    name: str
    boundary: Boundary
    conditions: list[str]
    sigma: float
    evaluation: dict[str, Any] = field(default_factory=dict)
    choice: str = ""

    def metadata(self) -> dict[str, Any]:
        """What goes into the direction file's metadata (beside :func:`wplus.edits.discovery_io.save_boundary`'s)."""
        return {"name": self.name, "space": "w", "conditions": self.conditions, "sigma": self.sigma,
                "evaluation": self.evaluation, "choice": self.choice}  # fmt: skip


def _columns(name: str, value: torch.Tensor, batch: int) -> dict[str, np.ndarray]:
    v = value.detach().float().cpu()
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim == 1 and v.shape[0] == batch:
        return {name: v.double().numpy()}
    if v.ndim == 2 and v.shape[0] == batch:
        labels = CLASS_NAMES.get(name, ())
        names = labels if len(labels) == v.shape[1] else tuple(str(k) for k in range(v.shape[1]))
        return {f"{name}-{label}": v[:, k].double().numpy() for k, label in enumerate(names)}
    raise ShapeError(f"scorer's {name!r} has shape {list(value.shape)} for {batch} images; expected [B] or [B, K]")


@torch.no_grad()
def _score(G: torch.nn.Module, scorer: Scorer, w: torch.Tensor, batch_size: int) -> dict[str, np.ndarray]:
    """Render single w codes [N, w_dim] (every row, constant noise) and score them: name -> [N]."""
    device = G.w_avg.device
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(w), batch_size):
        chunk = w[start : start + batch_size].to(device)
        images = G.synthesis(chunk[:, None].expand(-1, G.num_ws, -1), noise_mode="const")
        for name, value in scorer(images.clamp(-1, 1)).items():
            for col, arr in _columns(name, value, len(chunk)).items():
                parts.setdefault(col, []).append(arr)
    return {k: np.concatenate(v) for k, v in parts.items()}


def score_samples(
    G: torch.nn.Module,
    scorer: Scorer,
    seeds: Sequence[int],
    *,
    truncation_psi: float = 1.0,
    batch_size: int = 256,
    callback: Callable[[int, int], None] | None = None,
) -> AttributeScores:
    """Sample seeded codes (:func:`wplus.edits.discovery.sample_codes`), render them and score every attribute.

    Args:
        G: the generator.
        scorer: images -> {attribute: [B] or [B, K]} (see the module docstring).
        seeds: seeds of the samples (NVIDIA's convention).
        truncation_psi: ψ of the samples.
        batch_size: images rendered and scored at once.
        callback: ``callback(done, total)`` after each batch.

    Raises:
        ShapeError: a score of the wrong shape; ConfigError: a score that is NaN or infinite.
    """
    codes = sample_codes(G, seeds, truncation_psi=truncation_psi)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(codes.w), batch_size):
        for k, v in _score(G, scorer, codes.w[start : start + batch_size], batch_size).items():
            parts.setdefault(k, []).append(v)
        if callback is not None:
            callback(min(start + batch_size, len(codes.w)), len(codes.w))
    scores = {k: np.concatenate(v) for k, v in parts.items()}
    for k, v in scores.items():
        if len(v) != len(codes.w) or not np.isfinite(v).all():
            raise ConfigError(f"scorer's {k!r}: {len(v)} scores for {len(codes.w)} images, or NaN / infinite ones")
    return AttributeScores(codes.seeds, codes.w, scores, truncation_psi)


def _effects(
    G: torch.nn.Module, scorer: Scorer, w: torch.Tensor, normal: np.ndarray, sigma: float, spread: dict[str, float]
) -> dict[str, float]:
    """Mean change of each attribute per +1 sigma along ``normal`` (a central difference), in std of its scores."""
    step = torch.from_numpy(normal.reshape(1, -1)).float() * sigma
    up, down = _score(G, scorer, w + step, 256), _score(G, scorer, w - step, 256)
    return {k: float((up[k] - down[k]).mean() / 2 / spread[k]) for k in spread}


def _selectivity(effects: dict[str, float], name: str) -> float:
    others = [v for k, v in effects.items() if k != name]
    leak = math.sqrt(sum(v * v for v in others) / len(others)) if others else 0.0
    return abs(effects[name]) / max(leak, 1e-6)


def fit_attribute_directions(
    G: torch.nn.Module,
    scorer: Scorer,
    samples: AttributeScores,
    *,
    attributes: Sequence[str] | None = None,
    ratio: float = 0.1,
    condition: Conditioning = "auto",
    min_cos: float = 0.1,
    min_gain: float = 0.1,
    eval_seeds: Sequence[int] = range(10_000_000, 10_000_128),
    seed: int = 0,
) -> list[FittedDirection]:
    """Fit one InterFaceGAN boundary per attribute and keep it plain or conditioned on the others.

    Args:
        G: the generator the samples came from (renders the edit test).
        scorer: the scorer that scored the samples.
        samples: from :func:`score_samples`.
        attributes: which to fit (default: every scored one); the others still serve as conditions.
        ratio: :func:`~wplus.edits.discovery.fit_boundary`'s share (or count) of codes per side.
        condition: ``auto`` (condition where the edit test says it helps), ``none`` (plain only) or ``all``
            (always project out every other attribute).
        min_cos: ``auto`` conditions an attribute on the others whose plain boundaries are at least this close
            (|cos|); with none that close the plain boundary is kept untested.
        min_gain: ``auto`` keeps the conditioned boundary when its selectivity is at least ``1 + min_gain`` times
            the plain one's.
        eval_seeds: seeds of the held-out codes the edit test moves (not among the samples).
        seed: seeds the fits' shuffles.

    Returns:
        One :class:`FittedDirection` per attribute, in the order of ``attributes``.

    Raises:
        ConfigError: an unknown attribute or conditioning mode, or an attribute whose scores are all equal.
    """
    if condition not in ("auto", "none", "all"):
        raise ConfigError(f"condition {condition!r}: expected auto, none or all")
    names = list(samples.scores)
    wanted = list(attributes) if attributes is not None else names
    unknown = [a for a in wanted if a not in samples.scores]
    if unknown:
        raise ConfigError(f"attributes {unknown} were not scored; the scorer gives: {', '.join(names)}")
    overlap = set(int(s) for s in eval_seeds) & set(samples.seeds.tolist())
    if overlap:
        raise ConfigError(f"eval_seeds {sorted(overlap)[:3]}... are among the samples; the edit test needs new codes")
    w = samples.w.double().numpy()
    plain = {a: fit_boundary(w, samples.scores[a], ratio=ratio, seed=seed) for a in names}
    spread = {a: float(np.std(v)) or 1.0 for a, v in samples.scores.items()}
    held_out = sample_codes(G, list(eval_seeds), truncation_psi=samples.truncation_psi).w
    out = []
    for a in wanted:
        n = plain[a].normal
        sigma = float(np.std(w @ n.ravel()))
        others = [b for b in names if b != a]
        close = [b for b in others if abs(float(n.ravel() @ plain[b].normal.ravel())) >= min_cos]
        conds = {"none": [], "all": others, "auto": close}[condition]
        evaluation: dict[str, Any] = {}
        if condition == "none" or not conds:
            why = "plain: conditioning not asked for" if condition == "none" else (
                f"plain: no other boundary within |cos| {min_cos:g}")  # fmt: skip
            if condition != "none":
                effects = _effects(G, scorer, held_out, n, sigma, spread)
                evaluation["plain"] = {"effects": effects, "selectivity": _selectivity(effects, a)}
            out.append(FittedDirection(a, plain[a], [], sigma, evaluation, why))
            continue
        fitted = fit_boundary(w, samples.scores[a], ratio=ratio, seed=seed, conditions=[plain[b].normal for b in conds])
        sigma_c = float(np.std(w @ fitted.normal.ravel()))
        e_plain = _effects(G, scorer, held_out, n, sigma, spread)
        e_cond = _effects(G, scorer, held_out, fitted.normal, sigma_c, spread)
        s_plain, s_cond = _selectivity(e_plain, a), _selectivity(e_cond, a)
        evaluation = {"plain": {"effects": e_plain, "selectivity": s_plain},
                      "conditioned": {"effects": e_cond, "selectivity": s_cond, "on": conds}}  # fmt: skip
        if condition == "all" or s_cond >= (1 + min_gain) * s_plain:
            why = f"conditioned on {', '.join(conds)}: selectivity {s_cond:.2f} vs {s_plain:.2f} plain"
            out.append(FittedDirection(a, fitted, conds, sigma_c, evaluation, why))
        else:
            why = f"plain: conditioning on {', '.join(conds)} gave selectivity {s_cond:.2f} vs {s_plain:.2f}"
            out.append(FittedDirection(a, plain[a], [], sigma, evaluation, why))
        log.info("%s: %s", a, why)
    return out
