"""Writers of foreign checkpoint files in their real on-disk structure, from one of our generators.

For tests and benchmarks only: they let the readers be checked without downloading real weights. Each writer
produces the same reduce callables, class paths and state layout as the original tool (stylegan2-ada-pytorch's
persistence, dnnlib.tflib, rosinality's checkpoints),
by registering inert stand-in modules (``torch_utils.persistence``, ``dnnlib.tflib.network``, ``dnnlib.util``) in
``sys.modules`` only while pickling, so that pickle writes references to the real names.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import math
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wplus.models.stylegan2 import Generator
from wplus.models.stylegan2_discriminator import Discriminator, DiscriminatorConfig

__all__ = [
    "write_nvidia_pickle",
    "write_nvidia_stylegan3_pickle",
    "write_tf_pickle",
    "write_rosinality",
    "rosinality_g_state",
    "fp16_rounded",
    "random_discriminator",
    "nvidia_d_state",
    "tf_d_variables",
    "rosinality_d_state",
    "NUMPY_MODULE_SWAP",
]

# numpy 2.x writes numpy._core.multiarray, numpy 1.x numpy.core.multiarray; the writers can emit the other one.
NUMPY_MODULE_SWAP = {b"numpy._core.multiarray\n": b"numpy.core.multiarray\n"}


def _reconstruct_persistent_obj(meta: Any) -> Any:  # only ever referenced by name while pickling
    raise RuntimeError("stand-in, never called")


class _EasyDict(dict):
    pass


class _Network:
    """Stand-in for ``dnnlib.tflib.network.Network``: pickles its state dict, as the real class's ``__getstate__``."""

    def __init__(self, state: dict[str, Any]):
        self._state = state

    def __getstate__(self) -> dict[str, Any]:
        return self._state


class _Record:
    def __init__(self, meta: dict[str, Any]):
        self.meta = meta

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_reconstruct_persistent_obj, (self.meta,))


@contextlib.contextmanager
def _stand_in_modules() -> Iterator[None]:
    names = {
        "torch_utils": {},
        "torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj},
        "dnnlib": {},
        "dnnlib.util": {"EasyDict": _EasyDict},
        "dnnlib.tflib": {},
        "dnnlib.tflib.network": {"Network": _Network},
    }
    saved = {n: sys.modules.get(n) for n in names}
    originals = {
        obj: (obj.__module__, obj.__qualname__)
        for obj in (_reconstruct_persistent_obj, _EasyDict, _Network)  # type: ignore[misc]
    }
    for name, attrs in names.items():
        mod = types.ModuleType(name)
        for attr, obj in attrs.items():
            setattr(mod, attr, obj)
            obj.__module__, obj.__qualname__ = name, attr
        sys.modules[name] = mod
    try:
        yield
    finally:
        for obj, (module, qualname) in originals.items():
            obj.__module__, obj.__qualname__ = module, qualname
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def _dump(obj: Any, path: str | Path, *, protocol: int, numpy1: bool) -> Path:
    if numpy1 and protocol > 3:
        raise ValueError("numpy 1.x module names are written with protocol <= 3 (text GLOBAL opcodes)")
    with _stand_in_modules():
        data = pickle.dumps(obj, protocol=protocol)
    if numpy1:
        for new, old in NUMPY_MODULE_SWAP.items():
            data = data.replace(b"c" + new, b"c" + old)
    Path(path).write_bytes(data)
    return Path(path)


def fp16_rounded(G: Generator, min_res: int) -> Generator:
    """A copy of ``G`` whose synthesis tensors at ``res >= min_res`` are rounded to fp16 (the render reference)."""
    G = copy.deepcopy(G)
    with torch.no_grad():
        for name, t in G.state_dict().items():
            if _block_res(name) >= min_res and t.is_floating_point():
                t.copy_(t.half().float())
    return G


