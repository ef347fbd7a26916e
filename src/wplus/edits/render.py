"""Render lists of W+ codes with their noise, and lay the results out as strips, grids and animations.

Noise is part of an embedding: a code rendered with other noise maps is another image. Every edit therefore renders
with the noise saved with its latent (``latent.noise``), falling back to the generator's constant noise when none was
saved. Per-frame noise is a list of per-layer tensors [F, 1, r, r] (or [1, 1, r, r] shared by all frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from wplus.errors import ShapeError
from wplus.io.images import image_grid, save_image, tensor_to_pil
from wplus.io.latents import Latent
from wplus.io.video import check_fps, save_animation

__all__ = ["latent_noise", "blend_noise", "render", "save_strip", "save_frames", "pingpong"]


def latent_noise(latent: Latent, G: torch.nn.Module) -> list[torch.Tensor]:
    """The noise maps ``latent`` renders with: its own, else ``G``'s constant noise ([1, 1, r, r] each)."""
    return [n.float() for n in latent.noise] if latent.noise else G.noise_maps()


def blend_noise(noises: Sequence[list[torch.Tensor]], weights: torch.Tensor) -> list[torch.Tensor]:
    """Per-frame mix of K noise sets: ``weights`` [F, K] (rows sum to 1) -> per layer [F, 1, r, r].

    A weight of exactly 1 on one set reproduces that set bit for bit (the other terms are exact zeros).
    """
    out = []
    for layer in zip(*noises, strict=True):
        stacked = torch.cat([n.reshape(1, 1, *n.shape[-2:]) for n in layer])  # [K, 1, r, r]
        out.append(torch.einsum("fk,kchw->fchw", weights.to(stacked), stacked))
    return out


@torch.no_grad()
def render(
    G: torch.nn.Module,
    ws: torch.Tensor,
    noise: list[torch.Tensor] | None = None,
    *,
    batch_size: int = 8,
) -> list[Image.Image]:
    """Render codes to PIL images.

    Args:
        G: the generator.
        ws: [F, num_ws, w_dim] codes.
        noise: per conv layer [1 or F, 1, r, r]; None renders with ``G``'s constant noise.
        batch_size: frames rendered per synthesis call.

    Returns:
        F RGB images.
    """
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
        raise ShapeError(f"render takes ws [F, {G.num_ws}, {G.w_dim}], got {list(ws.shape)}")
    device = G.w_avg.device
    noise = G.noise_maps() if noise is None else noise
    images: list[Image.Image] = []
    for start in range(0, ws.shape[0], batch_size):
        chunk = ws[start : start + batch_size].to(device)
        maps = [(n if n.shape[0] == 1 else n[start : start + batch_size]).to(device) for n in noise]
        out = G.synthesis(chunk, noise=maps)
        images.extend(tensor_to_pil(img) for img in out)
    return images


def pingpong(frames: list) -> list:
    """a b c d -> a b c d c b (loops smoothly without repeating the ends)."""
    return frames + frames[-2:0:-1]


def save_strip(images: list[Image.Image], path: str | Path, *, cols: int | None = None, pad: int = 2) -> Path:
    """Images side by side (or wrapped every ``cols``) in one PNG, written atomically."""
    return save_image(image_grid(images, cols or len(images), pad=pad), path)


def save_frames(frames: list[Image.Image], stem: str | Path, *, fps: float = 10, strip: bool = True) -> list[Path]:
    """Write ``<stem>.png`` (strip), ``<stem>.gif`` and ``<stem>.mp4`` (with the video extra). Returns the paths."""
    check_fps(fps)  # before the strip is written: a bad rate leaves no half set of outputs
    stem = Path(stem)
    out = [save_strip(frames, stem.with_suffix(".png"), cols=min(len(frames), 12))] if strip else []
    return out + save_animation(frames, stem, fps=fps)
