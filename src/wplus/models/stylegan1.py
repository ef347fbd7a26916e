"""StyleGAN (v1) generator (Karras et al., CVPR 2019), pure PyTorch: the network Image2StyleGAN embeds into.

A faithful port of the TF ``G_style`` graph (NVlabs/stylegan ``training/networks_stylegan.py``):

* mapping: pixel-norm of z (eps 1e-8), ``mapping_layers`` dense layers with lr multiplier 0.01 and lrelu(0.2) on
  **every** layer, the last included; the sqrt(2) gain lives in the weight multiplier, not after the activation.
* truncation ``w_avg + psi * (w - w_avg)`` on the first ``cutoff`` rows (psi 0.7, cutoff 8 when sampling).
* synthesis: a learned constant, then per layer ``conv -> [blur] -> epilogue`` where the epilogue is, in TF order,
  noise (one map shared by all channels, per-channel weights) -> bias -> lrelu(0.2) -> instance norm (biased
  variance, eps 1e-8) -> style modulation ``x * (s_scale + 1) + s_shift``.
* up-sampling convs: nearest-neighbour x2 + 3x3 conv below ``fused_upsampling_from`` (128 px), the fused
  transposed conv (sum of the four shifted 3x3 kernels, stride 2, padding 1) from there up; blur [1,2,1] after
  every up-sampling conv and nowhere else.
* output: ``ToRGB_lod0`` only (a 1x1 conv, gain 1), no activation, nominally in [-1, 1].

There is no official PyTorch layout for StyleGAN v1, so parameter names are ours; the TF names they come from are
listed in :mod:`wplus.formats.tf_stylegan1`. Stored weights are the raw TF values: the equalised-learning-rate
multipliers (``gain / sqrt(fan_in) * lr_mul``) are applied at run time, as in TF.

Shapes: z [B, z_dim], ws [B, num_ws, w_dim], images [B, img_channels, R, R] in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wplus.errors import ConfigError, ShapeError
from wplus.models.config import (
    MAX_CHANNEL_BASE,
    MAX_RESOLUTION,
    MAX_WIDTH,
    ModelConfig,
    check_filter,
    check_ranges,
    check_resolution,
)
from wplus.models.stylegan2 import (
    Generator as _StyleGAN2Generator,
)
from wplus.models.stylegan2 import (
    NoiseMode,
    _check_shape,
    normalize_2nd_moment,
    seeded_init_,
    truncate,
)

__all__ = ["StyleGAN1Config", "Generator", "MappingNetwork", "SynthesisNetwork", "random_generator", "letterbox_mask"]

_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class StyleGAN1Config(ModelConfig):
    """Everything needed to build a StyleGAN v1 generator; stored next to the weights.

    ``channels(res) = min(int(fmap_base / 2 ** (log2(res) - 1)), fmap_max)`` (TF ``nf(stage)``). The official models
    differ only in ``img_resolution`` (NVlabs/stylegan README); tests shrink ``fmap_base``/``fmap_max`` and the mapping.
    """

    z_dim: int = 512
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_fmaps: int = 512
    mapping_lr_multiplier: float = 0.01
    fmap_base: int = 8192
    fmap_max: int = 512
    fused_upsampling_from: int = 128  # TF fused_scale='auto': fused when the output side is >= 128
    blur_filter: tuple[int, ...] = (1, 2, 1)
    w_avg_beta: float = 0.995
    truncation_psi: float = 0.7  # G_style defaults, used when sampling with G(z)
    truncation_cutoff: int = 8
    letterbox_rows: int = 0  # black rows at top and bottom of every image (64 for the 512x384 LSUN car model)
    arch: str = field(default="stylegan1", init=False)

    def __post_init__(self) -> None:
        check_resolution(self, "img_resolution", 4)
        res = self.img_resolution
        check_ranges(
            self,
            ints={
                "z_dim": (1, MAX_WIDTH),
                "w_dim": (1, MAX_WIDTH),
                "img_channels": (1, 16),
                "mapping_layers": (1, 32),
                "mapping_fmaps": (1, MAX_WIDTH),
                "fmap_base": (1, MAX_CHANNEL_BASE),
                "fmap_max": (1, MAX_WIDTH),
                "fused_upsampling_from": (0, 2 * MAX_RESOLUTION),
                "truncation_cutoff": (0, 64),
                "letterbox_rows": (0, (res - 1) // 2),
            },
            floats={"mapping_lr_multiplier": (1e-6, 1e3), "w_avg_beta": (0.0, 1.0), "truncation_psi": (-10.0, 10.0)},
        )
        check_filter(self, "blur_filter")
        if self.channels(self.img_resolution) < 1:
            raise ConfigError(f"fmap_base={self.fmap_base} gives 0 channels at {self.img_resolution} px; raise it")

    @property
    def num_ws(self) -> int:
        # Two layers per resolution, ToRGB takes no style in v1: 2*log2(R) - 2.
        return 2 * int(math.log2(self.img_resolution)) - 2

    def channels(self, res: int) -> int:
        return min(int(self.fmap_base / 2 ** (int(math.log2(res)) - 1)), self.fmap_max)


# --------------------------------------------------------------------------------------------------------------------
# Layers


class Dense(nn.Module):
    """Dense layer with equalised lr: ``x @ (W * gain / sqrt(in) * lr_mul).T + b * lr_mul`` (TF ``get_weight``)."""

    def __init__(self, in_features: int, out_features: int, *, gain: float = _SQRT2, lr_multiplier: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)  # TF [in, out].T
        self.bias = nn.Parameter(torch.zeros([out_features]))
        self.weight_gain = gain / math.sqrt(in_features) * lr_multiplier
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias * self.bias_gain, x, (self.weight * self.weight_gain).t())


class MappingNetwork(nn.Module):
    """z [B, z_dim] -> ws [B, num_ws, w_dim]: pixel norm, dense+lrelu layers (last included), broadcast, truncate."""

    def __init__(self, cfg: StyleGAN1Config, num_ws: int):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers = cfg.z_dim, cfg.w_dim, num_ws, cfg.mapping_layers
        features = [cfg.z_dim] + [cfg.mapping_fmaps] * (cfg.mapping_layers - 1) + [cfg.w_dim]
        for i in range(cfg.mapping_layers):
            setattr(self, f"fc{i}", Dense(features[i], features[i + 1], lr_multiplier=cfg.mapping_lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([cfg.w_dim]))  # TF Gs 'dlatent_avg'

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        if c is not None and c.numel() > 0:
            raise ConfigError("StyleGAN v1 generators are unconditional (c_dim=0): pass c=None")
        _check_shape(z, [None, self.z_dim], "z")
        x = normalize_2nd_moment(z.to(self.w_avg.dtype))  # z * rsqrt(mean(z^2) + 1e-8)
        for i in range(self.num_layers):
            x = F.leaky_relu(getattr(self, f"fc{i}")(x), 0.2)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # [B, num_ws, w_dim]
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)


def fused_upsample_kernel(weight: torch.Tensor) -> torch.Tensor:
    """[out, in, 3, 3] conv weight -> [in, out, 4, 4] transposed-conv kernel: the **sum** of the four shifted copies.

    This is TF ``upscale2d_conv2d`` with fused_scale (no spatial flip, no 1/4). Note that ``conv_transpose2d(x, k,
    stride=2, padding=1)`` with it equals nearest-x2 followed by the 3x3 conv with the kernel **rotated by 180
    degrees** (checked in the tests), not with the kernel as stored: the fused and non-fused paths are different
    functions of the same weights, so each resolution must use the path TF used.
    """
    w = F.pad(weight.transpose(0, 1), [1, 1, 1, 1])  # [in, out, 5, 5]
    return w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]


class SynthesisLayer(nn.Module):
    """One styled layer: the const input, a 3x3 conv or an up-sampling 3x3 conv + blur, then the TF epilogue.

    kind: 'const' (4x4 input, TF ``4x4/Const``), 'conv' (``Conv``/``Conv1``) or 'up' (``Conv0_up``).
    """

    def __init__(
        self, kind: str, in_channels: int, out_channels: int, w_dim: int, resolution: int, *, fused: bool = False
    ):
        super().__init__()
        self.kind, self.resolution, self.fused = kind, resolution, fused
        self.in_channels, self.out_channels = in_channels, out_channels
        if kind == "const":
            self.const = nn.Parameter(torch.ones([1, out_channels, resolution, resolution]))
        else:
            self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
            self.weight_gain = _SQRT2 / math.sqrt(in_channels * 9)
        self.noise_weight = nn.Parameter(torch.zeros([out_channels]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.style = Dense(w_dim, 2 * out_channels, gain=1.0)
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))

    def forward(
        self,
        x: torch.Tensor | None,
        w: torch.Tensor,
        noise_mode: NoiseMode,
        noise: torch.Tensor | None,
        blur: torch.Tensor,
    ) -> torch.Tensor:
        if self.kind == "const":
            x = self.const.expand(w.shape[0], -1, -1, -1)
        elif self.kind == "conv":
            x = F.conv2d(x, self.weight * self.weight_gain, padding=1)
        else:
            if self.fused:
                x = F.conv_transpose2d(x, fused_upsample_kernel(self.weight * self.weight_gain), stride=2, padding=1)
            else:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                x = F.conv2d(x, self.weight * self.weight_gain, padding=1)
            x = F.conv2d(x, blur.expand(x.shape[1], 1, -1, -1), padding=blur.shape[-1] // 2, groups=x.shape[1])
        # Epilogue, TF order: noise -> bias -> lrelu -> instance norm -> style.
        n = self._noise(x, noise_mode, noise)
        if n is not None:
            x = x + n * self.noise_weight[None, :, None, None]
        x = F.leaky_relu(x + self.bias[None, :, None, None], 0.2)
        x = x - x.mean(dim=[2, 3], keepdim=True)
        x = x * (x.square().mean(dim=[2, 3], keepdim=True) + 1e-8).rsqrt()
        style = self.style(w).reshape(-1, 2, self.out_channels, 1, 1)  # [B, 2, C, 1, 1]: scale, shift
        return x * (style[:, 0] + 1) + style[:, 1]

    def _noise(self, x: torch.Tensor, noise_mode: NoiseMode, noise: torch.Tensor | None) -> torch.Tensor | None:
        if noise is not None:
            _check_shape(noise, [None, 1, self.resolution, self.resolution], "noise map")
            return noise.to(x.dtype)
        if noise_mode == "const":
            return self.noise_const[None, None]
        if noise_mode == "random":
            return torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device, dtype=x.dtype)
        if noise_mode == "none":
            return None
        raise ConfigError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}")

    def extra_repr(self) -> str:
        return f"{self.kind}, in={self.in_channels}, out={self.out_channels}, res={self.resolution}, fused={self.fused}"


class SynthesisBlock(nn.Module):
    """One resolution: layer0 (const at 4x4, else the up-sampling conv) and layer1 (3x3 conv)."""

    def __init__(self, cfg: StyleGAN1Config, resolution: int):
        super().__init__()
        out_ch = cfg.channels(resolution)
        if resolution == 4:
            self.layer0 = SynthesisLayer("const", 0, out_ch, cfg.w_dim, 4)
        else:
            fused = resolution >= cfg.fused_upsampling_from
            in_ch = cfg.channels(resolution // 2)
            self.layer0 = SynthesisLayer("up", in_ch, out_ch, cfg.w_dim, resolution, fused=fused)
        self.layer1 = SynthesisLayer("conv", out_ch, out_ch, cfg.w_dim, resolution)


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> image [B, img_channels, R, R]; W+ row i drives layer i (two per resolution)."""

    def __init__(self, cfg: StyleGAN1Config):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = cfg.w_dim, cfg.img_resolution, cfg.img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(cfg.img_resolution)) + 1)]
        for res in self.block_resolutions:
            setattr(self, f"b{res}", SynthesisBlock(cfg, res))
        self.num_ws = 2 * len(self.block_resolutions)
        # ToRGB_lod0: 1x1 conv, gain 1 (weight multiplier 1/sqrt(C)), bias, linear.
        c_last = cfg.channels(cfg.img_resolution)
        self.torgb = nn.Module()
        self.torgb.weight = nn.Parameter(torch.randn([cfg.img_channels, c_last, 1, 1]))
        self.torgb.bias = nn.Parameter(torch.zeros([cfg.img_channels]))
        self.torgb_gain = 1 / math.sqrt(c_last)
        f = torch.as_tensor(cfg.blur_filter, dtype=torch.float32)
        f2 = torch.outer(f, f)
        self.register_buffer("blur", (f2 / f2.sum())[None, None], persistent=False)  # [1, 1, 3, 3], symmetric

    def layers(self) -> list[SynthesisLayer]:
        """The styled layers in W+ row order (one w row and one noise map each)."""
        out = []
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            out += [block.layer0, block.layer1]
        return out

    noise_layers = layers  # the name projection and the edits use for "layers that take a noise map"

    def forward(
        self, ws: torch.Tensor, noise_mode: NoiseMode = "const", noise: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Render W+ codes.

        Args:
            ws: [B, num_ws, w_dim] codes (no truncation is applied here).
            noise_mode: 'const' (the stored TF ``noise{i}`` maps), 'random' (fresh N(0,1), TF's randomize_noise)
                or 'none'.
            noise: optional explicit maps, one per layer ([1 or B, 1, r, r]); overrides ``noise_mode``.
        """
        _check_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        layers = self.layers()
        if noise is not None and len(noise) != len(layers):
            raise ShapeError(f"expected {len(layers)} noise maps (one per layer), got {len(noise)}")
        ws = ws.to(self.torgb.weight.dtype)  # float32 unless the module was converted (float64 in tests)
        x = None
        for i, layer in enumerate(layers):
            x = layer(x, ws[:, i], noise_mode, None if noise is None else noise[i], self.blur)
        return F.conv2d(x, self.torgb.weight * self.torgb_gain, self.torgb.bias)


class Generator(nn.Module):
    """StyleGAN v1 generator with the same interface as :class:`wplus.models.stylegan2.Generator`.

    ``G(z)`` samples with the config's truncation (psi 0.7, cutoff 8 by default, as ``Gs.run``); ``G.mapping``
    truncates only when asked, and ``G.synthesis(ws)`` renders W+ codes as they are (embedding and editing).

    Example:
        >>> G = Generator(StyleGAN1Config(img_resolution=16, fmap_base=64, fmap_max=16, mapping_layers=2,
        ...                               mapping_fmaps=16, z_dim=16, w_dim=16))
        >>> G(torch.randn(2, 16)).shape
        torch.Size([2, 3, 16, 16])
    """

    c_dim = 0

    def __init__(self, config: StyleGAN1Config | None = None, **kwargs: Any):
        super().__init__()
        cfg = config if config is not None else StyleGAN1Config(**kwargs)
        self.config = cfg
        self.z_dim, self.w_dim = cfg.z_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg, self.num_ws)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        *,
        truncation_psi: float | None = None,
        truncation_cutoff: int | None = -1,
        noise_mode: NoiseMode = "const",
    ) -> torch.Tensor:
        """Sample images; ``truncation_psi=None`` / ``truncation_cutoff=-1`` mean the config's defaults."""
        psi = self.config.truncation_psi if truncation_psi is None else truncation_psi
        cutoff = self.config.truncation_cutoff if truncation_cutoff == -1 else truncation_cutoff
        ws = self.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)

    def noise_maps(self) -> list[torch.Tensor]:
        """The stored constant noise maps as [1, 1, r, r] tensors, in layer order (the ``noise=`` argument form)."""
        return [layer.noise_const[None, None].clone() for layer in self.synthesis.layers()]

    mean_w = _StyleGAN2Generator.mean_w  # identical estimator: mean of mapping(z) over seeded N(0, I) samples


def letterbox_mask(G: Generator | StyleGAN1Config, rows: int | None = None) -> torch.Tensor:
    """Mask of the real picture inside a letterboxed output: 1 inside, 0 on the black bands.

    The LSUN car model renders 512x384 pictures inside a 512x512 frame with 64 black rows above and below
    (``dataset_tool.create_lsun_wide``). Multiply per-pixel losses by this mask (and divide by its mean) so a
    projection does not spend effort on the bands, and paste results back into the bands' rows only.

    Args:
        G: a generator or its config.
        rows: black rows at top and at bottom; defaults to ``config.letterbox_rows``.

    Returns:
        float32 [1, 1, R, R] on the generator's device (all ones when there is no letterbox).
    """
    cfg = G.config if isinstance(G, Generator) else G
    device = G.w_avg.device if isinstance(G, Generator) else torch.device("cpu")
    rows = cfg.letterbox_rows if rows is None else rows
    res = cfg.img_resolution
    if not 0 <= 2 * rows < res:
        raise ConfigError(f"letterbox rows must be in [0, {res // 2}) for a {res}px generator, got {rows}")
    mask = torch.ones([1, 1, res, res], device=device)
    if rows:
        mask[:, :, :rows] = 0
        mask[:, :, res - rows :] = 0
    return mask


def random_generator(
    config: StyleGAN1Config, *, seed: int = 0, noise_strength: float = 0.0, w_avg_samples: int = 2000
) -> Generator:
    """A randomly initialised StyleGAN v1 generator (tests, benchmarks): seeded weights, ``w_avg`` estimated.

    ``noise_strength`` fills every per-channel noise weight (0 at TF initialisation; nonzero exercises the noise).
    """
    G = seeded_init_(Generator(config), seed)
    with torch.no_grad():
        for layer in G.synthesis.layers():
            layer.noise_weight.fill_(noise_strength)
        G.mapping.w_avg.copy_(G.mean_w(w_avg_samples, seed=seed))
    return G.eval().requires_grad_(False)
