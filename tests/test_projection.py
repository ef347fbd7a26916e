"""Image2StyleGAN projection on tiny generators: reconstruction quality, spaces, batches, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import MSELoss
from wplus.errors import ConfigError, ShapeError
from wplus.io.images import center_crop_resize, pil_to_tensor
from wplus.losses import PerceptualLoss
from wplus.models.vgg16 import random_vgg16
from wplus.projection.project import latent_to_ws, project


def _in_range_target(G, seed=5, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    device = G.w_avg.device  # the same codes on every device: drawn on the CPU, then moved
    w = G.mapping(torch.randn(1, G.z_dim, generator=g).to(device))
    w = w + spread * torch.randn(w.shape, generator=g).to(device)  # a genuine W+ code near the mapped distribution
    with torch.no_grad():
        return G.synthesis(w), w


@pytest.fixture(scope="module")
def small_perceptual():
    return PerceptualLoss(random_vgg16(0), resize=64)


def test_in_range_target_reaches_30db_in_wplus():
    # The paper's loss (random VGG features here: no ImageNet weights offline) + MSE, Adam, W+; 16 px, 300 steps.
    from conftest import tiny_config
    from wplus.models.stylegan2 import random_generator

    tiny_generator = random_generator(tiny_config(16), seed=2, noise_strength=0.1)
    target, _ = _in_range_target(tiny_generator)
    loss = PerceptualLoss(random_vgg16(0), resize=32)
    result = project(tiny_generator, target, loss=loss, space="w+", num_steps=300, lr=0.05)
    hist = result.history["total"][:, 0]
    assert hist[-1] < 0.05 * hist[0]
    assert result.metrics[0]["psnr"] >= 30.0, result.metrics[0]
    assert result.ws.shape == (1, tiny_generator.num_ws, tiny_generator.w_dim)


def test_out_of_range_photo_loss_orders_wplus_w_z(tiny_generator_32, small_perceptual):
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    photo = Image.fromarray(skimage_data.astronaut())
    target = pil_to_tensor(center_crop_resize(photo, 32))
    final = {}
    for space in ("w+", "w", "z"):
        r = project(tiny_generator_32, target, loss=small_perceptual, space=space, num_steps=150, lr=0.03)
        final[space] = r.metrics[0]["loss_total"]
    assert final["w+"] < final["w"] < final["z"], final


def test_batch_equals_single_runs(tiny_generator_on, mse_loss):
    tiny_generator = tiny_generator_on
    targets = torch.cat([_in_range_target(tiny_generator, seed=s)[0] for s in (1, 2, 3)])
    batch = project(tiny_generator, targets, loss=mse_loss, num_steps=30, lr=0.02)
    for i in range(3):
        single = project(tiny_generator, targets[i : i + 1], loss=mse_loss, num_steps=30, lr=0.02)
        assert torch.allclose(batch.ws[i], single.ws[0], atol=1e-4)
        assert abs(batch.metrics[i]["psnr"] - single.metrics[0]["psnr"]) < 0.01


@pytest.mark.parametrize("space", ["w+", "w", "z"])
@pytest.mark.parametrize("init", ["mean", "random"])
def test_inits_and_spaces_reduce_loss(tiny_generator_on, mse_loss, space, init):
    tiny_generator = tiny_generator_on
    target, _ = _in_range_target(tiny_generator, seed=7)
    r = project(tiny_generator, target, loss=mse_loss, space=space, init=init, num_steps=40, lr=0.05, seed=3)
    hist = r.history["total"][:, 0]
    assert hist[-1] < hist[0]
    assert r.history["total"].shape == (40, 1)
    if space == "w":
        assert torch.equal(r.ws[:, 0], r.ws[:, -1])  # one w shared by all layers
    if space == "z":
        assert r.z is not None and r.z.shape == (1, tiny_generator.z_dim)
        assert torch.allclose(latent_to_ws(tiny_generator, r.z, "z"), r.ws, atol=1e-6)
    if init == "mean" and space != "z":
        first = project(tiny_generator, target, loss=mse_loss, space=space, init=init, num_steps=0)
        assert torch.allclose(first.ws[0, 0], tiny_generator.w_avg)


def test_random_init_is_uniform_and_seeded(tiny_generator, mse_loss):
    target, _ = _in_range_target(tiny_generator)
    a = project(tiny_generator, target, loss=mse_loss, init="random", num_steps=0, seed=11)
    b = project(tiny_generator, target, loss=mse_loss, init="random", num_steps=0, seed=11)
    c = project(tiny_generator, target, loss=mse_loss, init="random", num_steps=0, seed=12)
    assert torch.equal(a.ws, b.ws) and not torch.equal(a.ws, c.ws)
    assert a.ws.min() >= -1 and a.ws.max() <= 1 and a.ws.std() > 0.4  # U[-1, 1] has std 0.577


def test_start_latent_init_continues_a_run_and_is_checked(tiny_generator, mse_loss):
    target, _ = _in_range_target(tiny_generator, seed=9)
    first = project(tiny_generator, target, loss=mse_loss, num_steps=20, lr=0.02)
    again = project(tiny_generator, target, loss=mse_loss, num_steps=0, init=first.ws)
    assert torch.equal(again.ws, first.ws)  # 0 steps from a given code renders that code
    more = project(tiny_generator, target, loss=mse_loss, num_steps=20, lr=0.02, init=first.ws)
    assert more.history["total"][0, 0] < first.history["total"][0, 0]  # it starts where the first run ended
    assert more.history["total"][-1, 0] < first.history["total"][-1, 0]
    # One code is shared by a batch; W takes a W+ code whose rows agree; Z takes z.
    pair = torch.cat([target, target])
    shared = project(tiny_generator, pair, loss=mse_loss, num_steps=0, init=first.ws)
    assert torch.equal(shared.ws[0], shared.ws[1])
    w_row = tiny_generator.w_avg.reshape(1, 1, -1).repeat(1, tiny_generator.num_ws, 1) + 0.1
    w_run = project(tiny_generator, target, loss=mse_loss, space="w", num_steps=0, init=w_row)
    assert torch.allclose(w_run.ws, w_row)
    z = torch.randn(1, tiny_generator.z_dim)
    z_run = project(tiny_generator, target, loss=mse_loss, space="z", num_steps=0, init=z)
    assert torch.equal(z_run.z, z)
    with pytest.raises(ShapeError, match=r"init latent has shape \[1, 5\]"):
        project(tiny_generator, target, loss=mse_loss, num_steps=1, init=torch.zeros(1, 5))
    with pytest.raises(ConfigError, match="different rows"):
        project(tiny_generator, target, loss=mse_loss, space="w", num_steps=1, init=first.ws)
    with pytest.raises(ConfigError, match="NaN"):
        project(tiny_generator, target, loss=mse_loss, num_steps=1, init=first.ws * float("nan"))


def test_deterministic_on_cpu(tiny_generator, mse_loss):
    target, _ = _in_range_target(tiny_generator)
    a = project(tiny_generator, target, loss=mse_loss, num_steps=15, seed=4)
    b = project(tiny_generator, target, loss=mse_loss, num_steps=15, seed=4)
    assert torch.equal(a.ws, b.ws)
    assert np.array_equal(a.history["total"].numpy(), b.history["total"].numpy())


def test_noise_is_held_constant_and_returned(tiny_generator_on, mse_loss):
    tiny_generator = tiny_generator_on
    target, _ = _in_range_target(tiny_generator)
    before = [n.clone() for n in tiny_generator.noise_maps()]
    r = project(tiny_generator, target, loss=mse_loss, num_steps=5)
    assert all(torch.equal(a, b) for a, b in zip(before, r.noise, strict=True))
    with torch.no_grad():
        again = tiny_generator.synthesis(r.ws, noise=r.noise)
    assert torch.allclose(again, r.images, atol=1e-6)
    assert all(not p.requires_grad for p in tiny_generator.parameters())


def test_callback_sees_every_step(tiny_generator, mse_loss):
    target, _ = _in_range_target(tiny_generator)
    seen = []
    project(tiny_generator, target, loss=mse_loss, num_steps=6, callback=lambda st: seen.append(st.step))
    assert seen == [1, 2, 3, 4, 5, 6]


def test_w_avg_is_estimated_when_missing(mse_loss, device):
    from conftest import tiny_config
    from wplus.models.stylegan2 import random_generator

    G = random_generator(tiny_config(16), seed=9).to(device)
    expected = G.w_avg.clone()
    G.mapping.w_avg.zero_()
    target = torch.zeros(1, 3, 16, 16, device=device)
    r = project(G, target, loss=mse_loss, num_steps=0, w_avg_samples=10_000)
    assert torch.allclose(r.ws[0, 0], expected, atol=0.05 * expected.abs().max().item())
    G.mapping.w_avg.copy_(expected)


def test_bad_arguments(tiny_generator, mse_loss):
    with pytest.raises(ShapeError, match=r"expected \[B, 3, 16, 16\]"):
        project(tiny_generator, torch.zeros(1, 3, 32, 32), loss=mse_loss, num_steps=1)
    with pytest.raises(ConfigError, match="space"):
        project(tiny_generator, torch.zeros(1, 3, 16, 16), loss=mse_loss, space="x", num_steps=1)
    with pytest.raises(ConfigError, match="init"):
        project(tiny_generator, torch.zeros(1, 3, 16, 16), loss=mse_loss, init="zeros", num_steps=1)


def test_mse_loss_class_is_per_sample():
    a, b = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    b[1] = 0
    assert MSELoss()(a, b)["total"].tolist() == [1.0, 0.0]
