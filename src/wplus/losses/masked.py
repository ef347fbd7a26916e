"""A projection loss with every term the variants need, each optionally restricted to a mask.

Terms (all per sample, [B]): the Image2StyleGAN perceptual sum over VGG-16 layers, pixel MSE, pixel L1 (the course
write-up's L1 + perceptual loss), LPIPS, and the same squared feature distance over a trained discriminator's blocks
(``dfeat``: the offline stand-in for VGG, see :class:`~wplus.losses.DiscriminatorFeatures`).
With a mask M (1 = the loss sees this pixel), as in Image2StyleGAN++'s
masked embedding: both images are multiplied by M before they enter a network, so pixels under a zero mask cannot
reach any feature, and M is resized to every feature map (and to the LPIPS maps) to weight the spatial averages;
every masked average is divided by the mask's weight, so a term keeps its scale whatever the masked area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wplus.errors import ConfigError, ShapeError
from wplus.losses.lpips import LPIPS, masked_spatial_mean
from wplus.losses.perceptual import PAPER_LAYERS, PerceptualLoss, TapMode, _check_weight
from wplus.models.vgg16 import VGG16Features

__all__ = ["ImageLoss", "MaskedTarget", "check_mask"]


@dataclass(frozen=True, eq=False)
class MaskedTarget:
    """A target prepared once per run: image (already masked), mask, VGG and LPIPS features."""

    image: Tensor  # [1|B, 3, H, W]
    mask: Tensor | None  # [1|B, 1, H, W] in [0, 1]
    features: dict[str, Tensor]
    lpips_features: list[Tensor] | None
    dfeat_features: tuple[Tensor, ...] | None = None


def check_mask(mask: Tensor, target: Tensor) -> Tensor:
    """Validate a mask against its target and return it as float [1|B, 1, H, W].

    Accepts [H, W], [1, H, W], [1|B, 1, H, W] with values in [0, 1].

    Raises:
        ShapeError: the mask's size or batch does not match the target.
        ConfigError: values outside [0, 1], or a mask that is zero everywhere for some image.
    """
    m = mask.detach().to(device=target.device, dtype=torch.float32)
    while m.ndim < 4:
        m = m.unsqueeze(0)
    height, width = target.shape[-2:]
    batch_ok = m.ndim == 4 and m.shape[0] in (1, target.shape[0]) and m.shape[1] == 1
    if not batch_ok or tuple(m.shape[-2:]) != (height, width):
        raise ShapeError(
            f"mask has shape {tuple(mask.shape)}, expected [H, W] or [1 or B, 1, H, W] with H, W = {height}, {width} "
            f"(resize the mask to the target)"
        )
    if not torch.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise ConfigError(f"mask values span [{float(m.min())}, {float(m.max())}], expected [0, 1] (1 = use pixel)")
    if (m.flatten(1).sum(dim=1) == 0).any():
        raise ConfigError("mask is zero everywhere for some image, expected some pixels on (white = use pixel)")
    return m


class ImageLoss(nn.Module):
    """Weighted sum of perceptual, MSE, L1, LPIPS and D-feature terms with optional masks (a projection loss).

    Args:
        vgg: VGG-16 trunk for the perceptual term; may be None when ``perceptual_weight`` is 0.
        layers, taps, layer_weights, resize: as :class:`~wplus.losses.PerceptualLoss`.
        perceptual_weight, mse_weight, l1_weight, lpips_weight: term weights (>= 0; 0 switches a term off).
        lpips: an :class:`~wplus.losses.lpips.LPIPS` module; required when ``lpips_weight > 0``.
        discriminator, dfeat_weight, dfeat_layers: a trained StyleGAN2 discriminator whose block features (indices
            into ``D.features()``; 0 = FromRGB) make the ``dfeat`` term, weighted ``dfeat_weight``.

    Raises:
        ConfigError: bad weights or layers, or ``lpips_weight > 0`` without an LPIPS module.

    Example:
        >>> loss = ImageLoss(None, perceptual_weight=0.0, l1_weight=10.0)
        >>> t = loss.prepare_target(torch.zeros(1, 3, 8, 8), mask=torch.ones(8, 8))
        >>> sorted(loss(torch.ones(1, 3, 8, 8), t))  # the terms that are on, and their weighted sum
        ['l1', 'mse', 'total']
    """

    def __init__(
        self,
        vgg: VGG16Features | None,
        *,
        layers: Sequence[str] = PAPER_LAYERS,
        taps: TapMode = "post_relu",
        layer_weights: Sequence[float] | None = None,
        perceptual_weight: float = 1.0,
        mse_weight: float = 1.0,
        l1_weight: float = 0.0,
        lpips: LPIPS | None = None,
        lpips_weight: float = 0.0,
        resize: int | None = 256,
        discriminator: nn.Module | None = None,
        dfeat_weight: float = 0.0,
        dfeat_layers: Sequence[int] = (0, 1, 2),
    ) -> None:
        super().__init__()
        # The VGG part (layers, taps, resize, validation) is PerceptualLoss's; this class adds terms and masks.
        self.perceptual = PerceptualLoss(
            vgg,  # type: ignore[arg-type]
            layers=layers,
            taps=taps,
            layer_weights=layer_weights,
            perceptual_weight=perceptual_weight,
            mse_weight=mse_weight,
            resize=resize,
        )
        if self.perceptual.uses_vgg and vgg is None:
            raise ConfigError("perceptual_weight > 0 needs a VGG-16 trunk, got vgg=None; pass load_vgg16()")
        self.l1_weight = _check_weight("l1_weight", l1_weight)
        self.lpips_weight = _check_weight("lpips_weight", lpips_weight)
        if self.lpips_weight > 0 and lpips is None:
            raise ConfigError("lpips_weight > 0 needs an LPIPS module, got lpips=None; pass load_lpips()")
        self.lpips = lpips
        self.dfeat_weight = _check_weight("dfeat_weight", dfeat_weight)
        if self.dfeat_weight > 0 and discriminator is None:
            raise ConfigError("dfeat_weight > 0 needs a discriminator, got discriminator=None")
        self.dfeat = None
        if self.dfeat_weight > 0:
            from wplus.losses.discriminator_features import DiscriminatorFeatures

            self.dfeat = DiscriminatorFeatures(discriminator, layers=dfeat_layers, mse_weight=0.0)

    @property
    def layers(self) -> tuple[str, ...]:
        return self.perceptual.layers

    @property
    def perceptual_weight(self) -> float:
        return self.perceptual.perceptual_weight

    @property
    def mse_weight(self) -> float:
        return self.perceptual.mse_weight

    def prepare_target(self, target: Tensor, mask: Tensor | None = None) -> MaskedTarget:
        """Mask the target and compute its features once, without gradients.

        Args:
            target: [B, 3, H, W] in [-1, 1].
            mask: optional [H, W] / [1|B, 1, H, W] in [0, 1]; 1 where the loss looks.
        """
        if target.ndim != 4 or target.shape[1] != 3:
            raise ShapeError(f"target: got shape {tuple(target.shape)}, expected [B, 3, H, W] RGB in [-1, 1]")
        m = check_mask(mask, target) if mask is not None else None
        image = target.detach() * m if m is not None else target.detach()
        with torch.no_grad():
            feats = self.perceptual.vgg_features(image) if self.perceptual.uses_vgg else {}
            lp = self.lpips.features(image) if self.lpips is not None and self.lpips_weight > 0 else None
            df = tuple(f.detach() for f in self.dfeat.block_features(image)) if self.dfeat is not None else None
        return MaskedTarget(
            image=image,
            mask=m,
            features={k: v.detach() for k, v in feats.items()},
            lpips_features=lp,
            dfeat_features=df,
        )

    def forward(self, images: Tensor, target: MaskedTarget) -> dict[str, Tensor]:
        """Per-sample terms, only those switched on (weight > 0), so records list what ran: 'perceptual' with one
        term per VGG layer, 'mse', 'l1', 'lpips', 'dfeat' with one per discriminator block; always 'total'."""
        if not isinstance(target, MaskedTarget):
            raise ConfigError(f"got a {type(target).__name__} target, expected one from ImageLoss.prepare_target()")
        if images.shape[1:] != target.image.shape[1:]:
            raise ShapeError(f"images have shape {tuple(images.shape)}, expected [B, *{tuple(target.image.shape[1:])}]")
        m = target.mask
        x = images * m if m is not None else images
        p = self.perceptual
        terms: dict[str, Tensor] = {}
        total = images.new_zeros(images.shape[0])
        if p.uses_vgg:
            feats = p.vgg_features(x)
            perceptual = images.new_zeros(images.shape[0])
            for layer, tap, weight in zip(p.layers, p.tap_names, p.layer_weights, strict=True):
                terms[layer] = masked_spatial_mean((feats[tap] - target.features[tap]).square(), m)
                perceptual = perceptual + weight * terms[layer]
            terms["perceptual"] = perceptual
            total = total + p.perceptual_weight * perceptual
        if p.mse_weight > 0:
            terms["mse"] = masked_spatial_mean((x - target.image).square(), m)
            total = total + p.mse_weight * terms["mse"]
        if self.l1_weight > 0:
            terms["l1"] = masked_spatial_mean((x - target.image).abs(), m)
            total = total + self.l1_weight * terms["l1"]
        if self.lpips is not None and self.lpips_weight > 0 and target.lpips_features is not None:
            terms["lpips"] = self.lpips.distance(self.lpips.features(x), target.lpips_features, m)
            total = total + self.lpips_weight * terms["lpips"]
        if self.dfeat is not None and target.dfeat_features is not None:
            dfeat = images.new_zeros(images.shape[0])
            got = self.dfeat.block_features(x)
            for i, f, ft, w in zip(
                self.dfeat.layers, got, target.dfeat_features, self.dfeat.layer_weights, strict=True
            ):
                terms[f"d{i}"] = masked_spatial_mean((f - ft).square(), m)
                dfeat = dfeat + w * terms[f"d{i}"]
            terms["dfeat"] = dfeat
            total = total + self.dfeat_weight * dfeat
        terms["total"] = total
        return terms
