"""Attribute directions: read the files people share, apply them to codes, learn one from pairs of latents.

Formats read:

========================  ==========================  =========================================================
file                      content                     applied to
========================  ==========================  =========================================================
ours ``.npz``             ``direction`` [R, w_dim]    the rows stored in ``metadata['layers']``, else all rows
                          + ``metadata`` (JSON)
ours SeFa / PCA ``.npz``  ``components`` [K, w_dim]   ``component`` picks one; SeFa: the rows its layers read,
                          (``wplus direction sefa``,  step = strength (unit eigenvector); PCA: every row, step =
                          ``pca``)                    strength·std[k]
rosinality SeFa ``.pt``   {ckpt, eigvec [w_dim, K]}   every row (``apply_factor.py``); ``component`` picks a column
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
this is a relative step along the component). :func:`move_to_coordinate` is GANSpace's named-edit convention instead:
it moves each row *to* the coordinate ``s·std`` along a PCA component (files with a mean and std).
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

__all__ = [
    "Direction",
    "load_direction",
    "save_direction",
    "apply_direction",
    "move_to_coordinate",
    "direction_from_pairs",
]


@dataclass
class Direction:
    """A direction in W+: ``vector`` [1 or num_ws, w_dim] float32 and the rows it applies to by default (None: all).

    PCA components (GANSpace, ours) also carry ``mean`` [1, w_dim] and ``scale`` (the component's std, which
    ``vector`` is the unit axis times), what :func:`move_to_coordinate` needs.
    """

    vector: torch.Tensor
    kind: str = "ours"
    layers: list[int] | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    mean: torch.Tensor | None = None
    scale: float | None = None

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


def _read_npz(path: Path, component: int | None) -> Direction:
    expected = "our direction .npz (wplus direction ...)"
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise WplusError(f"{path}: holds a single array, not an .npz archive; expected {expected}")
        with data:
            meta = json.loads(str(data["metadata"])) if "metadata" in data else {}
            arrays = {k: np.array(data[k], dtype=np.float32) for k in ("direction", "components", "mean", "std")
                      if k in data}  # fmt: skip
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise WplusError(f"{path}: cannot read direction file ({e}); expected {expected}") from None
    if not isinstance(meta, dict):
        raise WplusError(f"{path}: 'metadata' holds a JSON {type(meta).__name__}, expected a JSON object")
    layers = meta.get("layers")
    if "components" in arrays:
        return _component_of(path, arrays, meta, component)
    if "direction" not in arrays:
        raise WplusError(f"{path}: no 'direction' or 'components' array; expected {expected}")
    vec = torch.from_numpy(arrays["direction"])
    return Direction(_as_rows(vec, path, "wplus"), "ours", layers, str(path), meta)


def _check_component(path: Path, count: int, component: int | None, what: str) -> int:
    if component is None or not 0 <= component < count:
        raise ConfigError(f"{path}: {what} file with {count} components; pass --component 0..{count - 1}")
    return component


def _component_of(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], component: int | None) -> Direction:
    """One row of our SeFa / PCA file: SeFa's unit eigenvector on its layers' rows, or PCA's comp·std everywhere."""
    comp = arrays["components"]
    method = str(meta.get("method", "components"))
    if comp.ndim != 2:
        raise ShapeError(f"{path}: 'components' has shape {list(comp.shape)}, expected [K, w_dim]")
    k = _check_component(path, comp.shape[0], component, method)
    info = {**meta, "component": k}
    vec = torch.from_numpy(comp[k : k + 1].copy())
    if "std" not in arrays:
        return Direction(vec, method, meta.get("layers"), str(path), info)
    std, mean = arrays["std"].reshape(-1), arrays.get("mean")
    if std.shape[0] != comp.shape[0] or (mean is not None and mean.size != comp.shape[1]):
        raise ShapeError(f"{path}: std {list(std.shape)} / mean {None if mean is None else list(mean.shape)} do "
                         f"not match components {list(comp.shape)}")  # fmt: skip
    info["std"] = float(std[k])
    mean_t = None if mean is None else torch.from_numpy(mean.reshape(1, -1).copy())
    return Direction(vec * float(std[k]), method, meta.get("layers"), str(path), info, mean_t, float(std[k]))


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
    if isinstance(obj, dict) and "eigvec" in obj:  # rosinality's closed_form_factorization.py
        eig = obj["eigvec"]
        if not isinstance(eig, torch.Tensor) or eig.ndim != 2:
            raise ShapeError(f"{path}: rosinality 'eigvec' is not a [w_dim, K] tensor")
        k = _check_component(path, eig.shape[1], component, "rosinality SeFa")
        info = {"component": k, "ckpt": str(obj.get("ckpt", ""))}
        return Direction(eig[:, k][None].float().contiguous(), "rosinality-sefa", None, str(path), info)
    if isinstance(obj, dict):
        if not {"comp", "std"} <= set(obj):
            raise WplusError(
                f"{path}: dict with keys {sorted(map(str, obj))}, expected GANSpace keys mean, comp, std or "
                "rosinality's ckpt, eigvec"
            )
        comp, std = torch.as_tensor(obj["comp"]).float(), torch.as_tensor(obj["std"]).float().reshape(-1)
        if comp.ndim == 3 and comp.shape[1] == 1:
            comp = comp[:, 0]
        if comp.ndim != 2 or std.shape[0] != comp.shape[0]:
            raise ShapeError(
                f"{path}: GANSpace comp {list(comp.shape)} / std {list(std.shape)}, expected [K, 1, w_dim] / [K]"
            )
        k = _check_component(path, comp.shape[0], component, "GANSpace")
        vec = (comp[k] * std[k])[None]
        mean = torch.as_tensor(obj["mean"]).float().reshape(1, -1) if "mean" in obj else None
        if mean is not None and mean.shape[1] != comp.shape[1]:
            raise ShapeError(f"{path}: GANSpace mean has {mean.shape[1]} values, expected {comp.shape[1]} (w_dim)")
        info = {"component": k, "std": float(std[k])}
        return Direction(vec, "ganspace", None, str(path), info, mean, float(std[k]))
    if not isinstance(obj, torch.Tensor):
        raise WplusError(f"{path}: holds a {type(obj).__name__}, expected a tensor or a GANSpace dict")
    vec = _as_rows(obj, path, "pt")
    return Direction(vec, "interfacegan" if vec.shape[0] == 1 else "e4e", None, str(path))


