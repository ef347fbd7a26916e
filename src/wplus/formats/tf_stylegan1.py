"""Reader of the original TF StyleGAN (v1) network pickles (``karras2019stylegan-*.pkl``), executing nothing.

The file is a pickle of ``(G, D, Gs)``, three ``dnnlib.tflib.network.Network`` objects whose state is a dict
(version, name, static_kwargs, components, build_module_src, build_func_name, variables) (dnnlib.tflib.Network's
``__getstate__``).
Unpickling their real class would ``exec`` the stored ``build_module_src``; we map the few globals the format needs
to stand-ins through :func:`wplus.formats.safe_pickle.safe_load` and rebuild our module from ``Gs``'s
variables. NVIDIA's own converter refuses these pickles (version < 4).

TF variable -> ``wplus.models.stylegan1`` parameter (TF layouts: dense [in, out], conv [kh, kw, in, out]):

=========================================================  =========================================================
``Gs/dlatent_avg`` [w]                                     ``mapping.w_avg``
``Gs/lod`` ()                                              checked to be 0, not stored
``G_mapping/Dense{i}/weight`` [in, out] / ``bias``         ``mapping.fc{i}.weight`` [out, in] (transposed) / ``.bias``
``G_synthesis/4x4/Const/const`` [1, C, 4, 4]               ``synthesis.b4.layer0.const``
``G_synthesis/4x4/Const/...``                              ``synthesis.b4.layer0.*`` (epilogue below)
``G_synthesis/4x4/Conv/...``                               ``synthesis.b4.layer1.*``
``G_synthesis/{r}x{r}/Conv0_up/...``                       ``synthesis.b{r}.layer0.*``
``G_synthesis/{r}x{r}/Conv1/...``                          ``synthesis.b{r}.layer1.*``
``<layer>/weight`` [3, 3, in, out]                         ``<layer>.weight`` [out, in, 3, 3] (permute 3, 2, 0, 1)
``<layer>/Noise/weight`` [C], ``<layer>/bias`` [C]         ``<layer>.noise_weight``, ``<layer>.bias``
``<layer>/StyleMod/weight`` [w, 2C] / ``bias`` [2C]        ``<layer>.style.weight`` [2C, w] (transposed) / ``.bias``
``G_synthesis/noise{i}`` [1, 1, r, r]                      ``<layer i>.noise_const`` [r, r] (the const noise)
``G_synthesis/ToRGB_lod0/weight`` [1, 1, C, 3] / ``bias``  ``synthesis.torgb.weight`` [3, C, 1, 1] / ``.bias``
``G_synthesis/ToRGB_lod{1..}`` , ``G_synthesis/lod``       unused at lod 0 (progressive-growing leftovers), skipped
=========================================================  =========================================================
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wplus.errors import CheckpointError
from wplus.formats.safe_pickle import AllowList, numpy_globals, safe_load
from wplus.models.stylegan1 import Generator, StyleGAN1Config

__all__ = ["load_tf_stylegan1", "read_tf_stylegan1", "is_tf_stylegan1", "TFStyleGAN1", "TFNetwork", "allowed_globals"]

log = logging.getLogger(__name__)


class TFNetwork:
    """Stand-in for ``dnnlib.tflib.network.Network``: keeps the pickled state dict and nothing else."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"_invalid_state": state}


class _EasyDict(dict):
    """``dnnlib.util.EasyDict`` read as a plain dict (attribute access is never needed)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding != "latin1":
        raise CheckpointError(None, f"refusing to load: _codecs.encode with {encoding!r}, expected 'latin1'")
    return text.encode("latin1")


def allowed_globals(protocol: int) -> AllowList:
    """The globals a StyleGAN v1 network pickle may ask for (dnnlib.tflib), mapped to safe stand-ins."""
    allowed: dict[tuple[str, str], Any] = {
        ("dnnlib.tflib.network", "Network"): TFNetwork,
        ("dnnlib.util", "EasyDict"): _EasyDict,
        **numpy_globals(),
    }
    if protocol <= 2:
        allowed[("_codecs", "encode")] = _latin1_encode  # protocol 2 stores bytes as latin-1 text
    return allowed


@dataclass
class TFStyleGAN1:
    """What a TF StyleGAN pickle holds, converted: config, our state dict, and provenance figures."""

    config: StyleGAN1Config
    state_dict: dict[str, torch.Tensor]
    num_trainable: int  # trainable elements of Gs (mapping + synthesis, every ToRGB included): 26,219,627 at 1024
    static_kwargs: dict[str, Any]


def is_tf_stylegan1(obj: Any) -> bool:
    """True if an unpickled object looks like a StyleGAN v1 ``(G, D, Gs)`` tuple (a sniff, no validation)."""
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, TFNetwork) for n in obj)):
        return False
    state = obj[2].state
    return state.get("build_func_name") == "G_style" and set(state.get("components") or {}) >= {"synthesis", "mapping"}


def _pickle_protocol(data: bytes) -> int:
    return data[1] if len(data) > 1 and data[0] == 0x80 else 0


def _variables(net: TFNetwork, what: str, path: Path) -> dict[str, np.ndarray]:
    """A network's own variables as float32 arrays, after checking the state structure and dtypes."""
    state = net.state
    version = state.get("version")
    if version not in (2, 3):
        raise CheckpointError(
            path,
            f"{what} has network-state version {version!r}, expected 2 or 3 (StyleGAN v1); "
            "StyleGAN2 TF pickles (version 4) are read by the StyleGAN2 reader",
        )
    pairs = state.get("variables")
    if not isinstance(pairs, list):
        raise CheckpointError(path, f"{what} has no variables list; not a TF network pickle")
    out: dict[str, np.ndarray] = {}
    for item in pairs:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise CheckpointError(path, f"{what}: malformed variable entry; expected (name, array) pairs")
        name, value = item
        if not isinstance(value, (np.ndarray, np.generic)) or value.dtype != np.float32:
            kind = getattr(value, "dtype", type(value).__name__)
            raise CheckpointError(path, f"{what}/{name} is {kind}, expected float32")
        out[name] = np.asarray(value)
    return out


