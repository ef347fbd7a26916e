"""A perceptual loss from a trained StyleGAN2 discriminator's features, plus pixel MSE (offline, same domain).

Image2StyleGAN's loss needs ImageNet VGG-16 weights, which cannot always be downloaded. A discriminator trained
on the generator's own domain is a feature network that *is* available wherever the generator is (wplus ships one
with its built-in cartoon-face model): its block activations respond to edges, parts and textures of that domain.
The loss has the shape of :class:`wplus.losses.PerceptualLoss` (Eq. 1 and 2 of the paper, with D's blocks in place
of VGG's layers): ``sum_j lambda_j * ||F_j(x) - F_j(I)||^2 / N_j + lambda_mse * ||x - I||^2 / N``, per sample.

It is a stand-in: the paper's VGG loss stays the default wherever its weights are present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wplus.errors import ConfigError, ShapeError
from wplus.models.stylegan2_discriminator import Discriminator

__all__ = ["DiscriminatorFeatures", "DiscriminatorTarget"]


@dataclass(frozen=True, eq=False)
class DiscriminatorTarget:
    """A target image with its discriminator features (one detached tensor per used block)."""

    image: Tensor
    features: tuple[Tensor, ...]


class DiscriminatorFeatures(nn.Module):
    """Per-sample ``discriminator-feature distance + MSE`` loss for :func:`wplus.project`.

    Args:
        D: A trained discriminator (frozen by this loss).
        layers: Indices into ``D.features()`` (0 = FromRGB at full resolution, 1.. = residual blocks); by default
            the first three, which keep spatial detail (64, 32 and 16 px for a 64 px model).
        layer_weights: lambda_j per layer (default 1 each).
        perceptual_weight: Weight of the feature term in ``total``.
        mse_weight: Weight of the pixel MSE in ``total``.

    Raises:
        ConfigError: Layer indices out of range, or negative weights.

    Example:
        >>> from wplus.models.stylegan2_discriminator import DiscriminatorConfig
        >>> D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32))
        >>> loss = DiscriminatorFeatures(D)
        >>> loss(torch.zeros(2, 3, 16, 16), loss.prepare_target(torch.zeros(1, 3, 16, 16)))["total"].shape
        torch.Size([2])
    """

    def __init__(
        self,
        D: Discriminator,
        *,
        layers: Sequence[int] = (0, 1, 2),
        layer_weights: Sequence[float] | None = None,
        perceptual_weight: float = 1.0,
        mse_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.D = D.eval().requires_grad_(False)
        num = len(D.block_resolutions) + 1
        self.layers = tuple(int(i) for i in layers)
        if not self.layers or any(i < 0 or i >= num for i in self.layers):
            raise ConfigError(f"got layers {list(layers)}, expected indices in 0..{num - 1} (0 = FromRGB)")
        weights = (1.0,) * len(self.layers) if layer_weights is None else tuple(float(w) for w in layer_weights)
        if len(weights) != len(self.layers) or any(w < 0 for w in weights):
            raise ConfigError(f"got layer_weights {layer_weights}, expected {len(self.layers)} numbers >= 0")
        if perceptual_weight < 0 or mse_weight < 0:
            raise ConfigError(f"got weights {perceptual_weight}, {mse_weight}; expected numbers >= 0")
        self.layer_weights = weights
        self.perceptual_weight, self.mse_weight = float(perceptual_weight), float(mse_weight)

    def block_features(self, images: Tensor) -> tuple[Tensor, ...]:
        """The used blocks' activations of ``images`` [B, 3, R, R] (one tensor per entry of ``layers``)."""
        feats = self.D.features(images)
        return tuple(feats[i] for i in self.layers)

    def prepare_target(self, target: Tensor) -> DiscriminatorTarget:
        """The target's features, computed once without gradients. Shape: target [B, 3, R, R] in [-1, 1]."""
        target = target.detach()
        with torch.no_grad():
            feats = self.block_features(target)
        return DiscriminatorTarget(image=target, features=tuple(f.detach() for f in feats))

    def forward(self, images: Tensor, target: DiscriminatorTarget) -> dict[str, Tensor]:
        """Per-sample terms [B]: ``'d{j}'`` per layer, ``'perceptual'``, ``'mse'`` and ``'total'``.

        Raises:
            ShapeError: ``images`` and the target do not match (the target's batch may be 1).
        """
        got, want = tuple(target.image.shape), tuple(images.shape)
        if got[1:] != want[1:] or got[0] not in (1, want[0]):
            raise ShapeError(f"target image has shape {got}, expected {want} (or batch 1) to match the images")
        terms: dict[str, Tensor] = {}
        perceptual = images.new_zeros(images.shape[0])
        if self.perceptual_weight:
            for i, f, ft, w in zip(
                self.layers, self.block_features(images), target.features, self.layer_weights, strict=True
            ):
                terms[f"d{i}"] = (f - ft).square().flatten(1).mean(1)
                perceptual = perceptual + w * terms[f"d{i}"]
        mse = (images - target.image).square().flatten(1).mean(1)
        terms["perceptual"] = perceptual
        terms["mse"] = mse
        terms["total"] = self.perceptual_weight * perceptual + self.mse_weight * mse
        return terms
