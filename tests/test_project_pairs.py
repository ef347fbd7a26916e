"""Paired projection with a shared edit (wplus.projection.pairs) on a tiny generator."""

from __future__ import annotations

import pytest
import torch

from wplus.errors import ConfigError, ShapeError
from wplus.projection.pairs import project_pairs
from wplus.projection.project import project


def _edit_pairs(G, count, seed=0, rows=(2, 3, 4)):
    """``count`` faces near the mapped distribution and a true edit ``e`` on a few rows: before G(w), after G(w + e)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = G.mapping(torch.randn(count + 1, G.z_dim, generator=g))
        e = torch.zeros(1, G.num_ws, G.w_dim)
        e[:, list(rows)] = 0.8 * torch.randn(1, len(rows), G.w_dim, generator=g)
        before, after = G.synthesis(w, noise_mode="const"), G.synthesis(w + e, noise_mode="const")
    return w, e, before, after


def _transfer_error(G, direction, w_new, e):
    """How far applying ``direction`` to an unseen code lands from the true edit (pixel MSE)."""
    with torch.no_grad():
        want = G.synthesis(w_new + e, noise_mode="const")
        got = G.synthesis(w_new + direction, noise_mode="const")
    return float((got - want).square().mean())


def test_pairs_are_reconstructed_and_the_shared_edit_transfers(tiny_generator, mse_loss):
    G = tiny_generator
    w, e, before, after = _edit_pairs(G, 6)
    r = project_pairs(G, before[:6], after[:6], loss=mse_loss, num_steps=300, lr=0.05, delta_lr=0.02, chunk=4)
    assert r.ws.shape == (6, G.num_ws, G.w_dim) and r.delta.shape == (G.num_ws, G.w_dim)
    assert r.history["loss"][-1] < 0.1 * r.history["loss"][0]
    psnrs = r.psnr_before + r.psnr_after
    assert min(psnrs) > 20 and sorted(psnrs)[6] > 27, psnrs
    # The mean difference of the after and before codes is the shared offset, by construction.
    torch.testing.assert_close((r.ws_after - r.ws).mean(0), r.delta)
    # On a face the pairs never saw, the offset reproduces most of the true edit.
    w_new = w[6:]
    no_edit = _transfer_error(G, torch.zeros_like(e), w_new, e)
    assert _transfer_error(G, r.delta, w_new, e) < 0.3 * no_edit


def test_shared_edit_transfers_better_than_mean_of_independent_projections(tiny_generator, mse_loss):
    G = tiny_generator
    w, e, before, after = _edit_pairs(G, 4, seed=3)
    kw = dict(loss=mse_loss, num_steps=300, lr=0.05)
    shared = project_pairs(G, before[:4], after[:4], delta_lr=0.05, **kw).delta
    alone = project(G, torch.cat([before[:4], after[:4]]), space="w+", **kw).ws
    independent = (alone[4:] - alone[:4]).mean(0)
    w_new = w[4:]
    assert _transfer_error(G, shared, w_new, e) < _transfer_error(G, independent, w_new, e)


def test_chunking_does_not_change_the_result(tiny_generator, mse_loss):
    _, _, before, after = _edit_pairs(tiny_generator, 4, seed=1)
    a = project_pairs(tiny_generator, before[:4], after[:4], loss=mse_loss, num_steps=20, chunk=1)
    b = project_pairs(tiny_generator, before[:4], after[:4], loss=mse_loss, num_steps=20, chunk=4)
    torch.testing.assert_close(a.ws, b.ws, atol=1e-4, rtol=0)
    torch.testing.assert_close(a.delta, b.delta, atol=1e-4, rtol=0)


def test_generator_is_left_as_it_was_and_callback_sees_every_step(tiny_generator, mse_loss):
    _, _, before, after = _edit_pairs(tiny_generator, 2)
    flags = [p.requires_grad for p in tiny_generator.parameters()]
    seen = []
    project_pairs(tiny_generator, before[:2], after[:2], loss=mse_loss, num_steps=5, callback=seen.append)
    assert [s.step for s in seen] == [1, 2, 3, 4, 5] and all(s.num_steps == 5 for s in seen)
    assert [p.requires_grad for p in tiny_generator.parameters()] == flags


def test_bad_pairs_are_refused(tiny_generator, mse_loss):
    _, _, before, after = _edit_pairs(tiny_generator, 3)
    with pytest.raises(ConfigError, match="matching before/after pairs, got 3 before and 2 after"):
        project_pairs(tiny_generator, before[:3], after[:2], loss=mse_loss, num_steps=1)
    with pytest.raises(ShapeError, match="after images have shape"):
        project_pairs(tiny_generator, before[:1], after[:1, :, :8], loss=mse_loss, num_steps=1)
    with pytest.raises(ConfigError, match="chunk"):
        project_pairs(tiny_generator, before[:1], after[:1], loss=mse_loss, num_steps=1, chunk=0)
    with pytest.raises(ConfigError, match="num_steps"):
        project_pairs(tiny_generator, before[:1], after[:1], loss=mse_loss, num_steps=-1)


def test_smile_check_refuses_an_unknown_method(tiny_generator, mse_loss):
    from wplus.train.quality import smile_fraction

    with pytest.raises(ConfigError, match="'shared' or 'independent'"):
        smile_fraction(tiny_generator, mse_loss, num_pairs=1, num_faces=1, method="averaged")