def _need(vars_: dict[str, np.ndarray], name: str, what: str, path: Path) -> np.ndarray:
    if name not in vars_:
        raise CheckpointError(path, f"{what} has no variable {name!r}; not a StyleGAN v1 generator")
    return vars_[name]


def _config_from_variables(
    gs: dict[str, np.ndarray], mapping: dict[str, np.ndarray], synthesis: dict[str, np.ndarray], path: Path
) -> StyleGAN1Config:
    dlatent_avg = _need(gs, "dlatent_avg", "Gs", path)
    num_mapping = len([n for n in mapping if re.fullmatch(r"Dense\d+/weight", n)])
    dense0 = _need(mapping, "Dense0/weight", "G_mapping", path)
    blocks = [int(m.group(1)) for n in synthesis if (m := re.fullmatch(r"(\d+)x\1/Conv1/weight", n))]
    resolution = max(blocks, default=4)
    const = _need(synthesis, "4x4/Const/const", "G_synthesis", path)
    torgb = _need(synthesis, "ToRGB_lod0/weight", "G_synthesis", path)
    if const.ndim != 4 or torgb.ndim != 4 or dense0.ndim != 2 or dlatent_avg.ndim != 1:
        raise CheckpointError(path, "unexpected variable ranks for const / ToRGB_lod0 / Dense0 / dlatent_avg")
    # nf(stage) = min(fmap_base / 2**stage, fmap_max): the last block has stage log2(R) - 1 (never capped in the
    # official models), the 4x4 const has the cap. Every shape is checked against the built module afterwards.
    return StyleGAN1Config(
        z_dim=int(dense0.shape[0]),
        w_dim=int(dlatent_avg.shape[0]),
        img_resolution=resolution,
        img_channels=int(torgb.shape[3]),
        mapping_layers=num_mapping,
        mapping_fmaps=int(dense0.shape[1]),
        fmap_base=int(torgb.shape[2]) * 2 ** (int(math.log2(resolution)) - 1),
        fmap_max=int(const.shape[1]),
        letterbox_rows=64 if resolution == 512 else 0,  # the only official 512-px StyleGAN is LSUN car 512x384
    )


def _layer_paths(resolution: int) -> list[tuple[str, str]]:
    """(TF path, our module path) of every styled layer, in W+ row order."""
    out = [("4x4/Const", "synthesis.b4.layer0"), ("4x4/Conv", "synthesis.b4.layer1")]
    for k in range(3, int(math.log2(resolution)) + 1):
        r = 2**k
        out += [(f"{r}x{r}/Conv0_up", f"synthesis.b{r}.layer0"), (f"{r}x{r}/Conv1", f"synthesis.b{r}.layer1")]
    return out


