"""rosinality stylegan2-pytorch checkpoints (``*.pt``: ``{'g_ema', 'latent_avg', 'args', ...}``).

Read with ``torch.load(weights_only=True)``; ``argparse.Namespace`` (training checkpoints keep their ``args``) is
the one extra class allowed. ``g_ema`` is mapped to NVIDIA names (rosinality/stylegan2-pytorch ``convert_weight.py``):
``style.{i+1}`` ->
``mapping.fc{i}``, ``input.input[0]`` -> ``b4.const``, ``conv1``/``convs.{n}`` -> ``b{r}.conv{j}``,
``to_rgb1``/``to_rgbs.{k}`` -> ``b{r}.torgb``, ``noises.noise_{i}`` -> ``noise_const``, ``latent_avg`` -> ``w_avg``.
A bare state dict already in NVIDIA names (``torch.save(G_ema.state_dict())``) is accepted as well.
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
from wplus.formats.sg2_state import generator_from_state
from wplus.models.stylegan2 import Generator

__all__ = ["torch_load_safe", "rosinality_to_nvidia_state", "load_rosinality"]

_IGNORED = re.compile(r".*\.(blur\.kernel|upsample\.kernel)$")


def torch_load_safe(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with ``argparse.Namespace`` allowed; every failure names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "the file is empty; expected a torch checkpoint (re-download it)")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln for ln in str(e).splitlines() if "GLOBAL" in ln or "global" in ln]
        detail = lines[0].strip() if lines else str(e).splitlines()[0]
        msg = f"refusing to load: {detail} (not on the allow-list; loading it could run code)"
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
        state = rosinality_to_nvidia_state(ckpt["g_ema"], path=path)
        latent_avg = ckpt.get("latent_avg")
    elif "mapping.fc0.weight" in ckpt:
        state, latent_avg = dict(ckpt), None
    else:
        keys = sorted(map(str, ckpt))[:8]
        raise CheckpointError(path, f"got a dict with keys {keys}, expected 'g_ema' (a rosinality checkpoint)")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "g_ema holds non-tensor values; expected a state dict of tensors")
    estimate = "mapping.w_avg" not in state and latent_avg is None
    if latent_avg is not None:
        state["mapping.w_avg"] = torch.as_tensor(latent_avg).reshape(-1)
    elif estimate and "mapping.fc0.weight" in state:
        depth = sum(1 for k in state if re.fullmatch(r"mapping\.fc\d+\.weight", k))
        w_dim = state[f"mapping.fc{depth - 1}.weight"].shape[0]
        state["mapping.w_avg"] = torch.zeros(w_dim)
    G = generator_from_state(state, path=path, device=device)
    if estimate:
        G.mapping.w_avg.copy_(G.mean_w(10_000, seed=123))
    return G
