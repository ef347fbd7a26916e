"""Files of edit discovery: ours (``.npz`` + JSON metadata, no pickle) and the layouts the community tools read.

======================  ==============================================================================================
file                    content
======================  ==============================================================================================
SeFa ``.npz`` (ours)    ``components`` f32 [K, w_dim], ``eigenvalues`` f64 [K], ``metadata`` (method, variant,
                        layers = W+ rows edited, layer_names, model_sha256)
rosinality ``.pt``      ``{"ckpt": str, "eigvec": f32 [w_dim, K]}``: directions as **columns** (``apply_factor.py``)
PCA ``.npz`` (ours)     ``components`` f32 [K, w_dim], ``mean`` f32 [w_dim], ``std`` f32 [K], ``variance_ratio``
                        f64 [K], ``metadata``
GANSpace / e4e ``.pt``  ``{"mean": f32 [1, w_dim], "comp": f32 [K, 1, w_dim], "std": f32 [K]}`` (e4e's ``ffhq_pca.pt``)
codes ``.npz``          ``seeds`` i64 [N], ``z`` f32 [N, z_dim], ``w`` f32 [N, w_dim], ``metadata``
boundary ``.npz``       ``direction`` f32 [1, dim] (what :func:`wplus.edits.directions.load_direction` reads) and
                        ``metadata`` (space, accuracies, counts, conditions)
InterFaceGAN ``.npy``   f64 [1, dim], unit norm (``boundaries/*_w_boundary.npy``)
======================  ==============================================================================================

Every ``.pt`` written here holds only tensors, strings and dicts, so ``torch.load(weights_only=True)`` reads it; every
numpy file reads with ``allow_pickle=False``. All writes are atomic (:mod:`wplus.io.atomic`).
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wplus.edits.discovery import Boundary, PCAResult, SampledCodes, SefaResult
from wplus.errors import ConfigError, ShapeError, WplusError
from wplus.io.atomic import atomic_write
from wplus.io.latents import check_finite, check_not_empty

__all__ = [
    "save_sefa",
    "save_rosinality_factor",
    "save_pca",
    "save_ganspace",
    "save_samples",
    "load_samples",
    "load_scores",
    "save_boundary",
    "save_interfacegan",
]

_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)  # what a damaged numpy file raises


def _save_npz(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    arrays = {**arrays, "metadata": np.array(json.dumps(metadata))}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def _save_pt(path: str | Path, obj: dict[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_sefa(path: str | Path, result: SefaResult, *, metadata: dict[str, Any] | None = None) -> Path:
    """Our SeFa file; ``metadata`` (model_sha256, ...) is merged into the method's own."""
    meta = {
        "method": "sefa",
        "variant": result.variant,
        "layers": result.layers,
        "layer_names": result.layer_names,
        **(metadata or {}),
    }
    arrays = {"components": result.directions.float().numpy(), "eigenvalues": result.eigenvalues.double().numpy()}
    return _save_npz(path, arrays, meta)


def save_rosinality_factor(path: str | Path, result: SefaResult, *, ckpt: str) -> Path:
    """rosinality's ``closed_form_factorization.py`` output: ``{"ckpt": ckpt, "eigvec": [w_dim, K]}``."""
    return _save_pt(path, {"ckpt": str(ckpt), "eigvec": result.directions.float().T.contiguous()})


def save_pca(path: str | Path, result: PCAResult, *, metadata: dict[str, Any] | None = None) -> Path:
    """Our PCA file (components, mean, std, variance ratios)."""
    meta = {"method": "pca", "num_samples": result.num_samples, "std_samples": result.std_samples,
            "seed": result.seed, "layers": None, **(metadata or {})}  # fmt: skip
    arrays = {
        "components": result.components.float().numpy(),
        "mean": result.mean.float().numpy(),
        "std": result.std.float().numpy(),
        "variance_ratio": result.variance_ratio.double().numpy(),
    }
    return _save_npz(path, arrays, meta)