def _convert(
    cfg: StyleGAN1Config, gs: dict[str, np.ndarray], mapping: dict[str, np.ndarray], syn: dict[str, np.ndarray], path
) -> dict[str, torch.Tensor]:
    sd: dict[str, np.ndarray] = {"mapping.w_avg": gs["dlatent_avg"]}
    used_m, used_s = set(), {"lod"}
    for i in range(cfg.mapping_layers):
        sd[f"mapping.fc{i}.weight"] = _need(mapping, f"Dense{i}/weight", "G_mapping", path).T
        sd[f"mapping.fc{i}.bias"] = _need(mapping, f"Dense{i}/bias", "G_mapping", path)
        used_m |= {f"Dense{i}/weight", f"Dense{i}/bias"}
    for i, (tf, ours) in enumerate(_layer_paths(cfg.img_resolution)):
        names = {
            "noise_weight": f"{tf}/Noise/weight",
            "bias": f"{tf}/bias",
            "style.weight": f"{tf}/StyleMod/weight",
            "style.bias": f"{tf}/StyleMod/bias",
        }
        names["const" if i == 0 else "weight"] = f"{tf}/const" if i == 0 else f"{tf}/weight"
        for key, tf_name in names.items():
            value = _need(syn, tf_name, "G_synthesis", path)
            if key == "weight":
                value = value.transpose(3, 2, 0, 1)
            elif key == "style.weight":
                value = value.T
            sd[f"{ours}.{key}"] = value
        noise = _need(syn, f"noise{i}", "G_synthesis", path)
        sd[f"{ours}.noise_const"] = noise.reshape(noise.shape[-2:])  # [1, 1, r, r] -> [r, r]
        used_s |= set(names.values()) | {f"noise{i}"}
    sd["synthesis.torgb.weight"] = syn["ToRGB_lod0/weight"].transpose(3, 2, 0, 1)
    sd["synthesis.torgb.bias"] = _need(syn, "ToRGB_lod0/bias", "G_synthesis", path)
    used_s |= {"ToRGB_lod0/weight", "ToRGB_lod0/bias"}
    unused_torgb = {n for n in syn if re.fullmatch(r"ToRGB_lod[1-9]\d*/(weight|bias)", n)}
    unknown = sorted(
        {f"G_mapping/{n}" for n in set(mapping) - used_m}
        | {f"G_synthesis/{n}" for n in set(syn) - used_s - unused_torgb}
    )
    if unknown:
        raise CheckpointError(path, f"unexpected variables {unknown[:5]}; not the StyleGAN v1 G_style layout")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def read_tf_stylegan1(path: str | Path) -> TFStyleGAN1:
    """Unpickle a TF StyleGAN v1 network pickle safely and convert ``Gs`` to our layout (no torch module built).

    Raises:
        CheckpointError: unreadable file, a global outside the allow-list, or not a StyleGAN v1 ``(G, D, Gs)``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(path, f"cannot read file ({e.strerror or e})") from None
    try:
        obj = safe_load(data, allowed_globals(_pickle_protocol(data)), path=path, encoding="latin1")
    except CheckpointError as e:
        if e.path is None:  # raised by a stand-in, which does not know the file
            raise CheckpointError(path, str(e)) from None
        raise
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, TFNetwork) for n in obj)):
        raise CheckpointError(path, f"top level is {type(obj).__name__}, expected the (G, D, Gs) tuple of StyleGAN v1")
    gs_net = obj[2]
    components = gs_net.state.get("components")
    if not isinstance(components, dict) or not all(
        isinstance(components.get(k), TFNetwork) for k in ("synthesis", "mapping")
    ):
        raise CheckpointError(path, "Gs has no 'synthesis' and 'mapping' components; not a StyleGAN v1 generator")
    gs = _variables(gs_net, "Gs", path)
    mapping = _variables(components["mapping"], "G_mapping", path)
    syn = _variables(components["synthesis"], "G_synthesis", path)
    lod = float(_need(gs, "lod", "Gs", path))
    if lod != 0:
        raise CheckpointError(path, f"Gs has lod={lod:g}, expected 0 (a finished, fully grown network)")
    cfg = _config_from_variables(gs, mapping, syn, path)
    static = dict(gs_net.state.get("static_kwargs") or {})
    if "resolution" in static and int(static["resolution"]) != cfg.img_resolution:
        raise CheckpointError(
            path, f"static_kwargs resolution {static['resolution']} != {cfg.img_resolution} (variables)"
        )
    trainable = sum(v.size for n, v in {**mapping, **syn}.items() if n != "lod" and not re.fullmatch(r"noise\d+", n))
    return TFStyleGAN1(cfg, _convert(cfg, gs, mapping, syn, path), int(trainable), static)


def load_tf_stylegan1(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Load ``Gs`` of a TF StyleGAN v1 pickle into :class:`wplus.models.stylegan1.Generator` (eval, frozen).

    ``w_avg`` is the stored ``dlatent_avg``; the constant noise buffers are the stored ``noise{i}`` variables, so
    ``noise_mode='const'`` renders what TF renders with ``randomize_noise=False``.

    Example:
        >>> G = load_tf_stylegan1("karras2019stylegan-ffhq-1024x1024.pkl")  # doctest: +SKIP
    """
    path = Path(path)
    tf = read_tf_stylegan1(path)
    G = Generator(tf.config)
    try:
        G.load_state_dict(tf.state_dict, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).splitlines()[:3])
        raise CheckpointError(path, f"variable shapes do not match a StyleGAN v1 generator: {detail}") from None
    log.info("%s: StyleGAN v1 %dpx, %d trainable TF elements", path, tf.config.img_resolution, tf.num_trainable)
    return G.to(device).eval().requires_grad_(False)
