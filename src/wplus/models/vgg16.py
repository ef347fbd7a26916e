"""VGG-16 feature extractor (Simonyan & Zisserman, 2015) with torchvision's ``features`` parameter layout.

The module holds ``features`` exactly as torchvision's ``vgg16`` does (indices 0..30: 3x3 convs with padding 1,
ReLUs, 2x2 max-pools), so the feature part of ``vgg16-397923af.pth`` loads with ``strict=True``. The ReLUs are not
in place, so a conv output (pre-ReLU tap) stays intact without a clone.

Taps are named after the layer that produces them: ``conv{b}_{i}`` (conv output, before its ReLU),
``relu{b}_{i}`` (after it) and ``pool{b}``. Inputs are RGB images already normalised with ImageNet statistics,
see :func:`imagenet_normalize`.

Shapes: x [B, 3, H, W]; ``conv{b}_*`` / ``relu{b}_*`` taps [B, C_b, H / 2**(b-1), W / 2**(b-1)] with
C = 64, 128, 256, 512, 512.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from wplus.errors import CheckpointError, ConfigError, ShapeError

__all__ = [
    "VGG16Features",
    "VGG16_TAPS",
    "CONV_NAMES",
    "tap_index",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "imagenet_normalize",
    "load_vgg16",
    "random_vgg16",
]

# torchvision's configuration "D": output channels per conv, "M" for a max-pool.
_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

# torchvision transforms' ImageNet statistics, for RGB in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The six classifier tensors of torchvision's full VGG-16 file, which a feature extractor does not use.
_CLASSIFIER_KEYS = frozenset(f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias"))


def _tap_table() -> dict[str, int]:
    """Map each tap name to the index in ``features`` whose output it is (conv1_1 -> 0, relu1_1 -> 1, ...)."""
    taps: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for item in _CFG:
        if item == "M":
            taps[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            taps[f"conv{block}_{conv}"] = index
            taps[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return taps


VGG16_TAPS: dict[str, int] = _tap_table()
CONV_NAMES: tuple[str, ...] = tuple(name for name in VGG16_TAPS if name.startswith("conv"))


def imagenet_normalize(x01: Tensor) -> Tensor:
    """Normalise RGB images in [0, 1] with ImageNet mean and std, as torchvision's VGG-16 expects.

    Args:
        x01: Images in [0, 1].

    Returns:
        ``(x01 - mean) / std`` per channel.

    Shape:
        x01: [B, 3, H, W] -> [B, 3, H, W].
    """
    if x01.ndim != 4 or x01.shape[1] != 3:
        raise ShapeError(f"imagenet_normalize: got shape {tuple(x01.shape)}, expected [B, 3, H, W]")
    mean = torch.tensor(IMAGENET_MEAN, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    return (x01 - mean) / std


class VGG16Features(nn.Module):
    """The convolutional part of VGG-16, returning named intermediate activations.

    Example:
        >>> vgg = random_vgg16(seed=0)
        >>> out = vgg(torch.zeros(1, 3, 32, 32), taps=["relu1_2", "conv3_2"])
        >>> tuple(out["conv3_2"].shape)
        (1, 256, 8, 8)
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in _CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_channels = int(item)
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        """Run the network only as deep as the deepest requested tap.

        Args:
            x: ImageNet-normalised RGB images.
            taps: Names from :data:`VGG16_TAPS`, e.g. ``("relu1_1", "conv3_2")``.

        Returns:
            ``{tap: activation}`` for every requested tap.

        Raises:
            ConfigError: An unknown tap name.
            ShapeError: ``x`` is not [B, 3, H, W].
        """
        indices = {name: tap_index(name) for name in taps}
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"VGG16Features: got input shape {tuple(x.shape)}, expected [B, 3, H, W]")
        wanted: dict[int, list[str]] = {}
        for name, index in indices.items():
            wanted.setdefault(index, []).append(name)
        out: dict[str, Tensor] = {}
        for index, layer in enumerate(self.features[: max(wanted, default=-1) + 1]):
            x = layer(x)
            for name in wanted.get(index, ()):
                out[name] = x
        return out


