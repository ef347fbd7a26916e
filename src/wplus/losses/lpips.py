"""LPIPS v0.1 with the VGG-16 trunk (Zhang et al., "The Unreasonable Effectiveness of Deep Features", CVPR 2018).

Facts used (richzhang/PerceptualSimilarity, LPIPS v0.1): taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of
torchvision's VGG-16 ``features``;
v0.1's scaling layer ``(x - shift) / scale`` on [-1, 1] input equals ImageNet mean/std normalisation of
``(x + 1) / 2``; each tap is unit-normalised across channels with ``f / (sqrt(sum_c f^2) + 1e-10)``, the squared
difference is weighted per channel by the non-negative ``lin{k}`` head (a bias-free 1x1 conv) and averaged over
space; the distance is the sum over the five taps. The heads live in ``vgg.pth`` (keys ``lin{k}.model.1.weight``,
[1, C_k, 1, 1], storages tagged ``cuda:0``). NVIDIA's projector minimises the same distance at 256x256.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wplus.errors import CheckpointError, ConfigError, ShapeError
from wplus.losses.perceptual import resize_for_vgg
from wplus.models.vgg16 import VGG16Features, imagenet_normalize

__all__ = ["LPIPS", "LPIPS_TAPS", "LPIPS_CHANNELS", "load_lpips", "read_lpips_heads", "masked_spatial_mean"]

LPIPS_TAPS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
_EPS = 1e-10


def masked_spatial_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Per-sample mean of ``x`` over channels and space, weighted by ``mask`` resized to ``x``'s size.

    The mask is area-resized to the map (so a mask pixel counts in proportion to its coverage) and the sum is
    divided by the mask's weight, so a term keeps its scale whatever the masked area. An all-zero mask gives 0.

    Shape:
        x: [B, C, h, w]; mask: [1 or B, 1, H, W] in [0, 1] or None -> [B].
    """
    if mask is None:
        return x.flatten(1).mean(dim=1)
    m = resize_mask(mask, x.shape[-2:]).to(x.dtype)
    num = (x * m).flatten(1).sum(dim=1)
    den = (m.flatten(1).sum(dim=1) * x.shape[1]).clamp_min(1e-12)
    return num / den


def resize_mask(mask: Tensor, size: Sequence[int]) -> Tensor:
    """Resize a [N, 1, H, W] mask to ``size``: area averaging when shrinking, bilinear when growing."""
    h, w = int(size[0]), int(size[1])
    if tuple(mask.shape[-2:]) == (h, w):
        return mask
    if mask.shape[-2] >= h and mask.shape[-1] >= w:
        return F.interpolate(mask, size=(h, w), mode="area")
    return F.interpolate(mask, size=(h, w), mode="bilinear", align_corners=False)


