"""Morphing (Image2StyleGAN section 4.1): render codes along a path through keyframes.

The paper writes ``w = λ·w1 + (1 − λ)·w2``; a frame at position t ∈ [0, 1] between keyframes a and b is
``(1 − t)·a + t·b`` (λ = 1 − t), so the path starts at a and ends at b, and the end frames are the keyframes exactly.
W / W+ codes are interpolated row by row. Z codes (latents projected in Z, which carry ``z``) are interpolated in Z —
linearly or along the great circle (``mode='slerp'``, the usual choice for Gaussian z) — and then mapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from wplus.edits.render import blend_noise, latent_noise
from wplus.errors import ConfigError
from wplus.io.latents import Latent

__all__ = ["interpolate", "slerp", "morph_weights", "morph", "MorphResult"]

Mode = Literal["linear", "slerp"]
MorphSpace = Literal["auto", "w+", "z"]


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of the last dimension (norms interpolated linearly); exact at t = 0 and t = 1."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    omega = torch.acos((ua * ub).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    return direction * ((1 - t) * na + t * nb)


def interpolate(a: torch.Tensor, b: torch.Tensor, t: float, *, mode: Mode = "linear") -> torch.Tensor:
    """``(1 − t)·a + t·b`` (``mode='linear'``) or :func:`slerp`; t = 0 gives ``a`` and t = 1 gives ``b`` exactly.

    Example:
        >>> interpolate(torch.zeros(2), torch.ones(2), 0.25)
        tensor([0.2500, 0.2500])
    """
    if mode == "slerp":
        return slerp(a, b, t)
    if mode != "linear":
        raise ConfigError(f"mode must be 'linear' or 'slerp', got {mode!r}")
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    return (1 - t) * a + t * b


def morph_weights(num_keys: int, frames: int) -> list[tuple[int, float]]:
    """``frames`` evenly spaced positions along a path through ``num_keys`` keyframes, as (segment, t) pairs.

    The first frame is keyframe 0 (segment 0, t 0) and the last is the last keyframe (last segment, t 1); every
    keyframe in between falls on a frame when ``frames - 1`` is a multiple of ``num_keys - 1``.
    """
    if num_keys < 2:
        raise ConfigError(f"morphing needs at least 2 keyframes, got {num_keys}")
    if frames < 2:
        raise ConfigError(f"morphing needs at least 2 frames, got {frames}")
    segments = num_keys - 1
    out = []
    for i in range(frames):
        pos = i * segments / (frames - 1)
        seg = min(int(pos), segments - 1)
        out.append((seg, pos - seg))
    return out


@dataclass
class MorphResult:
    """Frames of a morph. ws [F, num_ws, w_dim]; noise per conv layer [F, 1, r, r]; space: where it interpolated."""

    ws: torch.Tensor
    noise: list[torch.Tensor]
    space: str
    positions: list[tuple[int, float]]


@torch.no_grad()
def morph(
    G: torch.nn.Module,
    keys: Sequence[Latent],
    *,
    frames: int = 30,
    mode: Mode = "linear",
    space: MorphSpace = "auto",
) -> MorphResult:
    """Codes along a path through two or more keyframe latents.

    Args:
        G: the generator (used to map Z codes and for its constant noise).
        keys: keyframes, each a :class:`~wplus.io.latents.Latent` with ws [1, num_ws, w_dim] (see
            :func:`wplus.io.latents.load_code`).
        frames: number of frames along the whole path (including both ends).
        mode: 'linear' or 'slerp' (slerp needs Z codes).
        space: 'auto' (Z when every key has a z, else W+), 'z' or 'w+'.

    Returns:
        A :class:`MorphResult`. Noise maps are blended with the same weights as the codes, so each keyframe frame is
        rendered with exactly the noise saved with it.

    Raises:
        ConfigError: fewer than 2 keys or frames, slerp outside Z, or 'z' with keys that carry no z.
    """
    have_z = all(k.z is not None for k in keys)
    if space == "auto":
        space = "z" if have_z else "w+"
    if space not in ("z", "w+"):
        raise ConfigError(f"space must be 'auto', 'z' or 'w+', got {space!r}")
    if space == "z" and not have_z:
        raise ConfigError("space 'z' needs latents projected in Z (with a saved z); use 'w+' for W / W+ codes")
    if mode == "slerp" and space != "z":
        raise ConfigError("slerp is for Z codes (Gaussian z); W / W+ codes interpolate linearly (--mode linear)")
    positions = morph_weights(len(keys), frames)
    device = G.w_avg.device
    codes = [k.z if space == "z" else k.ws for k in keys]
    rows = [interpolate(codes[s].to(device), codes[s + 1].to(device), t, mode=mode) for s, t in positions]
    stacked = torch.cat(rows)
    if space == "z":
        # Mapped without truncation, as projection in Z does; keyframes keep their saved ws for exactness.
        ws = G.mapping(stacked, None)
        for i, (s, t) in enumerate(positions):
            if t in (0.0, 1.0):
                ws[i] = keys[s + int(t)].ws[0].to(ws)
    else:
        ws = stacked
    weights = torch.zeros(len(positions), len(keys))
    for i, (s, t) in enumerate(positions):
        weights[i, s] += 1 - t
        weights[i, s + 1] += t
    noise = blend_noise([latent_noise(k, G) for k in keys], weights)
    return MorphResult(ws=ws, noise=noise, space=space, positions=positions)
