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

from wplus.errors import ConfigError, ShapeError
from wplus.io.images import captioned_grid, save_image, tensor_to_pil, upscale
from wplus.io.latents import Latent, check_finite
from wplus.io.video import check_fps, save_animation
from wplus.models.stylegan2 import truncate

__all__ = ["latent_noise", "blend_noise", "render", "render_latents", "save_strip", "save_frames", "pingpong"]


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


@torch.no_grad()
def render_latents(
    G: torch.nn.Module,
    latents: Sequence[Latent],
    *,
    truncation_psi: float = 1.0,
    size: int | None = None,
) -> list[Image.Image]:
    """Render saved codes as they were saved: each with its own noise (``G``'s constant noise when it has none).

    Args:
        G: the generator (tuned or not).
        latents: codes with ``ws`` [1, num_ws, w_dim] (e.g. from :func:`wplus.io.latents.load_codes`).
        truncation_psi: ``w_avg + psi * (w - w_avg)`` on every row; 1 renders the codes unchanged, 0 renders
            ``w_avg``.
        size: output side in pixels (Lanczos resize); None keeps ``G.img_resolution``.

    Returns:
        One RGB image per code.

    Raises:
        ConfigError: a non-finite ``truncation_psi`` or a ``size`` below 1.
    """
    check_finite(truncation_psi, "truncation_psi", max_abs=None)
    if size is not None and size < 1:
        raise ConfigError(f"size must be a positive number of pixels, got {size}")
    device = G.w_avg.device
    images = []
    for latent in latents:
        ws = truncate(latent.ws.to(device), G.w_avg, truncation_psi)
        img = render(G, ws, latent_noise(latent, G))[0]
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.LANCZOS)
        images.append(img)
    return images


def pingpong(frames: list) -> list:
    """a b c d -> a b c d c b (loops smoothly without repeating the ends)."""
    return frames + frames[-2:0:-1]


def save_strip(
    images: list[Image.Image],
    path: str | Path,
    *,
    cols: int | None = None,
    pad: int = 2,
    captions: list[str] | None = None,
    scale: int = 1,
) -> Path:
    """Images side by side (or wrapped every ``cols``) in one PNG, written atomically.

    Args:
        images: equally sized frames.
        path: the PNG.
        cols: frames per row (default: all in one row).
        pad: pixels between frames.
        captions: one text per frame, drawn under it (strength, λ, t, a file name); None: no captions.
        scale: integer nearest-neighbour upscale of every frame (see :func:`wplus.io.images.frame_scale`).
    """
    sheet = captioned_grid(images, captions, cols=cols or len(images), pad=pad, scale=scale)
    return save_image(sheet, path)


def save_frames(
    frames: list[Image.Image],
    stem: str | Path,
    *,
    fps: float = 10,
    strip: bool = True,
    captions: list[str] | None = None,
    scale: int = 1,
) -> list[Path]:
    """Write ``<stem>.png`` (a grid of up to 12 frames a row), ``<stem>.gif`` and ``<stem>.mp4`` (with the video
    extra). Returns the paths.

    ``captions`` go under the grid's frames; ``scale`` enlarges the grid's frames and the animation's alike
    (nearest-neighbour), so a small model's GIF is as readable as its grid. The animation carries no captions.
    """
    check_fps(fps)  # before the strip is written: a bad rate leaves no half set of outputs
    stem = Path(stem)
    cols = min(len(frames), 12)
    out = [save_strip(frames, stem.with_suffix(".png"), cols=cols, captions=captions, scale=scale)] if strip else []
    return out + save_animation([upscale(f, scale) for f in frames], stem, fps=fps)
