"""Image2StyleGAN's embedding loss: multi-layer VGG-16 perceptual loss plus pixel MSE.

Abdal et al., "Image2StyleGAN" (ICCV 2019), section "Loss Function", Eq. 1 and 2::

    L(G(w), I) = sum_j (lambda_j / N_j) * ||F_j(G(w)) - F_j(I)||^2  +  (lambda_mse / N) * ||G(w) - I||^2

with F_j the VGG-16 features at conv1_1, conv1_2, conv3_2 and conv4_2, lambda_j = lambda_mse = 1, N_j and N the
number of scalars in a feature map and in the image, and the perceptual term computed on images resized to
256x256 (the paper's appendix, "Limitation of the ImageNet-based Perceptual loss").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wplus.errors import ConfigError, ShapeError
from wplus.models.vgg16 import CONV_NAMES, VGG16Features, imagenet_normalize

__all__ = ["PerceptualLoss", "LossTarget", "PAPER_LAYERS", "TapMode", "validate_layers", "resize_for_vgg"]

TapMode = Literal["post_relu", "pre_relu"]

PAPER_LAYERS: tuple[str, ...] = ("conv1_1", "conv1_2", "conv3_2", "conv4_2")


@dataclass(frozen=True, eq=False)
class LossTarget:
    """A target image with its VGG features, computed once per embedding run.

    Attributes:
        image: Target images in [-1, 1], [B, 3, H, W] (B may be 1 to share one target across a batch).
        features: VGG activations of the resized, normalised target, keyed by tap name (``'relu3_2'``), detached;
            empty when the perceptual term is off.
        resize: The VGG input size the features were computed at.
    """

    image: Tensor
    features: dict[str, Tensor]
    resize: int | None


def validate_layers(layers: Sequence[str]) -> tuple[str, ...]:
    """Check perceptual-loss layer names.

    Args:
        layers: Conv layer names, e.g. ``("conv1_1", "conv3_2")``.

    Returns:
        The names as a tuple.

    Raises:
        ConfigError: Empty, duplicated or unknown names; the message lists the valid ones.
    """
    layers = tuple(layers)
    if not layers:
        raise ConfigError(f"got no perceptual layers, expected some of: {', '.join(CONV_NAMES)}")
    unknown = [name for name in layers if name not in CONV_NAMES]
    if unknown:
        raise ConfigError(f"unknown VGG-16 layer(s) {unknown}; expected names from: {', '.join(CONV_NAMES)}")
    if len(set(layers)) != len(layers):
        raise ConfigError(f"got duplicate perceptual layers {list(layers)}, expected each layer once")
    return layers


def resize_for_vgg(images: Tensor, size: int | None) -> Tensor:
    """Resize images to ``size x size`` for the VGG input; ``None`` leaves them alone.

    Downscaling uses area averaging (a box filter, as NVIDIA's projector does before its VGG); any upscaling uses
    bilinear interpolation with ``align_corners=False``.

    Shape:
        images: [B, C, H, W] -> [B, C, size, size].
    """
    height, width = images.shape[-2:]
    if size is None or (height == size and width == size):
        return images
    if height >= size and width >= size:
        return F.interpolate(images, size=(size, size), mode="area")
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


class PerceptualLoss(nn.Module):
    """Image2StyleGAN loss (Eq. 1 and 2 of the paper) with per-sample outputs.

    Taps: the paper names the layers conv1_1, conv1_2, conv3_2 and conv4_2. In the Keras-era VGG-16 it used, a
    layer named ``block1_conv1`` includes its ReLU, and common re-implementations tap the post-ReLU activations
    (torchvision ``features`` indices 1, 3, 13, 20), so ``taps='post_relu'`` (default) uses relu1_1, relu1_2,
    relu3_2 and relu4_2. ``taps='pre_relu'`` uses the raw conv outputs instead.

    Every term is a per-sample vector of shape [B] and nothing is averaged over the batch, so a batch of images
    optimised together receives exactly the gradients each image would receive alone.

    Args:
        vgg: Feature extractor (``load_vgg16()``, or ``random_vgg16(seed)`` in tests); should be frozen.
        layers: Conv layer names; the paper's four by default.
        taps: ``'post_relu'`` or ``'pre_relu'`` (see above).
        layer_weights: lambda_j per layer; all 1 by default, as in the paper.
        perceptual_weight: Weight of the perceptual sum in ``total``; 0 skips the VGG forward entirely.
        mse_weight: lambda_mse, the weight of the pixel MSE in ``total``.
        resize: Side of the square VGG input (256 in the paper); ``None`` feeds images at their own size.

    Raises:
        ConfigError: Unknown layers or taps, weights of the wrong length, negative or non-finite weights, or a
            non-positive ``resize``.

    Example:
        >>> from wplus.models.vgg16 import random_vgg16
        >>> loss = PerceptualLoss(random_vgg16(seed=0), resize=32)
        >>> target = loss.prepare_target(torch.zeros(2, 3, 64, 64))
        >>> terms = loss(torch.zeros(2, 3, 64, 64), target)
        >>> terms["total"].shape
        torch.Size([2])
    """

    def __init__(
        self,
        vgg: VGG16Features,
        *,
        layers: Sequence[str] = PAPER_LAYERS,
        taps: TapMode = "post_relu",
        layer_weights: Sequence[float] | None = None,
        perceptual_weight: float = 1.0,
        mse_weight: float = 1.0,
        resize: int | None = 256,
    ) -> None:
        super().__init__()
        self.vgg = vgg
        self.layers = validate_layers(layers)
        self.taps = _check_taps(taps)
        # Tap name per layer: conv3_2 -> relu3_2 for post-ReLU taps.
        self.tap_names = tuple(name.replace("conv", "relu") if taps == "post_relu" else name for name in self.layers)
        self.layer_weights = _check_layer_weights(layer_weights, len(self.layers))
        self.perceptual_weight = _check_weight("perceptual_weight", perceptual_weight)
        self.mse_weight = _check_weight("mse_weight", mse_weight)
        if resize is not None and (isinstance(resize, bool) or not isinstance(resize, int) or resize < 1):
            raise ConfigError(f"got resize={resize!r}, expected a positive int or None")
        self.resize = resize

    @property
    def uses_vgg(self) -> bool:
        """Whether the perceptual term is on (otherwise VGG is never run)."""
        return self.perceptual_weight != 0.0

    def vgg_features(self, images: Tensor) -> dict[str, Tensor]:
        """VGG activations at this loss's taps for images in [-1, 1], after resizing and ImageNet normalisation.

        Shape:
            images: [B, 3, H, W] -> {tap: [B, C_j, h_j, w_j]}.
        """
        x = imagenet_normalize((resize_for_vgg(images, self.resize) + 1.0) / 2.0)
        return self.vgg(x, self.tap_names)

    def prepare_target(self, target: Tensor) -> LossTarget:
        """Compute the target's features once, without gradients.

        Args:
            target: Target images in [-1, 1].

        Returns:
            A :class:`LossTarget` to pass to :meth:`forward` at every step.

        Shape:
            target: [B, 3, H, W].
        """
        _check_images("target", target)
        target = target.detach()
        if not self.uses_vgg:
            return LossTarget(image=target, features={}, resize=self.resize)
        with torch.no_grad():
            features = self.vgg_features(target)
        return LossTarget(image=target, features={k: v.detach() for k, v in features.items()}, resize=self.resize)

    def forward(self, images: Tensor, target: LossTarget) -> dict[str, Tensor]:
        """Compute the loss terms of each image against the target.

        Args:
            images: Generated images in [-1, 1], at the target's resolution.
            target: From :meth:`prepare_target`; its batch size is B or 1.

        Returns:
            Per-sample tensors of shape [B]: one per layer (``'conv1_1'``, ..., the unweighted
            ``||F_j(x) - F_j(I)||^2 / N_j``; absent when ``perceptual_weight == 0``), ``'perceptual'`` (the
            ``layer_weights``-weighted sum), ``'mse'`` (``||x - I||^2 / N`` at full resolution) and ``'total'``
            (``perceptual_weight * perceptual + mse_weight * mse``).

        Raises:
            ShapeError: ``images`` and ``target.image`` do not match.
            ConfigError: ``target`` was prepared by a loss with other taps or resize.
        """
        self._check_target(images, target)
        batch = images.shape[0]
        terms: dict[str, Tensor] = {}
        perceptual = images.new_zeros(batch)
        if self.uses_vgg:
            features = self.vgg_features(images)
            for layer, tap, weight in zip(self.layers, self.tap_names, self.layer_weights, strict=True):
                terms[layer] = _per_sample_mse(features[tap], target.features[tap])
                perceptual = perceptual + weight * terms[layer]
        mse = _per_sample_mse(images, target.image)
        terms["perceptual"] = perceptual
        terms["mse"] = mse
        terms["total"] = self.perceptual_weight * perceptual + self.mse_weight * mse
        return terms

    def extra_repr(self) -> str:
        return (
            f"layers={self.layers}, taps={self.taps!r}, layer_weights={self.layer_weights}, "
            f"perceptual_weight={self.perceptual_weight}, mse_weight={self.mse_weight}, resize={self.resize}"
        )

    def _check_target(self, images: Tensor, target: LossTarget) -> None:
        _check_images("images", images)
        got, want = tuple(target.image.shape), tuple(images.shape)
        if got[1:] != want[1:] or got[0] not in (1, want[0]):
            raise ShapeError(f"target image has shape {got}, expected {want} (or batch 1) to match the images")
        if not self.uses_vgg:
            return
        missing = [tap for tap in self.tap_names if tap not in target.features]
        if missing or target.resize != self.resize:
            raise ConfigError(
                f"target was prepared with taps {sorted(target.features)} and resize={target.resize}, expected "
                f"taps {list(self.tap_names)} and resize={self.resize}; call prepare_target() on this loss"
            )


def _per_sample_mse(a: Tensor, b: Tensor) -> Tensor:
    """``||a_i - b_i||^2 / N`` for each sample i (``b`` may have batch 1), shape [B]."""
    return (a - b).square().flatten(1).mean(dim=1)


def _check_images(what: str, images: Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ShapeError(f"{what}: got shape {tuple(images.shape)}, expected [B, 3, H, W] RGB in [-1, 1]")


def _check_taps(taps: str) -> TapMode:
    if taps not in ("post_relu", "pre_relu"):
        raise ConfigError(f"got taps={taps!r}, expected 'post_relu' or 'pre_relu'")
    return taps  # type: ignore[return-value]


def _check_weight(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"got {name}={value}, expected a finite number >= 0")
    return value


def _check_layer_weights(weights: Sequence[float] | None, count: int) -> tuple[float, ...]:
    if weights is None:
        return (1.0,) * count
    weights = tuple(weights)
    if len(weights) != count:
        raise ConfigError(f"got {len(weights)} layer_weights, expected one per layer ({count})")
    return tuple(_check_weight("layer weight", w) for w in weights)
