"""NVIDIA PyTorch network pickles (stylegan2-ada-pytorch ``*.pkl``, the stylegan3 repo's StyleGAN2 and StyleGAN3
networks).

The file is a pickled dict ``{G, D, G_ema, training_set_kwargs, augment_pipe}`` whose networks are persistence
records: the reduce callable ``torch_utils.persistence._reconstruct_persistent_obj`` with one argument
``meta = {type, version, module_src, class_name, state}`` (NVlabs/stylegan2-ada-pytorch
``torch_utils/persistence.py``). NVIDIA's loader ``exec``s
``module_src``; we map that callable to :class:`PersistentRecord`, which only keeps ``class_name`` and ``state``, and
then walk ``state['_parameters' | '_buffers' | '_modules']`` to get ``G_ema``'s state dict. Tensor storages are
nested legacy ``torch.save`` blobs, read with ``torch.load(weights_only=True)``.

StyleGAN3 networks (``training.networks_stylegan3.Generator``) leave their architecture in ``_init_kwargs`` (T and R
differ only there: ``conv_kernel``, ``channel_base``, ``use_radial_filters``, ...), so their config is read from
those kwargs (:func:`stylegan3_config_from_kwargs`) and the stored tensors are checked against the network it
describes; their modules' numpy attributes (sizes, sampling rates) unpickle through the numpy allow-list.
"""

from __future__ import annotations

import collections
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wplus.errors import CheckpointError, ConfigError
from wplus.formats.d_state import NoDiscriminatorError, discriminator_from_state
from wplus.formats.safe_pickle import numpy_globals, safe_load
from wplus.formats.sg2_state import generator_from_state
from wplus.models import stylegan3
from wplus.models.stylegan2 import Generator
from wplus.models.stylegan2_discriminator import Discriminator

__all__ = [
    "PersistentRecord",
    "read_nvidia_pickle",
    "load_nvidia_pickle",
    "load_nvidia_discriminator",
    "nvidia_allow_list",
    "stylegan3_config_from_kwargs",
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


def load_nvidia_pickle(
    path: str | Path, *, device: str | torch.device = "cpu", data: bytes | None = None
) -> Generator | stylegan3.Generator:
    """Read ``G_ema`` of an NVIDIA PyTorch pickle into our StyleGAN2 or StyleGAN3 ``Generator`` (float32, eval mode).

    Raises:
        CheckpointError: the file is not such a pickle, asks for a global outside the allow-list, or its weights do
            not form the generator its kwargs describe.
    """
    g = read_nvidia_pickle(path, data)["G_ema"]
    if not isinstance(g, PersistentRecord):
        raise CheckpointError(path, f"G_ema is {type(g).__name__}, expected a persistence record of a Generator")
    state: dict[str, torch.Tensor] = {}
    _walk(g, "", state, path)
    init_kwargs = g.state.get("_init_kwargs") or {}
    if _is_stylegan3(g):
        G3 = _stylegan3_from_state(state, stylegan3_config_from_kwargs(dict(init_kwargs), path), path)
        return G3.to(device)
    G = generator_from_state(state, path=path, hints=_hints(dict(init_kwargs)), device=device)
    for key in ("z_dim", "c_dim", "img_resolution"):
        recorded = init_kwargs.get(key, g.state.get(key))
        if recorded is not None and int(recorded) != getattr(G, key):
            got = getattr(G, key)
            raise CheckpointError(path, f"{key} is {recorded} in the file's kwargs but {got} in its weights")
    return G


# StyleGAN3 constructor arguments -> StyleGAN3Config fields (NVIDIA's names; the mapping's num_layers is renamed).
_SG3_TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_SG3_MAPPING = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier", "w_avg_beta": "w_avg_beta"}
_SG3_MAPPING_TRAINING_ONLY = ("freeze_layers", "freeze_embed")  # change which layers train, not the network
_SG3_SYNTHESIS = (
    "channel_base", "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband",
    "last_stopband_rel", "margin_size", "output_scale", "num_fp16_res", "conv_kernel", "filter_size",
    "lrelu_upsampling", "use_radial_filters", "conv_clamp", "magnitude_ema_beta",
)  # fmt: skip


def _plain(value: Any, like: Any, key: str, path: str | Path) -> Any:
    """A kwarg (possibly a numpy scalar) as the Python type of the config field's default."""
    if value is None:
        return None
    try:
        if isinstance(like, bool):
            return bool(value)
        if isinstance(like, int) and not isinstance(value, float):
            return int(value)
        return float(value)
    except (TypeError, ValueError):
        raise CheckpointError(path, f"_init_kwargs {key}={value!r} is not a number") from None


def stylegan3_config_from_kwargs(init_kwargs: dict[str, Any], path: str | Path = "") -> stylegan3.StyleGAN3Config:
    """The :class:`~wplus.models.stylegan3.StyleGAN3Config` a StyleGAN3 ``Generator``'s ``_init_kwargs`` describe.

    Synthesis kwargs may be flat (the stylegan3 repo) or under ``synthesis_kwargs``; a kwarg wplus does not know
    is refused (it could change the network), and absent ones take NVIDIA's defaults.
    """
    if not init_kwargs:
        raise CheckpointError(path, "StyleGAN3 G_ema has no _init_kwargs; its architecture cannot be known")
    kw = dict(init_kwargs)
    mapping = dict(kw.pop("mapping_kwargs", None) or {})
    syn = dict(kw.pop("synthesis_kwargs", None) or {})
    syn.update({k: v for k, v in kw.items() if k not in _SG3_TOP})
    defaults = stylegan3.StyleGAN3Config()
    fields: dict[str, Any] = {k: kw[k] for k in _SG3_TOP if k in kw}
    for key, value in mapping.items():
        if key in _SG3_MAPPING:
            fields[_SG3_MAPPING[key]] = value
        elif key not in _SG3_MAPPING_TRAINING_ONLY:
            raise CheckpointError(path, f"unknown StyleGAN3 mapping kwarg {key!r}; expected {sorted(_SG3_MAPPING)}")
    unknown = sorted(k for k in syn if k not in _SG3_SYNTHESIS and k != "class_name")
    if unknown:
        raise CheckpointError(
            path,
            f"unknown StyleGAN3 kwargs {unknown} (a modified architecture?); wplus reads NVIDIA's "
            f"networks_stylegan3 kwargs {sorted(_SG3_SYNTHESIS)}; please report this file",
        )
    fields.update({k: syn[k] for k in _SG3_SYNTHESIS if k in syn})
    fields = {k: _plain(v, getattr(defaults, k), k, path) for k, v in fields.items()}
    try:
        return stylegan3.StyleGAN3Config(**fields)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(path, f"StyleGAN3 kwargs describe no valid network: {e}") from None


def _stylegan3_from_state(
    state: dict[str, torch.Tensor], config: stylegan3.StyleGAN3Config, path: str | Path
) -> stylegan3.Generator:
    """Our StyleGAN3 module with the file's tensors (shapes checked first, then a strict load; fp16 -> fp32)."""
    from wplus.io.checkpoint import check_shapes, meta_shapes

    expected = meta_shapes(lambda: stylegan3.Generator(config))
    stored = {k: tuple(v.shape) for k, v in state.items()}
    check_shapes(path, stored, expected, what=f"the StyleGAN3 network its kwargs describe ({config.img_resolution} px)")
    G = stylegan3.Generator(config)
    G.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return G.eval().requires_grad_(False)


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
