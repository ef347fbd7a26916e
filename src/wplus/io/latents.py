"""Latent files: the ones we write, and every reader of a code an edit or ``--init-latent`` starts from.

``latent.npz`` — what NVIDIA's tools read plus what we need to render exactly the same image again:
  ``w``      float32 [1, num_ws, w_dim]  (the key and shape NVIDIA's ``generate.py --projected-w`` reads)
  ``space``  str ('w+', 'w' or 'z'); ``num_ws`` int; ``model_id`` str; ``model_sha256`` str
  ``z``      float32 [1, z_dim] (space 'z' only)
  ``noise_00`` ... float32 [1, 1, r, r], one per conv layer: the noise the image was rendered with
``latent.npy`` — float32 [num_ws, w_dim], the layout the StyleGAN2 projecting toolkit reads.
Neither needs pickle: they are loaded with ``allow_pickle=False``.

:func:`load_code` reads a code for a generator from any latent file (ours, a bare ``.npy``, foreign ``.pt`` through
:mod:`wplus.formats.latents`, or a format registered in ``LATENT_READERS``) or projects an image first.

Every value read from a latent or direction file passes :func:`check_finite`: NaN and infinite values are refused,
and so are magnitudes above :data:`MAX_ABS_VALUE` (1e4). A trained mapping network gives w values within about ±20,
projections drift to a few tens, z is standard normal and shared directions are unit-sized, so 1e4 leaves a wide
margin; at 1e15 and beyond the synthesis network's float32 arithmetic overflows and renders grey frames.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wplus.errors import ConfigError, ShapeError, WplusError
from wplus.io.atomic import atomic_write
from wplus.io.images import IMAGE_SUFFIXES
from wplus.text import plural

__all__ = [
    "Latent",
    "save_latent",
    "load_latent",
    "load_code",
    "load_codes",
    "check_code",
    "check_finite",
    "check_not_empty",
    "read_float_npy",
    "LATENT_READERS",
    "MAX_ABS_VALUE",
    "Projector",
]

MAX_ABS_VALUE = 1e4

# What a damaged numpy file raises: np.load of an empty file raises EOFError (which click reports as "Aborted!").
_NUMPY_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)


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


Projector = Callable[[Path], Latent]
LatentReader = Callable[[Path, torch.nn.Module], Latent]


def check_finite(
    values: torch.Tensor | np.ndarray | Sequence[float] | float,
    what: str,
    path: str | Path | None = None,
    *,
    max_abs: float | None = MAX_ABS_VALUE,
) -> None:
    """Refuse NaN, infinite and absurdly large values (``|x| > max_abs``; None: no bound).

    The one check every latent and direction reader runs; option values (``--strength``) use it too.

    Args:
        values: a tensor, array, list of numbers or one number.
        what: what the values are ('latent w', 'direction', '--strength'): the message starts with it.
        path: the file they came from, named first in the message.
        max_abs: the largest magnitude accepted, default :data:`MAX_ABS_VALUE`.

    Raises:
        ConfigError: one line: the file, what, how many bad values, what was expected.

    Example:
        >>> check_finite([1.0, float("nan")], "--strength")
        Traceback (most recent call last):
        ...
        wplus.errors.ConfigError: --strength holds 1 NaN and 0 infinite values of 2 (1, nan); expected finite numbers
    """
    t = torch.as_tensor(values).detach()
    if not t.is_floating_point() or t.numel() == 0:
        return
    t = t.to("cpu", torch.float64)
    where = f"{path}: " if path is not None else ""
    shown = f" ({', '.join(f'{v:g}' for v in t.flatten().tolist())})" if t.numel() <= 8 else ""
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        nan = int(torch.isnan(t).sum())
        inf = int((~finite).sum()) - nan
        fix = "; re-create the file (a projection that diverged writes such codes)" if path is not None else ""
        raise ConfigError(
            f"{where}{what} holds {nan} NaN and {inf} infinite values of {t.numel()}{shown}; expected finite "
            f"numbers{fix}"
        )
    if max_abs is not None and float(t.abs().max()) > max_abs:
        fix = " (codes of a trained StyleGAN stay below ~100); is it a latent or direction file?" if path else ""
        raise ConfigError(
            f"{where}{what} has values up to {float(t.abs().max()):.3g}, expected |x| <= {max_abs:g}{fix}"
        )


def check_not_empty(path: Path, what: str, expected: str) -> None:
    """Refuse a 0-byte file with a message that says so (numpy and torch would raise EOFError)."""
    if path.stat().st_size == 0:
        raise WplusError(
            f"{path}: {what} file is empty (0 bytes); expected {expected}; was it cut short by an interrupted run?"
        )


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
    """Read a ``latent.npz`` written by :func:`save_latent` or NVIDIA's projector (no pickle).

    Raises:
        WplusError: missing, empty or unreadable file, or no 'w' array; ConfigError: NaN, infinite or absurd values.
    """
    path = Path(path)
    expected = "a latent .npz with key 'w' [1, num_ws, w_dim]"
    if not path.is_file():
        raise WplusError(f"{path}: no such file; expected {expected}")
    check_not_empty(path, "latent", expected)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise WplusError(f"{path}: holds a single array, not an .npz archive; expected {expected}")
        with data:
            if "w" not in data:
                raise WplusError(f"{path}: no 'w' array; expected {expected}")
            ws = torch.from_numpy(np.array(data["w"], dtype=np.float32))
            noise_keys = sorted(k for k in data.files if k.startswith("noise_"))
            noise = [torch.from_numpy(np.array(data[k], dtype=np.float32)) for k in noise_keys]
            z = torch.from_numpy(np.array(data["z"], dtype=np.float32)) if "z" in data else None
            space = str(data["space"]) if "space" in data else "w+"
            model_id = str(data["model_id"]) if "model_id" in data else ""
            sha = str(data["model_sha256"]) if "model_sha256" in data else ""
    except _NUMPY_READ_ERRORS as e:
        raise WplusError(f"{path}: cannot read latent file ({e}); expected {expected}") from None
    check_finite(ws, "latent w", path)
    if z is not None:
        check_finite(z, "latent z", path)
    for k, n in zip(noise_keys, noise, strict=True):
        check_finite(n, f"noise map {k!r}", path)
    if ws.ndim == 2:
        ws = ws[None]
    return Latent(ws=ws, space=space, noise=noise, z=z, model_id=model_id, model_sha256=sha, source=str(path))


def read_float_npy(path: Path, what: str, expected: str) -> torch.Tensor:
    """A float ``.npy`` as a float32 tensor, read without pickle and checked by :func:`check_finite`.

    Errors name the file, ``what`` it should be and the ``expected`` shape.
    """
    check_not_empty(path, what, f"a float .npy {expected}")
    try:
        arr = np.load(path, allow_pickle=False)
    except _NUMPY_READ_ERRORS as e:
        raise WplusError(f"{path}: cannot read {what} .npy ({e}); expected a float array {expected}") from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise WplusError(f"{path}: is an .npz archive, not an .npy array; expected a float array {expected}")
    if arr.dtype.kind != "f":
        raise ShapeError(f"{path}: {what} .npy has dtype {arr.dtype}, expected a float array {expected}")
    check_finite(arr, what, path)
    return torch.from_numpy(np.array(arr, dtype=np.float32))


def _read_npy(path: Path) -> Latent:
    return _npy_latent(read_float_npy(path, "latent", "[num_ws, w_dim]"), path)


def _npy_latent(arr: torch.Tensor, path: Path) -> Latent:
    ws = arr
    if ws.ndim == 1:
        ws = ws[None]
    if ws.ndim == 3 and ws.shape[0] == 1:
        ws = ws[0]
    if ws.ndim != 2:
        raise ShapeError(f"{path}: latent .npy has shape {list(arr.shape)}, expected [num_ws, w_dim] or [1, w_dim]")
    return Latent(ws=ws[None], space="w+" if ws.shape[0] > 1 else "w", source=str(path))


def _read_torch_latent(path: Path, G: torch.nn.Module) -> Latent:
    """rosinality projector / e4e / PTI ``.pt`` latents (read without pickle by wplus.formats.latents)."""
    from wplus.formats.latents import load_foreign_latents  # formats imports this module: import on use

    codes = load_foreign_latents(path, num_ws=G.num_ws, w_dim=G.w_dim)
    if len(codes) != 1:
        raise ConfigError(
            f"{path}: holds {plural(len(codes), 'code')}, expected one per input; split it into one latent.npz "
            "per code with wplus render FILE --save-latents --model M --outdir DIR (or wplus.load_codes in Python)"
        )
    return codes[0]


# Suffix -> reader of a latent file (NVIDIA's projected_w.npz is read by load_latent: its key 'w' is ours too).
LATENT_READERS: dict[str, LatentReader] = {
    ".npz": lambda p, G: load_latent(p),
    ".npy": lambda p, G: _read_npy(p),
    ".pt": _read_torch_latent,
    ".pth": _read_torch_latent,
}


def _split_npz(path: Path, G: torch.nn.Module) -> list[Latent]:
    """Every code of a ``latent.npz`` / ``projected_w.npz`` whose 'w' holds [N, num_ws, w_dim] (noise shared)."""
    latent = load_latent(path)
    if latent.ws.ndim != 3 or latent.ws.shape[0] == 1:
        return [latent]
    zs = latent.z if latent.z is not None and latent.z.shape[0] == latent.ws.shape[0] else None
    return [
        Latent(ws=w[None], space=latent.space, noise=latent.noise, z=None if zs is None else zs[i : i + 1],
               model_id=latent.model_id, model_sha256=latent.model_sha256, source=latent.source)
        for i, w in enumerate(latent.ws)
    ]  # fmt: skip


def _split_npy(path: Path, G: torch.nn.Module) -> list[Latent]:
    """Every code of a toolkit ``.npy``: [num_ws, w_dim] is one code, [N, num_ws, w_dim] is N."""
    arr = read_float_npy(path, "latent", "[num_ws, w_dim] or [N, num_ws, w_dim]")
    if arr.ndim == 3 and arr.shape[0] > 1:
        return [Latent(ws=w[None], source=str(path)) for w in arr]
    return [_npy_latent(arr, path)]


def _split_torch(path: Path, G: torch.nn.Module) -> list[Latent]:
    from wplus.formats.latents import load_foreign_latents  # formats imports this module: import on use

    return load_foreign_latents(path, num_ws=G.num_ws, w_dim=G.w_dim)


# Suffix -> reader of every code in a latent file (``load_codes``); a suffix missing here falls back to the one-code
# reader in LATENT_READERS.
MULTI_LATENT_READERS: dict[str, Callable[[Path, torch.nn.Module], list[Latent]]] = {
    ".npz": _split_npz,
    ".npy": _split_npy,
    ".pt": _split_torch,
    ".pth": _split_torch,
}


def load_codes(path: str | Path, G: torch.nn.Module) -> list[Latent]:
    """Read every code in a latent file for ``G``: ours, NVIDIA's ``projected_w.npz``, the toolkit's ``.npy``,
    e4e / PTI ``latents.pt`` tensors [N, num_ws, w_dim] or dicts {name: code}, rosinality projector files.

    Args:
        path: the latent file.
        G: the generator the codes will be rendered with (num_ws / w_dim are checked).

    Returns:
        One :class:`Latent` per code, in file order, each ``ws`` [1, num_ws, w_dim] with its saved noise (empty when
        the file holds none: then the generator's constant noise is used).

    Raises:
        WplusError: missing, empty or unreadable file; ShapeError: codes for another generator; ConfigError: an
        image, an unknown suffix, no codes, or NaN / infinite / absurd values.
    """
    path = Path(path)
    if not path.is_file():
        raise WplusError(f"{path}: no such file; expected a latent file ({', '.join(sorted(LATENT_READERS))})")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        raise ConfigError(f"{path}: is an image; embed it first (wplus project) and pass its latent.npz")
    if suffix in MULTI_LATENT_READERS:
        codes = MULTI_LATENT_READERS[suffix](path, G)
    elif suffix in LATENT_READERS:
        codes = [LATENT_READERS[suffix](path, G)]
    else:
        raise ConfigError(f"{path}: unknown latent type {suffix!r}; expected {', '.join(sorted(LATENT_READERS))}")
    if not codes:
        raise ConfigError(f"{path}: holds no codes; expected at least one [num_ws, w_dim] code")
    out = []
    for i, code in enumerate(codes):
        code.source = code.source or str(path)
        out.append(check_code(code, G, name=str(path) if len(codes) == 1 else f"{path} (code {i})"))
    return out


def check_code(latent: Latent, G: torch.nn.Module, *, name: str = "latent") -> Latent:
    """Broadcast a one-row code to ``G.num_ws`` rows and check it fits ``G``; drop noise maps that do not fit.

    Raises:
        ShapeError: the code has the wrong width or number of rows for ``G``. ConfigError: non-finite values.
    """
    ws = latent.ws
    if ws.ndim == 2:
        ws = ws[None]
    if ws.ndim != 3 or ws.shape[0] != 1 or ws.shape[2] != G.w_dim or ws.shape[1] not in (1, G.num_ws):
        raise ShapeError(
            f"{name}: code has shape {list(latent.ws.shape)}, expected [1, {G.num_ws}, {G.w_dim}] or [1, 1, {G.w_dim}] "
            f"for this generator (num_ws={G.num_ws}, w_dim={G.w_dim}); was it made with another model?"
        )
    check_finite(ws, "code", name)
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
        path: ``latent.npz`` / ``.npy`` (or a format registered in ``LATENT_READERS``), or an image file
            (a suffix in :data:`wplus.io.images.IMAGE_SUFFIXES`).
        G: the generator the code will be rendered with (its num_ws / w_dim are checked).
        projector: called with an image path, returns a :class:`Latent` (e.g. a closure around
            :func:`wplus.project`); without one, image inputs are an error.

    Returns:
        A :class:`Latent` with ``ws`` [1, num_ws, w_dim] and the noise it renders with (possibly empty: then the
        generator's constant noise is used).

    Raises:
        WplusError: missing, empty or unreadable file; ShapeError: a code for another generator; ConfigError: an
        image without a projector, an unknown suffix, or NaN / infinite / absurd values.
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