def save_ganspace(path: str | Path, result: PCAResult) -> Path:
    """GANSpace / e4e's ``{"mean" [1, w_dim], "comp" [K, 1, w_dim], "std" [K]}`` (``editings/ganspace.py`` reads it)."""
    return _save_pt(
        path,
        {
            "mean": result.mean.float()[None].contiguous(),
            "comp": result.components.float()[:, None].contiguous(),
            "std": result.std.float().contiguous(),
        },
    )


def save_samples(path: str | Path, codes: SampledCodes, *, metadata: dict[str, Any] | None = None) -> Path:
    """``codes.npz``: seeds, z and w of :func:`wplus.edits.discovery.sample_codes`."""
    meta = {"truncation_psi": codes.truncation_psi, **(metadata or {})}
    arrays = {"seeds": codes.seeds.astype(np.int64), "z": codes.z.float().numpy(), "w": codes.w.float().numpy()}
    return _save_npz(path, arrays, meta)


def load_samples(path: str | Path, space: str = "w") -> tuple[np.ndarray, np.ndarray | None]:
    """Codes to fit a boundary on: ``codes.npz`` (``wplus sample``; its ``space`` array) or an ``.npy`` [N, dim].

    Returns:
        (codes [N, dim] float64, seeds [N] int64 or None for an ``.npy``).

    Raises:
        WplusError / ShapeError / ConfigError: one line naming the file.
    """
    path = Path(path)
    expected = f"codes.npz from `wplus sample` (arrays seeds, z, w) or an .npy [N, {space}_dim]"
    if not path.is_file():
        raise WplusError(f"{path}: no such file; expected {expected}")
    check_not_empty(path, "codes", expected)
    seeds = None
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                if space not in data:
                    raise WplusError(f"{path}: no {space!r} array (has {sorted(data.files)}); expected {expected}")
                arr = np.array(data[space])
                seeds = np.array(data["seeds"]) if "seeds" in data else None
        else:
            arr = np.array(data)
    except _READ_ERRORS as e:
        raise WplusError(f"{path}: cannot read codes ({e}); expected {expected}") from None
    if arr.ndim != 2 or arr.dtype.kind != "f" or len(arr) == 0:
        raise ShapeError(f"{path}: codes are {arr.dtype} {list(arr.shape)}, expected float [N, dim]")
    if seeds is not None and (seeds.shape != (len(arr),) or seeds.dtype.kind not in "iu"):
        raise ShapeError(f"{path}: 'seeds' is {seeds.dtype} {list(seeds.shape)}, expected integers [{len(arr)}]")
    check_finite(arr, f"{space} codes", path, max_abs=None)
    return arr.astype(np.float64), None if seeds is None else seeds.astype(np.int64)


def load_scores(path: str | Path, *, codes_path: str | Path, num_codes: int, seeds: np.ndarray | None) -> np.ndarray:
    """One score per code: an ``.npy`` [N] / [N, 1] in the codes' order, or a CSV with a ``seed,score`` or
    ``index,score`` header (any row order; every code scored exactly once).

    Raises:
        ConfigError / ShapeError / WplusError: one line naming the scores file (and the codes file for a count
        mismatch or an unknown seed).
    """
    path = Path(path)
    if not path.is_file():
        raise WplusError(f"{path}: no such file; expected scores (.npy [N] or a CSV 'seed,score' / 'index,score')")
    check_not_empty(path, "scores", "an .npy [N] or a CSV 'seed,score' / 'index,score'")
    if path.suffix.lower() == ".npy":
        scores = _scores_npy(path)
    elif path.suffix.lower() in (".csv", ".txt"):
        return _scores_csv(path, codes_path=Path(codes_path), num_codes=num_codes, seeds=seeds)
    else:
        raise ConfigError(f"{path}: unknown scores file type {path.suffix!r}; expected .npy or .csv")
    if len(scores) != num_codes:
        raise ShapeError(
            f"{path} holds {len(scores)} scores but {codes_path} holds {num_codes} codes; give one score per code"
        )
    return scores


