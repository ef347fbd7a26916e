"""Losses for embedding images: Image2StyleGAN's perceptual + MSE loss, LPIPS, masked terms, regularisers."""

from wplus.losses.discriminator_features import DiscriminatorFeatures, DiscriminatorTarget
from wplus.losses.lpips import LPIPS, load_lpips, read_lpips_heads
from wplus.losses.masked import ImageLoss, MaskedTarget, check_mask
from wplus.losses.perceptual import PAPER_LAYERS, LossTarget, PerceptualLoss, validate_layers
from wplus.losses.regularizers import latent_regularization, noise_regularization, renormalize_noise_

__all__ = [
    "PerceptualLoss",
    "LossTarget",
    "PAPER_LAYERS",
    "validate_layers",
    "ImageLoss",
    "MaskedTarget",
    "check_mask",
    "LPIPS",
    "load_lpips",
    "read_lpips_heads",
    "noise_regularization",
    "renormalize_noise_",
    "latent_regularization",
    "DiscriminatorFeatures",
    "DiscriminatorTarget",
]
