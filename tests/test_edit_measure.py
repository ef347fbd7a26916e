"""attribute_response and face_part_mask: a tiny generator and stand-in scorers whose answers are known."""

from __future__ import annotations

import pytest
import torch

from wplus.directions import Direction, attribute_response, attribute_responses, face_part_mask
from wplus.errors import ConfigError, ShapeError


def _codes(G, n: int = 8, seed: int = 0) -> torch.Tensor:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.mapping(z)[:, 0]  # [n, w_dim]


def _scorer():
    """A stand-in for the probe: two attributes linear in the image (mean brightness, the left half's mean), one
    that no edit can move (a constant) and an integer column (like hair_style's class) that must be left out."""

    def score(images: torch.Tensor) -> dict[str, torch.Tensor]:
        b = len(images)
        return {
            "brightness": images.mean((1, 2, 3)),
            "left_half": images[..., : images.shape[-1] // 2].mean((1, 2, 3)),
            "constant": torch.full((b,), 3.0),
            "class": torch.zeros(b, dtype=torch.long),
        }

    return score


def test_response_matches_a_direct_computation(tiny_generator):
    G = tiny_generator
    codes = _codes(G)
    d = torch.randn(1, G.w_dim, generator=torch.Generator().manual_seed(1))
    scorer = _scorer()
    r = attribute_response(G, d, scorer, codes, [0.5, -1.0], batch_size=3)
    assert r.names == ["brightness", "left_half", "constant"] and r.num_codes == 8
    with torch.no_grad():
        ws = codes[:, None].expand(-1, G.num_ws, -1)
        before = scorer(G.synthesis(ws, noise_mode="const"))["brightness"]
        after = scorer(G.synthesis(ws + 0.5 * d, noise_mode="const"))["brightness"]
    expected = (after - before).mean() / 0.5 / before.std()
    torch.testing.assert_close(r.response[0, 0], expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(r.delta[0, 0], (after - before).mean(), atol=1e-6, rtol=1e-4)
    assert r.response[:, 2].abs().max() == 0 and r.spread[2] == 1  # a constant attribute: no change, spread 1
    assert r.mask_share is None and (r.image_change > 0).all()
    assert set(r.row(1)) == set(r.names) and r.mean()["constant"] == 0


def test_zero_direction_moves_nothing_and_layers_limit_the_edit(tiny_generator):
    G = tiny_generator
    codes = _codes(G, 4)
    scorer = _scorer()
    r = attribute_response(G, torch.zeros(G.num_ws, G.w_dim), scorer, codes, 1.0)
    assert r.response.abs().max() == 0 and r.image_change.max() == 0
    d = Direction(torch.randn(1, G.w_dim, generator=torch.Generator().manual_seed(2)))
    everywhere = attribute_response(G, d, scorer, codes, 1.0)
    first_row = attribute_response(G, d, scorer, codes, 1.0, layers=[0])
    assert 0 < first_row.image_change[0] < everywhere.image_change[0]


def test_mask_share_is_the_share_of_squared_change_inside(tiny_generator):
    G = tiny_generator
    res = G.img_resolution
    codes = _codes(G, 4)
    d = torch.randn(1, G.w_dim, generator=torch.Generator().manual_seed(3))
    left = torch.zeros(res, res)
    left[:, : res // 2] = 1
    full = attribute_response(G, d, _scorer(), codes, 1.0, mask=torch.ones(res, res))
    half = attribute_response(G, d, _scorer(), codes, 1.0, mask=left)
    right = attribute_response(G, d, _scorer(), codes, 1.0, mask=1 - left)
    assert float(full.mask_share[0]) == pytest.approx(1.0)
    assert float(half.mask_share[0] + right.mask_share[0]) == pytest.approx(1.0, abs=1e-5)


def test_bad_inputs_are_refused(tiny_generator):
    G = tiny_generator
    codes = _codes(G, 2)
    d = torch.randn(1, G.w_dim)
    with pytest.raises(ConfigError, match="non-zero"):
        attribute_response(G, d, _scorer(), codes, [1.0, 0.0])
    with pytest.raises(ShapeError, match="codes have shape"):
        attribute_response(G, d, _scorer(), codes[:, :3], 1.0)
    with pytest.raises(ShapeError, match="mask"):
        attribute_response(G, d, _scorer(), codes, 1.0, mask=torch.ones(3, 3))
    with pytest.raises(ConfigError, match="scorer"):
        attribute_response(G, d, 42, codes, 1.0)


def test_face_part_mask_holds_every_mouth():
    from wplus.data.faces import HELD_OUT_SEED_BASE, face_boxes, sample_attributes

    mask = face_part_mask("mouth", size=64, num_faces=50)
    assert mask.shape == (64, 64) and 0.02 < float(mask.mean()) < 0.1
    for i in range(50):
        x0, y0, x1, y1 = face_boxes(sample_attributes(HELD_OUT_SEED_BASE + 3000 + i), 64)["mouth"]
        assert mask[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1].min() == 1
    with pytest.raises(ConfigError, match="part"):
        face_part_mask("nose")


def test_several_directions_share_the_codes_and_agree_with_one_at_a_time(tiny_generator):
    G = tiny_generator
    codes = _codes(G, 5)
    gen = torch.Generator().manual_seed(4)
    dirs = {"a": torch.randn(1, G.w_dim, generator=gen), "b": torch.randn(G.num_ws, G.w_dim, generator=gen)}
    many = attribute_responses(G, dirs, _scorer(), codes, [1.0, -2.0], batch_size=2)
    assert list(many) == ["a", "b"]
    for name, d in dirs.items():
        one = attribute_response(G, d, _scorer(), codes, [1.0, -2.0])
        torch.testing.assert_close(many[name].response, one.response)
        torch.testing.assert_close(many[name].stderr, one.stderr)
        assert (one.stderr[:, :2] > 0).all() and (one.stderr[:, 2] == 0).all()