def _scores_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except _READ_ERRORS as e:
        raise WplusError(f"{path}: cannot read scores .npy ({e}); expected a float array [N]") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
        raise ShapeError(f"{path}: scores must be a numeric .npy array [N] or [N, 1]")
    if not (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1)):
        raise ShapeError(f"{path}: scores have shape {list(arr.shape)}, expected [N] or [N, 1]")
    scores = arr.reshape(-1).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        raise ConfigError(f"{path}: {len(bad)} scores are NaN or infinite (first at index {bad[0]}); expected numbers")
    return scores


def _scores_csv(path: Path, *, codes_path: Path, num_codes: int, seeds: np.ndarray | None) -> np.ndarray:
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise WplusError(f"{path}: cannot read scores CSV ({e})") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if header not in (["seed", "score"], ["index", "score"]):
        raise ConfigError(f"{path}: first line is {rows[0] if rows else 'empty'}, expected the header 'seed,score' "
                          "or 'index,score'")  # fmt: skip
    by_seed = header[0] == "seed"
    if by_seed and seeds is None:
        raise ConfigError(f"{path}: scores by seed, but {codes_path} has no seeds; use an 'index,score' CSV")
    if len(rows) - 1 != num_codes:
        raise ShapeError(
            f"{path} holds {len(rows) - 1} scores but {codes_path} holds {num_codes} codes; give one score per code"
        )
    position = {int(s): i for i, s in enumerate(seeds)} if by_seed else None
    scores = np.full(num_codes, np.nan)
    for line, row in enumerate(rows[1:], 2):
        try:
            key, value = int(row[0]), float(row[1])
        except (ValueError, IndexError):
            raise ConfigError(f"{path}:{line}: expected '{header[0]},score' numbers, got {','.join(row)!r}") from None
        if not np.isfinite(value):
            raise ConfigError(f"{path}:{line}: score {row[1].strip()!r} is not a finite number")
        i = position.get(key) if position is not None else (key if 0 <= key < num_codes else None)
        if i is None:
            what = (
                f"seed {key} is not among the seeds of {codes_path}"
                if by_seed
                else f"index {key} is outside 0-{num_codes - 1}"
            )
            raise ConfigError(f"{path}:{line}: {what}")
        if not np.isnan(scores[i]):
            raise ConfigError(f"{path}:{line}: {header[0]} {key} is scored twice")
        scores[i] = value
    return scores


def save_boundary(path: str | Path, boundary: Boundary, *, metadata: dict[str, Any] | None = None) -> Path:
    """Our boundary file: ``direction`` [1, dim] (applied to every row) and what the fit measured."""
    meta = {
        "method": "interfacegan",
        "layers": None,
        "val_accuracy": boundary.val_accuracy,
        "train_accuracy": boundary.train_accuracy,
        "remaining_accuracy": boundary.remaining_accuracy,
        "num_codes": boundary.num_codes,
        "num_positive": boundary.num_positive,
        "num_negative": boundary.num_negative,
        "num_train": boundary.num_train,
        "num_val": boundary.num_val,
        "ratio": boundary.ratio,
        "split": boundary.split,
        "seed": boundary.seed,
        **(metadata or {}),
    }
    return _save_npz(path, {"direction": boundary.normal.astype(np.float32)}, meta)


def save_interfacegan(path: str | Path, boundary: Boundary) -> Path:
    """InterFaceGAN's boundary ``.npy``: float64 [1, dim], unit norm."""

    def write(tmp: Path) -> None:
        np.save(tmp, boundary.normal.astype(np.float64).reshape(1, -1), allow_pickle=False)

    return atomic_write(path, write)
