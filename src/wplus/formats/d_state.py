"""Build our :class:`Discriminator` from an NVIDIA-layout D state dict, inferring its config from the shapes.

The discriminator counterpart of :mod:`wplus.formats.sg2_state`: every foreign reader maps its file's D to NVIDIA's
names (NVlabs/stylegan2-ada-pytorch ``training/networks.py``: ``b{R}.fromrgb``, ``b{r}.conv0``, ``b{r}.conv1``,
``b{r}.skip``, ``b4.conv``, ``b4.fc``, ``b4.out``, ``mapping.embed`` / ``mapping.fc{i}`` of a conditional D, and
``*.resample_filter`` buffers), then calls :func:`discriminator_from_state`, which renames them to ours
(``fromrgb``, ``conv``, ``fc``, ``out`` at the top level; the blocks keep their names). Shapes fix the resolution,
widths, minibatch-stddev channels, architecture and label head; values that leave no trace in the weights
(``conv_clamp``, the mbstd group size, the label mapping's lr multiplier, the FIR filter) come as ``hints``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from wplus.errors import CheckpointError, ConfigError
from wplus.formats.sg2_state import to_float32
from wplus.models.stylegan2 import setup_filter
from wplus.models.stylegan2_discriminator import Discriminator, DiscriminatorConfig

__all__ = ["discriminator_from_state", "infer_discriminator_config", "NoDiscriminatorError"]

_HINT_KEYS = ("conv_clamp", "mbstd_group_size", "resample_filter", "architecture", "mapping_lr_multiplier")


class NoDiscriminatorError(CheckpointError):
    """The file holds a generator but no discriminator."""


def _shape(state: dict[str, torch.Tensor], key: str, path: Path | str | None) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(path, f"missing tensor {key!r}; expected a StyleGAN2 discriminator")
    return tuple(state[key].shape)


def _channel_rule(widths: dict[int, int], path: Path | str | None) -> tuple[int, int]:
    """``(channel_base, channel_max)`` with ``widths[r] == min(channel_base // r, channel_max)`` for every r."""
    channel_max = max(widths.values())
    res = max(widths)
    channel_base = widths[res] * res if widths[res] < channel_max else channel_max * res
    for r, c in widths.items():  # the smallest base that gives the unsaturated widths
        if c < channel_max:
            channel_base = min(channel_base, c * r)
    if any(min(channel_base // r, channel_max) != c for r, c in widths.items()):
        raise CheckpointError(path, f"D channel widths {widths} do not follow min(channel_base // res, channel_max)")
    return channel_base, channel_max


def infer_discriminator_config(
    state: dict[str, torch.Tensor], *, path: Path | str | None = None, hints: dict[str, Any] | None = None
) -> DiscriminatorConfig:
    """The :class:`DiscriminatorConfig` that ``state`` (NVIDIA ``D`` names) was built with."""
    hints = {k: v for k, v in (hints or {}).items() if k in _HINT_KEYS and v is not None}
    resolutions = sorted({int(m.group(1)) for k in state if (m := re.match(r"b(\d+)\.", k))})
    if not resolutions or resolutions[0] != 4 or len(resolutions) < 2:
        raise CheckpointError(path, "no blocks b4, b8, ... found; expected a StyleGAN2 discriminator")
    res = resolutions[-1]
    if resolutions != [2**i for i in range(2, res.bit_length())]:
        raise CheckpointError(path, f"discriminator blocks {resolutions} are not 4, 8, ..., {res}")
    if any(k.startswith("b4.fromrgb.") for k in state) or hints.get("architecture") == "skip":
        raise CheckpointError(
            path, "a 'skip' architecture discriminator (FromRGB at every resolution); wplus reads 'resnet' and 'orig'"
        )
    width_at_res, img_channels = _shape(state, f"b{res}.fromrgb.weight", path)[:2]
    widths = {res: width_at_res}
    for r in resolutions[1:]:
        widths[r // 2] = _shape(state, f"b{r}.conv1.weight", path)[0]
    c4 = widths[4]
    conv_in = _shape(state, "b4.conv.weight", path)[1]
    channel_base, channel_max = _channel_rule(widths, path)
    architecture = "resnet" if any(f"b{r}.skip.weight" in state for r in resolutions[1:]) else "orig"
    if hints.get("architecture") not in (None, architecture):
        raise CheckpointError(
            path,
            f"the file says architecture {hints['architecture']!r}, its D weights are laid out as {architecture!r}",
        )
    kwargs: dict[str, Any] = dict(
        img_resolution=res,
        img_channels=img_channels,
        channel_base=channel_base,
        channel_max=channel_max,
        mbstd_num_channels=conv_in - c4,
        architecture=architecture,
    )
    if "mapping.embed.weight" in state:
        cmap_dim, c_dim = _shape(state, "mapping.embed.weight", path)
        kwargs.update(
            c_dim=c_dim,
            cmap_dim=None if cmap_dim == c4 else cmap_dim,
            mapping_layers=len({k for k in state if re.fullmatch(r"mapping\.fc\d+\.weight", k)}),
        )
    for key in ("conv_clamp", "mbstd_group_size", "mapping_lr_multiplier"):
        if key in hints:
            kwargs[key] = hints[key]
    if "resample_filter" in hints:
        kwargs["resample_filter"] = tuple(int(v) for v in hints["resample_filter"])
    try:
        return DiscriminatorConfig(**kwargs)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(path, f"cannot build a discriminator config from the file ({e})") from None


def _to_our_name(key: str, res: int) -> str:
    if key.startswith(f"b{res}.fromrgb."):
        return key[len(f"b{res}.") :]
    if key.startswith(("b4.conv.", "b4.fc.", "b4.out.")):
        return key[len("b4.") :]
    return key


def discriminator_from_state(
    state: dict[str, torch.Tensor],
    *,
    path: Path | str | None = None,
    hints: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> Discriminator:
    """Build a :class:`Discriminator` with the inferred config and load ``state`` (NVIDIA names) with ``strict=True``.

    Stored ``resample_filter`` buffers must be the config's FIR filter (they are fixed, not trained) and are then
    taken from the constructed module, as are those TF and rosinality files do not store. Every other tensor must
    be present and nothing extra may be.

    Raises:
        CheckpointError: names, shapes or filters that do not form a supported StyleGAN2 discriminator.
    """
    cfg = infer_discriminator_config(state, path=path, hints=hints)
    expected_filter = setup_filter(cfg.resample_filter)
    ours: dict[str, torch.Tensor] = {}
    for key, t in to_float32(state).items():
        if key.endswith("resample_filter"):
            if tuple(t.shape) != tuple(expected_filter.shape) or not torch.allclose(t, expected_filter, atol=1e-6):
                raise CheckpointError(
                    path, f"{key} is not the FIR filter {list(cfg.resample_filter)}; the file's D is not supported"
                )
            continue
        ours[_to_our_name(key, cfg.img_resolution)] = t
    D = Discriminator(cfg)
    for k, v in D.state_dict().items():
        if k.endswith("resample_filter"):
            ours[k] = v
    try:
        D.load_state_dict(ours, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).splitlines()[:3])
        raise CheckpointError(path, f"D weights do not match the inferred discriminator config: {detail}") from None
    return D.to(device).eval().requires_grad_(False)
