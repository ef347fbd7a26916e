"""Losses for embedding images: Image2StyleGAN's perceptual + MSE loss."""

from wplus.losses.discriminator_features import DiscriminatorFeatures, DiscriminatorTarget
from wplus.losses.perceptual import PAPER_LAYERS, LossTarget, PerceptualLoss, validate_layers

__all__ = [
    "PerceptualLoss",
    "LossTarget",
    "PAPER_LAYERS",
    "validate_layers",
    "DiscriminatorFeatures",
    "DiscriminatorTarget",
]