def random_discriminator(config: DiscriminatorConfig, *, seed: int = 0) -> Discriminator:
    """A discriminator with seeded N(0, 1) weights and small nonzero biases (so that every bias is exercised)."""
    D = Discriminator(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in D.named_parameters():
            lr_mul = config.mapping_lr_multiplier if name.startswith("mapping.fc") else 1.0
            scale = 1.0 / lr_mul if name.endswith("weight") else 0.2
            t.copy_(torch.randn(t.shape, generator=gen) * scale)
    return D.eval().requires_grad_(False)


def nvidia_d_state(D: Discriminator) -> dict[str, torch.Tensor]:
    """``D``'s tensors under NVIDIA's names (``training/networks.py``), block-level filter buffers included."""
    res = D.img_resolution
    out: dict[str, torch.Tensor] = {}
    for k, v in D.state_dict().items():
        if k.startswith("fromrgb."):
            k = f"b{res}.{k}"
        elif k.startswith(("conv.", "fc.", "out.")):
            k = f"b4.{k}"
        out[k] = v.detach().clone()
    for r in D.block_resolutions:
        out[f"b{r}.resample_filter"] = out[f"b{r}.conv1.resample_filter"].clone()
    return out


_NVIDIA_D_CLASSES = {
    "": "Discriminator",
    "b4": "DiscriminatorEpilogue",
    "b4.mbstd": "MinibatchStdLayer",
    "mapping": "MappingNetwork",
}


def _class_for(prefix: str) -> str:
    if prefix in _NVIDIA_D_CLASSES:
        return _NVIDIA_D_CLASSES[prefix]
    if prefix.count(".") == 0 and prefix.startswith("b"):
        return "DiscriminatorBlock"
    if prefix.endswith((".fc", ".out", ".embed")) or prefix.startswith("mapping."):
        return "FullyConnectedLayer"
    return "Conv2dLayer"


def _module_tree(flat: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Plain modules named like NVIDIA's classes, holding ``flat``'s tensors at their dotted names."""
    classes: dict[str, type] = {}

    def make(prefix: str) -> torch.nn.Module:
        name = _class_for(prefix)
        return classes.setdefault(name, type(name, (torch.nn.Module,), {}))()

    root = make("")
    for key, t in flat.items():
        *mods, leaf = key.split(".")
        m, prefix = root, ""
        for name in mods:
            prefix = f"{prefix}.{name}" if prefix else name
            if name not in m._modules:
                m.add_module(name, make(prefix))
            m = m._modules[name]  # type: ignore[assignment]
        if leaf == "resample_filter":
            m.register_buffer(leaf, t.clone())
        else:
            m.register_parameter(leaf, torch.nn.Parameter(t.clone(), requires_grad=False))
    if "b4" in root._modules:
        root._modules["b4"].add_module("mbstd", make("b4.mbstd"))  # no tensors, as NVIDIA's MinibatchStdLayer
    return root


def _nvidia_d_record(D: Discriminator) -> _Record:
    cfg = D.config
    record = _nvidia_record(_module_tree(nvidia_d_state(D)), "", 0)
    kwargs = _EasyDict(
        c_dim=cfg.c_dim,
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
        architecture=cfg.architecture,
        channel_base=cfg.channel_base,
        channel_max=cfg.channel_max,
        num_fp16_res=4,
        conv_clamp=cfg.conv_clamp,
        cmap_dim=cfg.cmap_dim,
        block_kwargs=_EasyDict(resample_filter=list(cfg.resample_filter)),
        mapping_kwargs=_EasyDict(lr_multiplier=cfg.mapping_lr_multiplier) if cfg.c_dim else _EasyDict(),
        epilogue_kwargs=_EasyDict(mbstd_group_size=cfg.mbstd_group_size, mbstd_num_channels=cfg.mbstd_num_channels),
    )
    record.meta["state"]["_init_kwargs"] = kwargs
    return record


def _block_res(name: str) -> int:
    parts = name.split(".")
    return int(parts[1][1:]) if len(parts) > 1 and parts[0] == "synthesis" and parts[1].startswith("b") else 0


# --------------------------------------------------------------------------------------------------------------------
# NVIDIA PyTorch pickle


def _nvidia_record(module: torch.nn.Module, prefix: str, fp16_min_res: int) -> _Record:
    def conv(name: str, t: torch.Tensor, param: bool) -> torch.Tensor:
        t = t.detach().clone()
        if fp16_min_res and _block_res(prefix + name) >= fp16_min_res and t.is_floating_point():
            t = t.half()
        return torch.nn.Parameter(t, requires_grad=False) if param else t

    state: dict[str, Any] = {
        "training": False,
        "_parameters": collections.OrderedDict(
            (n, conv(n, p, True)) for n, p in module._parameters.items() if p is not None
        ),
        "_buffers": collections.OrderedDict(
            (n, None if b is None else conv(n, b, False)) for n, b in module._buffers.items()
        ),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(
            (n, _nvidia_record(m, f"{prefix}{n}.", fp16_min_res)) for n, m in module._modules.items()
        ),
        "_init_args": (),
    }
    for attr in ("weight_gain", "bias_gain"):
        if hasattr(module, attr):
            state[attr] = np.float64(getattr(module, attr))  # NVIDIA computes these with numpy
    for attr in ("in_channels", "out_channels", "resolution", "conv_clamp", "activation", "z_dim", "w_dim", "num_ws"):
        if hasattr(module, attr):
            state[attr] = getattr(module, attr)
    return _Record(
        {
            "type": "class",
            "version": 6,
            "module_src": "import os\nos.system('echo this source must never run')\n",
            "class_name": type(module).__name__,
            "state": state,
        }
    )


def write_nvidia_pickle(
    G: Generator,
    path: str | Path,
    *,
    D: Discriminator | None = None,
    flat_kwargs: bool = False,
    numpy1: bool = False,
    fp16_min_res: int = 0,
    protocol: int = 4,
) -> Path:
    """Write ``G`` as an NVIDIA network pickle ``{G, D, G_ema, training_set_kwargs, augment_pipe}``.

    Args:
        D: the discriminator, stored under NVIDIA's module names and ``_init_kwargs``; None writes a generator-only
            pickle (no ``D`` key).
        flat_kwargs: stylegan3 repo layout (synthesis kwargs flat in ``_init_kwargs``) instead of ada-pytorch's
            nested ``synthesis_kwargs``.
        numpy1: write numpy 1.x module names (``numpy.core.multiarray``); forces pickle protocol 3.
        fp16_min_res: store synthesis tensors of blocks at ``res >= fp16_min_res`` as float16 (0: none).
    """
    cfg = G.config
    syn = {
        "channel_base": cfg.channel_base,
        "channel_max": cfg.channel_max,
        "num_fp16_res": cfg.num_fp16_res,
        "conv_clamp": cfg.conv_clamp,
        "architecture": cfg.architecture,
    }
    mapping = _EasyDict(num_layers=cfg.mapping_layers, lr_multiplier=cfg.mapping_lr_multiplier)
    kwargs = _EasyDict(
        z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.img_resolution, img_channels=3
    )
    kwargs["mapping_kwargs"] = mapping
    if flat_kwargs:
        kwargs.update(syn)
    else:
        kwargs["synthesis_kwargs"] = _EasyDict(syn)
    g_ema = _nvidia_record(G, "", fp16_min_res)
    g_ema.meta["state"]["_init_kwargs"] = kwargs
    g_ema.meta["state"]["img_resolution"] = cfg.img_resolution
    blob: dict[str, Any] = {"G": g_ema}  # the key order of NVIDIA's training/training_loop.py snapshots
    if D is not None:
        blob["D"] = _nvidia_d_record(D)
    blob.update(G_ema=g_ema, training_set_kwargs={"resolution": 0}, augment_pipe=None)
    return _dump(blob, path, protocol=3 if numpy1 else protocol, numpy1=numpy1)


def _sg3_attributes(module: torch.nn.Module) -> dict[str, Any]:
    """The plain attributes NVIDIA's networks_stylegan3 modules keep in ``__dict__`` (numpy sizes and rates)."""
    from wplus.models import stylegan3

    size2 = lambda n: np.broadcast_to(np.asarray(n), [2])  # noqa: E731 (NVIDIA stores sizes as numpy [w, h])
    if isinstance(module, stylegan3.SynthesisInput):
        return dict(
            w_dim=module.w_dim,
            channels=module.channels,
            size=size2(module.size),
            sampling_rate=np.float64(module.sampling_rate),
            bandwidth=np.float64(module.bandwidth),
        )
    if isinstance(module, stylegan3.SynthesisLayer):
        s = module.spec
        return dict(
            is_torgb=s.is_torgb,
            is_critically_sampled=s.is_critically_sampled,
            use_fp16=False,
            in_channels=s.in_channels,
            out_channels=s.out_channels,
            in_size=size2(s.in_size),
            out_size=size2(s.out_size),
            in_sampling_rate=s.in_sampling_rate,
            out_sampling_rate=s.out_sampling_rate,
            tmp_sampling_rate=s.in_sampling_rate * s.up_factor,
            in_cutoff=np.float64(s.in_cutoff),
            out_cutoff=np.float64(s.out_cutoff),
            in_half_width=np.float64(s.in_half_width),
            out_half_width=np.float64(s.out_half_width),
            conv_kernel=s.conv_kernel,
            conv_clamp=module.conv_clamp,
            up_factor=s.up_factor,
            up_taps=s.up_taps,
            down_factor=s.down_factor,
            down_taps=s.down_taps,
            down_radial=s.down_radial,
            padding=list(s.padding),
        )
    if isinstance(module, stylegan3.SynthesisNetwork):
        return dict(num_ws=module.num_ws, layer_names=list(module.layer_names), output_scale=module.output_scale)
    return {}


def _sg3_record(module: torch.nn.Module) -> _Record:
    record = _nvidia_record(module, "", 0)
    record.meta["state"].update(_sg3_attributes(module))
    record.meta["state"]["_modules"] = collections.OrderedDict((n, _sg3_record(m)) for n, m in module._modules.items())
    return record


def write_nvidia_stylegan3_pickle(
    G: torch.nn.Module, path: str | Path, *, numpy1: bool = False, nested_kwargs: bool = False, protocol: int = 4
) -> Path:
    """Write a StyleGAN3 ``G`` as the stylegan3 repo's network pickle: persistence records of
    ``training.networks_stylegan3`` classes with their numpy attributes, and ``_init_kwargs`` as train.py builds
    them (synthesis kwargs flat; ``nested_kwargs`` puts them under ``synthesis_kwargs`` instead)."""
    import dataclasses

    cfg = G.config
    defaults = type(cfg)()
    mapping = _EasyDict(num_layers=cfg.mapping_layers)
    if cfg.mapping_lr_multiplier != defaults.mapping_lr_multiplier:
        mapping["lr_multiplier"] = cfg.mapping_lr_multiplier
    if cfg.w_avg_beta != defaults.w_avg_beta:
        mapping["w_avg_beta"] = cfg.w_avg_beta
    syn = _EasyDict(
        channel_base=cfg.channel_base, channel_max=cfg.channel_max, magnitude_ema_beta=cfg.magnitude_ema_beta
    )
    skip = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_layers", "mapping_lr_multiplier"}
    for f in dataclasses.fields(cfg):
        if f.init and f.name not in skip | {"w_avg_beta"} and getattr(cfg, f.name) != getattr(defaults, f.name):
            syn[f.name] = getattr(cfg, f.name)
    kwargs = _EasyDict(
        z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels, mapping_kwargs=mapping,
    )  # fmt: skip
    if nested_kwargs:
        kwargs["synthesis_kwargs"] = syn
    else:
        kwargs.update(syn)
    g_ema = _sg3_record(G)
    g_ema.meta["state"].update(_init_kwargs=kwargs, img_resolution=cfg.img_resolution, c_dim=cfg.c_dim)
    blob = {"G": g_ema, "G_ema": g_ema, "training_set_kwargs": {"resolution": cfg.img_resolution}, "augment_pipe": None}
    return _dump(blob, path, protocol=3 if numpy1 else protocol, numpy1=numpy1)


# --------------------------------------------------------------------------------------------------------------------
# TF StyleGAN2 pickle


def _tf_conv(state: dict[str, torch.Tensor], src: str, dst: str, out: list, *, flip: bool) -> None:
    w = state[f"{src}.weight"].numpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if flip:
        w = w[::-1, ::-1]
    out.append((f"{dst}/weight", np.ascontiguousarray(w)))
    if f"{src}.affine.weight" in state:
        out.append((f"{dst}/mod_weight", state[f"{src}.affine.weight"].numpy().T.copy()))
        out.append((f"{dst}/mod_bias", state[f"{src}.affine.bias"].numpy() - 1))
    if f"{src}.noise_strength" in state:
        out.append((f"{dst}/noise_strength", state[f"{src}.noise_strength"].numpy().copy()))
    if f"{src}.bias" in state:
        out.append((f"{dst}/bias", state[f"{src}.bias"].numpy().copy()))


def tf_d_variables(D: Discriminator) -> list[tuple[str, np.ndarray]]:
    """``D``'s variables as TF's ``D_stylegan2`` names them: conv kernels HWIO (not flipped), dense [in, out]."""
    st = {k: v.detach().float().cpu().numpy() for k, v in D.state_dict().items()}
    res, out = D.img_resolution, []

    def conv(src: str, dst: str) -> None:
        out.append((f"{dst}/weight", np.ascontiguousarray(st[f"{src}.weight"].transpose(2, 3, 1, 0))))
        if f"{src}.bias" in st:
            out.append((f"{dst}/bias", st[f"{src}.bias"].copy()))

    conv("fromrgb", f"{res}x{res}/FromRGB")
    for r in D.block_resolutions:
        conv(f"b{r}.conv0", f"{r}x{r}/Conv0")
        conv(f"b{r}.conv1", f"{r}x{r}/Conv1_down")
        if f"b{r}.skip.weight" in st:
            conv(f"b{r}.skip", f"{r}x{r}/Skip")
    conv("conv", "4x4/Conv")
    for src, dst in (("fc", "4x4/Dense0"), ("out", "Output")):
        out.append((f"{dst}/weight", st[f"{src}.weight"].T.copy()))
        out.append((f"{dst}/bias", st[f"{src}.bias"].copy()))
    return out


def write_tf_pickle(
    G: Generator, path: str | Path, *, D: Discriminator | None = None, version: int = 4, numpy1: bool = False
) -> Path:
    """Write ``G`` as a TF StyleGAN2 (``version=4``, with ``lod``) or StyleGAN2-ADA (``version=5``) pickle.

    ``D`` (unconditional) becomes the pickle's ``D`` network with its variables and static kwargs; None writes a
    ``D`` without variables.
    """
    cfg, state = G.config, {k: v.detach().float().cpu() for k, v in G.state_dict().items()}
    res = cfg.img_resolution
    mapping_vars = []
    for i in range(cfg.mapping_layers):
        mapping_vars.append((f"Dense{i}/weight", state[f"mapping.fc{i}.weight"].numpy().T.copy()))
        mapping_vars.append((f"Dense{i}/bias", state[f"mapping.fc{i}.bias"].numpy().copy()))
    syn_vars: list = [("4x4/Const/const", state["synthesis.b4.const"].numpy()[None].copy())]
    _tf_conv(state, "synthesis.b4.conv1", "4x4/Conv", syn_vars, flip=False)
    r = 4
    while r <= res:
        if r > 4:
            _tf_conv(state, f"synthesis.b{r}.conv0", f"{r}x{r}/Conv0_up", syn_vars, flip=True)
            _tf_conv(state, f"synthesis.b{r}.conv1", f"{r}x{r}/Conv1", syn_vars, flip=False)
        if f"synthesis.b{r}.torgb.weight" in state:
            name = f"{r}x{r}/ToRGB" if cfg.architecture != "orig" else "ToRGB_lod0"
            _tf_conv(state, f"synthesis.b{r}.torgb", name, syn_vars, flip=False)
        if f"synthesis.b{r}.skip.weight" in state:
            _tf_conv(state, f"synthesis.b{r}.skip", f"{r}x{r}/Skip", syn_vars, flip=True)
        r *= 2
    for i, layer in enumerate(G.synthesis.noise_layers()):
        syn_vars.append((f"noise{i}", layer.noise_const.detach().cpu().numpy()[None, None].copy()))
    common = {"num_channels": 3, "resolution": res, "latent_size": cfg.z_dim, "dlatent_size": cfg.w_dim}
    static = {
        **common,
        "label_size": cfg.c_dim,
        "fmap_base": cfg.channel_base // 2,
        "fmap_max": cfg.channel_max,
        "mapping_layers": cfg.mapping_layers,
        "architecture": cfg.architecture,
    }
    if version >= 5 and cfg.conv_clamp is not None:
        static["conv_clamp"] = cfg.conv_clamp

    def net(name: str, func: str, variables: list, components: dict | None = None, kw: dict | None = None) -> _Network:
        st: dict[str, Any] = {
            "version": version,
            "name": name,
            "static_kwargs": kw or {},
            "components": _EasyDict(components or {}),
            "build_module_src": "import os\nos.system('echo this source must never run')\n",
            "build_func_name": func,
            "variables": variables,
        }
        if version >= 5:
            st.update(input_shapes=[[None, cfg.z_dim]], output_shapes=[[None, 3, res, res]])
            st.update(input_names=["latents_in"], output_names=["images_out"])
        return _Network(st)

    own = [("dlatent_avg", state["mapping.w_avg"].numpy().copy())]
    if version == 4:
        own.insert(0, ("lod", np.array(0.0, dtype=np.float32)))
    comps = {
        "mapping": net("G_mapping", "G_mapping", mapping_vars, kw=dict(common)),
        "synthesis": net("G_synthesis", "G_synthesis_stylegan2", syn_vars, kw=dict(common)),
    }
    gs = net("G", "G_main", own, comps, static)
    d = net("D", "D_stylegan2", [], kw={"num_channels": 3})
    if D is not None:
        dc = D.config
        d_kw = {
            "num_channels": dc.img_channels,
            "resolution": dc.img_resolution,
            "label_size": 0,
            "fmap_base": dc.channel_base // 2,
            "fmap_max": dc.channel_max,
            "architecture": dc.architecture,
            "mbstd_group_size": dc.mbstd_group_size,
            "mbstd_num_features": dc.mbstd_num_channels,
            "resample_kernel": list(dc.resample_filter),
        }
        if version >= 5 and dc.conv_clamp is not None:
            d_kw["conv_clamp"] = dc.conv_clamp
        d = net("D", "D_stylegan2" if version == 4 else "D_main", tf_d_variables(D), kw=d_kw)
    return _dump((gs, d, gs), path, protocol=3 if numpy1 else 4, numpy1=numpy1)


# --------------------------------------------------------------------------------------------------------------------
# rosinality .pt


def rosinality_d_state(D: Discriminator) -> dict[str, torch.Tensor]:
    """``D`` (resnet, no conv_clamp) under rosinality's ``Discriminator`` names (``convs``, ``final_*``)."""
    st = {k: v.detach().float().cpu().clone() for k, v in D.state_dict().items()}
    kernel = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64  # Blur: make_kernel
    d: dict[str, torch.Tensor] = collections.OrderedDict()
    d["convs.0.0.weight"], d["convs.0.1.bias"] = st["fromrgb.weight"], st["fromrgb.bias"]
    for i, r in enumerate(D.block_resolutions, start=1):
        d[f"convs.{i}.conv1.0.weight"], d[f"convs.{i}.conv1.1.bias"] = st[f"b{r}.conv0.weight"], st[f"b{r}.conv0.bias"]
        d[f"convs.{i}.conv2.0.kernel"] = kernel.clone()
        d[f"convs.{i}.conv2.1.weight"], d[f"convs.{i}.conv2.2.bias"] = st[f"b{r}.conv1.weight"], st[f"b{r}.conv1.bias"]
        d[f"convs.{i}.skip.0.kernel"] = kernel.clone()
        d[f"convs.{i}.skip.1.weight"] = st[f"b{r}.skip.weight"]
    d["final_conv.0.weight"], d["final_conv.1.bias"] = st["conv.weight"], st["conv.bias"]
    d["final_linear.0.weight"], d["final_linear.0.bias"] = st["fc.weight"], st["fc.bias"]
    d["final_linear.1.weight"], d["final_linear.1.bias"] = st["out.weight"], st["out.bias"]
    return d


def write_rosinality(
    G: Generator,
    path: str | Path,
    *,
    D: Discriminator | None = None,
    with_args: bool = True,
    with_latent_avg: bool = True,
) -> Path:
    """Write ``G`` as a rosinality checkpoint ``{'g_ema', 'latent_avg'[, 'args']}`` with ``torch.save`` (zip).

    With ``D``: a training checkpoint as rosinality's ``train.py`` saves it (``g``, ``d``, ``g_ema``, ``g_optim``,
    ``d_optim``, ``args``, ``ada_aug_p``).
    """
    cfg, state = G.config, {k: v.detach().float().cpu() for k, v in G.state_dict().items()}
    g = rosinality_g_state(G)
    ckpt: dict[str, Any] = {"g_ema": g}
    if D is not None:
        d = rosinality_d_state(D)
        params = [torch.nn.Parameter(v.clone()) for k, v in d.items() if not k.endswith("kernel")]
        adam = torch.optim.Adam(params, lr=0.002)
        sum(p.sum() for p in params).backward()
        adam.step()  # an optimiser state with step counts and moments, as a real checkpoint has
        ckpt.update(g=dict(g), d=d, g_optim=adam.state_dict(), d_optim=adam.state_dict(), ada_aug_p=0.0)
    if with_latent_avg:
        ckpt["latent_avg"] = state["mapping.w_avg"]
    if with_args:
        ckpt["args"] = argparse.Namespace(
            size=cfg.img_resolution, n_mlp=cfg.mapping_layers, channel_multiplier=cfg.channel_base // 16384 or 1
        )
    torch.save(ckpt, path)
    return Path(path)


def rosinality_g_state(G: Generator) -> dict[str, torch.Tensor]:
    """``G`` under rosinality's ``Generator`` names (``style``, ``conv1``, ``convs``, ``to_rgbs``, ``noises``)."""
    cfg, state = G.config, {k: v.detach().float().cpu() for k, v in G.state_dict().items()}
    g: dict[str, torch.Tensor] = collections.OrderedDict()
    for i in range(cfg.mapping_layers):
        g[f"style.{i + 1}.weight"] = state[f"mapping.fc{i}.weight"]
        g[f"style.{i + 1}.bias"] = state[f"mapping.fc{i}.bias"]
    g["input.input"] = state["synthesis.b4.const"][None]
    kernel = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64

    def styled(src: str, dst: str, up: bool) -> None:
        g[f"{dst}.conv.weight"] = state[f"{src}.weight"][None]
        g[f"{dst}.conv.modulation.weight"] = state[f"{src}.affine.weight"]
        g[f"{dst}.conv.modulation.bias"] = state[f"{src}.affine.bias"]
        if up:
            g[f"{dst}.conv.blur.kernel"] = kernel * 4
        g[f"{dst}.noise.weight"] = state[f"{src}.noise_strength"].reshape(1)
        g[f"{dst}.activate.bias"] = state[f"{src}.bias"]

    def to_rgb(src: str, dst: str, up: bool) -> None:
        g[f"{dst}.conv.weight"] = state[f"{src}.weight"][None]
        g[f"{dst}.conv.modulation.weight"] = state[f"{src}.affine.weight"]
        g[f"{dst}.conv.modulation.bias"] = state[f"{src}.affine.bias"]
        g[f"{dst}.bias"] = state[f"{src}.bias"].reshape(1, -1, 1, 1)
        if up:
            g[f"{dst}.upsample.kernel"] = kernel * 4

    styled("synthesis.b4.conv1", "conv1", False)
    to_rgb("synthesis.b4.torgb", "to_rgb1", False)
    for k in range(1, int(math.log2(cfg.img_resolution)) - 1):
        r = 4 * 2**k
        styled(f"synthesis.b{r}.conv0", f"convs.{2 * k - 2}", True)
        styled(f"synthesis.b{r}.conv1", f"convs.{2 * k - 1}", False)
        to_rgb(f"synthesis.b{r}.torgb", f"to_rgbs.{k - 1}", True)
    for i, layer in enumerate(G.synthesis.noise_layers()):
        g[f"noises.noise_{i}"] = layer.noise_const.detach().cpu()[None, None].clone()
    return g
