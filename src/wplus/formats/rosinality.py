"""rosinality stylegan2-pytorch checkpoints (``*.pt``: ``{'g_ema', 'latent_avg', 'args', ...}``).

Read with ``torch.load(weights_only=True)``; ``argparse.Namespace`` (training checkpoints keep their ``args``) is
the one extra class allowed. ``g_ema`` is mapped to NVIDIA names (rosinality/stylegan2-pytorch ``convert_weight.py``):
``style.{i+1}`` ->
``mapping.fc{i}``, ``input.input[0]`` -> ``b4.const``, ``conv1``/``convs.{n}`` -> ``b{r}.conv{j}``,
``to_rgb1``/``to_rgbs.{k}`` -> ``b{r}.torgb``, ``noises.noise_{i}`` -> ``noise_const``, ``latent_avg`` -> ``w_avg``.
A bare state dict already in NVIDIA names (``torch.save(G_ema.state_dict())``) is accepted as well.

Training checkpoints also hold the discriminator under ``d`` (rosinality ``model.py``'s ``Discriminator``):
``convs.0`` (FromRGB ConvLayer) -> ``b{R}.fromrgb``, ``convs.{i}`` (ResBlock ``conv1``, ``conv2``, ``skip``) ->
``b{r}.conv0``, ``b{r}.conv1``, ``b{r}.skip``, ``final_conv`` -> ``b4.conv``, ``final_linear.{0,1}`` -> ``b4.fc``,
``b4.out``. A ConvLayer stores its conv as ``.0.weight`` (``.1.weight`` after a Blur) and its bias in the following
FusedLeakyReLU; its down-sampling Blur (the [1,3,3,1] kernel, padded by (2, 2) before a 3x3 and (1, 1) before a 1x1
stride-2 conv) is NVIDIA's conv2d_resample padding, so the blocks compute the same features.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from wplus.errors import CheckpointError
from wplus.formats.d_state import NoDiscriminatorError, discriminator_from_state
from wplus.formats.sg2_state import generator_from_state
from wplus.models.stylegan2 import Generator
from wplus.models.stylegan2_discriminator import Discriminator

__all__ = [
    "torch_load_safe",
    "rosinality_to_nvidia_state",
    "load_rosinality",
    "generator_from_rosinality",
    "rosinality_d_to_nvidia_state",
    "load_rosinality_discriminator",
]

_IGNORED = re.compile(r".*\.(blur\.kernel|upsample\.kernel)$")


def torch_load_safe(path: str | Path, *, namespace: bool = True, mmap: bool = False, hint: str = "") -> Any:
    """``torch.load(weights_only=True)``; every failure names the file.

    Args:
        namespace: allow ``argparse.Namespace`` (rosinality's ``args``); pSp-family files keep a plain dict.
        mmap: map the tensors from the file instead of reading them (zip files; others are read as usual).
        hint: appended to the message of a refused global.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "the file is empty; expected a torch checkpoint (re-download it)")
    try:
        with torch.serialization.safe_globals([argparse.Namespace] if namespace else []):
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
            except RuntimeError as e:
                if not mmap or "mmap" not in str(e):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln for ln in str(e).splitlines() if "GLOBAL" in ln or "global" in ln]
        detail = lines[0].strip() if lines else str(e).splitlines()[0]
        msg = f"refusing to load: {detail} (not on the allow-list; loading it could run code){hint}"
        raise CheckpointError(path, msg) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError, TypeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(path, f"not a readable torch checkpoint ({first}); the file may be truncated") from None


def _layer_prefix(n: int) -> str:
    """rosinality ``convs.{n}`` -> NVIDIA layer: block 8 has convs 0, 1; block 16 has 2, 3; ..."""
    return f"synthesis.b{4 * 2 ** (n // 2 + 1)}.conv{n % 2}"


