"""Styles files: ``styles.npz`` — one float32 array [B, C] per style layer, keyed by its module path
(``synthesis.b4.conv1``), plus metadata, read without pickle:

  ``__format__``        'wplus-styles-1'
  ``__layers__``        the layer names in forward order
  ``__model_id__``, ``__model_sha256__``  the generator the styles belong to
  ``__source__``        the latent or image they came from (may be empty)
  ``noise_00`` …        [1, 1, r, r]: the noise maps the code renders with (as in ``latent.npz``)

Every array's header is read first and its shape checked against the generator's layers before any data is loaded.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wplus.errors import ConfigError, WplusError
from wplus.io.atomic import atomic_write
from wplus.io.latents import check_finite, check_not_empty
from wplus.stylespace.core import Styles, style_layers

__all__ = ["StylesFile", "save_styles", "load_styles", "is_styles_file", "FORMAT"]

FORMAT = "wplus-styles-1"
MAX_BATCH = 4096  # codes per styles file: a projection writes 1, a sample file a few thousand at most
_EXPECTED = "a styles .npz written by `wplus style extract` or `wplus project --save-styles`"


@dataclass
class StylesFile:
    """What a styles file holds: the styles, the noise they render with, and the model they belong to."""

    styles: Styles
    noise: list[torch.Tensor] = field(default_factory=list)
    model_id: str = ""
    model_sha256: str = ""
    source: str = ""


def save_styles(
    path: str | Path,
    styles: Styles,
    *,
    noise: list[torch.Tensor] | None = None,
    model_id: str = "",
    model_sha256: str = "",
    source: str = "",
) -> Path:
    """Write ``styles.npz`` atomically (float32, no pickle)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "__format__": np.array(FORMAT),
        "__layers__": np.array(list(styles)),
        "__model_id__": np.array(model_id),
        "__model_sha256__": np.array(model_sha256),
        "__source__": np.array(source),
    }
    for name, s in styles.items():
        arrays[name] = s.detach().float().cpu().numpy()
    for i, n in enumerate(noise or []):
        arrays[f"noise_{i:02d}"] = n.detach().float().cpu().reshape(1, 1, *n.shape[-2:]).numpy()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
    return path


def is_styles_file(path: str | Path) -> bool:
    """Whether ``path`` is an .npz archive with our styles format marker (cheap: reads the member list only)."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return "__format__.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _header(z: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with z.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(shape), dtype


def load_styles(path: str | Path, G: nn.Module, *, model_sha256: str | None = None) -> StylesFile:
    """Read a styles file for generator ``G``: every layer's header is checked against ``G``'s style layers (names,
    channels, batch <= 4096, float) before its data is read; values must be finite. With ``model_sha256``, a file
    that names another model is refused.

    Raises:
        WplusError / ConfigError: one line naming the file, what is wrong and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise WplusError(f"{path}: no such file; expected {_EXPECTED}")
    check_not_empty(path, "styles", _EXPECTED)
    layers = style_layers(G)
    try:
        with zipfile.ZipFile(path) as z:
            members = {m[: -len(".npy")]: m for m in z.namelist() if m.endswith(".npy")}
            if "__format__" not in members:
                raise WplusError(f"{path}: not a styles file (no '__format__' entry); expected {_EXPECTED}")
            for layer in layers:
                if layer.name not in members:
                    raise ConfigError(
                        f"{path}: no styles for layer {layer.name}: the file was made with another generator "
                        f"(this one has {len(layers)} style layers); extract them again with --model set to it"
                    )
                shape, dtype = _header(z, members[layer.name])
                if len(shape) != 2 or shape[1] != layer.channels or not 1 <= shape[0] <= MAX_BATCH:
                    raise ConfigError(
                        f"{path}: styles of {layer.name} are {list(shape)}, expected [B<={MAX_BATCH}, "
                        f"{layer.channels}]; the file was made with another generator"
                    )
                if dtype.kind != "f":
                    raise ConfigError(f"{path}: styles of {layer.name} are {dtype}, expected float32")
            noise_keys = sorted(k for k in members if k.startswith("noise_"))
            for k in noise_keys:
                shape, dtype = _header(z, members[k])
                if len(shape) != 4 or shape[:2] != (1, 1) or shape[2] > 4096 or dtype.kind != "f":
                    raise ConfigError(f"{path}: noise map {k} is {list(shape)} {dtype}, expected [1, 1, r, r] floats")
        with np.load(path, allow_pickle=False) as data:
            fmt = str(data["__format__"])
            if fmt != FORMAT:
                raise WplusError(f"{path}: styles format {fmt!r} is not one this wplus reads ({FORMAT!r})")
            values = {layer.name: torch.from_numpy(np.array(data[layer.name], dtype=np.float32)) for layer in layers}
            noise = [torch.from_numpy(np.array(data[k], dtype=np.float32)) for k in noise_keys]
            meta = {k: str(data[k]) if k in data else "" for k in ("__model_id__", "__model_sha256__", "__source__")}
    except WplusError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise WplusError(f"{path}: cannot read styles file ({e}); expected {_EXPECTED}") from None
    batches = {v.shape[0] for v in values.values()}
    if len(batches) != 1:
        raise ConfigError(f"{path}: layers hold different numbers of codes ({sorted(batches)}); the file is damaged")
    for name, v in values.items():
        check_finite(v, f"styles of {name}", path)
    for n in noise:
        check_finite(n, "noise map", path)
    sha = meta["__model_sha256__"]
    if model_sha256 and sha and sha != model_sha256:
        raise ConfigError(
            f"{path}: styles of model {sha[:12]}, but --model is {model_sha256[:12]}; extract them again with "
            "`wplus style extract LATENT --model` set to this model"
        )
    return StylesFile(Styles(values), noise, meta["__model_id__"], sha, meta["__source__"])