class LPIPS(nn.Module):
    """LPIPS-VGG v0.1 distance, per sample, optionally restricted to a mask.

    Args:
        vgg: VGG-16 trunk (``load_vgg16()``, or ``random_vgg16(seed)`` in tests); frozen.
        heads: Five non-negative per-channel weight tensors (any shape with C_k elements), in tap order.
        resize: Side of the square input (256 as in NVIDIA's projector); ``None`` keeps the images' size.

    Example:
        >>> from wplus.models.vgg16 import random_vgg16
        >>> heads = [torch.ones(c) for c in LPIPS_CHANNELS]
        >>> lp = LPIPS(random_vgg16(seed=0), heads, resize=32)
        >>> lp(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2])
    """

    def __init__(self, vgg: VGG16Features, heads: Sequence[Tensor], *, resize: int | None = 256) -> None:
        super().__init__()
        if len(heads) != len(LPIPS_TAPS):
            raise ConfigError(f"got {len(heads)} LPIPS heads, expected {len(LPIPS_TAPS)} (one per tap)")
        self.vgg = vgg
        for k, (head, channels) in enumerate(zip(heads, LPIPS_CHANNELS, strict=True)):
            if head.numel() != channels:
                raise ConfigError(f"LPIPS head {k} has {head.numel()} weights, expected {channels}")
            self.register_buffer(f"lin{k}", head.detach().float().reshape(1, channels, 1, 1).clone())
        if resize is not None and (isinstance(resize, bool) or not isinstance(resize, int) or resize < 1):
            raise ConfigError(f"got resize={resize!r}, expected a positive int or None")
        self.resize = resize

    def features(self, images: Tensor) -> list[Tensor]:
        """Unit-normalised features of images in [-1, 1] at the five taps.

        Shape:
            images: [B, 3, H, W] -> five [B, C_k, h_k, w_k].
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ShapeError(f"LPIPS: got shape {tuple(images.shape)}, expected [B, 3, H, W] RGB in [-1, 1]")
        x = imagenet_normalize((resize_for_vgg(images, self.resize) + 1.0) / 2.0)
        feats = self.vgg(x, LPIPS_TAPS)
        return [f / (f.square().sum(dim=1, keepdim=True).sqrt() + _EPS) for f in (feats[t] for t in LPIPS_TAPS)]

    def distance(self, feats_a: Sequence[Tensor], feats_b: Sequence[Tensor], mask: Tensor | None = None) -> Tensor:
        """LPIPS from precomputed :meth:`features` (``feats_b`` may have batch 1); ``mask`` weights the averages.

        Returns:
            [B] distances.
        """
        total = feats_a[0].new_zeros(feats_a[0].shape[0])
        for k, (fa, fb) in enumerate(zip(feats_a, feats_b, strict=True)):
            weighted = ((fa - fb).square() * getattr(self, f"lin{k}")).sum(dim=1, keepdim=True)  # [B, 1, h, w]
            total = total + masked_spatial_mean(weighted, mask)
        return total

    def forward(self, a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
        """LPIPS distance between images ``a`` and ``b`` in [-1, 1]; [B]."""
        return self.distance(self.features(a), self.features(b), mask)


def read_lpips_heads(path: str | Path) -> list[Tensor]:
    """Read the five linear heads from an LPIPS ``vgg.pth`` (weights-only load, storages mapped to CPU).

    Raises:
        CheckpointError: The file cannot be read, lacks a ``lin{k}.model.1.weight`` key, has a wrong shape or
            negative weights; the message names the file.
    """
    path = Path(path)
    expected = "an LPIPS v0.1 vgg.pth with lin0..lin4.model.1.weight of shapes [1, C, 1, 1], C = 64..512"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        raise CheckpointError(path, f"cannot read as a torch file ({exc}); expected {expected}") from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(path, f"got a {type(state).__name__}, expected {expected}")
    heads = []
    for k, channels in enumerate(LPIPS_CHANNELS):
        key = f"lin{k}.model.1.weight"
        tensor = state.get(key)
        if not isinstance(tensor, Tensor):
            raise CheckpointError(path, f"missing key {key!r} (found {sorted(state)[:8]}); expected {expected}")
        if tuple(tensor.shape) != (1, channels, 1, 1):
            raise CheckpointError(path, f"{key} has shape {tuple(tensor.shape)}, expected (1, {channels}, 1, 1)")
        if not tensor.is_floating_point() or (tensor < 0).any():
            raise CheckpointError(path, f"{key} must hold non-negative floats; expected {expected}")
        heads.append(tensor.float())
    return heads


def load_lpips(
    path: str | Path | None = None,
    *,
    vgg: VGG16Features | None = None,
    vgg_weights: str | Path | None = None,
    resize: int | None = 256,
    cache: str | Path | None = None,
    allow_download: bool = True,
    device: torch.device | str = "cpu",
) -> LPIPS:
    """Build LPIPS-VGG v0.1: heads from ``wplus.hub.fetch('lpips-vgg-v0.1', path=path)``, trunk ``vgg`` or
    ``load_vgg16(vgg_weights)``.

    Raises:
        CheckpointError, OfflineError: As :func:`wplus.hub.fetch` and :func:`read_lpips_heads`.
    """
    from wplus.hub import fetch  # network code is imported only when a file is actually looked up
    from wplus.models.vgg16 import load_vgg16

    file = fetch("lpips-vgg-v0.1", path=path, cache=cache, allow_download=allow_download)
    heads = read_lpips_heads(file)
    if vgg is None:
        vgg = load_vgg16(vgg_weights, cache=cache, allow_download=allow_download, device=device)
    return LPIPS(vgg, heads, resize=resize).to(device).eval().requires_grad_(False)
