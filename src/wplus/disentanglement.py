"""How disentangled a latent space is with respect to known factors: DCI (Eastwood & Williams, ICLR 2018), computed
the way StyleSpace's ``DCI.py`` does, with scikit-learn's gradient-boosted trees.

For each factor (a binary label) one ``GradientBoostingClassifier`` is fitted on the codes; its
``feature_importances_`` fill a column of the importance matrix R [code dims, factors].

* **Disentanglement** D: per code dimension i, 1 − entropy (base K) of its importances across the K factors,
  averaged with weights ρ_i = Σ_j R_ij / Σ R (a dimension that matters for one factor only scores 1).
* **Completeness** C: per factor j, 1 − entropy (base D) of its importances across the D dimensions, averaged over
  factors (a factor captured by one dimension scores 1).
* **Informativeness** I: the classifiers' accuracy on held-out codes, averaged over factors.

Example:
    >>> import numpy as np
    >>> rng = np.random.RandomState(0)
    >>> codes = rng.randn(400, 4)
    >>> labels = np.stack([codes[:, 0] > 0, codes[:, 2] > 0], 1)          # one dimension per factor
    >>> r = dci(codes[:300], labels[:300], codes[300:], labels[300:], n_estimators=20)
    >>> round(r.disentanglement, 1), round(r.completeness, 1), r.informativeness > 0.9
    (1.0, 1.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wplus.errors import ConfigError

__all__ = ["DCI", "dci", "importance_matrix"]


@dataclass
class DCI:
    """DCI scores; ``importance`` is R [dims, factors]; per-factor accuracies in ``accuracy``."""

    disentanglement: float
    completeness: float
    informativeness: float
    importance: np.ndarray = field(repr=False)
    accuracy: list[float] = field(default_factory=list)


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    p = np.clip(p, 1e-12, None)
    return -(p * np.log(p)).sum(axis=axis) / np.log(max(base, 2))


def importance_matrix(
    codes: np.ndarray,
    labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    *,
    n_estimators: int = 50,
    max_depth: int = 3,
    seed: int = 0,
) -> tuple[np.ndarray, list[float]]:
    """R [dims, factors] from one gradient-boosted classifier per factor, and each classifier's test accuracy."""
    from sklearn.ensemble import GradientBoostingClassifier

    codes, labels = np.asarray(codes, np.float64), np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    if codes.ndim != 2 or len(codes) != len(labels) or len(test_codes) != len(test_labels):
        raise ConfigError(
            f"DCI needs codes [N, D] with one row of labels each; got codes {list(codes.shape)}, labels "
            f"{list(labels.shape)}, test {len(test_codes)} codes / {len(test_labels)} labels"
        )
    test_labels = np.asarray(test_labels)
    if test_labels.ndim == 1:
        test_labels = test_labels[:, None]
    R = np.zeros((codes.shape[1], labels.shape[1]))
    acc = []
    for j in range(labels.shape[1]):
        y = labels[:, j].astype(int)
        if len(np.unique(y)) < 2:
            raise ConfigError(f"DCI: factor {j} has one value in every training code; it cannot be predicted")
        clf = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed)
        clf.fit(codes, y)
        R[:, j] = np.abs(clf.feature_importances_)
        acc.append(float((clf.predict(np.asarray(test_codes, np.float64)) == test_labels[:, j].astype(int)).mean()))
    return R, acc


def dci(
    codes: np.ndarray,
    labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    *,
    n_estimators: int = 50,
    max_depth: int = 3,
    seed: int = 0,
) -> DCI:
    """DCI of ``codes`` [N, D] against binary ``labels`` [N, K], informativeness on the test split."""
    R, acc = importance_matrix(
        codes, labels, test_codes, test_labels, n_estimators=n_estimators, max_depth=max_depth, seed=seed
    )
    dims, factors = R.shape
    total = R.sum()
    if total <= 0:
        return DCI(0.0, 0.0, float(np.mean(acc)), R, acc)
    per_dim = 1 - _entropy(R / np.clip(R.sum(1, keepdims=True), 1e-12, None), factors, axis=1)
    rho = R.sum(1) / total
    d = float((rho * per_dim).sum()) if factors > 1 else 1.0
    per_factor = 1 - _entropy(R / np.clip(R.sum(0, keepdims=True), 1e-12, None), dims, axis=0)
    return DCI(d, float(per_factor.mean()), float(np.mean(acc)), R, acc)
