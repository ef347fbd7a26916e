"""Build our StyleGAN2 :class:`Generator` from an NVIDIA-layout state dict, inferring the whole config from shapes.

Every foreign reader (NVIDIA pickle, TF pickle, rosinality ``.pt``) first maps its file to NVIDIA ``G_ema`` names
(NVlabs/stylegan2-ada-pytorch ``torch_utils/persistence.py``), then calls :func:`generator_from_state`. Shapes fix
resolution, widths, mapping depth, label
embedding and architecture; only values that leave no trace in the weights (``conv_clamp``, lr multiplier,
``w_avg_beta``, fp16 resolutions) come from the file's recorded kwargs as ``hints``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from wplus.errors import CheckpointError, ConfigError
from wplus.models.stylegan2 import Generator, StyleGAN2Config

__all__ = ["generator_from_state", "infer_config", "to_float32"]

_HINT_KEYS = ("conv_clamp", "mapping_lr_multiplier", "w_avg_beta", "num_fp16_res", "resample_filter", "architecture")


def to_float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp16 layers (``num_fp16_res > 0`` checkpoints) run in fp32: every floating tensor becomes float32."""
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def _shape(state: dict[str, torch.Tensor], key: str, path: Path | str | None) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(path, f"missing tensor {key!r}; expected a StyleGAN2 generator")
    return tuple(state[key].shape)


def infer_config(
    state: dict[str, torch.Tensor], *, path: Path | str | None = None, hints: dict[str, Any] | None = None
) -> StyleGAN2Config:
    """The :class:`StyleGAN2Config` that ``state`` (NVIDIA ``G_ema`` names) was built with."""
    hints = {k: v for k, v in (hints or {}).items() if k in _HINT_KEYS and v is not None}
    resolutions = sorted({int(m.group(1)) for k in state if (m := re.match(r"synthesis\.b(\d+)\.", k))})
    if not resolutions or resolutions[0] != 4:
        raise CheckpointError(path, "no synthesis blocks b4, b8, ... found; expected a StyleGAN2 generator")
    res = resolutions[-1]
    if resolutions != [2**i for i in range(2, res.bit_length())]:
        raise CheckpointError(path, f"synthesis blocks {resolutions} are not 4, 8, ..., {res}")
    widths = {4: _shape(state, "synthesis.b4.const", path)[0]}
    for r in resolutions[1:]:
        widths[r] = _shape(state, f"synthesis.b{r}.conv1.weight", path)[0]
    channel_max = max(widths.values())
    channel_base = widths[res] * res if widths[res] < channel_max else channel_max * res
    # Any base between the largest saturated width and the next step gives the same channels; pick the smallest.
    for r, c in widths.items():
        if c < channel_max:
            channel_base = min(channel_base, c * r)
    if any(min(channel_base // r, channel_max) != c for r, c in widths.items()):
        raise CheckpointError(path, f"channel widths {widths} do not follow min(channel_base // res, channel_max)")
    num_layers = len({k for k in state if re.fullmatch(r"mapping\.fc\d+\.weight", k)})
    if num_layers == 0:
        raise CheckpointError(path, "no mapping layers mapping.fc0, ... found; expected a StyleGAN2 generator")
    fc0_out, fc0_in = _shape(state, "mapping.fc0.weight", path)
    w_dim = _shape(state, f"mapping.fc{num_layers - 1}.weight", path)[0]
    c_dim = embed_features = 0
    if "mapping.embed.weight" in state:
        embed_features, c_dim = _shape(state, "mapping.embed.weight", path)
    skip_torgb = any(f"synthesis.b{r}.torgb.weight" in state for r in resolutions[:-1])
    has_skip = any(f"synthesis.b{r}.skip.weight" in state for r in resolutions[1:])
    architecture = "resnet" if has_skip else ("skip" if skip_torgb else "orig")
    kwargs: dict[str, Any] = dict(
        z_dim=fc0_in - embed_features,
        c_dim=c_dim,
        w_dim=w_dim,
        img_resolution=res,
        img_channels=_shape(state, f"synthesis.b{res}.torgb.weight", path)[0],
        mapping_layers=num_layers,
        embed_features=embed_features or None,
        layer_features=fc0_out if num_layers > 1 else None,
        channel_base=channel_base,
        channel_max=channel_max,
        architecture=architecture,
    )
    if kwargs["embed_features"] == w_dim:
        kwargs["embed_features"] = None
    if kwargs["layer_features"] == w_dim:
        kwargs["layer_features"] = None
    for key in ("conv_clamp", "mapping_lr_multiplier", "w_avg_beta", "num_fp16_res"):
        if key in hints:
            kwargs[key] = hints[key]
    if "resample_filter" in hints:
        kwargs["resample_filter"] = tuple(int(v) for v in hints["resample_filter"])
    if hints.get("architecture") not in (None, architecture):
        raise CheckpointError(
            path, f"the file says architecture {hints['architecture']!r}, its weights are laid out as {architecture!r}"
        )
    try:
        return StyleGAN2Config(**kwargs)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(path, f"cannot build a StyleGAN2 config from the file ({e})") from None


def generator_from_state(
    state: dict[str, torch.Tensor],
    *,
    path: Path | str | None = None,
    hints: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> Generator:
    """Build a :class:`Generator` with the inferred config and load ``state`` with ``strict=True``.

    ``resample_filter`` buffers, which TF and rosinality files do not store, are taken from the constructed module
    (they are the fixed [1,3,3,1] kernel); every other tensor must be present, and nothing extra may be.
    """
    cfg = infer_config(state, path=path, hints=hints)
    G = Generator(cfg)
    own = G.state_dict()
    state = to_float32(state)
    for k, v in own.items():
        if k.endswith("resample_filter") and k not in state:
            state[k] = v
    try:
        G.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).splitlines()[:3])
        raise CheckpointError(path, f"weights do not match the inferred StyleGAN2 config: {detail}") from None
    return G.to(device).eval().requires_grad_(False)
