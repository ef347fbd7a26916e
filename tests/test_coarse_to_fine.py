"""Coarse to fine: a render that stops at an intermediate block, and projection runs that start with it."""

from __future__ import annotations

import pytest
import torch

from conftest import MSELoss, tiny_config
from wplus.errors import ConfigError
from wplus.models.stylegan2 import random_generator
from wplus.projection import project


def _codes(G, n=2, seed=3):
    return G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)), None)


@pytest.mark.parametrize("resolution", [4, 8, 16])
def test_a_coarse_render_equals_the_full_renders_intermediate_image(tiny_generator_32, resolution):
    G = tiny_generator_32
    ws = _codes(G)
    seen = {}
    block = getattr(G.synthesis, f"b{resolution}")

    def keep(module, args, out):
        seen.setdefault("img", out[1])  # returns None: the render goes on unchanged

    handle = block.register_forward_hook(keep)
    try:
        with torch.no_grad():
            G.synthesis(ws, noise_mode="const")
            coarse = G.synthesis(ws, noise_mode="const", max_resolution=resolution)
    finally:
        handle.remove()
    assert coarse.shape == (2, 3, resolution, resolution)
    assert torch.equal(coarse, seen["img"])


def test_a_coarse_render_reads_only_the_rows_of_its_blocks(tiny_generator_32):
    G = tiny_generator_32
    ws = _codes(G, 1)
    rows = G.synthesis.coarse_rows(8)
    assert rows == 4  # b4: conv1 (row 0), torgb (1); b8: conv0 (1), conv1 (2), torgb (3)
    changed = ws.clone()
    changed[:, rows:] += 1.0
    with torch.no_grad():
        a = G.synthesis(ws, max_resolution=8)
        b = G.synthesis(changed, max_resolution=8)
        c = G.synthesis(ws.clone().index_add_(1, torch.tensor([rows - 1]), torch.ones(1, 1, G.w_dim)), max_resolution=8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_coarse_render_is_refused_for_other_architectures_and_resolutions():
    G = random_generator(tiny_config(16, architecture="resnet"), seed=0)
    with pytest.raises(ConfigError, match="skip"):
        G.synthesis(_codes(G, 1), max_resolution=8)
    with pytest.raises(ConfigError, match="coarse_resolution=8 needs a skip-architecture"):
        project(G, torch.zeros(1, 3, 16, 16), loss=MSELoss(), num_steps=2, coarse_resolution=8)
    S = random_generator(tiny_config(16), seed=0)
    with pytest.raises(ConfigError, match="no block renders 6 px"):
        S.synthesis(_codes(S, 1), max_resolution=6)


def test_coarse_to_fine_projection_fits_and_ends_at_full_resolution(tiny_generator_32):
    G = tiny_generator_32
    with torch.no_grad():
        target = G.synthesis(_codes(G, 1, seed=11))
    seen = []
    r = project(
        G,
        target,
        loss=MSELoss(),
        num_steps=80,
        lr=0.05,
        coarse_resolution=8,
        coarse_fraction=0.5,
        callback=lambda st: seen.append(st.images.shape[-1]),
    )
    plain = project(G, target, loss=MSELoss(), num_steps=80, lr=0.05)
    assert seen == [32] * 80  # coarse renders are scaled up to the loss's resolution
    assert r.settings.coarse_resolution == 8 and r.metrics[0]["steps"] == 80
    start = float(r.history["psnr"][0, 0])
    assert r.metrics[0]["psnr"] > start + 5
    assert r.metrics[0]["psnr"] > float(plain.metrics[0]["psnr"]) - 3  # the fine phase catches up
    # the final image is the full render of the result's code
    with torch.no_grad():
        assert torch.allclose(r.images, G.synthesis(r.ws, noise_mode="const"), atol=1e-6)


def test_coarse_resolution_at_or_above_the_generator_is_a_plain_run(tiny_generator, mse_loss):
    G = tiny_generator
    with torch.no_grad():
        target = G.synthesis(_codes(G, 1))
    a = project(G, target, loss=mse_loss, num_steps=5, coarse_resolution=16)
    b = project(G, target, loss=mse_loss, num_steps=5)
    assert torch.equal(a.ws, b.ws)


def test_the_perceptual_loss_looks_at_the_coarse_side_in_the_coarse_phase(tiny_generator_32):
    """VGG at the loss's 256 px was most of a coarse step at 1024 px: in the coarse phase it sees the small image."""
    from wplus.losses import PerceptualLoss
    from wplus.models.vgg16 import random_vgg16

    G = tiny_generator_32
    with torch.no_grad():
        target = G.synthesis(_codes(G, 1))
    loss = PerceptualLoss(random_vgg16(seed=0), resize=32)
    sides: list[int] = []
    hook = loss.vgg.register_forward_pre_hook(lambda m, args: sides.append(args[0].shape[-1]))
    try:
        r = project(G, target, loss=loss, num_steps=8, lr=0.05, coarse_resolution=16, coarse_fraction=0.5)
    finally:
        hook.remove()
    assert loss.resize == 32  # the caller's loss is not changed
    steps = sides[1:]  # the first call prepares the full target
    assert steps[:5] == [16] * 5 and set(steps[5:]) == {32}, sides  # coarse target + 4 coarse steps, then full
    assert r.history["psnr"].shape == (8, 1) and torch.isfinite(r.history["psnr"]).all()
