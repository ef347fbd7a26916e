"""Pivotal tuning on tiny generators: it raises PSNR, its file round-trips, it refuses other models, G is unchanged."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import MSELoss, on_device, tiny_config
from wplus.errors import CheckpointError, ConfigError
from wplus.metrics import psnr
from wplus.models.stylegan2 import random_generator
from wplus.projection import project
from wplus.tuning import TuningSettings, blend_tunings, load_tuning, save_tuning, tune, weights_fingerprint


@pytest.fixture(scope="module")
def pivot(tiny_generator_32, one_thread):
    """A 32 px target outside the model's range (a smooth gradient) and its W projection (the pivot)."""
    G = tiny_generator_32
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    target = torch.stack([xx, yy, xx * yy])[None] * 0.8
    r = project(G, target, loss=MSELoss(), num_steps=40, lr=0.05, space="w")
    return target, r


def _pivot_on(pivot, device):
    """The pivot's target, codes and noise on ``device``."""
    target, r = pivot
    return target.to(device), r.ws.to(device), [n.to(device) for n in r.noise], r


def test_tuning_raises_psnr_and_leaves_g_unchanged(tiny_generator_32, pivot, device):
    G = on_device(tiny_generator_32, device)
    target, ws, noise, r = _pivot_on(pivot, device)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    t = tune(G, target, ws, loss=MSELoss(), num_steps=60, lr=3e-3, rank=4, noise=noise)
    m = t.info["metrics"]
    assert m["psnr_before"][0] == pytest.approx(r.metrics[0]["psnr"], abs=1e-3)
    assert m["psnr_after"][0] > m["psnr_before"][0] + 3.0, m
    for k, v in G.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not p.requires_grad for p in G.parameters())
    tuned = t.apply(G)
    with torch.no_grad():
        img = tuned.synthesis(ws, noise_mode="const", noise=noise)
    assert float(psnr(img, target)[0]) == pytest.approx(m["psnr_after"][0], abs=1e-3)


def test_a_rank_limited_delta_has_the_documented_size(tiny_generator_32, pivot):
    G = tiny_generator_32
    target, r = pivot
    rank = 2
    t = tune(G, target, r.ws, loss=MSELoss(), num_steps=1, rank=rank)
    expected = 0
    for name, p in G.synthesis.named_parameters():
        if name.endswith(".bias") or name.endswith("const"):  # left alone by default (docs/tuning.md)
            assert not any(k.startswith(f"{name}.") for k in t.factors), name
            continue
        out, rest = p.shape[0] if p.ndim else 1, math.prod(p.shape[1:])
        low = p.ndim >= 2 and rank * (out + rest) < out * rest
        expected += rank * (out + rest) if low else p.numel()
        assert (f"{name}.a" in t.factors) == low and (f"{name}.delta" in t.factors) != low, name
    assert t.num_elements == expected < sum(p.numel() for p in G.synthesis.parameters())
    full = tune(G, target, r.ws, loss=MSELoss(), num_steps=1, rank=None, biases=True)
    assert full.num_elements == sum(p.numel() for p in G.synthesis.parameters())


def test_a_tuning_file_round_trips_and_reproduces_the_render(tiny_generator_32, pivot, tmp_path, device):
    G = on_device(tiny_generator_32, device)
    target, ws, noise, _ = _pivot_on(pivot, device)
    t = tune(G, target, ws, loss=MSELoss(), num_steps=10, lr=3e-3, base_sha256="ab" * 32, noise=noise)
    path = save_tuning(t, tmp_path / "tuning.safetensors")
    back = load_tuning(path)
    assert back.rank == t.rank and back.base_fingerprint == weights_fingerprint(G)
    assert back.base_sha256 == "ab" * 32 and back.info["metrics"]["steps"] == 10
    assert set(back.factors) == set(t.factors)
    with torch.no_grad():
        a = t.apply(G).synthesis(ws, noise=noise)
        b = back.apply(G).synthesis(ws, noise=noise)
    assert torch.equal(a, b)


