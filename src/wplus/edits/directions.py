"""Attribute directions: read the files people share, apply them to codes, learn one from pairs of latents.

Formats read:

========================  ==========================  =========================================================
file                      content                     applied to
========================  ==========================  =========================================================
ours ``.npz``             ``direction`` [R, w_dim]    the rows stored in ``metadata['layers']``, else all rows
                          + ``metadata`` (JSON)
toolkit ``.npy``          float64 [num_ws, w_dim]     rows 0-7 of 18 (the a312863063 ``edit_photo.py`` rule;
                          (a312863063, 18 x 512)      8/18 of the rows for other depths)
InterFaceGAN              [1, w_dim] (.npy or .pt)    every row
e4e pose ``.pt``          [1, num_ws, w_dim]          every row
GANSpace ``ffhq_pca.pt``  {mean, comp [K, 1, w_dim],  every row; ``component`` picks comp[k] and the step is
                          std [K]}                    scaled by std[k], so strength counts standard deviations
========================  ==========================  =========================================================

``.pt`` files are read with ``torch.load(weights_only=True)`` (tensors and plain containers only, no code) and
``.npy`` / ``.npz`` with ``allow_pickle=False``; NaN, infinite or absurd values (:func:`wplus.io.latents.check_finite`)
and empty files are refused. An edit is additive: ``w[rows] += strength · d[rows]`` (for GANSpace
this is a relative step along the component, not e4e's absolute coordinate).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wplus.errors import ConfigError, ShapeError, WplusError
from wplus.io.atomic import atomic_write
from wplus.io.latents import check_finite, check_not_empty, read_float_npy

__all__ = ["Direction", "load_direction", "save_direction", "apply_direction", "direction_from_pairs"]


@dataclass
class Direction:
    """A direction in W+: ``vector`` [1 or num_ws, w_dim] float32 and the rows it applies to by default (None: all)."""

    vector: torch.Tensor
    kind: str = "ours"
    layers: list[int] | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def broadcast(self, num_ws: int, w_dim: int) -> torch.Tensor:
        """The direction as [num_ws, w_dim]; ShapeError when it does not fit a generator with these sizes."""
        v = self.vector
        if v.ndim != 2 or v.shape[1] != w_dim or v.shape[0] not in (1, num_ws):
            raise ShapeError(
                f"{self.source or 'direction'}: {self.kind} direction has shape {list(v.shape)}, expected "
                f"[1, {w_dim}] or [{num_ws}, {w_dim}] for this generator (num_ws={num_ws}, w_dim={w_dim})"
            )
        return v.expand(num_ws, w_dim)


def _as_rows(arr: torch.Tensor, path: Path, kind: str) -> torch.Tensor:
    """[w_dim] -> [1, w_dim]; [1, R, w_dim] -> [R, w_dim]; anything else of rank != 2 is a ShapeError."""
    t = arr.detach().to(torch.float32).cpu()
    if t.ndim == 1:
        t = t[None]
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2:
        raise ShapeError(
            f"{path}: {kind} direction has shape {list(arr.shape)}, expected [w_dim], [1, w_dim], [num_ws, w_dim] "
            "or [1, num_ws, w_dim]"
        )
    return t


def _toolkit_layers(rows: int) -> list[int]:
    return list(range(max(1, round(rows * 8 / 18))))


def _read_npz(path: Path) -> Direction:
    expected = "our direction .npz (wplus direction ...)"
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise WplusError(f"{path}: holds a single array, not an .npz archive; expected {expected}")
        with data:
            if "direction" not in data:
                raise WplusError(f"{path}: no 'direction' array; expected {expected}")
            vec = torch.from_numpy(np.array(data["direction"], dtype=np.float32))
            meta = json.loads(str(data["metadata"])) if "metadata" in data else {}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise WplusError(f"{path}: cannot read direction file ({e}); expected {expected}") from None
    if not isinstance(meta, dict):
        raise WplusError(f"{path}: 'metadata' holds a JSON {type(meta).__name__}, expected a JSON object")
    layers = meta.get("layers")
    return Direction(_as_rows(vec, path, "wplus"), "ours", layers, str(path), meta)


def _read_npy(path: Path) -> Direction:
    arr = read_float_npy(path, "direction", "[1 or num_ws, w_dim]")
    vec = _as_rows(arr, path, "npy")
    if vec.shape[0] > 1:  # a312863063 / StyleGAN2 projecting toolkit: [18, 512], added to the first 8 layers
        return Direction(vec, "toolkit", _toolkit_layers(vec.shape[0]), str(path))
    return Direction(vec, "interfacegan", None, str(path))


def _read_pt(path: Path, component: int | None) -> Direction:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad or unsafe files
        raise WplusError(
            f"{path}: cannot read direction .pt with torch.load(weights_only=True) ({type(e).__name__}); expected "
            "a tensor [1, w_dim] / [1, num_ws, w_dim] or a GANSpace dict {mean, comp, std}"
        ) from None
    if isinstance(obj, dict):
        if not {"comp", "std"} <= set(obj):
            raise WplusError(f"{path}: dict with keys {sorted(map(str, obj))}, expected GANSpace keys mean, comp, std")
        comp, std = torch.as_tensor(obj["comp"]).float(), torch.as_tensor(obj["std"]).float().reshape(-1)
        if comp.ndim == 3 and comp.shape[1] == 1:
            comp = comp[:, 0]
        if comp.ndim != 2 or std.shape[0] != comp.shape[0]:
            raise ShapeError(
                f"{path}: GANSpace comp {list(comp.shape)} / std {list(std.shape)}, expected [K, 1, w_dim] / [K]"
            )
        if component is None or not 0 <= component < comp.shape[0]:
            raise ConfigError(
                f"{path}: GANSpace file with {comp.shape[0]} components; pass a component 0..{comp.shape[0] - 1}"
            )
        vec = (comp[component] * std[component])[None]
        return Direction(vec, "ganspace", None, str(path), {"component": component, "std": float(std[component])})
    if not isinstance(obj, torch.Tensor):
        raise WplusError(f"{path}: holds a {type(obj).__name__}, expected a tensor or a GANSpace dict")
    vec = _as_rows(obj, path, "pt")
    return Direction(vec, "interfacegan" if vec.shape[0] == 1 else "e4e", None, str(path))


def load_direction(path: str | Path, G: torch.nn.Module | None = None, *, component: int | None = None) -> Direction:
    """Read a direction file (ours, toolkit .npy, InterFaceGAN, e4e, GANSpace; see the module docstring).

    Args:
        path: the file.
        G: when given, the direction is checked against ``G.num_ws`` / ``G.w_dim``.
        component: GANSpace component index (required for GANSpace files, ignored otherwise).

    Raises:
        WplusError: missing, empty or unreadable file; ShapeError: wrong shape (for ``G``); ConfigError: missing
        GANSpace component, or NaN / infinite / absurd values.
    """
    path = Path(path)
    if not path.is_file():
        raise WplusError(f"{path}: no such file; expected a direction (.npz, .npy or .pt)")
    check_not_empty(path, "direction", "a direction (.npz, .npy or .pt)")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        d = _read_npz(path)
    elif suffix == ".npy":
        d = _read_npy(path)
    elif suffix in (".pt", ".pth"):
        d = _read_pt(path, component)
    else:
        raise ConfigError(f"{path}: unknown direction file type {suffix!r}; expected .npz, .npy or .pt")
    check_finite(d.vector, f"{d.kind} direction", path)
    if G is not None:
        d.broadcast(G.num_ws, G.w_dim)
        if d.layers is not None and max(d.layers) >= G.num_ws:
            raise ShapeError(f"{path}: direction layers {d.layers} do not fit num_ws={G.num_ws}")
    return d


def save_direction(path: str | Path, vector: torch.Tensor, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write our direction format: ``.npz`` with ``direction`` float32 [R, w_dim] and ``metadata`` (JSON string)."""
    v = vector.detach().float().cpu()
    if v.ndim == 3 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 2:
        raise ShapeError(f"a direction is [num_ws or 1, w_dim], got {list(vector.shape)}")
    arrays = {"direction": v.numpy(), "metadata": np.array(json.dumps(metadata or {}))}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def apply_direction(
    ws: torch.Tensor,
    direction: Direction | torch.Tensor,
    strength: float | Sequence[float] = 1.0,
    *,
    layers: Sequence[int] | None = None,
) -> torch.Tensor:
    """``ws[rows] + s · d[rows]`` for each strength s.

    Args:
        ws: [1, num_ws, w_dim] code.
        direction: a :class:`Direction` or a tensor [1 or num_ws, w_dim].
        strength: one value or a sweep.
        layers: rows to edit; default: the direction's own default (toolkit: 0-7 of 18), else all rows.

    Returns:
        [S, num_ws, w_dim].

    Raises:
        ShapeError: the direction does not fit ``ws``; ConfigError: a row outside the code, or a NaN, infinite or
        absurd strength (``|s| > 1e4``).
    """
    if ws.ndim != 3 or ws.shape[0] != 1:
        raise ShapeError(f"apply_direction takes one code [1, num_ws, w_dim], got {list(ws.shape)}")
    num_ws, w_dim = ws.shape[1:]
    d = direction if isinstance(direction, Direction) else Direction(direction.float(), "tensor")
    full = d.broadcast(num_ws, w_dim).to(ws)
    rows = list(layers) if layers is not None else (d.layers if d.layers is not None else list(range(num_ws)))
    bad = [r for r in rows if not 0 <= r < num_ws]
    if bad:
        raise ConfigError(f"layers {bad} are outside 0-{num_ws - 1} (this generator has num_ws={num_ws})")
    mask = torch.zeros(num_ws, 1, dtype=ws.dtype, device=ws.device)
    mask[rows] = 1
    strengths = [float(strength)] if isinstance(strength, int | float) else [float(s) for s in strength]
    if not strengths:
        raise ConfigError("strength: give at least one value")
    check_finite(strengths, "strength")
    return torch.cat([ws + s * mask * full for s in strengths])


def direction_from_pairs(neutral: Sequence[torch.Tensor], expressive: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean of ``expressive[i] − neutral[i]`` over pairs of [1, num_ws, w_dim] codes -> [num_ws, w_dim]."""
    if len(neutral) != len(expressive) or not neutral:
        raise ConfigError(f"need matching pairs, got {len(neutral)} neutral and {len(expressive)} expressive codes")
    shapes = {tuple(t.shape) for t in [*neutral, *expressive]}
    if len(shapes) != 1:
        raise ShapeError(f"all codes must have one shape [1, num_ws, w_dim], got {sorted(shapes)}")
    diffs = torch.stack([e.float() - n.float() for n, e in zip(neutral, expressive, strict=True)])
    return diffs.mean(0).reshape(diffs.shape[-2], diffs.shape[-1])