def rosinality_to_nvidia_state(g: dict[str, torch.Tensor], *, path: str | Path | None = None) -> dict[str, Any]:
    """Map a rosinality ``g_ema`` state dict to NVIDIA ``G_ema`` names and shapes. Unknown keys are an error."""
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, t in g.items():
        if _IGNORED.match(key):
            continue  # rosinality's fixed blur kernels; ours are built from resample_filter
        if m := re.fullmatch(r"style\.(\d+)\.(weight|bias)", key):
            out[f"mapping.fc{int(m.group(1)) - 1}.{m.group(2)}"] = t
        elif key == "input.input":
            out["synthesis.b4.const"] = t[0]
        elif m := re.fullmatch(r"(conv1|convs\.(\d+))\.(.+)", key):
            prefix = "synthesis.b4.conv1" if m.group(1) == "conv1" else _layer_prefix(int(m.group(2)))
            sub = {
                "conv.weight": ("weight", lambda x: x[0]),
                "conv.modulation.weight": ("affine.weight", lambda x: x),
                "conv.modulation.bias": ("affine.bias", lambda x: x),
                "noise.weight": ("noise_strength", lambda x: x.reshape([])),
                "activate.bias": ("bias", lambda x: x),
            }.get(m.group(3))
            if sub is None:
                unknown.append(key)
                continue
            out[f"{prefix}.{sub[0]}"] = sub[1](t)
        elif m := re.fullmatch(r"(to_rgb1|to_rgbs\.(\d+))\.(.+)", key):
            r = 4 if m.group(1) == "to_rgb1" else 4 * 2 ** (int(m.group(2)) + 1)
            sub = {
                "conv.weight": ("weight", lambda x: x[0]),
                "conv.modulation.weight": ("affine.weight", lambda x: x),
                "conv.modulation.bias": ("affine.bias", lambda x: x),
                "bias": ("bias", lambda x: x.reshape(-1)),
            }.get(m.group(3))
            if sub is None:
                unknown.append(key)
                continue
            out[f"synthesis.b{r}.torgb.{sub[0]}"] = sub[1](t)
        elif m := re.fullmatch(r"noises\.noise_(\d+)", key):
            i = int(m.group(1))
            if i == 0:
                out["synthesis.b4.conv1.noise_const"] = t[0, 0]
            else:
                # b{r}.conv0 <- 2*log2(r)-5, conv1 <- 2*log2(r)-4
                log2 = (i + 5) // 2
                out[f"synthesis.b{2**log2}.conv{(i + 5) % 2}.noise_const"] = t[0, 0]
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(path, f"unrecognised g_ema keys {unknown[:5]}; expected a rosinality StyleGAN2 generator")
    return out


