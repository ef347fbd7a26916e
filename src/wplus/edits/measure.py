"""Measuring an edit: how far a direction moves each attribute a scorer reads, and where it changes the image.

:func:`attribute_response` (one direction; :func:`attribute_responses` for several on the same codes) renders codes
before and after ``w + s·d`` for each strength ``s`` and reports, per attribute, the scorer's mean change per unit
strength in units of that attribute's spread over the unedited codes: one row of a leakage matrix per strength
(InterFaceGAN judges conditional boundaries this way, with a classifier that reads every attribute). With a ``mask``
it also reports the share of the squared pixel change inside it (the mouth-box measure of docs/demo-model.md).
:func:`face_part_mask` builds that mask for the drawn faces: the box holding a part (the mouth) of every one of many
drawn faces, which suits a generator's samples since the faces are aligned and a sample has no box of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from wplus.edits.directions import Direction, apply_direction
from wplus.errors import ConfigError, ShapeError

__all__ = ["AttributeResponse", "attribute_response", "attribute_responses", "face_part_mask"]

Scorer = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


@dataclass
class AttributeResponse:
    """What :func:`attribute_response` measured.

    Attributes:
        names: the attributes (columns), in the scorer's order.
        strengths: the strengths (rows).
        response: [S, A] mean change per unit strength, in spreads: ``mean(score(w + s·d) − score(w)) / s / spread``.
        stderr: [S, A] standard error of ``response`` over the codes (the per-code changes' std / sqrt(N)).
        delta: [S, A] mean change in the scorer's own units (not divided by s).
        spread: [A] standard deviation of each attribute over the unedited codes (1 where it is 0).
        base_mean: [A] mean of each attribute over the unedited codes.
        image_change: [S] root mean square pixel change (images in [-1, 1]), averaged over the codes.
        mask_share: [S] share of the squared pixel change inside ``mask`` (summed over codes), or None.
        num_codes: how many codes were edited.
    """

    names: list[str]
    strengths: list[float]
    response: torch.Tensor
    stderr: torch.Tensor
    delta: torch.Tensor
    spread: torch.Tensor
    base_mean: torch.Tensor
    image_change: torch.Tensor
    mask_share: torch.Tensor | None
    num_codes: int

    def row(self, index: int = 0) -> dict[str, float]:
        """One strength's response as {attribute: change per unit strength in spreads}."""
        return {n: float(v) for n, v in zip(self.names, self.response[index], strict=True)}

    def mean(self) -> dict[str, float]:
        """The response averaged over the strengths, as {attribute: change per unit strength in spreads}."""
        return {n: float(v) for n, v in zip(self.names, self.response.mean(0), strict=True)}


def _scores(scorer: object, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Float [B] columns of a scorer: an :class:`~wplus.models.attribute_probe.AttributeProbe` (its flat scores
    without the hair-style class index) or a callable images -> {name: [B]}."""
    if hasattr(scorer, "predict"):
        from wplus.models.attribute_probe import flat_scores

        cols = flat_scores(scorer.predict(images))
    elif callable(scorer):
        cols = dict(scorer(images))
    else:
        raise ConfigError(f"scorer: expected an attribute probe or a callable images -> scores, got {type(scorer)}")
    out = {}
    for name, v in cols.items():
        if not torch.is_floating_point(v):  # a class index (hair_style): its mean change means nothing
            continue
        if v.ndim != 1 or len(v) != len(images):
            raise ShapeError(f"scorer column {name!r} has shape {list(v.shape)}, expected [{len(images)}]")
        out[name] = v.detach().float().cpu()
    if not out:
        raise ConfigError("scorer: it returned no floating-point scores")
    return out


def attribute_response(
    G: torch.nn.Module,
    direction: Direction | torch.Tensor,
    scorer: object,
    codes: torch.Tensor,
    strengths: float | Sequence[float] = 1.0,
    *,
    layers: Sequence[int] | None = None,
    mask: torch.Tensor | None = None,
    batch_size: int = 64,
    noise_mode: str = "const",
) -> AttributeResponse:
    """How far ``direction`` moves every attribute the scorer reads, per unit strength (a leakage-matrix row).

    Each code is rendered as it is and after :func:`~wplus.edits.directions.apply_direction` with every strength;
    the scorer reads all renders. Linear edits of a linear attribute give the same row for every strength; the
    rows of ``+s`` and ``-s`` differ where the attribute saturates (a probability near 0 or 1).

    Args:
        G: the generator (``G.synthesis`` renders the codes).
        direction: a :class:`Direction` or a tensor [1 or num_ws, w_dim].
        scorer: an attribute probe (``wplus.models.attribute_probe``) or a callable images [B, 3, H, W] in [-1, 1]
            -> {name: [B] scores}; integer columns (class indices) are left out.
        codes: [N, num_ws, w_dim] codes, or [N, w_dim] w vectors (broadcast to every row).
        strengths: one non-zero value or several.
        layers: rows to edit (default: the direction's own, else all).
        mask: [H, W] weights (1 inside the region) for :attr:`AttributeResponse.mask_share`.
        batch_size: codes rendered at once.
        noise_mode: passed to ``G.synthesis`` (``const``: the same noise before and after the edit).

    Returns:
        :class:`AttributeResponse` with rows in the order of ``strengths``.

    Raises:
        ShapeError: codes or mask of the wrong shape; ConfigError: a zero or non-finite strength, no codes.

    Example:
        >>> from wplus.models.stylegan2 import StyleGAN2Config, random_generator
        >>> G = random_generator(StyleGAN2Config(img_resolution=8, z_dim=8, w_dim=8, mapping_layers=1,
        ...                                      channel_base=32, channel_max=8), w_avg_samples=10)
        >>> brightness = lambda x: {"brightness": x.mean((1, 2, 3)), "red": x[:, 0].mean((1, 2))}
        >>> r = attribute_response(G, torch.ones(1, 8), brightness, torch.randn(6, 8), [-1.0, 1.0])
        >>> r.response.shape, r.names
        (torch.Size([2, 2]), ['brightness', 'red'])
    """
    return attribute_responses(
        G,
        {"direction": direction},
        scorer,
        codes,
        strengths,
        layers=layers,
        mask=mask,
        batch_size=batch_size,
        noise_mode=noise_mode,
    )["direction"]


@torch.no_grad()
def attribute_responses(
    G: torch.nn.Module,
    directions: Mapping[str, Direction | torch.Tensor],
    scorer: object,
    codes: torch.Tensor,
    strengths: float | Sequence[float] = 1.0,
    *,
    layers: Sequence[int] | None = None,
    mask: torch.Tensor | None = None,
    batch_size: int = 64,
    noise_mode: str = "const",
) -> dict[str, AttributeResponse]:
    """:func:`attribute_response` for several directions on the same codes, rendering and scoring them once.

    The rows of a leakage matrix: ``{name: response}`` in the order of ``directions``; the arguments are those of
    :func:`attribute_response` (``layers``, when given, applies to every direction).
    """
    s_list = [float(strengths)] if isinstance(strengths, int | float) else [float(s) for s in strengths]
    if not s_list or any(not math.isfinite(s) or s == 0 for s in s_list):
        raise ConfigError(f"strengths {s_list}: expected finite, non-zero values (the change is divided by them)")
    if not directions:
        raise ConfigError("directions: give at least one")
    num_ws, w_dim = G.num_ws, G.w_dim
    if codes.ndim == 2:
        codes = codes[:, None].expand(-1, num_ws, -1)
    if codes.ndim != 3 or tuple(codes.shape[1:]) != (num_ws, w_dim) or len(codes) == 0:
        raise ShapeError(f"codes have shape {list(codes.shape)}, expected [N, {num_ws}, {w_dim}] or [N, {w_dim}]")
    device = next(G.parameters()).device
    res = G.img_resolution
    if mask is not None and tuple(mask.shape) != (res, res):
        raise ShapeError(f"mask has shape {list(mask.shape)}, expected [{res}, {res}] (the generator's images)")
    weights = None if mask is None else mask.float().to(device)

    names = list(directions)
    base_cols: dict[str, list[torch.Tensor]] = {}
    edit_cols = {n: [{} for _ in s_list] for n in names}  # direction -> strength -> column -> chunks
    rms = {n: torch.zeros(len(s_list), dtype=torch.float64) for n in names}
    inside = {n: torch.zeros(len(s_list), dtype=torch.float64) for n in names}
    total = {n: torch.zeros(len(s_list), dtype=torch.float64) for n in names}
    for start in range(0, len(codes), batch_size):
        ws = codes[start : start + batch_size].to(device, torch.float32)  # [B, num_ws, w_dim]
        before = G.synthesis(ws, noise_mode=noise_mode)
        for col, v in _scores(scorer, before).items():
            base_cols.setdefault(col, []).append(v)
        for name in names:
            edited = torch.stack([apply_direction(w[None], directions[name], s_list, layers=layers) for w in ws], 1)
            for i in range(len(s_list)):
                after = G.synthesis(edited[i], noise_mode=noise_mode)
                for col, v in _scores(scorer, after).items():
                    edit_cols[name][i].setdefault(col, []).append(v)
                sq = (after - before).float().square().sum(1).cpu()  # [B, H, W]
                rms[name][i] += float(sq.mean((1, 2)).div(3).sqrt().sum())  # per image: RMS over H, W and RGB
                total[name][i] += float(sq.sum())
                if weights is not None:
                    inside[name][i] += float((sq * weights.cpu()).sum())
    base = {col: torch.cat(v) for col, v in base_cols.items()}
    cols = list(base)
    n = len(codes)
    spread = torch.stack([base[c].std() if n > 1 else torch.tensor(1.0) for c in cols])
    spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    s_t = torch.tensor(s_list)[:, None]
    out = {}
    for name in names:
        diffs = [[torch.cat(e[c]) - base[c] for c in cols] for e in edit_cols[name]]  # [S][A] -> [N]
        delta = torch.stack([torch.stack([d.mean() for d in row]) for row in diffs])
        sd = torch.stack([torch.stack([d.std() if n > 1 else torch.tensor(0.0) for d in row]) for row in diffs])
        out[name] = AttributeResponse(
            names=cols,
            strengths=s_list,
            response=delta / s_t / spread,
            stderr=sd / math.sqrt(n) / s_t.abs() / spread,
            delta=delta,
            spread=spread,
            base_mean=torch.stack([base[c].mean() for c in cols]),
            image_change=(rms[name] / n).float(),
            mask_share=None if weights is None else (inside[name] / total[name].clamp_min(1e-30)).float(),
            num_codes=n,
        )
    return out


def face_part_mask(
    part: str = "mouth", *, size: int = 64, num_faces: int = 200, seed_base: int | None = None
) -> torch.Tensor:
    """[size, size] float mask of the box that holds ``part`` of every one of ``num_faces`` drawn faces.

    The drawn faces are aligned up to a small pose jitter, so this box (7.3 % of the pixels for the mouth at 64 px
    and the default 200 held-out faces) holds the part of a generator sample too, which has no box of its own.

    Args:
        part: a key of :func:`wplus.data.faces.face_boxes` (``mouth``, ``left_eye``, ...).
        size: image side.
        num_faces: how many drawn faces' boxes are joined.
        seed_base: first face seed (default: held-out faces, ``HELD_OUT_SEED_BASE + 3000``).

    Raises:
        ConfigError: an unknown part or no faces.
    """
    from wplus.data.faces import HELD_OUT_SEED_BASE, face_boxes, sample_attributes

    if num_faces < 1:
        raise ConfigError(f"num_faces {num_faces}: expected at least 1")
    first = HELD_OUT_SEED_BASE + 3000 if seed_base is None else seed_base
    boxes = [face_boxes(sample_attributes(first + i), size) for i in range(num_faces)]
    if part not in boxes[0]:
        raise ConfigError(f"part {part!r}: expected one of {', '.join(boxes[0])}")
    x0, y0 = int(min(b[part][0] for b in boxes)), int(min(b[part][1] for b in boxes))
    x1, y1 = int(max(b[part][2] for b in boxes)) + 1, int(max(b[part][3] for b in boxes)) + 1
    mask = torch.zeros(size, size)
    mask[max(0, y0) : min(size, y1), max(0, x0) : min(size, x1)] = 1
    return mask