def test_applying_a_tuning_to_another_model_is_refused(tiny_generator_32, pivot):
    G = tiny_generator_32
    target, r = pivot
    t = tune(G, target, r.ws, loss=MSELoss(), num_steps=1)
    other = random_generator(tiny_config(32), seed=99)
    with pytest.raises(ConfigError, match="made on generator weights .* use the model it was tuned on"):
        t.apply(other)


# Along the way to random codes (default), PTI's fixed distance, and several samples a step.
@pytest.mark.parametrize(("radius", "samples"), [(None, 1), (1.0, 1), (None, 3)])
def test_locality_keeps_other_codes_close_to_the_original(tiny_generator_32, pivot, radius, samples):
    G = tiny_generator_32
    target, r = pivot
    z = torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        w = G.mapping(z, None)
        original = G.synthesis(w)

    def drift(weight):
        t = tune(G, target, r.ws, loss=MSELoss(), num_steps=40, lr=3e-3, locality_weight=weight,
                 locality_radius=radius, locality_samples=samples, noise=r.noise)  # fmt: skip
        assert t.info["locality_samples"] == samples
        with torch.no_grad():
            return float(psnr(t.apply(G).synthesis(w), original).median())

    assert drift(1.0) > drift(0.0)


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"lr": 0.0}, "tuning lr 0.0, expected a positive number"),
        ({"rank": 0}, "tuning rank 0, expected 1..4096 or None"),
        ({"num_steps": -1}, "tuning steps -1"),
        ({"locality_samples": 0}, "locality samples 0, expected an integer 1..64"),
        ({"locality_weight": float("nan")}, "locality weight nan"),
        ({"stop_psnr": -3.0}, "stop_psnr -3.0"),
    ],
)
def test_bad_tuning_options_are_refused_before_any_step(tiny_generator_32, pivot, option, match):
    target, r = pivot
    with pytest.raises(ConfigError, match=match):
        TuningSettings(**option)
    with pytest.raises(ConfigError, match=match):
        tune(tiny_generator_32, target, r.ws, loss=MSELoss(), **option)


def test_blending_tunings_interpolates_their_deltas(tiny_generator_32, pivot):
    G = tiny_generator_32
    target, r = pivot
    a = tune(G, target, r.ws, loss=MSELoss(), num_steps=5, lr=3e-3, seed=1)
    b = tune(G, -target, r.ws, loss=MSELoss(), num_steps=5, lr=3e-3, seed=2)
    half = blend_tunings(G, [a, b], [0.5, 0.5])
    name = next(iter(a.deltas()))
    base = dict(G.synthesis.named_parameters())[name]
    got = dict(half.synthesis.named_parameters())[name]
    want = base + 0.5 * (a.deltas()[name] + b.deltas()[name]).reshape(base.shape)
    assert torch.allclose(got, want, atol=1e-6)
    nothing = blend_tunings(G, [a, None], [0.0, 1.0])
    assert all(torch.equal(p, q) for p, q in zip(nothing.parameters(), G.parameters(), strict=True))


def test_bad_tuning_files_are_refused_with_one_line(tmp_path, tiny_generator_32):
    from wplus.io.checkpoint import save_generator

    not_tuning = save_generator(tiny_generator_32, tmp_path / "g.safetensors")
    with pytest.raises(CheckpointError, match="expected a tuning file"):
        load_tuning(not_tuning)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_tuning(junk)
    with pytest.raises(CheckpointError, match="no such file"):
        load_tuning(tmp_path / "missing.safetensors")


def test_a_tuning_that_overshoots_keeps_its_best_state(tiny_generator_32, pivot):
    """Far too high an lr makes Adam overshoot; the tuning returned is the best state seen, never worse than the
    pivot, and it says which step that was."""
    G = tiny_generator_32
    target, r = pivot
    t = tune(G, target, r.ws, loss=MSELoss(), num_steps=30, lr=0.3, noise=r.noise)
    m = t.info["metrics"]
    assert m["psnr_after"][0] >= m["psnr_before"][0]
    assert 0 <= m["kept_step"] < m["steps"], m  # the last state was worse than an earlier one
    with torch.no_grad():
        img = t.apply(G).synthesis(r.ws, noise_mode="const", noise=r.noise)
    assert float(psnr(img, target)[0]) == pytest.approx(m["psnr_after"][0], abs=1e-3)
