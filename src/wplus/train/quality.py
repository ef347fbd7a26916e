"""Quality checks of a generator trained on the built-in cartoon faces (the shipped model's bars, docs/demo-model.md).

* :func:`projection_psnr`: PSNR of held-out dataset faces projected into W+ (bar: median >= 28 dB in 500 steps).
* :func:`smile_fraction`: the smile direction, the mean of ``w(smiling) - w(neutral)`` over projected pairs of the
  same face, applied to other projected faces; the share of the squared pixel change that falls inside each face's
  mouth box (bar: >= 70 %). The pairs are projected jointly with one shared offset
  (:func:`wplus.projection.pairs.project_pairs`, the mean difference is then that offset) or, with
  ``method='independent'``, one image at a time.

Held-out faces use seeds from :data:`wplus.data.faces.HELD_OUT_SEED_BASE`, which training never draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from wplus.data.faces import HELD_OUT_SEED_BASE, draw_face, face_boxes, sample_attributes, with_attribute
from wplus.errors import ConfigError
from wplus.io.images import pil_to_tensor
from wplus.metrics import psnr
from wplus.projection.pairs import project_pairs
from wplus.projection.project import ProjectionLoss, project

__all__ = ["projection_psnr", "smile_fraction", "smile_fraction_steps", "SmileCheck", "CheckRun", "held_out_faces"]


def held_out_faces(offset: int, count: int, resolution: int, **changes: float) -> torch.Tensor:
    """Faces ``HELD_OUT_SEED_BASE + offset + i`` (attributes optionally changed), [count, 3, R, R] in [-1, 1]."""
    imgs = []
    for i in range(count):
        attrs = sample_attributes(HELD_OUT_SEED_BASE + offset + i)
        if changes:
            attrs = with_attribute(attrs, **changes)
        imgs.append(pil_to_tensor(draw_face(attrs, size=resolution)))
    return torch.cat(imgs)


@dataclass(frozen=True)
class CheckRun:
    """How the checks embed faces: W+ projection with the paper's Adam settings, ``chunk`` images at a time (a
    batch is independent single runs, so chunking only bounds memory: a 64 px batch of 48 needs ~13 GB).

    ``callback`` is called after every optimisation step of every chunk (and of the paired projection) with the
    step's record; :meth:`steps` and :func:`smile_fraction_steps` say how many calls a check makes.
    """

    num_steps: int = 500
    seed: int = 0
    chunk: int = 16
    callback: Callable[[Any], None] | None = field(default=None, compare=False)

    def steps(self, num_images: int) -> int:
        """How many steps (callback calls) :meth:`project` takes for ``num_images`` targets."""
        return math.ceil(num_images / self.chunk) * self.num_steps

    def project(self, G: torch.nn.Module, targets: torch.Tensor, loss: ProjectionLoss) -> tuple[torch.Tensor, ...]:
        """W+ codes [N, num_ws, w_dim] and renderings [N, C, R, R] of ``targets``."""
        ws, images = [], []
        for part in targets.split(self.chunk):
            r = project(
                G, part, loss=loss, space="w+", num_steps=self.num_steps, seed=self.seed, callback=self.callback
            )
            ws.append(r.ws)
            images.append(r.images)
        return torch.cat(ws), torch.cat(images)


def projection_psnr(
    G: torch.nn.Module, loss: ProjectionLoss, *, count: int = 20, run: CheckRun = CheckRun()
) -> list[float]:
    """PSNR (dB) of ``count`` held-out faces after ``run.num_steps`` of W+ projection."""
    targets = held_out_faces(0, count, G.img_resolution).to(G.w_avg.device)
    _, images = run.project(G, targets, loss)
    return [float(v) for v in psnr(images, targets)]


@dataclass
class SmileCheck:
    fractions: list[float]  # per face: share of the squared change inside the mouth box
    mouth_change: list[float]  # per face: the squared change inside the mouth box (how strong the smile is)
    direction: torch.Tensor  # [num_ws, w_dim] the estimated smile direction
    pair_psnr: list[float]
    before: torch.Tensor  # [F, C, R, R] the other faces as projected
    after: torch.Tensor  # [F, C, R, R] the same with the smile direction added

    @property
    def mean(self) -> float:
        return sum(self.fractions) / len(self.fractions)

    @property
    def direction_norm(self) -> float:
        return float(self.direction.norm())


def smile_fraction_steps(
    num_pairs: int, num_faces: int, *, method: Literal["shared", "independent"] = "shared", run: CheckRun = CheckRun()
) -> int:
    """How many steps (``run.callback`` calls) :func:`smile_fraction` takes with these arguments."""
    if method == "shared":
        return run.num_steps + run.steps(num_faces)  # project_pairs reports once per step, all chunks together
    return run.steps(2 * num_pairs + num_faces)


def _box_mask(box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    x0, y0, x1, y1 = box
    mask = torch.zeros(size, size)
    mask[max(0, math.floor(y0)) : min(size, math.ceil(y1)), max(0, math.floor(x0)) : min(size, math.ceil(x1))] = 1
    return mask


@torch.no_grad()
def _render(G: torch.nn.Module, ws: torch.Tensor) -> torch.Tensor:
    return G.synthesis(ws, noise_mode="const")


def smile_fraction(
    G: torch.nn.Module,
    loss: ProjectionLoss,
    *,
    num_pairs: int = 24,
    num_faces: int = 8,
    strength: float = 1.0,
    method: Literal["shared", "independent"] = "shared",
    run: CheckRun = CheckRun(),
) -> SmileCheck:
    """Measure where the smile direction changes the image (see the module docstring).

    ``method='shared'`` projects the pairs jointly with one offset (``run.num_steps`` steps, ``run.chunk`` images a
    forward pass); ``'independent'`` projects each image alone and averages the differences, whose estimation noise
    only shrinks slowly with ``num_pairs`` (measured on the shipped model in docs/demo-model.md).
    """
    if method not in ("shared", "independent"):
        raise ConfigError(f"method must be 'shared' or 'independent', got {method!r}")
    res = G.img_resolution
    device = G.w_avg.device
    neutral = held_out_faces(1000, num_pairs, res, smile=0.0).to(device)
    smiling = held_out_faces(1000, num_pairs, res, smile=1.0).to(device)
    others = held_out_faces(2000, num_faces, res, smile=0.0).to(device)
    if method == "shared":
        pairs = project_pairs(
            G, neutral, smiling, loss=loss, num_steps=run.num_steps, chunk=max(1, run.chunk // 2), callback=run.callback
        )
        direction = pairs.delta[None]
        pair_psnr = pairs.psnr_before + pairs.psnr_after
        ws_o, _ = run.project(G, others, loss)
    else:
        ws, images = run.project(G, torch.cat([neutral, smiling, others]), loss)
        ws_n, ws_s, ws_o = ws.split([num_pairs, num_pairs, num_faces])
        direction = (ws_s - ws_n).mean(0, keepdim=True)  # [1, num_ws, w_dim]
        pair_psnr = [float(v) for v in psnr(images[: 2 * num_pairs], torch.cat([neutral, smiling]))]
    before = _render(G, ws_o)
    after = _render(G, ws_o + strength * direction)
    change = (after - before).square().sum(1).cpu()  # [F, R, R]
    fractions, inside = [], []
    for i in range(num_faces):
        box = face_boxes(sample_attributes(HELD_OUT_SEED_BASE + 2000 + i), res)["mouth"]
        inside.append(float((change[i] * _box_mask(box, res)).sum()))
        fractions.append(inside[-1] / max(float(change[i].sum()), 1e-12))
    return SmileCheck(
        fractions=fractions,
        mouth_change=inside,
        direction=direction[0].cpu(),
        pair_psnr=pair_psnr,
        before=before.cpu(),
        after=after.cpu(),
    )