def load_rosinality(path: str | Path, *, device: str | torch.device = "cpu") -> Generator:
    """Read a rosinality ``.pt`` (or a bare NVIDIA-named state dict) into our :class:`Generator`.

    The ``decoder.*`` of a pSp / e4e / ReStyle file is read the same way (so such a file is also a ``--model``).

    ``w_avg`` comes from ``latent_avg``; files without it get ``w_avg`` estimated from 10,000 z samples (seed 123).

    Raises:
        CheckpointError: unreadable file, a refused global, or weights that are not a StyleGAN2 generator.
    """
    ckpt = torch_load_safe(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(path, f"got {type(ckpt).__name__}, expected a dict with 'g_ema' (rosinality checkpoint)")
    if "g_ema" in ckpt:
        if not isinstance(ckpt["g_ema"], dict):
            raise CheckpointError(path, "g_ema is not a state dict")
        return generator_from_rosinality(ckpt["g_ema"], ckpt.get("latent_avg"), path=path, device=device)
    if "mapping.fc0.weight" in ckpt:
        return _generator(dict(ckpt), None, path, device)
    sd = ckpt.get("state_dict")
    if isinstance(sd, dict) and any(isinstance(k, str) and k.startswith("decoder.") for k in sd):
        # pSp / e4e / ReStyle: the decoder stored beside the encoder (wplus.load_encoder reads both)
        g = {k[len("decoder.") :]: v for k, v in sd.items() if isinstance(k, str) and k.startswith("decoder.")}
        return generator_from_rosinality(g, ckpt.get("latent_avg"), path=path, device=device)
    keys = sorted(map(str, ckpt))[:8]
    raise CheckpointError(path, f"got a dict with keys {keys}, expected 'g_ema' (a rosinality checkpoint)")


def generator_from_rosinality(
    g: dict[str, Any],
    latent_avg: torch.Tensor | None,
    *,
    path: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> Generator:
    """Our :class:`Generator` from a rosinality ``g_ema`` state dict (also the ``decoder.*`` of pSp-family files).

    ``latent_avg`` ([w_dim], or rows of it): ``w_avg``; None: estimated from 10,000 z samples (seed 123).
    """
    if not all(isinstance(v, torch.Tensor) for v in g.values()):
        raise CheckpointError(path, "the generator holds non-tensor values; expected a state dict of tensors")
    return _generator(rosinality_to_nvidia_state(g, path=path), latent_avg, path, device)


def _generator(
    state: dict[str, Any], latent_avg: torch.Tensor | None, path: str | Path | None, device: str | torch.device
) -> Generator:
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "g_ema holds non-tensor values; expected a state dict of tensors")
    estimate = "mapping.w_avg" not in state and latent_avg is None
    if latent_avg is not None:
        latent_avg = torch.as_tensor(latent_avg)
        state["mapping.w_avg"] = (latent_avg[0] if latent_avg.ndim == 2 else latent_avg).reshape(-1)
    elif estimate and "mapping.fc0.weight" in state:
        depth = sum(1 for k in state if re.fullmatch(r"mapping\.fc\d+\.weight", k))
        w_dim = state[f"mapping.fc{depth - 1}.weight"].shape[0]
        state["mapping.w_avg"] = torch.zeros(w_dim)
    G = generator_from_state(state, path=path, device=device)
    if estimate:
        G.mapping.w_avg.copy_(G.mean_w(10_000, seed=123))
    return G


def rosinality_d_to_nvidia_state(d: dict[str, Any], *, path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Map a rosinality ``d`` state dict to NVIDIA ``D`` names; Blur kernels become ``resample_filter`` buffers."""
    blocks = sorted({int(m.group(1)) for k in d if (m := re.match(r"convs\.(\d+)\.", k))})
    if not blocks or blocks != list(range(len(blocks))) or len(blocks) < 2:
        raise CheckpointError(path, f"d has convs {blocks}; expected convs.0 (FromRGB) and ResBlocks convs.1, ...")
    res = 4 * 2 ** (len(blocks) - 1)
    layer = {
        "conv1.0.weight": "conv0.weight",
        "conv1.1.bias": "conv0.bias",
        "conv2.0.kernel": "conv1.resample_filter",
        "conv2.1.weight": "conv1.weight",
        "conv2.2.bias": "conv1.bias",
        "skip.0.kernel": "skip.resample_filter",
        "skip.1.weight": "skip.weight",
    }
    fixed = {
        "convs.0.0.weight": f"b{res}.fromrgb.weight",
        "convs.0.1.bias": f"b{res}.fromrgb.bias",
        "final_conv.0.weight": "b4.conv.weight",
        "final_conv.1.bias": "b4.conv.bias",
        "final_linear.0.weight": "b4.fc.weight",
        "final_linear.0.bias": "b4.fc.bias",
        "final_linear.1.weight": "b4.out.weight",
        "final_linear.1.bias": "b4.out.bias",
    }
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, t in d.items():
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(path, f"d[{key!r}] is {type(t).__name__}, expected a tensor")
        if key in fixed:
            out[fixed[key]] = t
        elif (m := re.fullmatch(r"convs\.(\d+)\.(.+)", key)) and m.group(2) in layer and int(m.group(1)) > 0:
            out[f"b{res >> (int(m.group(1)) - 1)}.{layer[m.group(2)]}"] = t
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(path, f"unrecognised d keys {unknown[:5]}; expected a rosinality StyleGAN2 Discriminator")
    return out


def load_rosinality_discriminator(path: str | Path, *, device: str | torch.device = "cpu") -> Discriminator:
    """Read the ``d`` of a rosinality training checkpoint into our :class:`Discriminator` (eval mode, frozen).

    Raises:
        NoDiscriminatorError: the checkpoint has no ``d`` (e.g. a ``g_ema``-only export).
        CheckpointError: unreadable file, a refused global, or weights that are not a StyleGAN2 discriminator.
    """
    from wplus.formats.nvidia_pkl import NO_D_HINT

    ckpt = torch_load_safe(path)
    if not isinstance(ckpt, dict) or "d" not in ckpt:
        keys = sorted(map(str, ckpt))[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise NoDiscriminatorError(path, f"this torch checkpoint has no 'd' (discriminator), got {keys}; {NO_D_HINT}")
    if not isinstance(ckpt["d"], dict):
        raise CheckpointError(path, "d is not a state dict")
    D = discriminator_from_state(rosinality_d_to_nvidia_state(ckpt["d"], path=path), path=path, device=device)
    size = getattr(ckpt.get("args"), "size", None)
    if isinstance(size, int) and size != D.img_resolution:
        raise CheckpointError(path, f"args.size is {size} but d's weights are for {D.img_resolution} px")
    return D
