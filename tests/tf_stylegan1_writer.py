"""Writes StyleGAN (v1) TF network pickles in the original on-disk structure, for tests (no TensorFlow needed).

The file is a pickle of ``(G, D, Gs)``: three ``dnnlib.tflib.network.Network`` objects whose state is the dict of
dnnlib.tflib.Network's pickled state, with variables as numpy float32 arrays in TF layouts (dense [in, out], conv [kh,
kw, in, out])
named and shaped as in 1.5. The ``Network`` class lives in a fake ``dnnlib.tflib.network`` module that is put into
``sys.modules`` only while pickling, so the pickle refers to it by that exact name, like the real files.

Written from the format notes only; shares no code with ``wplus``.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from pathlib import Path

import numpy as np

SOURCE_STUB = "raise RuntimeError('the build module source must never be executed')\n"


class Network:
    """Pickled by reference as ``dnnlib.tflib.network.Network``; state = the network-state dict."""

    def __init__(self, state: dict):
        self.state = state

    def __getstate__(self) -> dict:
        return self.state

    def __setstate__(self, state: dict) -> None:
        self.state = state


Network.__module__ = "dnnlib.tflib.network"


@contextlib.contextmanager
def fake_dnnlib():
    """Register ``dnnlib``, ``dnnlib.tflib`` and ``dnnlib.tflib.network`` (with :class:`Network`) for pickling."""
    names = ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network")
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    mods["dnnlib.tflib.network"].Network = Network
    sys.modules.update(mods)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def nf(stage: int, fmap_base: int, fmap_max: int) -> int:
    return min(int(fmap_base / 2.0**stage), fmap_max)


def tf_variables(
    resolution: int = 1024,
    *,
    fmap_base: int = 8192,
    fmap_max: int = 512,
    z_dim: int = 512,
    w_dim: int = 512,
    mapping_layers: int = 8,
    mapping_fmaps: int = 512,
    seed: int | None = None,
    lod: float = 0.0,
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Own variables of Gs, G_mapping and G_synthesis, in TF creation order; zeros when ``seed`` is None.

    With a seed, weights are N(0, 1) (mapping weights N(0, 1/0.01^2) as TF initialises them with lrmul 0.01),
    biases, noise weights and style biases small, so every term of the forward pass matters.
    """
    rng = None if seed is None else np.random.default_rng(seed)

    def value(shape: tuple[int, ...], std: float = 1.0) -> np.ndarray:
        if rng is None:
            return np.zeros(shape, np.float32)
        return (rng.standard_normal(shape) * std).astype(np.float32)

    log2 = int(np.log2(resolution))
    mapping = []
    dims = [z_dim] + [mapping_fmaps] * (mapping_layers - 1) + [w_dim]
    for i in range(mapping_layers):
        mapping.append((f"Dense{i}/weight", value((dims[i], dims[i + 1]), 100.0)))
        mapping.append((f"Dense{i}/bias", value((dims[i + 1],), 10.0)))

    synthesis = [("lod", np.float32(lod))]
    num_layers = 2 * log2 - 2
    for i in range(num_layers):
        r = 2 ** (i // 2 + 2)
        synthesis.append((f"noise{i}", value((1, 1, r, r))))

    def epilogue(path: str, c: int) -> list[tuple[str, np.ndarray]]:
        return [
            (f"{path}/Noise/weight", value((c,), 0.3)),
            (f"{path}/bias", value((c,), 0.3)),
            (f"{path}/StyleMod/weight", value((w_dim, 2 * c))),
            (f"{path}/StyleMod/bias", value((2 * c,), 0.3)),
        ]

    def torgb(res_log2: int) -> list[tuple[str, np.ndarray]]:
        c = nf(res_log2 - 1, fmap_base, fmap_max)
        return [
            (f"ToRGB_lod{log2 - res_log2}/weight", value((1, 1, c, 3))),
            (f"ToRGB_lod{log2 - res_log2}/bias", value((3,), 0.1)),
        ]

    c4 = nf(1, fmap_base, fmap_max)
    const = value((1, c4, 4, 4)) if rng is not None else np.ones((1, c4, 4, 4), np.float32)
    synthesis += [("4x4/Const/const", const)] + epilogue("4x4/Const", c4)
    synthesis += [("4x4/Conv/weight", value((3, 3, c4, c4)))] + epilogue("4x4/Conv", c4)
    synthesis += torgb(2)
    for k in range(3, log2 + 1):
        r, cin, cout = 2**k, nf(k - 2, fmap_base, fmap_max), nf(k - 1, fmap_base, fmap_max)
        synthesis += [(f"{r}x{r}/Conv0_up/weight", value((3, 3, cin, cout)))] + epilogue(f"{r}x{r}/Conv0_up", cout)
        synthesis += [(f"{r}x{r}/Conv1/weight", value((3, 3, cout, cout)))] + epilogue(f"{r}x{r}/Conv1", cout)
        synthesis += torgb(k)
    gs = [("lod", np.float32(lod)), ("dlatent_avg", value((w_dim,), 0.5))]
    return {"Gs": gs, "G_mapping": mapping, "G_synthesis": synthesis}


def network_state(name: str, func: str, variables: list, components: dict | None = None, **static) -> dict:
    return {
        "version": 3,
        "name": name,
        "static_kwargs": dict(static),
        "components": dict(components or {}),
        "build_module_src": SOURCE_STUB,
        "build_func_name": func,
        "variables": list(variables),
    }


def build_networks(variables: dict[str, list], resolution: int, *, version: int = 3) -> tuple:
    """(G, D, Gs) Network objects; G shares Gs's arrays (the pickle memo stores them once)."""
    static = dict(num_channels=3, resolution=resolution, label_size=0)
    num_layers = 2 * int(np.log2(resolution)) - 2

    def gstyle(name: str) -> Network:
        syn = Network(network_state("G_synthesis", "G_synthesis", variables["G_synthesis"], **static))
        mapping = Network(
            network_state("G_mapping", "G_mapping", variables["G_mapping"], dlatent_broadcast=num_layers, **static)
        )
        net = Network(network_state(name, "G_style", variables["Gs"], {"synthesis": syn, "mapping": mapping}, **static))
        net.state["version"] = version
        return net

    d = Network(network_state("D", "D_basic", [("4x4/Dense1/bias", np.zeros((1,), np.float32))], **static))
    return gstyle("G"), d, gstyle("Gs")


def write_pickle(path: Path, networks: object, *, protocol: int = 4) -> Path:
    with fake_dnnlib():
        data = pickle.dumps(networks, protocol=protocol)
    Path(path).write_bytes(data)
    return Path(path)


def write_tf_stylegan1(path: Path, resolution: int, *, protocol: int = 4, **kwargs) -> dict[str, list]:
    """Write a StyleGAN v1 pickle; returns the variables written (name -> array lists per network)."""
    variables = tf_variables(resolution, **kwargs)
    write_pickle(path, build_networks(variables, resolution), protocol=protocol)
    return variables
