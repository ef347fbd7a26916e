"""Latent files we write (and read back): ``latent.npz`` and ``latent.npy``.

``latent.npz`` — what NVIDIA's tools read plus what we need to render exactly the same image again:
  ``w``      float32 [1, num_ws, w_dim]  (the key and shape NVIDIA's ``generate.py --projected-w`` reads)
  ``space``  str ('w+', 'w' or 'z'); ``num_ws`` int; ``model_id`` str; ``model_sha256`` str
  ``z``      float32 [1, z_dim] (space 'z' only)
  ``noise_00`` ... float32 [1, 1, r, r], one per conv layer: the noise the image was rendered with
``latent.npy`` — float32 [num_ws, w_dim], the layout the StyleGAN2 projecting toolkit reads.
Neither needs pickle: they are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wplus.errors import ShapeError, WplusError
from wplus.io.atomic import atomic_write

__all__ = ["Latent", "save_latent", "load_latent"]


@dataclass
class Latent:
    """A W+ code with the noise it renders with. ws [1, num_ws, w_dim]; noise: list of [1, 1, r, r] or empty."""

    ws: torch.Tensor
    space: str = "w+"
    noise: list[torch.Tensor] = field(default_factory=list)
    z: torch.Tensor | None = None
    model_id: str = ""
    model_sha256: str = ""
    source: str = ""


def save_latent(path: str | Path, latent: Latent, *, npy: bool = True) -> Path:
    """Write ``latent.npz`` (and ``latent.npy`` beside it unless ``npy=False``) atomically."""
    path = Path(path)
    ws = latent.ws.detach().float().cpu()
    if ws.ndim == 2:
        ws = ws[None]
    if ws.ndim != 3 or ws.shape[0] != 1:
        raise ShapeError(f"save_latent takes one code [1, num_ws, w_dim], got {list(ws.shape)}")
    arrays: dict[str, np.ndarray] = {
        "w": ws.numpy(),
        "space": np.array(latent.space),
        "num_ws": np.array(ws.shape[1]),
        "model_id": np.array(latent.model_id),
        "model_sha256": np.array(latent.model_sha256),
    }
    if latent.z is not None:
        arrays["z"] = latent.z.detach().float().cpu().reshape(1, -1).numpy()
    for i, n in enumerate(latent.noise):
        arrays[f"noise_{i:02d}"] = n.detach().float().cpu().reshape(1, 1, *n.shape[-2:]).numpy()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
    if npy:
        npy_path = path.with_suffix(".npy")
        atomic_write(npy_path, lambda tmp: np.save(tmp, ws[0].numpy(), allow_pickle=False))
    return path


def load_latent(path: str | Path) -> Latent:
    """Read a ``latent.npz`` written by :func:`save_latent` (no pickle)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "w" not in data:
                raise WplusError(f"{path}: no 'w' array; expected a latent .npz with key 'w' [1, num_ws, w_dim]")
            ws = torch.from_numpy(np.array(data["w"], dtype=np.float32))
            noise_keys = sorted(k for k in data.files if k.startswith("noise_"))
            noise = [torch.from_numpy(np.array(data[k], dtype=np.float32)) for k in noise_keys]
            z = torch.from_numpy(np.array(data["z"], dtype=np.float32)) if "z" in data else None
            space = str(data["space"]) if "space" in data else "w+"
            model_id = str(data["model_id"]) if "model_id" in data else ""
            sha = str(data["model_sha256"]) if "model_sha256" in data else ""
    except (OSError, ValueError) as e:
        raise WplusError(f"{path}: cannot read latent file ({e})") from None
    if ws.ndim == 2:
        ws = ws[None]
    return Latent(ws=ws, space=space, noise=noise, z=z, model_id=model_id, model_sha256=sha, source=str(path))
