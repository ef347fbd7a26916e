"""TF StyleGAN2 / StyleGAN2-ADA network pickles (``stylegan2-ffhq-config-f.pkl`` and friends), read without TF.

The file is a pickled tuple ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` objects whose ``__setstate__`` would
``exec`` the stored ``build_module_src``. We map that class to :class:`TFNetworkState`, which only keeps the state
dict (``version``, ``name``, ``static_kwargs``, ``components``, ``build_func_name``, ``variables``), and convert
``Gs``'s variables to NVIDIA ``G_ema`` layout (NVlabs/stylegan2-ada-pytorch ``legacy.py``): dense weights transposed,
conv HWIO -> OIHW,
``Conv0_up`` / ``Skip`` kernels flipped spatially, ``mod_bias + 1``, ``Const[0]``, ``noise{i}[0, 0]``,
``dlatent_avg`` -> ``w_avg``.

``D`` (``D_stylegan2`` / ADA's ``D_main``) is converted the same way (:func:`tf_d_to_nvidia_state`), except that no
kernel is flipped: TF's down-sampling conv (``conv_downsample_2d``) blurs and then calls ``tf.nn.conv2d``, a
cross-correlation like ``torch.nn.functional.conv2d``; only G's up-sampling convs go through
``conv2d_transpose``, whose kernel is the spatial flip of the equivalent correlation.
"""

from __future__ import annotations

import collections
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wplus.errors import CheckpointError
from wplus.formats.d_state import NoDiscriminatorError, discriminator_from_state
from wplus.formats.nvidia_pkl import NO_D_HINT, EasyDict
from wplus.formats.safe_pickle import numpy_globals, safe_load
from wplus.formats.sg2_state import generator_from_state
from wplus.models.stylegan2 import Generator
from wplus.models.stylegan2_discriminator import Discriminator

__all__ = [
    "StyleGAN1PickleError",
    "TFNetworkState",
    "read_tf_pickle",
    "load_tf_pickle",
    "tf_variables",
    "tf_to_nvidia_state",
    "tf_d_to_nvidia_state",
    "load_tf_discriminator",
]

STYLEGAN1_HINT = (
    "this is a StyleGAN (v1) TF pickle; StyleGAN v1 support lives in the StyleGAN1 reader "
    "(wplus.formats.tf_stylegan1), not in the StyleGAN2 reader"
)


class StyleGAN1PickleError(CheckpointError):
    """The TF pickle holds a StyleGAN (v1) network: :mod:`wplus.formats.tf_stylegan1` reads it."""