def load_direction(
    path: str | Path,
    G: torch.nn.Module | None = None,
    *,
    component: int | None = None,
    model_sha256: str | None = None,
    model_id: str = "this model",
) -> Direction:
    """Read a direction file (ours, toolkit .npy, InterFaceGAN, e4e, GANSpace; see the module docstring), or a
    shipped model's named direction, ``"MODEL:NAME"`` (:func:`wplus.shipped.named_directions`).

    Args:
        path: the file, or ``"cartoon-faces-64:smile"`` (a string that is not an existing file).
        G: when given, the direction is checked against ``G.num_ws`` / ``G.w_dim``.
        component: GANSpace component index (required for GANSpace files, ignored otherwise).
        model_sha256: SHA-256 of the generator file that will render the edit; a named direction of another model
            is then refused. ``model_id`` names that generator in the message.

    Raises:
        WplusError: missing, empty or unreadable file; ShapeError: wrong shape (for ``G``); ConfigError: missing
        GANSpace component, or NaN / infinite / absurd values; an unknown ``MODEL:NAME`` (the message lists the
        names there are) or one of another model than ``model_sha256``'s.

    Example:
        >>> d = load_direction("cartoon-faces-64:smile")
        >>> d.metadata["named"], list(d.vector.shape)
        ('cartoon-faces-64:smile', [10, 256])
    """
    from wplus.shipped import check_direction_model, named_direction, parse_direction_spec

    named = None
    if parse_direction_spec(path) is not None:
        named = named_direction(str(path))
        if model_sha256 is not None:
            check_direction_model(named, model_sha256, model_id)
        path = named.path
    d = _load_direction_file(Path(path), G, component)
    if named is not None:
        d.metadata = {**d.metadata, "named": named.spec}  # d.source stays the file (runs record its hash)
    return d


def _load_direction_file(path: Path, G: torch.nn.Module | None, component: int | None) -> Direction:
    if not path.is_file():
        raise WplusError(f"{path}: no such file; expected a direction (.npz, .npy or .pt)")
    check_not_empty(path, "direction", "a direction (.npz, .npy or .pt)")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        d = _read_npz(path, component)
    elif suffix == ".npy":
        d = _read_npy(path)
    elif suffix in (".pt", ".pth"):
        d = _read_pt(path, component)
    else:
        raise ConfigError(f"{path}: unknown direction file type {suffix!r}; expected .npz, .npy or .pt")
    check_finite(d.vector, f"{d.kind} direction", path)
    if d.mean is not None:
        check_finite(d.mean, f"{d.kind} mean", path)
    if G is not None:
        if d.metadata.get("space") == "z":
            raise ConfigError(
                f"{path}: a boundary fitted on z codes; edits move W / W+ codes, so fit it with --space w"
            )
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
    d, rows = _edit_rows(ws, direction, layers, "apply_direction")
    full = d.broadcast(*ws.shape[1:]).to(ws)
    mask = torch.zeros(ws.shape[1], 1, dtype=ws.dtype, device=ws.device)
    mask[rows] = 1
    strengths = _values(strength, "strength")
    return torch.cat([ws + s * mask * full for s in strengths])


