"""Regularisers used by projection: NVIDIA's noise autocorrelation penalty and a pull toward the mean latent.

Noise (stylegan2-ada-pytorch ``projector.py``): for every noise map and every level of a 2x average-pool pyramid down to
8x8, add the squared mean of (map x map shifted by one pixel) along x and along y; after each optimiser step every
map is re-standardised to zero mean and unit RMS, so the optimiser cannot hide image content in the noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["noise_regularization", "renormalize_noise_", "latent_regularization"]


def noise_regularization(noise: Sequence[Tensor]) -> Tensor:
    """Multi-scale autocorrelation penalty of per-image noise maps.

    Shape:
        noise: maps [B, 1, r, r] -> [B].
    """
    total = noise[0].new_zeros(noise[0].shape[0])
    for n in noise:
        while True:
            total = total + (n * torch.roll(n, shifts=1, dims=3)).flatten(1).mean(dim=1).square()
            total = total + (n * torch.roll(n, shifts=1, dims=2)).flatten(1).mean(dim=1).square()
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, kernel_size=2)
    return total


@torch.no_grad()
def renormalize_noise_(noise: Sequence[Tensor]) -> None:
    """Standardise each image's map in place: subtract its mean, divide by its RMS."""
    for n in noise:
        mean = n.mean(dim=(1, 2, 3), keepdim=True)
        n.sub_(mean)
        n.mul_(n.square().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12).rsqrt())


def latent_regularization(latent: Tensor, center: Tensor | None) -> Tensor:
    """Mean squared distance of each latent from ``center`` (w_avg for W/W+; None means 0, the Z prior's mean).

    Shape:
        latent: [B, ...]; center broadcastable to it -> [B].
    """
    diff = latent if center is None else latent - center
    return diff.square().flatten(1).mean(dim=1)
