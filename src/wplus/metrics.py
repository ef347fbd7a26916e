"""Image-quality metrics on [-1, 1] images: PSNR and SSIM (per image, returned as [B] tensors)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB with peak 1 on [0, 1] images (inputs in [-1, 1]); shape [B]."""
    a01 = (a.detach().float().clamp(-1, 1) + 1) / 2
    b01 = (b.detach().float().clamp(-1, 1) + 1) / 2
    mse = (a01 - b01).square().flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    w = torch.outer(g, g)
    return w.expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03) on [0, 1] images,
    averaged over channels and valid window positions; shape [B]. Images smaller than the window use a smaller one.
    """
    a01 = (a.detach().float().clamp(-1, 1) + 1) / 2
    b01 = (b.detach().float().clamp(-1, 1) + 1) / 2
    c = a01.shape[1]
    window = min(window, a01.shape[-1], a01.shape[-2])
    w = _gaussian_window(window, sigma, c, a01.device)
    mu_a = F.conv2d(a01, w, groups=c)
    mu_b = F.conv2d(b01, w, groups=c)
    s_aa = F.conv2d(a01 * a01, w, groups=c) - mu_a**2
    s_bb = F.conv2d(b01 * b01, w, groups=c) - mu_b**2
    s_ab = F.conv2d(a01 * b01, w, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2))
    return m.flatten(1).mean(1)