def _edit_rows(
    ws: torch.Tensor, direction: Direction | torch.Tensor, layers: Sequence[int] | None, caller: str
) -> tuple[Direction, list[int]]:
    """The direction as a :class:`Direction` and the rows to edit (``layers``, else its own, else all), checked."""
    if ws.ndim != 3 or ws.shape[0] != 1:
        raise ShapeError(f"{caller} takes one code [1, num_ws, w_dim], got {list(ws.shape)}")
    num_ws, w_dim = ws.shape[1:]
    d = direction if isinstance(direction, Direction) else Direction(direction.float(), "tensor")
    d.broadcast(num_ws, w_dim)
    rows = list(layers) if layers is not None else (d.layers if d.layers is not None else list(range(num_ws)))
    bad = [r for r in rows if not 0 <= r < num_ws]
    if bad:
        raise ConfigError(f"layers {bad} are outside 0-{num_ws - 1} (this generator has num_ws={num_ws})")
    return d, rows


def _values(values: float | Sequence[float], what: str) -> list[float]:
    out = [float(values)] if isinstance(values, int | float) else [float(s) for s in values]
    if not out:
        raise ConfigError(f"{what}: give at least one value")
    check_finite(out, what)
    return out


def move_to_coordinate(
    ws: torch.Tensor,
    direction: Direction,
    targets: float | Sequence[float],
    *,
    layers: Sequence[int] | None = None,
) -> torch.Tensor:
    """GANSpace's named edits: move each edited row *to* coordinate ``t·std`` along a PCA component.

    The coordinate of a row is ``(w − mean)·u`` with ``u`` the unit component; each row in ``layers`` gets
    ``(t·std − coordinate)·u`` added, so every edited row lands on the same coordinate whatever it started at
    (GANSpace's ``figure_teaser`` notebook; e4e computes one coordinate from row 0 and shifts all rows by it, which
    is the same for a W code). Strength 0 moves the rows onto the mean's coordinate.

    Args:
        ws: [1, num_ws, w_dim] code.
        direction: a PCA :class:`Direction` (GANSpace / e4e ``.pt`` with a mean, or ``wplus direction pca`` ``.npz``).
        targets: one coordinate or a sweep, in standard deviations of the component.
        layers: rows to edit (default: all).

    Returns:
        [S, num_ws, w_dim].

    Raises:
        ConfigError: a direction without mean and std, a row outside the code, or a non-finite target.
    """
    if direction.mean is None or not direction.scale:
        raise ConfigError(
            f"{direction.source or 'direction'}: a target coordinate needs a PCA component with a mean and a nonzero "
            f"std (GANSpace/e4e .pt or `wplus direction pca`); this is a {direction.kind} direction: use a strength"
        )
    d, rows = _edit_rows(ws, direction, layers, "move_to_coordinate")
    unit = (d.vector[0] / d.scale).to(ws)  # [w_dim]
    mean = d.mean.reshape(-1).to(ws)
    coord = (ws[0, rows] - mean) @ unit  # [R]
    out = []
    for t in _values(targets, "target coordinate"):
        edited = ws.clone()
        edited[0, rows] += (t * d.scale - coord)[:, None] * unit
        out.append(edited)
    return torch.cat(out)


def direction_from_pairs(neutral: Sequence[torch.Tensor], expressive: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean of ``expressive[i] − neutral[i]`` over pairs of [1, num_ws, w_dim] codes -> [num_ws, w_dim]."""
    if len(neutral) != len(expressive) or not neutral:
        raise ConfigError(f"need matching pairs, got {len(neutral)} neutral and {len(expressive)} expressive codes")
    shapes = {tuple(t.shape) for t in [*neutral, *expressive]}
    if len(shapes) != 1:
        raise ShapeError(f"all codes must have one shape [1, num_ws, w_dim], got {sorted(shapes)}")
    diffs = torch.stack([e.float() - n.float() for n, e in zip(neutral, expressive, strict=True)])
    return diffs.mean(0).reshape(diffs.shape[-2], diffs.shape[-1])
