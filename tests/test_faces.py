"""The procedural cartoon-face dataset: determinism, variety, one-attribute edits, boxes."""

from __future__ import annotations

import numpy as np
import pytest

from wplus.data.faces import (
    HELD_OUT_SEED_BASE,
    draw_face,
    face_array,
    face_boxes,
    render_faces,
    sample_attributes,
    with_attribute,
)
from wplus.errors import ConfigError


def test_same_seed_same_face_and_seeds_differ():
    a, b = face_array(3), face_array(3)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(face_array(3).astype(int) - face_array(4).astype(int)).mean() > 5


def test_faces_are_anti_aliased():
    # Supersampled drawing gives intermediate colours along edges; an aliased drawing has only the flat fills.
    attrs = sample_attributes(5)
    smooth = np.asarray(draw_face(attrs))
    hard = np.asarray(draw_face(attrs, supersample=1))
    count = lambda x: len(np.unique(x.reshape(-1, 3), axis=0))  # noqa: E731
    assert count(smooth) > 3 * count(hard)


def test_smile_changes_only_the_mouth_box():
    attrs = with_attribute(sample_attributes(11), roll=0.0)
    neutral = np.asarray(draw_face(with_attribute(attrs, smile=0.0))).astype(float)
    smiling = np.asarray(draw_face(with_attribute(attrs, smile=1.0))).astype(float)
    change = ((smiling - neutral) ** 2).sum(-1)
    x0, y0, x1, y1 = face_boxes(attrs)["mouth"]
    inside = change[int(y0) : int(np.ceil(y1)) + 1, int(x0) : int(np.ceil(x1)) + 1].sum()
    assert change.sum() > 0 and inside / change.sum() > 0.99


def test_boxes_follow_the_pose_and_lie_in_the_image():
    attrs = sample_attributes(2)
    boxes = face_boxes(attrs)
    assert set(boxes) == {"mouth", "left_eye", "right_eye"}
    for x0, y0, x1, y1 in boxes.values():
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    assert boxes["left_eye"][0] < boxes["right_eye"][0] and boxes["left_eye"][3] < boxes["mouth"][1] + 2
    shifted = face_boxes(with_attribute(attrs, shift_x=attrs.shift_x + 0.1))
    assert shifted["mouth"][0] == pytest.approx(boxes["mouth"][0] + 6.4, abs=1e-6)


def test_attributes_vary_and_are_recorded():
    attrs = [sample_attributes(s) for s in range(200)]
    assert {a.hair_style for a in attrs} == {0, 1, 2, 3}
    assert any(a.glasses for a in attrs) and not all(a.glasses for a in attrs)
    smiles = [a.smile for a in attrs]
    assert min(smiles) < -0.8 and max(smiles) > 0.8
    assert sample_attributes(HELD_OUT_SEED_BASE).to_dict()["skin"]


def test_render_faces_and_errors():
    batch = render_faces([0, 1], size=32)
    assert batch.shape == (2, 32, 32, 3)
    with pytest.raises(ConfigError, match="unknown face attribute"):
        with_attribute(sample_attributes(0), grin=1.0)
    with pytest.raises(ConfigError, match="size"):
        draw_face(sample_attributes(0), size=4)
