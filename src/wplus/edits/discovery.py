"""Finding edit directions: from the weights alone (SeFa), from samples of W (GANSpace's PCA), from a classifier's
scores on samples (InterFaceGAN).

- :func:`sefa` — closed-form factorization (Shen & Zhou 2021): the eigenvectors of ``AᵀA``, where ``A`` stacks
  the style-affine weights [C, w_dim] of the chosen layers. Two variants: ``genforce`` (genforce/sefa: every output
  channel normalised to unit length, and the last ToRGB counted for the row only it reads) and ``rosinality``
  (rosinality's ``closed_form_factorization.py``: every modulation but the later ToRGBs, no normalisation; the
  right singular vectors of ``A`` are the eigenvectors of ``AᵀA``, which is how they are computed here).
- :func:`pca` — GANSpace with ``--use_w``: PCA of sampled w, unit components, and each component's spread
  measured on fresh samples (so a strength in σ means the same for every component).
- :func:`sample_codes` — seeded samples (NVIDIA's seed convention) for a classifier to score.
- :func:`fit_boundary` — InterFaceGAN's ``train_boundary``: the top and bottom ``ratio`` of the codes by score,
  a 70/30 split, a linear-kernel SVC, and the unit normal of its plane; :func:`project_out` makes it conditional.

Every function takes tensors (or arrays) and returns a dataclass; the files live in :mod:`wplus.edits.discovery_io`.
scikit-learn (and SciPy under it) is imported inside the functions that use it, never at import time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from wplus.errors import ConfigError, ShapeError
from wplus.io.latents import check_finite
from wplus.runtime import at_most_cpu_threads
from wplus.seeds import z_from_seeds

__all__ = [
    "SefaVariant",
    "StyleAffine",
    "style_affines",
    "SefaResult",
    "sefa",
    "PCAResult",
    "pca",
    "SampledCodes",
    "sample_codes",
    "Boundary",
    "fit_boundary",
    "project_out",
]

log = logging.getLogger(__name__)

SefaVariant = Literal["genforce", "rosinality"]
SEFA_VARIANTS: tuple[str, ...] = ("genforce", "rosinality")
ROSINALITY_FIRST_TORGB = "synthesis.b4.torgb"  # rosinality's ``to_rgb1``: the one ToRGB its script keeps


# --------------------------------------------------------------------------------------------------------------------
# SeFa


@dataclass(frozen=True)
class StyleAffine:
    """One style affine of a generator: its module path, the W+ row it reads, whether it feeds a ToRGB, and its
    weight [out_features, w_dim] as stored (without the equalised-lr gain, like rosinality's ``modulation.weight``)."""

    name: str
    row: int
    is_torgb: bool
    weight: torch.Tensor


def style_affines(G: torch.nn.Module) -> list[StyleAffine]:
    """Every style affine of a StyleGAN2, StyleGAN (v1) or StyleGAN3 generator, in W+ row order.

    StyleGAN2: ``b{r}.conv0`` / ``conv1`` read their own rows and each ``torgb`` reads the next block's first row
    (the last one reads row ``num_ws - 1``, which only it reads). StyleGAN v1: one AdaIN style (scale and shift) per
    row; its ToRGB takes no style. StyleGAN3: ``L0``..``L13`` and the ToRGB read rows 1..15; row 0 drives the input's
    rotation and translation, which is not a style and is left out.

    Raises:
        ConfigError: ``G`` is not one of these generators.
    """
    arch = getattr(getattr(G, "config", None), "arch", None)
    out: list[StyleAffine] = []
    if arch == "stylegan2":
        row = 0
        for block in G.synthesis.blocks():
            convs = [n for n in ("conv0", "conv1") if hasattr(block, n)]
            for i, n in enumerate(convs):
                out.append(StyleAffine(f"synthesis.b{block.resolution}.{n}", row + i, False, _weight(block, n)))
            if block.num_torgb:
                name = f"synthesis.b{block.resolution}.torgb"
                out.append(StyleAffine(name, row + block.num_conv, True, _weight(block, "torgb")))
            row += block.num_conv
    elif arch == "stylegan1":
        for i, layer in enumerate(G.synthesis.layers()):
            res = G.synthesis.block_resolutions[i // 2]
            out.append(StyleAffine(f"synthesis.b{res}.layer{i % 2}", i, False, layer.style.weight.detach()))
    elif arch == "stylegan3":
        for i, name in enumerate(G.synthesis.layer_names):
            layer = getattr(G.synthesis, name)
            out.append(StyleAffine(f"synthesis.{name}", i + 1, bool(layer.is_torgb), layer.affine.weight.detach()))
    else:
        raise ConfigError(f"SeFa reads StyleGAN2, StyleGAN (v1) and StyleGAN3 generators, got {arch or type(G)}")
    return out


def _weight(block: torch.nn.Module, name: str) -> torch.Tensor:
    return getattr(block, name).affine.weight.detach()


def _select(affines: list[StyleAffine], rows: Sequence[int] | None, variant: str, arch: str) -> list[StyleAffine]:
    """The affines a variant factorises among those reading ``rows`` (None: every row)."""
    chosen = [a for a in affines if rows is None or a.row in rows]
    if variant == "rosinality" and arch == "stylegan2":
        # The script keeps keys with 'modulation' and 'weight' but not 'to_rgbs': the convs and to_rgb1.
        return [a for a in chosen if not a.is_torgb or a.name == ROSINALITY_FIRST_TORGB]
    # genforce: layer{i} is the conv reading row i; a row no conv reads (StyleGAN2's last) is the ToRGB's.
    conv_rows = {a.row for a in chosen if not a.is_torgb}
    return [a for a in chosen if not a.is_torgb or a.row not in conv_rows]


@dataclass
class SefaResult:
    """Directions found by :func:`sefa`.

    Attributes:
        directions: [K, w_dim] float32, orthonormal rows sorted by eigenvalue (largest first); the sign makes each
            row's largest-magnitude entry positive (eigenvectors have no sign of their own).
        eigenvalues: [K] float64 eigenvalues of ``AᵀA`` (for ``rosinality``: the squared singular values of ``A``).
        layers: the W+ rows the factorised layers read: the rows an edit along these directions moves.
        layer_names: the factorised modules.
        variant: ``genforce`` or ``rosinality``.
    """

    directions: torch.Tensor
    eigenvalues: torch.Tensor
    layers: list[int]
    layer_names: list[str]
    variant: str


def sefa(
    G: torch.nn.Module,
    *,
    layers: Sequence[int] | None = None,
    variant: SefaVariant = "genforce",
    num: int | None = None,
) -> SefaResult:
    """Closed-form factorization of the style affines (SeFa) of a StyleGAN2, StyleGAN (v1) or StyleGAN3.

    Args:
        G: the generator.
        layers: W+ rows whose style layers are factorised (None: all of them).
        variant: ``genforce`` (output channels normalised, ToRGB included for the row only it reads) or
            ``rosinality`` (no normalisation; StyleGAN2: the convs and ``to_rgb1``, as rosinality's script).
        num: how many directions to keep (None: all, at most ``min(channels, w_dim)``).

    Returns:
        :class:`SefaResult`.

    Raises:
        ConfigError: an unknown variant, rows that no style layer reads, ``num`` out of range, or weights that are
            not finite.

    Shape:
        directions [K, w_dim]; eigenvalues [K].

    Example:
        >>> from wplus.models.stylegan2 import StyleGAN2Config, random_generator
        >>> G = random_generator(StyleGAN2Config(img_resolution=16, z_dim=8, w_dim=8, mapping_layers=1,
        ...                                      channel_base=64, channel_max=8), w_avg_samples=10)
        >>> r = sefa(G, num=3)
        >>> r.directions.shape, r.layers
        (torch.Size([3, 8]), [0, 1, 2, 3, 4, 5])
    """
    if variant not in SEFA_VARIANTS:
        raise ConfigError(f"SeFa variant {variant!r}: expected one of {', '.join(SEFA_VARIANTS)}")
    affines = style_affines(G)
    arch = G.config.arch
    picked = _select(affines, None if layers is None else set(layers), variant, arch)
    read = sorted({a.row for a in picked})
    if layers is not None:
        unread = sorted(set(layers) - set(read))
        if unread:
            raise ConfigError(
                f"layers: rows {unread} feed no style layer that the {variant} variant factorises (this {arch} "
                f"has styled rows {sorted({a.row for a in _select(affines, None, variant, arch)})}); leave them out"
            )
    with at_most_cpu_threads(1):  # a [w_dim, w_dim] problem: threads only wait for each other (runtime.py)
        A = torch.cat([a.weight.to("cpu", torch.float64) for a in picked])  # [ΣC, w_dim]
        check_finite(A, "style-affine weights", max_abs=None)
        if variant == "genforce":
            A = A / A.norm(dim=1, keepdim=True).clamp_min(1e-30)  # unit output channels (a zero channel stays zero)
        eigenvalues, vectors = torch.linalg.eigh(A.T @ A)  # ascending; columns are eigenvectors
    order = torch.argsort(eigenvalues, descending=True)
    available = min(A.shape)
    if num is not None and not 1 <= num <= available:
        raise ConfigError(f"num {num}: this selection gives {available} directions; ask for 1 to {available}")
    keep = order[: num or available]
    directions = vectors[:, keep].T.contiguous()  # [K, w_dim]
    directions = directions * _sign(directions)[:, None]
    return SefaResult(
        directions=directions.float(),
        eigenvalues=eigenvalues[keep].clamp_min(0),
        layers=read,
        layer_names=[a.name for a in picked],
        variant=variant,
    )


def _sign(rows: torch.Tensor) -> torch.Tensor:
    """+1 or -1 per row, making each row's largest-magnitude entry positive."""
    peak = rows.gather(1, rows.abs().argmax(dim=1, keepdim=True))[:, 0]
    return torch.where(peak < 0, -1.0, 1.0).to(rows.dtype)


# --------------------------------------------------------------------------------------------------------------------
# Sampling W


def _labels(G: torch.nn.Module, n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor | None:
    """Uniformly drawn one-hot labels for a conditional generator, None for an unconditional one."""
    if not getattr(G, "c_dim", 0):
        return None
    c = torch.zeros(n, G.c_dim, device=device)
    c[torch.arange(n), torch.randint(G.c_dim, (n,), generator=gen).to(device)] = 1
    return c


def _sample_w(G: torch.nn.Module, n: int, gen: torch.Generator, batch_size: int) -> np.ndarray:
    """``n`` w vectors [n, w_dim] float32 from z ~ N(0, I) drawn with ``gen`` (CPU), mapped on G's device."""
    device = next(G.parameters()).device
    out = np.empty((n, G.w_dim), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            z = torch.randn(b, G.z_dim, generator=gen).to(device)
            out[start : start + b] = G.mapping(z, _labels(G, b, gen, device))[:, 0].float().cpu().numpy()
    return out


@dataclass
class PCAResult:
    """GANSpace components of W.

    Attributes:
        mean: [w_dim] mean of the sampled w.
        components: [K, w_dim] unit-norm principal axes, largest variance first.
        std: [K] standard deviation of fresh samples' coordinates along each axis: a strength of 1 is one σ.
        variance_ratio: [K] fraction of the sampled variance each axis explains.
        num_samples: how many w the PCA saw; std_samples: how many fresh w measured ``std``.
    """

    mean: torch.Tensor
    components: torch.Tensor
    std: torch.Tensor
    variance_ratio: torch.Tensor
    num_samples: int
    std_samples: int
    seed: int


def pca(
    G: torch.nn.Module,
    *,
    num_samples: int = 100_000,
    num_components: int = 80,
    std_samples: int = 5_000,
    seed: int = 0,
    batch_size: int = 10_000,
) -> PCAResult:
    """PCA of W (GANSpace ``--use_w``): sample w, fit scikit-learn's PCA, measure each axis on fresh samples.

    Args:
        G: the generator (conditional ones get uniformly drawn labels).
        num_samples: w vectors for the fit (GANSpace: 300 000 by default, 1 000 000 in its figures).
        num_components: K (GANSpace: 80), at most ``min(num_samples, w_dim)``.
        std_samples: fresh w vectors whose spread along each axis becomes ``std`` (GANSpace: 5 000).
        seed: seeds the z draws (``torch.Generator``); the fresh samples continue the same stream.
        batch_size: w vectors mapped at once.

    Returns:
        :class:`PCAResult`.

    Raises:
        ConfigError: sample or component counts out of range.

    Example:
        >>> from wplus.models.stylegan2 import StyleGAN2Config, random_generator
        >>> G = random_generator(StyleGAN2Config(img_resolution=8, z_dim=8, w_dim=8, mapping_layers=1,
        ...                                      channel_base=32, channel_max=8), w_avg_samples=10)
        >>> r = pca(G, num_samples=500, num_components=4, std_samples=200)
        >>> r.components.shape, bool(torch.allclose(r.components.norm(dim=1), torch.ones(4), atol=1e-5))
        (torch.Size([4, 8]), True)
    """
    from sklearn.decomposition import PCA

    if num_samples < 2 or std_samples < 2:
        raise ConfigError(f"samples: got {num_samples} for the fit and {std_samples} for std, expected at least 2")
    limit = min(num_samples, G.w_dim)
    if not 1 <= num_components <= limit:
        raise ConfigError(
            f"components {num_components}: expected 1 to {limit} (w_dim {G.w_dim}, {num_samples} samples)"
        )
    gen = torch.Generator().manual_seed(seed)
    w = _sample_w(G, num_samples, gen, batch_size)  # [N, w_dim]
    fit = PCA(n_components=num_components, svd_solver="auto", random_state=seed).fit(w)
    comp = torch.from_numpy(fit.components_.astype(np.float64))
    comp = comp / comp.norm(dim=1, keepdim=True)
    mean = torch.from_numpy(fit.mean_.astype(np.float64))
    fresh = torch.from_numpy(_sample_w(G, std_samples, gen, batch_size)).double()
    std = ((fresh - mean) @ comp.T).std(dim=0, unbiased=False)  # [K]
    log.info("PCA of %d w: %d components explain %.1f%%", num_samples, num_components,
             100 * float(fit.explained_variance_ratio_.sum()))  # fmt: skip
    return PCAResult(
        mean=mean.float(),
        components=comp.float(),
        std=std.float(),
        variance_ratio=torch.from_numpy(fit.explained_variance_ratio_.astype(np.float64)),
        num_samples=num_samples,
        std_samples=std_samples,
        seed=seed,
    )


@dataclass
class SampledCodes:
    """Seeded samples: ``seeds`` [N] int64, ``z`` [N, z_dim] and ``w`` [N, w_dim] (truncated by ``truncation_psi``)."""

    seeds: np.ndarray
    z: torch.Tensor
    w: torch.Tensor
    truncation_psi: float


def sample_codes(
    G: torch.nn.Module,
    seeds: Sequence[int],
    *,
    truncation_psi: float = 1.0,
    c: torch.Tensor | None = None,
    batch_size: int = 1024,
) -> SampledCodes:
    """z from each seed (:func:`wplus.seeds.z_from_seeds`, NVIDIA's convention) and its w.

    The truncation moves the single w (``w_avg + ψ (w − w_avg)``), so ``w`` broadcast to every row is exactly the
    code that renders the sample (for StyleGAN v1 this truncates all rows, where ``wplus generate`` truncates 8).

    Args:
        G: the generator.
        seeds: seeds, 0 to 2**32 - 1.
        truncation_psi: ψ (1: no truncation).
        c: one-hot label [1, c_dim] for a conditional generator.
        batch_size: codes mapped at once.

    Raises:
        ConfigError: no seeds, a non-finite ψ, or a conditional generator without ``c``.
    """
    if not seeds:
        raise ConfigError("seeds: give at least one seed")
    if not math.isfinite(truncation_psi):
        raise ConfigError(f"truncation psi {truncation_psi}: expected a finite number such as 0.7")
    if getattr(G, "c_dim", 0) and c is None:
        raise ConfigError(f"this generator is conditional ({G.c_dim} classes): pass a class label")
    device = next(G.parameters()).device
    z = z_from_seeds(seeds, G.z_dim)  # [N, z_dim]
    ws = []
    with torch.no_grad():
        for start in range(0, len(seeds), batch_size):
            zb = z[start : start + batch_size].to(device)
            cb = None if c is None else c.to(device).expand(len(zb), -1)
            ws.append(G.mapping(zb, cb, truncation_psi=truncation_psi)[:, 0].float().cpu())
    return SampledCodes(np.asarray(seeds, dtype=np.int64), z, torch.cat(ws), truncation_psi)


# --------------------------------------------------------------------------------------------------------------------
# InterFaceGAN


@dataclass
class Boundary:
    """A linear boundary fitted by :func:`fit_boundary`.

    Attributes:
        normal: [1, dim] float64 unit normal (pointing to high scores), conditioned when ``conditions`` were given.
        val_accuracy / train_accuracy: accuracy of the SVC on the held-out 30 % and the 70 % it was fitted on.
        remaining_accuracy: accuracy on the codes between the two extremes, labelled by the mid score (None when
            there are none).
        num_codes, num_positive, num_negative, num_train, num_val: the counts used (per side for positive/negative).
        ratio, split, seed: the settings.
        num_conditions: how many boundaries were projected out.
    """

    normal: np.ndarray
    val_accuracy: float
    train_accuracy: float
    remaining_accuracy: float | None
    num_codes: int
    num_positive: int
    num_negative: int
    num_train: int
    num_val: int
    ratio: float
    split: float
    seed: int
    num_conditions: int = 0


def fit_boundary(
    codes: np.ndarray | torch.Tensor,
    scores: np.ndarray | torch.Tensor,
    *,
    ratio: float = 0.02,
    split: float = 0.7,
    seed: int = 0,
    conditions: Sequence[np.ndarray | torch.Tensor] = (),
) -> Boundary:
    """InterFaceGAN's boundary: a linear SVM between the highest- and lowest-scored codes.

    The codes are sorted by score; the top ``ratio`` (a fraction of N when ≤ 1, else a count; at most N/2) are the
    positives and as many from the bottom the negatives. Each side is shuffled and split ``split`` / ``1 − split``
    into training and validation; scikit-learn's ``SVC(kernel='linear')`` (InterFaceGAN's choice, default C) is
    fitted, and the boundary is its ``coef_`` normalised (the intercept is dropped, as InterFaceGAN does).

    Args:
        codes: [N, dim] (w or z vectors).
        scores: [N] or [N, 1], one per code (any scale; 0/1 labels work).
        ratio: fraction (≤ 1) or count (> 1) of codes taken from each end.
        split: training share of each side.
        seed: seeds the shuffles.
        conditions: boundaries [1, dim] or [dim] to project out (:func:`project_out`).

    Returns:
        :class:`Boundary`.

    Raises:
        ShapeError: codes not [N, dim], a score count that differs, conditions of another dim.
        ConfigError: NaN or infinite values, all scores equal, fewer than 2 codes per side, a bad ratio or split.
    """
    from sklearn.svm import SVC

    x = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.float64)
    y = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    if x.ndim != 2:
        raise ShapeError(f"codes have shape {list(x.shape)}, expected [N, dim]")
    y = y.reshape(len(y), -1) if y.ndim else y.reshape(1, 1)
    if y.shape[1] != 1 or len(y) != len(x):
        raise ShapeError(f"got {y.size} scores for {len(x)} codes, expected one score per code")
    y = y[:, 0]
    check_finite(x, "codes", max_abs=None)
    check_finite(y, "scores", max_abs=None)
    if not (math.isfinite(ratio) and ratio > 0) or not 0 < split < 1:
        raise ConfigError(
            f"ratio {ratio} / split {split}: expected ratio > 0 (fraction ≤ 1 or a count) and 0 < split < 1"
        )
    if np.ptp(y) == 0:
        raise ConfigError(f"all {len(y)} scores are {y[0]:g}: nothing to separate")
    n = len(x)
    chosen = min(int(n * ratio) if ratio <= 1 else int(ratio), n // 2)
    num_train = int(chosen * split)
    if num_train < 1 or chosen - num_train < 1:
        raise ConfigError(
            f"ratio {ratio:g} of {n} codes takes {chosen} per side; need at least 2 per side for training and "
            "validation: score more codes or raise the ratio"
        )
    order = np.argsort(-y, kind="stable")  # highest score first
    rng = np.random.default_rng(seed)
    pos, neg = rng.permutation(order[:chosen]), rng.permutation(order[n - chosen :])
    train = np.concatenate([pos[:num_train], neg[:num_train]])
    val = np.concatenate([pos[num_train:], neg[num_train:]])
    labels = np.zeros(n, dtype=np.int64)
    labels[order[:chosen]] = 1
    clf = SVC(kernel="linear").fit(x[train], labels[train])
    normal = clf.coef_.reshape(1, -1).astype(np.float64)
    norm = float(np.linalg.norm(normal))
    if not norm > 0:
        raise ConfigError("the SVM found no boundary (zero normal): the two extremes cannot be told apart")
    normal = normal / norm
    middle = order[chosen : n - chosen]
    remaining = None
    if len(middle):
        mid_labels = (y[middle] >= (y.max() + y.min()) / 2).astype(np.int64)
        remaining = float((clf.predict(x[middle]) == mid_labels).mean())
    if conditions:
        normal = project_out(normal, conditions)
    return Boundary(
        normal=normal,
        val_accuracy=float(clf.score(x[val], labels[val])),
        train_accuracy=float(clf.score(x[train], labels[train])),
        remaining_accuracy=remaining,
        num_codes=n,
        num_positive=chosen,
        num_negative=chosen,
        num_train=2 * num_train,
        num_val=2 * (chosen - num_train),
        ratio=ratio,
        split=split,
        seed=seed,
        num_conditions=len(conditions),
    )


def project_out(normal: np.ndarray | torch.Tensor, conditions: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
    """InterFaceGAN's conditional boundary: ``normal`` minus its projection on the span of ``conditions``, unit-norm.

    One condition gives ``n − (n·c)c`` (c unit); several give ``n − Cᵀ(CCᵀ)⁻¹Cn`` (least squares, so dependent
    conditions are fine) — what InterFaceGAN's ``project_boundary`` computes case by case.

    Args:
        normal: [1, dim] or [dim].
        conditions: each [1, dim] or [dim].

    Returns:
        [1, dim] float64, unit norm, orthogonal to every condition.

    Raises:
        ShapeError: a condition of another dim; ConfigError: the normal lies in the conditions' span.
    """
    n = np.asarray(normal.detach().cpu() if isinstance(normal, torch.Tensor) else normal, dtype=np.float64).ravel()
    rows = []
    for i, c in enumerate(conditions):
        c = np.asarray(c.detach().cpu() if isinstance(c, torch.Tensor) else c, dtype=np.float64).ravel()
        if c.shape != n.shape:
            raise ShapeError(f"condition {i} has {c.size} values, expected {n.size} (the boundary's dim)")
        rows.append(c)
    if not rows:
        return (n / np.linalg.norm(n))[None]
    C = np.stack(rows)  # [m, dim]
    coef = np.linalg.lstsq(C.T, n, rcond=None)[0]  # argmin ||Cᵀa − n||: Cᵀa is n's projection on span(C)
    out = n - C.T @ coef
    norm = float(np.linalg.norm(out))
    if norm < 1e-6 * float(np.linalg.norm(n)):
        raise ConfigError("the boundary lies in the span of its conditions: nothing is left after projecting them out")
    return (out / norm)[None]
