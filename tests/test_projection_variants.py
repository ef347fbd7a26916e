"""Projection variants: masks, latent and noise regularisation, noise optimisation, LPIPS, presets, generic G."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from wplus.errors import ConfigError, ImageError
from wplus.io.checkpoint import save_generator
from wplus.io.latents import load_latent
from wplus.losses import ImageLoss, load_lpips, noise_regularization, renormalize_noise_
from wplus.losses.lpips import LPIPS, LPIPS_CHANNELS, read_lpips_heads
from wplus.models.vgg16 import IMAGENET_MEAN, IMAGENET_STD, random_vgg16
from wplus.projection import PRESETS, project, project_generic, resolve_settings
from wplus.projection.schedules import learning_rate, w_noise_scale
from wplus.projection.settings import LOSS_KINDS, build_loss


@pytest.fixture(scope="module")
def vgg():
    return random_vgg16(seed=0)


@pytest.fixture(scope="module")
def heads():
    gen = torch.Generator().manual_seed(5)
    return [torch.rand(1, c, 1, 1, generator=gen) + 0.01 for c in LPIPS_CHANNELS]


def _target(G, seed=7, noise_mode="const"):
    with torch.no_grad():
        z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(seed))
        return G.synthesis(G.mapping(z, None), noise_mode=noise_mode).clamp(-1, 1)


# ---------------------------------------------------------------- masks


def test_pixels_under_zero_mask_do_not_change_result(tiny_generator, vgg):
    loss = ImageLoss(vgg, l1_weight=1.0, resize=32)
    target = _target(tiny_generator)
    mask = torch.ones(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 0
    changed = target.clone()
    changed[..., 4:12, 4:12] = torch.rand(1, 3, 8, 8) * 2 - 1
    a = project(tiny_generator, target, loss=loss, num_steps=2, lr=0.05, mask=mask)
    b = project(tiny_generator, changed, loss=loss, num_steps=2, lr=0.05, mask=mask)
    assert torch.equal(a.ws, b.ws)
    c = project(tiny_generator, changed, loss=loss, num_steps=2, lr=0.05)  # without a mask it does change
    assert not torch.equal(a.ws, c.ws)


def test_mask_is_resized_to_feature_maps_and_scales_terms(vgg):
    loss = ImageLoss(vgg, layers=("conv1_1", "conv3_2"), resize=32)
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    full = loss(x, loss.prepare_target(y, mask=torch.ones(16, 16)))
    plain = loss(x, loss.prepare_target(y))
    for k in ("conv1_1", "conv3_2", "mse", "total"):
        torch.testing.assert_close(full[k], plain[k])


def test_bad_masks_are_rejected(vgg):
    loss = ImageLoss(None, perceptual_weight=0.0)
    t = torch.zeros(1, 3, 8, 8)
    with pytest.raises(Exception, match="expected"):
        loss.prepare_target(t, mask=torch.ones(4, 4))
    with pytest.raises(ConfigError, match="zero everywhere"):
        loss.prepare_target(t, mask=torch.zeros(8, 8))
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        loss.prepare_target(t, mask=torch.full((8, 8), 2.0))


def test_mask_with_loss_that_takes_none_is_an_error(tiny_generator, mse_loss):
    with pytest.raises(ConfigError, match="ImageLoss"):
        project(tiny_generator, _target(tiny_generator), loss=mse_loss, num_steps=1, mask=torch.ones(16, 16))


# ---------------------------------------------------------------- regularisation


def test_latent_regularisation_pulls_toward_w_avg(tiny_generator, mse_loss):
    target = torch.rand(1, 3, 16, 16) * 2 - 1  # out of domain, like a scribble
    dists = [
        project(tiny_generator, target, loss=mse_loss, num_steps=10, lr=0.1, latent_reg_weight=w).metrics[0][
            "w_dist_from_avg"
        ]
        for w in (0.0, 1.0, 30.0)
    ]
    assert dists[0] > dists[1] > dists[2]


def test_noise_regulariser_and_renormalisation():
    smooth = [torch.ones(2, 1, 16, 16), torch.ones(2, 1, 8, 8)]
    white = [torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)), torch.randn(2, 1, 8, 8)]
    assert (noise_regularization(smooth) > noise_regularization(white) * 10).all()
    maps = [torch.randn(2, 1, 8, 8) * 3 + 1]
    renormalize_noise_(maps)
    torch.testing.assert_close(maps[0].mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(maps[0].square().mean(dim=(1, 2, 3)), torch.ones(2))


# ---------------------------------------------------------------- noise optimisation


@pytest.mark.parametrize("mode", ["joint", "stage2"])
def test_noise_optimisation_beats_fixed_noise(tiny_generator, mse_loss, mode):
    torch.manual_seed(3)
    target = _target(tiny_generator, noise_mode="random")  # rendered with noise other than the constant maps
    kw = dict(loss=mse_loss, num_steps=12, lr=0.1)
    fixed = project(tiny_generator, target, **kw)
    opt = project(tiny_generator, target, optimize_noise=mode, noise_steps=6, noise_lr=0.2, noise_reg_weight=0.01, **kw)
    assert opt.metrics[0]["loss_mse"] < fixed.metrics[0]["loss_mse"]
    assert opt.noise[0].shape == (1, 1, 4, 4)
    assert not torch.equal(opt.noise[-1], tiny_generator.noise_maps()[-1])


def test_saved_noise_reproduces_projection_exactly(tiny_generator, mse_loss, tmp_path):
    from wplus.io.latents import Latent, save_latent

    target = _target(tiny_generator, noise_mode="random")
    res = project(tiny_generator, target, loss=mse_loss, num_steps=5, optimize_noise="joint", noise_init="random")
    save_latent(tmp_path / "l.npz", Latent(ws=res.ws, space=res.space, noise=res.noise))
    back = load_latent(tmp_path / "l.npz")
    with torch.no_grad():
        again = tiny_generator.synthesis(back.ws, noise_mode="const", noise=back.noise)
        const = tiny_generator.synthesis(back.ws, noise_mode="const")
    assert torch.equal(again, res.images)
    assert not torch.equal(const, res.images)


def test_nvidia_schedules():
    assert learning_rate(0, 1000, 0.1, rampup=0.05, rampdown=0.25) == 0.0
    assert learning_rate(25, 1000, 0.1, rampup=0.05, rampdown=0.25) == pytest.approx(0.05)
    assert learning_rate(500, 1000, 0.1, rampup=0.05, rampdown=0.25) == pytest.approx(0.1)
    assert learning_rate(875, 1000, 0.1, rampup=0.05, rampdown=0.25) == pytest.approx(0.05)
    assert learning_rate(10, 100, 0.01) == 0.01
    assert w_noise_scale(0, 100, 0.05) == 0.05
    assert w_noise_scale(75, 100, 0.05) == 0.0
    assert w_noise_scale(375, 1000, 0.05) == pytest.approx(0.05 * 0.25)


def test_nvidia_style_run_with_lbfgs_and_w_noise(tiny_generator, mse_loss):
    target = _target(tiny_generator)
    res = project(
        tiny_generator, target, loss=mse_loss, space="w", num_steps=6, lr=0.1, lr_rampup=0.05, lr_rampdown=0.25,
        w_noise=0.05, optimize_noise="joint", noise_init="random", noise_reg_weight=1e5, optimizer="lbfgs",
    )  # fmt: skip
    assert set(res.history) >= {"total", "mse", "noise_reg", "psnr"}
    assert res.settings.optimizer == "lbfgs" and res.settings.w_noise == 0.05
    assert torch.isfinite(res.ws).all()


# ---------------------------------------------------------------- LPIPS


def _reference_lpips(vgg, heads, x, y):
    """LPIPS v0.1 written out directly: scaling layer, VGG slices, unit-normalise, lin heads, spatial mean."""
    shift = torch.tensor([2 * m - 1 for m in IMAGENET_MEAN]).view(1, 3, 1, 1)
    scale = torch.tensor([2 * s for s in IMAGENET_STD]).view(1, 3, 1, 1)
    taps = (3, 8, 15, 22, 29)
    total = torch.zeros(x.shape[0])
    fx, fy = (x - shift) / scale, (y - shift) / scale
    start = 0
    for k, end in enumerate(taps):
        for layer in vgg.features[start : end + 1]:
            fx, fy = layer(fx), layer(fy)
        start = end + 1
        nx = fx / (torch.sqrt(torch.sum(fx**2, dim=1, keepdim=True)) + 1e-10)
        ny = fy / (torch.sqrt(torch.sum(fy**2, dim=1, keepdim=True)) + 1e-10)
        d = torch.nn.functional.conv2d((nx - ny) ** 2, heads[k])
        total += d.mean(dim=(1, 2, 3))
    return total


def test_lpips_matches_reference(vgg, heads):
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1, torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    ours = LPIPS(vgg, heads, resize=None)(x, y)
    torch.testing.assert_close(ours, _reference_lpips(vgg, heads, x, y), rtol=1e-5, atol=1e-7)
    assert LPIPS(vgg, heads, resize=None)(x, x).abs().max() == 0


def test_lpips_file_loads_with_cuda_tagged_layout(vgg, heads, tmp_path):
    path = tmp_path / "vgg.pth"
    torch.save({f"lin{k}.model.1.weight": h for k, h in enumerate(heads)}, path)
    got = read_lpips_heads(path)
    assert all(torch.equal(a, b) for a, b in zip(got, heads, strict=True))
    lp = load_lpips(path, vgg=vgg, resize=None)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(lp(x, -x), _reference_lpips(vgg, heads, x, -x), rtol=1e-5, atol=1e-7)
    torch.save({"lin0.model.1.weight": heads[0]}, tmp_path / "bad.pth")
    with pytest.raises(Exception, match="bad.pth"):
        read_lpips_heads(tmp_path / "bad.pth")


def test_lpips_loss_and_metric_in_projection(tiny_generator, vgg, heads):
    lp = LPIPS(vgg, heads, resize=32)
    loss = ImageLoss(None, perceptual_weight=0.0, mse_weight=0.0, lpips=lp, lpips_weight=1.0)
    res = project(tiny_generator, _target(tiny_generator, seed=9), loss=loss, num_steps=4, lr=0.05, lpips=lp)
    assert res.history["lpips"][-1] < res.history["lpips"][0]
    assert res.metrics[0]["lpips"] == pytest.approx(res.metrics[0]["loss_lpips"], rel=1e-5)


# ---------------------------------------------------------------- presets


def test_presets_resolve_to_documented_values():
    i2s = resolve_settings("image2stylegan")
    assert (i2s.space, i2s.loss, i2s.lr, i2s.num_steps, i2s.optimize_noise) == (
        "w+",
        "perceptual+mse",
        0.01,
        5000,
        False,
    )
    assert i2s.layers == ("conv1_1", "conv1_2", "conv3_2", "conv4_2") and i2s.optimizer == "adam"
    assert (i2s.perceptual_weight, i2s.mse_weight, i2s.l1_weight, i2s.lpips_weight) == (1.0, 1.0, 0.0, 0.0)
    nv = resolve_settings("nvidia")
    assert (nv.space, nv.loss, nv.lr, nv.lr_rampup, nv.lr_rampdown) == ("w", "lpips", 0.1, 0.05, 0.25)
    assert (nv.w_noise, nv.w_noise_ramp, nv.noise_reg_weight, nv.num_steps) == (0.05, 0.75, 1e5, 1000)
    assert nv.optimize_noise == "joint" and nv.loss_resize == 256 and nv.perceptual_weight == 0.0
    co = resolve_settings("course")
    assert (co.l1_weight, co.perceptual_weight, co.mse_weight, co.loss) == (10.0, 0.01, 0.0, "perceptual+l1")
    assert resolve_settings("course", optimizer="lbfgs").optimizer == "lbfgs"
    assert set(PRESETS) == {"image2stylegan", "nvidia", "course", "fast", "encoder"}  # encoder: test_encoder.py


def test_explicit_values_override_presets():
    s = resolve_settings("nvidia", num_steps=50, space="w+", noise_reg_weight=0.0)
    assert (s.num_steps, s.space, s.noise_reg_weight, s.lr) == (50, "w+", 0.0, 0.1)
    assert resolve_settings("image2stylegan", loss="conv3_2").layers == ("conv3_2",)
    assert resolve_settings(None).to_dict()["num_steps"] == 1000
    with pytest.raises(ConfigError, match="no l1 term"):
        resolve_settings("image2stylegan", l1_weight=3.0)
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_settings("stylegan9")
    with pytest.raises(ConfigError, match="unknown projection setting"):
        resolve_settings(None, steps=3)


@pytest.mark.parametrize("kind", ["mse", "conv3_2", "mse+conv3_2", "perceptual", "perceptual+mse", "lpips+l1"])
def test_loss_kinds_build_the_ablation_terms(kind, vgg, heads, tmp_path):
    path = tmp_path / "vgg.pth"
    torch.save({f"lin{k}.model.1.weight": h for k, h in enumerate(heads)}, path)
    s = resolve_settings(None, loss=kind, loss_resize=32)
    loss, lp = build_loss(s, vgg=vgg, lpips_weights=path)
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    terms = loss(x, loss.prepare_target(y))
    expected = {
        "mse": lambda: terms["mse"],
        "conv3_2": lambda: terms["conv3_2"],
        "mse+conv3_2": lambda: terms["mse"] + terms["conv3_2"],
        "perceptual": lambda: terms["perceptual"],
        "perceptual+mse": lambda: terms["perceptual"] + terms["mse"],
        "lpips+l1": lambda: terms["lpips"] + terms["l1"],
    }[kind]()
    torch.testing.assert_close(terms["total"], expected)
    # Only the terms the kind switches on are reported (and a VGG layer's own term with the perceptual one).
    assert {k for k in terms if k in LOSS_KINDS["perceptual+mse+l1"] + ("lpips",)} == set(LOSS_KINDS[kind])
    assert (lp is not None) == (kind == "lpips+l1")


# ---------------------------------------------------------------- generic generators


class TinyDCGAN(torch.nn.Module):
    """DCGAN-style: z [B, 16, 1, 1] -> transposed convs with batch norm -> tanh image [B, 3, 16, 16]."""

    z_shape = (16, 1, 1)
    img_resolution = 16

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.ConvTranspose2d(16, 32, 4, 1, 0, bias=False),
            torch.nn.BatchNorm2d(32),
            torch.nn.ReLU(),
            torch.nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False),
            torch.nn.BatchNorm2d(16),
            torch.nn.ReLU(),
            torch.nn.ConvTranspose2d(16, 3, 4, 2, 1, bias=False),
            torch.nn.Tanh(),
        )
        self.eval()

    def forward(self, z):
        return self.net(z)


def test_generic_dcgan_inversion_reduces_loss(mse_loss):
    G = TinyDCGAN()
    with torch.no_grad():
        target = G(torch.randn(2, 16, 1, 1, generator=torch.Generator().manual_seed(4)))
    res = project_generic(G, target, loss=mse_loss, num_steps=20, lr=0.1)
    assert res.z.shape == (2, 16, 1, 1)
    assert (res.history["total"][-1] < res.history["total"][0] * 0.5).all()
    assert all(p.requires_grad for p in G.parameters())  # restored


def test_generic_dcgan_inversion_with_lbfgs(mse_loss):
    G = TinyDCGAN()
    with torch.no_grad():
        target = G(torch.randn(2, 16, 1, 1, generator=torch.Generator().manual_seed(4)))
    lbfgs = project_generic(G, target, loss=mse_loss, num_steps=20, lr=1.0, optimizer="lbfgs")
    assert (lbfgs.history["total"][-1] < 0.01 * lbfgs.history["total"][0]).all()
    assert (lbfgs.history["total"][1:] <= lbfgs.history["total"][:-1]).all()  # accepted points only


def test_generic_plain_callable_needs_latent_shape(mse_loss):
    def G(z):
        return torch.tanh(z[:, :3, None, None].expand(-1, 3, 4, 4))

    target = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ConfigError, match="z_dim"):
        project_generic(G, target, loss=mse_loss, num_steps=1)
    res = project_generic(G, target, loss=mse_loss, z_dim=5, num_steps=10, lr=0.1)
    assert res.metrics[0]["loss_total"] < res.history["total"][0, 0]


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli_files(tmp_path, tiny_generator, heads):
    model = save_generator(tiny_generator, tmp_path / "tiny.safetensors")
    vgg_path = tmp_path / "vgg16.pth"
    torch.save(random_vgg16(seed=0).state_dict(), vgg_path)
    lpips_path = tmp_path / "lpips.pth"
    torch.save({f"lin{k}.model.1.weight": h for k, h in enumerate(heads)}, lpips_path)
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[..., :3] = np.random.default_rng(0).integers(0, 255, (16, 16, 3))
    rgba[4:12, 4:12, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "scribble.png")
    return tmp_path, model, vgg_path, lpips_path


def test_cli_preset_override_noise_and_config(cli_files):
    from wplus.cli.main import cli

    tmp, model, vgg_path, lpips_path = cli_files
    out = tmp / "out"
    args = ["project", str(tmp / "scribble.png"), "--model", str(model), "--outdir", str(out), "--device", "cpu"]
    args += ["--vgg-weights", str(vgg_path), "--lpips-weights", str(lpips_path), "--loss-resize", "32"]
    args += ["--preset", "nvidia", "--steps", "4", "--mask-from-alpha", "--latent-reg", "0.5"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    config = json.loads((out / "scribble" / "config.json").read_text())
    assert (config["preset"], config["num_steps"], config["lr"], config["space"]) == ("nvidia", 4, 0.1, "w")
    assert (config["noise_reg_weight"], config["latent_reg_weight"], config["mask"]) == (1e5, 0.5, "alpha")
    assert config["loss"] == "lpips" and config["loss_resize"] == 32
    metrics = json.loads((out / "scribble" / "metrics.json").read_text())
    assert "lpips" in metrics and "loss_lpips" in metrics
    lat = load_latent(out / "scribble" / "latent.npz")
    from wplus.loading import load_generator

    G = load_generator(model)
    with torch.no_grad():
        img = G.synthesis(lat.ws, noise_mode="const", noise=lat.noise)
    saved = np.asarray(Image.open(out / "scribble" / "projection.png"), dtype=np.int16)
    rendered = ((img[0].permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).numpy()
    assert np.abs(rendered - saved).max() <= 1.0  # uint8 rounding only: the saved noise is the rendered noise
    assert not all(torch.equal(a, b) for a, b in zip(lat.noise, G.noise_maps(), strict=True))


def test_cli_mask_file_course_preset_and_errors(cli_files):
    from wplus.cli.main import cli

    tmp, model, vgg_path, _ = cli_files
    Image.fromarray(np.full((16, 16), 255, np.uint8), "L").save(tmp / "mask.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp / "face.png")
    base = ["project", str(tmp / "face.png"), "--model", str(model), "--outdir", str(tmp / "o"), "--device", "cpu"]
    base += ["--vgg-weights", str(vgg_path), "--loss-resize", "32", "--steps", "2"]
    r = CliRunner().invoke(cli, base + ["--preset", "course", "--mask", str(tmp / "mask.png"), "--optimizer", "lbfgs"])
    assert r.exit_code == 0, r.output
    config = json.loads((tmp / "o" / "face" / "config.json").read_text())
    assert (config["l1_weight"], config["perceptual_weight"], config["optimizer"]) == (10.0, 0.01, "lbfgs")
    assert (tmp / "o" / "face" / "mask.png").is_file()
    r = CliRunner().invoke(cli, base + ["--mask-from-alpha"])
    assert r.exit_code != 0 and "face.png" in r.output and "alpha" in r.output
    r = CliRunner().invoke(cli, base + ["--l1-weight", "2"])
    assert r.exit_code != 0 and "no l1 term" in r.output


def test_load_mask_errors(tmp_path):
    from wplus.io.masks import load_mask

    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(tmp_path / "black.png")
    with pytest.raises(ImageError, match="black.png"):
        load_mask(tmp_path / "black.png", 8)