class TFNetworkState:
    """Inert stand-in for ``dnnlib.tflib.network.Network``: ``__setstate__`` stores the dict and runs nothing."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"TF network state is {type(state).__name__}, expected a dict")
        self.state = state

    def __getitem__(self, key: str) -> Any:
        return self.state[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)


def tf_allow_list() -> dict[tuple[str, str], Any]:
    # TF pickles are protocol 4 (training/misc.save_pkl uses HIGHEST_PROTOCOL): objects are built
    # with NEWOBJ/BUILD, which need only the class itself.
    allowed: dict[tuple[str, str], Any] = {
        ("dnnlib.tflib.network", "Network"): TFNetworkState,
        ("dnnlib.util", "EasyDict"): EasyDict,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    allowed.update(numpy_globals())
    return allowed


TFNetworks = tuple[TFNetworkState, TFNetworkState, TFNetworkState]


def read_tf_pickle(path: str | Path, data: bytes | None = None) -> TFNetworks:
    """Unpickle the ``(G, D, Gs)`` tuple of a TF StyleGAN pickle as inert :class:`TFNetworkState` objects."""
    obj = safe_load(data if data is not None else Path(path), tf_allow_list(), path=path, encoding="latin1")
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, TFNetworkState) for n in obj)):
        raise CheckpointError(path, f"got {type(obj).__name__}, expected a TF pickle's (G, D, Gs) tuple of networks")
    return obj  # type: ignore[return-value]


def tf_variables(net: TFNetworkState, prefix: str = "") -> dict[str, np.ndarray]:
    """All variables of ``net`` and its components, keyed ``mapping/Dense0/weight`` style (component dict keys)."""
    out: dict[str, np.ndarray] = {}
    for name, value in net.get("variables") or []:
        out[prefix + str(name)] = np.asarray(value)
    for cname, comp in (net.get("components") or {}).items():
        if isinstance(comp, TFNetworkState):
            out.update(tf_variables(comp, f"{prefix}{cname}/"))
    return out


def _conv(prefix: str, tf: dict[str, np.ndarray], out: dict[str, np.ndarray], src: str, *, flip: bool) -> None:
    w = tf.pop(f"{src}/weight")
    if flip:
        w = w[::-1, ::-1]
    out[f"{prefix}.weight"] = w.transpose(3, 2, 0, 1)
    if f"{src}/mod_weight" in tf:
        out[f"{prefix}.affine.weight"] = tf.pop(f"{src}/mod_weight").T
        out[f"{prefix}.affine.bias"] = tf.pop(f"{src}/mod_bias") + 1
    if f"{src}/bias" in tf:
        out[f"{prefix}.bias"] = tf.pop(f"{src}/bias")
    if f"{src}/noise_strength" in tf:
        out[f"{prefix}.noise_strength"] = tf.pop(f"{src}/noise_strength").reshape([])


def tf_to_nvidia_state(tf: dict[str, np.ndarray], *, path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Map Gs's TF variables to NVIDIA ``G_ema`` names and layouts. Unknown variables are an error."""
    tf = dict(tf)
    tf.pop("lod", None)  # StyleGAN2 (version 4) bookkeeping; absent from ADA (version 5)
    out: dict[str, np.ndarray] = {}
    if "dlatent_avg" not in tf:
        raise CheckpointError(path, "Gs has no dlatent_avg variable; expected a TF StyleGAN2 generator")
    out["mapping.w_avg"] = tf.pop("dlatent_avg")
    for key in [k for k in tf if k.startswith("mapping/")]:
        m = re.fullmatch(r"mapping/(Dense(\d+)|LabelEmbed)/(weight|bias)", key)
        if m is None:
            continue
        name = f"mapping.fc{m.group(2)}" if m.group(2) is not None else "mapping.embed"
        value = tf.pop(key)
        out[f"{name}.{m.group(3)}"] = value.T if m.group(3) == "weight" else value
    if "synthesis/4x4/Const/const" not in tf:
        raise CheckpointError(path, "no synthesis/4x4/Const/const; expected a TF StyleGAN2 (not v1) generator")
    out["synthesis.b4.const"] = tf.pop("synthesis/4x4/Const/const")[0]
    resolutions = sorted({int(m.group(1)) for k in tf if (m := re.match(r"synthesis/(\d+)x\1/", k))})
    res = resolutions[-1] if resolutions else 4
    # 'orig' graphs name their output layers ToRGB_lod{n}; only lod 0 (the final resolution) feeds the image.
    if "synthesis/ToRGB_lod0/weight" in tf:
        for key in [k for k in tf if k.startswith("synthesis/ToRGB_lod0/")]:
            tf[f"synthesis/{res}x{res}/ToRGB/{key.rsplit('/', 1)[1]}"] = tf.pop(key)
        for key in [k for k in tf if k.startswith("synthesis/ToRGB_lod")]:
            tf.pop(key)
    _conv("synthesis.b4.conv1", tf, out, "synthesis/4x4/Conv", flip=False)
    for r in resolutions:
        s, p = f"synthesis/{r}x{r}", f"synthesis.b{r}"
        if r > 4:
            _conv(f"{p}.conv0", tf, out, f"{s}/Conv0_up", flip=True)
            _conv(f"{p}.conv1", tf, out, f"{s}/Conv1", flip=False)
        if f"{s}/ToRGB/weight" in tf:
            _conv(f"{p}.torgb", tf, out, f"{s}/ToRGB", flip=False)
        if f"{s}/Skip/weight" in tf:
            _conv(f"{p}.skip", tf, out, f"{s}/Skip", flip=True)
        log2 = int(math.log2(r))
        for conv, idx in (("conv0", 2 * log2 - 5), ("conv1", 2 * log2 - 4)):
            if f"synthesis/noise{idx}" in tf and (r > 4 or conv == "conv1"):
                out[f"{p}.{conv}.noise_const"] = tf.pop(f"synthesis/noise{idx}")[0, 0]
    leftover = sorted(k for k in tf if k.startswith(("mapping/", "synthesis/")))
    if leftover:
        raise CheckpointError(path, f"unrecognised TF variables {leftover[:5]}; expected a StyleGAN2 config-e/f graph")
    try:
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"a TF variable is not a numeric array ({e})") from None


def _hints(kw: dict[str, Any], path: str | Path) -> dict[str, Any]:
    for key in ("nonlinearity", "mapping_nonlinearity"):
        if kw.get(key, "lrelu") != "lrelu":
            raise CheckpointError(path, f"{key}={kw[key]!r}; only 'lrelu' StyleGAN2 graphs are supported")
    hints = {
        "conv_clamp": kw.get("conv_clamp"),
        "num_fp16_res": kw.get("num_fp16_res"),
        "architecture": kw.get("architecture"),
        "resample_filter": kw.get("resample_kernel"),
        "mapping_lr_multiplier": kw.get("mapping_lrmul"),
        "w_avg_beta": kw.get("dlatent_avg_beta"),
    }
    return {k: v for k, v in hints.items() if v is not None}


