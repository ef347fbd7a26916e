"""One entry point for the codes an edit starts from: ``load_code(path, G)``.

Our ``latent.npz`` (with its noise maps, ``space`` and ``z``), a bare ``.npy`` [num_ws, w_dim] / [1, num_ws, w_dim] /
[1, w_dim] / [w_dim] (a single w is broadcast to every layer), or an image, which is projected first with the
``projector`` the caller passes. Readers of other latent formats plug in through ``LATENT_READERS`` (suffix -> reader),
so adding one adds no branch here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from wplus.errors import ConfigError, ShapeError, WplusError
from wplus.io.images import IMAGE_SUFFIXES
from wplus.io.latents import Latent, load_latent

__all__ = ["load_code", "check_code", "IMAGE_SUFFIXES", "LATENT_READERS", "Projector"]

Projector = Callable[[Path], Latent]
LatentReader = Callable[[Path, torch.nn.Module], Latent]


def read_float_npy(path: Path, what: str, expected: str) -> torch.Tensor:
    """A float ``.npy`` as a float32 tensor, read without pickle; errors name the file and what was expected."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise WplusError(f"{path}: cannot read {what} .npy ({e}); expected a float array {expected}") from None
    if arr.dtype.kind != "f":
        raise ShapeError(f"{path}: {what} .npy has dtype {arr.dtype}, expected a float array {expected}")
    return torch.from_numpy(np.array(arr, dtype=np.float32))


def _read_npy(path: Path) -> Latent:
    ws = arr = read_float_npy(path, "latent", "[num_ws, w_dim]")
    if ws.ndim == 1:
        ws = ws[None]
    if ws.ndim == 3 and ws.shape[0] == 1:
        ws = ws[0]
    if ws.ndim != 2:
        raise ShapeError(f"{path}: latent .npy has shape {list(arr.shape)}, expected [num_ws, w_dim] or [1, w_dim]")
    return Latent(ws=ws[None], space="w+" if ws.shape[0] > 1 else "w", source=str(path))


def _read_torch_latent(path: Path, G: torch.nn.Module) -> Latent:
    """rosinality projector / e4e / PTI ``.pt`` latents (read without pickle by wplus.formats.latents)."""
    from wplus.formats.latents import load_foreign_latents

    codes = load_foreign_latents(path, num_ws=G.num_ws, w_dim=G.w_dim)
    if len(codes) != 1:
        raise ConfigError(
            f"{path}: holds {len(codes)} codes, expected one per input; split it in Python with "
            "wplus.load_foreign_latents(path, num_ws=..., w_dim=...) and wplus.save_latent"
        )
    return codes[0]


# Suffix -> reader of a latent file (NVIDIA's projected_w.npz is read by load_latent: its key 'w' is ours too).
LATENT_READERS: dict[str, LatentReader] = {
    ".npz": lambda p, G: load_latent(p),
    ".npy": lambda p, G: _read_npy(p),
    ".pt": _read_torch_latent,
    ".pth": _read_torch_latent,
}


def check_code(latent: Latent, G: torch.nn.Module, *, name: str = "latent") -> Latent:
    """Broadcast a one-row code to ``G.num_ws`` rows and check it fits ``G``; drop noise maps that do not fit.

    Raises:
        ShapeError: the code has the wrong width or number of rows for ``G``.
    """
    ws = latent.ws
    if ws.ndim == 2:
        ws = ws[None]
    if ws.ndim != 3 or ws.shape[0] != 1 or ws.shape[2] != G.w_dim or ws.shape[1] not in (1, G.num_ws):
        raise ShapeError(
            f"{name}: code has shape {list(latent.ws.shape)}, expected [1, {G.num_ws}, {G.w_dim}] or [1, 1, {G.w_dim}] "
            f"for this generator (num_ws={G.num_ws}, w_dim={G.w_dim}); was it made with another model?"
        )
    ws = ws.expand(1, G.num_ws, G.w_dim).clone()
    noise = list(latent.noise)
    if noise:
        want = [tuple(n.shape[-2:]) for n in G.noise_maps()]
        if [tuple(n.shape[-2:]) for n in noise] != want:
            raise ShapeError(
                f"{name}: {len(noise)} noise maps of sizes {[tuple(n.shape[-2:]) for n in noise]}, expected {want} "
                "for this generator; was it made with another model?"
            )
        noise = [n.reshape(1, 1, *n.shape[-2:]).float() for n in noise]
    z = latent.z
    if z is not None and z.numel() != G.z_dim:
        raise ShapeError(f"{name}: z has {z.numel()} values, expected z_dim={G.z_dim} for this generator")
    return Latent(
        ws=ws,
        space=latent.space,
        noise=noise,
        z=None if z is None else z.reshape(1, -1).float(),
        model_id=latent.model_id,
        model_sha256=latent.model_sha256,
        source=latent.source,
    )


def load_code(path: str | Path, G: torch.nn.Module, *, projector: Projector | None = None) -> Latent:
    """Read a code for ``G`` from a latent file, or project an image file with ``projector``.

    Args:
        path: ``latent.npz`` / ``.npy`` (or a format registered in ``LATENT_READERS``), or an image file.
        G: the generator the code will be rendered with (its num_ws / w_dim are checked).
        projector: called with an image path, returns a :class:`~wplus.io.latents.Latent` (e.g. a closure around
            :func:`wplus.project`); without one, image inputs are an error.

    Returns:
        A :class:`~wplus.io.latents.Latent` with ``ws`` [1, num_ws, w_dim] and the noise it renders with (possibly
        empty: then the generator's constant noise is used).

    Raises:
        WplusError: missing or unreadable file; ShapeError: a code for another generator; ConfigError: an image
        without a projector or an unknown suffix.
    """
    path = Path(path)
    if not path.is_file():
        raise WplusError(f"{path}: no such file; expected a latent (.npz, .npy) or an image to project")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        if projector is None:
            raise ConfigError(f"{path}: is an image; pass a latent file or a projector to embed it first")
        latent = projector(path)
    elif suffix in LATENT_READERS:
        latent = LATENT_READERS[suffix](path, G)
    else:
        raise ConfigError(
            f"{path}: unknown input type {suffix!r}; expected a latent ({', '.join(sorted(LATENT_READERS))}) "
            f"or an image ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    latent.source = latent.source or str(path)
    return check_code(latent, G, name=str(path))
