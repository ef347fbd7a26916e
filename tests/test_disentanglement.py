"""DCI scores separate planted disentangled codes from planted entangled ones."""

from __future__ import annotations

import numpy as np
import pytest

from wplus.disentanglement import dci
from wplus.errors import ConfigError


def _split(codes, labels):
    return codes[:400], labels[:400], codes[400:], labels[400:]


def test_one_dimension_per_factor_scores_high_and_a_rotation_scores_low():
    c = np.random.RandomState(0).randn(600, 6)
    clean = dci(*_split(c, np.stack([c[:, 0] > 0, c[:, 1] > 0], 1)), n_estimators=30)
    mixed = dci(*_split(c, np.stack([c[:, 0] + c[:, 1] > 0, c[:, 0] - c[:, 1] > 0], 1)), n_estimators=30)
    assert clean.disentanglement > 0.95 and clean.completeness > 0.95 and clean.informativeness > 0.95
    assert mixed.disentanglement < 0.2  # both dimensions serve both factors
    assert clean.importance.shape == (6, 2)
    # a factor spread over three copies of its dimension: complete no more
    spread = np.concatenate([c[:, :1]] * 3 + [c[:, 1:]], 1)
    s = dci(*_split(spread, np.stack([c[:, 0] > 0, c[:, 1] > 0], 1)), n_estimators=30)
    assert s.completeness < clean.completeness - 0.1


def test_a_constant_factor_is_refused():
    c = np.random.RandomState(1).randn(50, 3)
    with pytest.raises(ConfigError, match="factor 0 has one value"):
        dci(c[:40], np.zeros((40, 1)), c[40:], np.zeros((10, 1)))