def load_tf_pickle(path: str | Path, *, device: str | torch.device = "cpu", data: bytes | None = None) -> Generator:
    """Read ``Gs`` of a TF StyleGAN2 / StyleGAN2-ADA pickle into our :class:`Generator` (float32, eval mode).

    Raises:
        CheckpointError: not such a pickle, a refused global, a StyleGAN v1 network (handled by another reader),
            or variables that do not form a StyleGAN2 config-e/f generator.
    """
    _, _, gs = read_tf_pickle(path, data)
    version = gs.get("version")
    if not isinstance(version, int) or version < 4 or gs.get("build_func_name") == "G_style":
        raise StyleGAN1PickleError(path, STYLEGAN1_HINT)
    kw = dict(gs.get("static_kwargs") or {})
    for comp in (gs.get("components") or {}).values():
        if isinstance(comp, TFNetworkState):
            if comp.get("build_func_name") == "G_synthesis" and comp.get("version", 4) < 4:
                raise StyleGAN1PickleError(path, STYLEGAN1_HINT)
            kw = {**dict(comp.get("static_kwargs") or {}), **kw}
    state = tf_to_nvidia_state(tf_variables(gs), path=path)
    return generator_from_state(state, path=path, hints=_hints(kw, path), device=device)


def tf_d_to_nvidia_state(tf: dict[str, np.ndarray], *, path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Map D's TF variables to NVIDIA ``D`` names (conv HWIO -> OIHW, dense transposed, no flips). Unknown: error."""
    out: dict[str, np.ndarray] = {}
    unknown: list[str] = []
    for key, value in tf.items():
        if m := re.fullmatch(r"(\d+)x\1/(FromRGB|Conv0|Conv1_down|Skip|Conv)/(weight|bias)", key):
            layer = {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1", "Skip": "skip", "Conv": "conv"}
            name = f"b{m.group(1)}.{layer[m.group(2)]}.{m.group(3)}"
            if m.group(2) == "Conv" and m.group(1) != "4":
                unknown.append(key)
                continue
            out[name] = value.transpose(3, 2, 0, 1) if m.group(3) == "weight" else value
        elif m := re.fullmatch(r"(4x4/Dense0|Output|LabelEmbed|Mapping(\d+))/(weight|bias)", key):
            base = {"4x4/Dense0": "b4.fc", "Output": "b4.out", "LabelEmbed": "mapping.embed"}.get(m.group(1))
            name = f"{base or f'mapping.fc{m.group(2)}'}.{m.group(3)}"
            out[name] = value.T if m.group(3) == "weight" else value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(path, f"unrecognised D variables {sorted(unknown)[:5]}; expected a TF StyleGAN2 D")
    try:
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"a TF D variable is not a numeric array ({e})") from None


def load_tf_discriminator(
    path: str | Path, *, device: str | torch.device = "cpu", data: bytes | None = None
) -> Discriminator:
    """Read ``D`` of a TF StyleGAN2 / StyleGAN2-ADA ``(G, D, Gs)`` pickle into our :class:`Discriminator`.

    Raises:
        NoDiscriminatorError: D has no variables.
        CheckpointError: not such a pickle, a refused global, a StyleGAN v1 or conditional TF StyleGAN2 D, or
            variables that do not form a StyleGAN2 discriminator.
    """
    _, d, _ = read_tf_pickle(path, data)
    variables = tf_variables(d)
    if not variables:
        raise NoDiscriminatorError(path, f"the D network of this TF pickle has no variables; {NO_D_HINT}")
    version = d.get("version")
    if not isinstance(version, int) or version < 4 or d.get("build_func_name") == "D_basic":
        raise CheckpointError(path, "a StyleGAN (v1) discriminator; wplus reads StyleGAN2 discriminators only")
    kw = dict(d.get("static_kwargs") or {})
    if kw.get("nonlinearity", "lrelu") != "lrelu":
        raise CheckpointError(path, f"D nonlinearity={kw['nonlinearity']!r}; only 'lrelu' StyleGAN2 D is supported")
    if int(kw.get("label_size") or 0) > 0 and "LabelEmbed/weight" not in variables:
        raise CheckpointError(
            path, f"a conditional TF StyleGAN2 D (label_size={kw['label_size']}) without a label mapping; not supported"
        )
    group = kw.get("mbstd_group_size")
    hints = {
        "conv_clamp": kw.get("conv_clamp"),
        "architecture": kw.get("architecture"),
        "mbstd_group_size": group if isinstance(group, int) and group > 1 else None,  # <= 1: no mbstd layer
        "resample_filter": kw.get("resample_kernel"),
        "mapping_lr_multiplier": kw.get("mapping_lrmul"),
    }
    state = tf_d_to_nvidia_state(variables, path=path)
    D = discriminator_from_state(state, path=path, hints=hints, device=device)
    recorded = kw.get("resolution")
    if recorded is not None and int(recorded) != D.img_resolution:
        raise CheckpointError(
            path, f"D's resolution is {recorded} in the file's kwargs but {D.img_resolution} in its weights"
        )
    return D
