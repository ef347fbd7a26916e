"""NVIDIA PyTorch network pickles (stylegan2-ada-pytorch ``*.pkl`` and the stylegan3 repo's StyleGAN2 networks).

The file is a pickled dict ``{G, D, G_ema, training_set_kwargs, augment_pipe}`` whose networks are persistence
records: the reduce callable ``torch_utils.persistence._reconstruct_persistent_obj`` with one argument
``meta = {type, version, module_src, class_name, state}`` (NVlabs/stylegan2-ada-pytorch
``torch_utils/persistence.py``). NVIDIA's loader ``exec``s
``module_src``; we map that callable to :class:`PersistentRecord`, which only keeps ``class_name`` and ``state``, and
then walk ``state['_parameters' | '_buffers' | '_modules']`` to get ``G_ema``'s state dict. Tensor storages are
nested legacy ``torch.save`` blobs, read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import collections
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wplus.errors import CheckpointError
from wplus.formats.d_state import NoDiscriminatorError, discriminator_from_state
from wplus.formats.safe_pickle import numpy_globals, safe_load
from wplus.formats.sg2_state import generator_from_state
from wplus.models.stylegan2 import Generator
from wplus.models.stylegan2_discriminator import Discriminator

__all__ = [
    "PersistentRecord",
    "read_nvidia_pickle",
    "load_nvidia_pickle",
    "load_nvidia_discriminator",
    "nvidia_allow_list",
]


@dataclass
class PersistentRecord:
    """What we keep of a persistence record: the class name and the object's ``__dict__``. No code, ever."""

    class_name: str
    state: dict[str, Any]
    version: int


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise ValueError("persistence record without {type: 'class', state: dict}")
    return PersistentRecord(class_name=str(meta.get("class_name")), state=meta["state"], version=int(meta["version"]))


def _load_from_bytes(b: Any) -> Any:
    if not isinstance(b, (bytes, bytearray)):
        raise ValueError(f"tensor storage blob is {type(b).__name__}, expected bytes")
    return torch.load(io.BytesIO(b), weights_only=True, map_location="cpu")


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any, *state: Any) -> torch.nn.Parameter:
    # Also stands in for _rebuild_parameter_with_state: extra Python attributes on a parameter are dropped.
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"parameter data is {type(data).__name__}, expected a tensor")
    return torch.nn.Parameter(data, requires_grad=False)


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access) in ``_init_kwargs``."""


def nvidia_allow_list() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_from_bytes,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("dnnlib.util", "EasyDict"): EasyDict,
    }
    allowed.update(numpy_globals())
    return allowed


def read_nvidia_pickle(path: str | Path, data: bytes | None = None) -> dict[str, Any]:
    """Unpickle an NVIDIA network pickle safely; networks come back as :class:`PersistentRecord` trees."""
    obj = safe_load(data if data is not None else Path(path), nvidia_allow_list(), path=path)
    if not isinstance(obj, dict) or "G_ema" not in obj:
        got = f"a dict with keys {sorted(map(str, obj))}" if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(path, f"got {got}, expected an NVIDIA network pickle (a dict with 'G_ema')")
    return obj


def _walk(record: Any, prefix: str, out: dict[str, torch.Tensor], path: str | Path, root: str = "G_ema") -> None:
    if not isinstance(record, PersistentRecord):
        raise CheckpointError(path, f"module {prefix or root} is {type(record).__name__}, expected a network record")
    state = record.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, t in (state.get(group) or {}).items():
            if t is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise CheckpointError(path, f"{prefix}{name} is {type(t).__name__}, expected a tensor")
            out[prefix + name] = t.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _walk(child, f"{prefix}{name}.", out, path, root)


def _is_stylegan3(g: PersistentRecord) -> bool:
    syn = (g.state.get("_modules") or {}).get("synthesis")
    if not isinstance(syn, PersistentRecord):
        return False
    children = syn.state.get("_modules") or {}
    inp = children.get("input")
    return (isinstance(inp, PersistentRecord) and inp.class_name == "SynthesisInput") or any(
        str(k).startswith("L0_") for k in children
    )


def _hints(init_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Config values that leave no trace in the weights, from ``_init_kwargs`` (nested or flat synthesis kwargs)."""
    top = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"}
    syn = dict(init_kwargs.get("synthesis_kwargs") or {k: v for k, v in init_kwargs.items() if k not in top})
    mapping = dict(init_kwargs.get("mapping_kwargs") or {})
    hints = {
        "conv_clamp": syn.get("conv_clamp"),
        "num_fp16_res": syn.get("num_fp16_res"),
        "architecture": syn.get("architecture"),
        "resample_filter": syn.get("resample_filter"),
        "mapping_lr_multiplier": mapping.get("lr_multiplier"),
        "w_avg_beta": mapping.get("w_avg_beta"),
    }
    return {k: v for k, v in hints.items() if v is not None}