def tap_index(name: str) -> int:
    """Return the ``features`` index whose output is the tap ``name``.

    Raises:
        ConfigError: ``name`` is not a VGG-16 tap; the message lists the valid names.
    """
    try:
        return VGG16_TAPS[name]
    except KeyError:
        raise ConfigError(f"unknown VGG-16 tap {name!r}; expected one of: {', '.join(VGG16_TAPS)}") from None


def random_vgg16(seed: int, *, device: torch.device | str = "cpu") -> VGG16Features:
    """Build a VGG-16 with seeded random weights, for tests and offline runs.

    Weights are drawn with He initialisation (std ``sqrt(2 / fan_in)``, biases 0) so that activations keep their
    scale through the 13 ReLU layers instead of vanishing.

    Args:
        seed: Seed of the private generator (global RNG state is untouched).
        device: Where to put the module.

    Returns:
        A frozen module in eval mode.
    """
    generator = torch.Generator().manual_seed(seed)
    # Built on the meta device so torch's default init (overwritten below anyway) costs nothing.
    with torch.device("meta"):
        model = VGG16Features()
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for module in model.features:
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                module.bias.zero_()
    return model.to(device).eval().requires_grad_(False)


def load_vgg16(
    path: str | Path | None = None,
    *,
    cache: str | Path | None = None,
    allow_download: bool = True,
    device: torch.device | str = "cpu",
) -> VGG16Features:
    """Load torchvision's ImageNet VGG-16 (``vgg16-397923af.pth``) as a feature extractor.

    The file is found with ``wplus.hub.fetch('vgg16-imagenet', path=path)``: an explicit path, else the cache,
    else a verified download. It is read with ``torch.load(weights_only=True)``; the six ``classifier.*`` tensors
    are dropped and every other key must match :class:`VGG16Features` exactly.

    Args:
        path: Explicit weights file (torchvision's full state dict, or only its ``features.*`` part).
        cache: Cache root; see :func:`wplus.hub.cache_dir`.
        allow_download: Whether a file missing from the cache may be downloaded.
        device: Where to put the module.

    Returns:
        A frozen module in eval mode.

    Raises:
        CheckpointError: The file cannot be read or is not a VGG-16 state dict; the message names the file.
        OfflineError: The file is not cached and cannot be downloaded.
    """
    from wplus.hub import fetch  # imported here so that building a model never pulls in the network code

    file = fetch("vgg16-imagenet", path=path, cache=cache, allow_download=allow_download)
    # Meta-device skeleton: every parameter is replaced by the file's tensor, so no init is computed.
    with torch.device("meta"):
        model = VGG16Features()
    model.load_state_dict(_read_state_dict(file, model), strict=True, assign=True)
    return model.to(device).eval().requires_grad_(False)


def _read_state_dict(file: Path, model: nn.Module) -> dict[str, Tensor]:
    """Read ``file`` and return the tensors that ``model`` expects, raising CheckpointError on any mismatch."""
    expected_layout = "torchvision vgg16 state dict (features.{0..28}.weight/bias, optional classifier.{0,3,6}.*)"
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        raise CheckpointError(file, f"cannot read as a torch file ({exc}); expected a {expected_layout}") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(file, f"got a {type(state).__name__}, expected a {expected_layout}")
    state = {k: v for k, v in state.items() if k not in _CLASSIFIER_KEYS}
    reference = model.state_dict()
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    if missing or unexpected:
        raise CheckpointError(
            file, f"missing keys {missing}, unexpected keys {unexpected}; expected a {expected_layout}"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(reference[key].shape):
            raise CheckpointError(
                file, f"{key} has shape {tuple(tensor.shape)}, expected {tuple(reference[key].shape)} (VGG-16 config D)"
            )
        if not tensor.is_floating_point():
            raise CheckpointError(file, f"{key} has dtype {tensor.dtype}, expected floating-point weights")
    # assign=True adopts the stored tensors as they are, so fix dtype and layout here (float16 copies exist).
    return {key: tensor.float().contiguous() for key, tensor in state.items()}
