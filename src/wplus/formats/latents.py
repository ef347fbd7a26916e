"""Latent files met in the wild (NVIDIA's projector, rosinality's projector, e4e, PTI), read without pickle.

==========================  ==============================================  =====================================
producer                    file                                            content
==========================  ==============================================  =====================================
NVIDIA projector            ``projected_w.npz``                             ``w`` float32 [1, num_ws, 512]
TF ADA projector            ``dlatents.npz``                                ``dlatents`` [1, num_ws, 512]
projecting toolkit / forks  ``<name>.npy``                                  [num_ws, 512] (or [N, num_ws, 512])
rosinality projector        ``<stem>.pt``                                   {path: {img, latent [512] | [n, 512],
                                                                            noise [list of [1, 1, h, w]]}}
e4e / PTI                   ``latents.pt`` / ``0.pt``                       tensor [N, num_ws, 512]
inversion scripts           ``latents.pt``                                  {name: tensor [num_ws, 512]}
wplus                       ``latent.npz`` (:mod:`wplus.io.latents`)        ``w`` [1, num_ws, w_dim] + noise
==========================  ==============================================  =====================================

``.npy``/``.npz`` are opened with ``allow_pickle=False`` and ``.pt`` with ``torch.load(weights_only=True)``, so
object arrays (ReStyle's pickled dicts) are refused rather than unpickled. Every code is checked against the
generator's ``num_ws`` and ``w_dim``; a single w ([w_dim] or [1, w_dim]) is broadcast to all layers. Codes and noise
maps pass :func:`wplus.io.latents.check_finite` (no NaN, infinite or absurd values).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from wplus.errors import CheckpointError, ShapeError
from wplus.formats.rosinality import torch_load_safe
from wplus.io.latents import Latent, check_finite

__all__ = ["load_foreign_latents"]

_NPZ_KEYS = ("w", "dlatents", "ws", "latent", "latents")


def _as_ws(x: torch.Tensor, num_ws: int, w_dim: int, path: Path, what: str) -> torch.Tensor:
    """[w_dim] | [1, w_dim] | [num_ws, w_dim] | [N, num_ws, w_dim] -> [N, num_ws, w_dim] float32."""
    x = x.detach().to(torch.float32).cpu()
    check_finite(x, what, path)
    shape = list(x.shape)
    if x.ndim == 1 and x.shape[0] == w_dim:
        x = x[None, None].expand(1, num_ws, w_dim)
    elif x.ndim == 2 and x.shape == (1, w_dim):
        x = x[:, None].expand(1, num_ws, w_dim)
    elif x.ndim == 2:
        x = x[None]
    elif x.ndim == 3 and x.shape[1] == 1 and x.shape[2] == w_dim:
        x = x.expand(x.shape[0], num_ws, w_dim)
    if x.ndim != 3 or x.shape[1:] != (num_ws, w_dim):
        raise ShapeError(
            f"{path}: {what} has shape {shape}, expected [N, {num_ws}, {w_dim}] (num_ws={num_ws} for this "
            f"generator), [{num_ws}, {w_dim}] or a single w [{w_dim}]; was it made for another generator?"
        )
    return x.contiguous()


def _noise(x: torch.Tensor, path: Path, what: str) -> torch.Tensor:
    x = x.float()
    check_finite(x, what, path)
    return x


def _np_load(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    if path.stat().st_size == 0:
        raise CheckpointError(path, "the file is empty (0 bytes); expected a numpy latent file (.npz or .npy)")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            return data
        with data:
            return {k: np.array(data[k]) for k in data.files}
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise CheckpointError(
                path,
                "holds pickled Python objects (an object array, e.g. ReStyle's latents.npy dict); wplus "
                "never unpickles latent files: re-save the arrays with numpy.save on a plain float array",
            ) from None
        raise CheckpointError(path, f"not a readable numpy file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(path, f"not a readable numpy file ({e})") from None


def load_foreign_latents(path: str | Path, *, num_ws: int, w_dim: int = 512) -> list[Latent]:
    """Read every W / W+ code in a latent file from NVIDIA, the toolkit, rosinality, e4e, PTI or wplus.

    Args:
        path: ``.npz``, ``.npy`` or ``.pt`` file.
        num_ws: The generator's ``num_ws`` (18 at 1024 px); codes of another length are an error.
        w_dim: The generator's ``w_dim``.

    Returns:
        One :class:`~wplus.io.latents.Latent` per code, ``ws`` [1, num_ws, w_dim]; rosinality files keep their
        noise maps and the image path in ``source``.

    Raises:
        CheckpointError: empty or unreadable file, or one that needs pickle. ShapeError: codes of the wrong shape.
        ConfigError: NaN, infinite or absurd values.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file; expected a latent file (.npz, .npy or .pt)")
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        data = _np_load(path)
        if isinstance(data, dict):
            key = next((k for k in _NPZ_KEYS if k in data), None)
            if key is None:
                raise CheckpointError(path, f"got arrays {sorted(data)}, expected one named 'w' [N, num_ws, w_dim]")
            ws = _as_ws(torch.from_numpy(data[key]), num_ws, w_dim, path, f"array {key!r}")
            noise = [_noise(torch.from_numpy(data[k]), path, k) for k in sorted(data) if k.startswith("noise_")]
        else:
            ws, noise = _as_ws(torch.from_numpy(data), num_ws, w_dim, path, "the array"), []
        return [Latent(ws=w[None], noise=noise, source=str(path)) for w in ws]
    if suffix in (".pt", ".pth"):
        obj = torch_load_safe(path)
        if isinstance(obj, torch.Tensor):
            return [Latent(ws=w[None], source=str(path)) for w in _as_ws(obj, num_ws, w_dim, path, "the tensor")]
        if isinstance(obj, dict) and obj and all(isinstance(v, dict) and "latent" in v for v in obj.values()):
            out = []
            for name, entry in obj.items():  # rosinality projector: {image path: {img, latent, noise}}
                ws = _as_ws(torch.as_tensor(entry["latent"]), num_ws, w_dim, path, f"latent of {name!r}")
                noise = [_noise(torch.as_tensor(n), path, f"noise of {name!r}") for n in entry.get("noise") or []]
                out.append(Latent(ws=ws, noise=noise, source=str(name)))
            return out
        if isinstance(obj, dict) and isinstance(obj.get("w"), torch.Tensor):
            return [Latent(ws=w[None], source=str(path)) for w in _as_ws(obj["w"], num_ws, w_dim, path, "'w'")]
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            out = []
            for name, value in obj.items():  # {image name: code}, as inversion scripts save one code per image
                codes = _as_ws(value, num_ws, w_dim, path, f"code {name!r}")
                out.extend(Latent(ws=w[None], source=str(name)) for w in codes)
            return out
        raise CheckpointError(
            path,
            f"got {type(obj).__name__}, expected a tensor [N, num_ws, w_dim], a dict of name -> code or a rosinality "
            "projector dict",
        )
    raise CheckpointError(path, f"unsupported latent file type {suffix!r}; expected .npz, .npy or .pt")