def load_nvidia_pickle(path: str | Path, *, device: str | torch.device = "cpu", data: bytes | None = None) -> Generator:
    """Read ``G_ema`` of an NVIDIA PyTorch pickle into our :class:`Generator` (float32, eval mode).

    Raises:
        CheckpointError: the file is not such a pickle, asks for a global outside the allow-list, is a StyleGAN3
            network, or its weights do not form a StyleGAN2 generator.
    """
    g = read_nvidia_pickle(path, data)["G_ema"]
    if not isinstance(g, PersistentRecord):
        raise CheckpointError(path, f"G_ema is {type(g).__name__}, expected a persistence record of a Generator")
    if _is_stylegan3(g):
        raise CheckpointError(
            path,
            "this is a StyleGAN3 (alias-free) network pickle; wplus does not support StyleGAN3 yet "
            "(use a StyleGAN2 checkpoint, e.g. `wplus weights list`)",
        )
    state: dict[str, torch.Tensor] = {}
    _walk(g, "", state, path)
    init_kwargs = g.state.get("_init_kwargs") or {}
    G = generator_from_state(state, path=path, hints=_hints(dict(init_kwargs)), device=device)
    for key in ("z_dim", "c_dim", "img_resolution"):
        recorded = init_kwargs.get(key, g.state.get(key))
        if recorded is not None and int(recorded) != getattr(G, key):
            got = getattr(G, key)
            raise CheckpointError(path, f"{key} is {recorded} in the file's kwargs but {got} in its weights")
    return G


def _d_hints(init_kwargs: dict[str, Any]) -> dict[str, Any]:
    """D config values that leave no trace in its weights, from D's ``_init_kwargs`` (``training/networks.py``)."""
    epilogue = dict(init_kwargs.get("epilogue_kwargs") or {})
    block = dict(init_kwargs.get("block_kwargs") or {})
    mapping = dict(init_kwargs.get("mapping_kwargs") or {})
    hints = {
        "conv_clamp": init_kwargs.get("conv_clamp"),
        "architecture": init_kwargs.get("architecture"),
        "mbstd_group_size": epilogue.get("mbstd_group_size"),
        "resample_filter": block.get("resample_filter"),
        "mapping_lr_multiplier": mapping.get("lr_multiplier"),
    }
    return {k: v for k, v in hints.items() if v is not None}


NO_D_HINT = (
    "pass a file that stores D (an NVIDIA training snapshot network-snapshot-*.pkl, a TF (G, D, Gs) pickle, "
    "a rosinality training checkpoint with 'd', or a D.safetensors written by `wplus train`), or use the VGG loss"
)


def load_nvidia_discriminator(
    path: str | Path, *, device: str | torch.device = "cpu", data: bytes | None = None
) -> Discriminator:
    """Read ``D`` of an NVIDIA PyTorch pickle (a training snapshot) into our :class:`Discriminator` (float32, eval).

    The config comes from D's stored shapes plus its ``_init_kwargs`` (conv_clamp, mbstd group size, label mapping
    lr multiplier); fp16 layers are read as float32.

    Raises:
        NoDiscriminatorError: the pickle stores no ``D`` (a generator-only pickle).
        CheckpointError: not such a pickle, a refused global, or weights that are not a StyleGAN2 discriminator.
    """
    obj = read_nvidia_pickle(path, data)
    d = obj.get("D")
    if d is None or (isinstance(d, PersistentRecord) and not (d.state.get("_modules") or d.state.get("_parameters"))):
        raise NoDiscriminatorError(path, f"this NVIDIA pickle stores no discriminator (D), only G_ema; {NO_D_HINT}")
    if not isinstance(d, PersistentRecord):
        raise CheckpointError(path, f"D is {type(d).__name__}, expected a persistence record of a Discriminator")
    state: dict[str, torch.Tensor] = {}
    _walk(d, "", state, path, root="D")
    init_kwargs = dict(d.state.get("_init_kwargs") or {})
    D = discriminator_from_state(state, path=path, hints=_d_hints(init_kwargs), device=device)
    for key, ours in (("img_resolution", D.config.img_resolution), ("c_dim", D.config.c_dim)):
        recorded = init_kwargs.get(key)
        if recorded is not None and int(recorded) != ours:
            raise CheckpointError(path, f"D's {key} is {recorded} in the file's kwargs but {ours} in its weights")
    return D
