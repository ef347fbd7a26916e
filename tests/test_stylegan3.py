"""StyleGAN3 (T and R): files in the stylegan3 repo's pickle structure, rendering against a direct reference
computation, the input transform, truncation, the memory-lean backward pass, projection and every CLI command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from conftest import on_device
from wplus import load_generator, project
from wplus.cli.main import cli
from wplus.errors import CheckpointError, ConfigError
from wplus.formats import _testing as W
from wplus.formats.nvidia_pkl import stylegan3_config_from_kwargs
from wplus.io.checkpoint import load_native_generator, save_generator
from wplus.io.latents import Latent, load_latent, save_latent
from wplus.metrics import psnr
from wplus.models.stylegan3 import (
    Generator,
    StyleGAN3Config,
    anchor_latent_space,
    design_lowpass_filter,
    make_transform,
    random_generator,
)


def t_config(**kw) -> StyleGAN3Config:
    """A tiny StyleGAN3-T: 32 px, margins of 4, sampling rates 16 -> 32 (one layer up-samples by 4)."""
    base = dict(img_resolution=32, channel_base=512, channel_max=16, z_dim=8, w_dim=8, margin_size=4)
    return StyleGAN3Config(**{**base, **kw})


def r_config(**kw) -> StyleGAN3Config:
    """The same as R: 1x1 convs, doubled widths, radial down filters (NVIDIA's train.py)."""
    return t_config(conv_kernel=1, channel_base=1024, channel_max=32, use_radial_filters=True, **kw)


@pytest.fixture(scope="module")
def gens(one_thread):
    return {"T": random_generator(t_config(), seed=1, w_avg_samples=200),
            "R": random_generator(r_config(), seed=2, w_avg_samples=200)}  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# An independent reference: NVIDIA's reference ops written out directly (zero-stuffing upfirdn2d with the 2-D
# filter, grouped conv with per-sample demodulated weights, affine_grid Fourier features), in float64.


def upfirdn2d_ref(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
    f = torch.ones([1, 1], dtype=x.dtype) if f is None else f.to(x.dtype)
    if f.ndim == 1:
        f = torch.outer(f, f)  # a separable filter is its outer product
    b, c, h, w = x.shape
    z = torch.zeros(b, c, h * up, w * up, dtype=x.dtype)
    z[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    z = F.pad(z, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    z = z[:, :, max(-py0, 0) : z.shape[2] - max(-py1, 0), max(-px0, 0) : z.shape[3] - max(-px1, 0)]
    z = F.conv2d(z, (f * gain).flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)
    return z[:, :, ::down, ::down]


def fc_ref(fc, x):
    return F.linear(x, fc.weight.double() * fc.weight_gain, fc.bias.double() * fc.bias_gain)


def layer_ref(layer, x, w):
    s = layer.spec
    styles, wt = fc_ref(layer.affine, w), layer.weight.double()
    if s.is_torgb:
        ww = wt[None] * (styles / math.sqrt(s.in_channels))[:, None, :, None, None]
    else:
        wt = wt * wt.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(1, keepdim=True).rsqrt()
        ww = wt[None] * styles[:, None, :, None, None]
        ww = ww * (ww.square().sum([2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    ww = ww * layer.magnitude_ema.double().rsqrt()
    b = x.shape[0]
    y = F.conv2d(x.reshape(1, -1, *x.shape[2:]), ww.reshape(-1, *ww.shape[2:]), padding=s.conv_kernel - 1, groups=b)
    y = y.reshape(b, -1, *y.shape[2:]) + layer.bias.double()[None, :, None, None]
    y = upfirdn2d_ref(y, layer.up_filter, up=s.up_factor, pad=s.padding, gain=s.up_factor**2)
    if not s.is_torgb:
        y = F.leaky_relu(y, 0.2) * math.sqrt(2)
    y = y.clamp(-layer.conv_clamp, layer.conv_clamp)
    return upfirdn2d_ref(y, layer.down_filter, down=s.down_factor)


def input_ref(inp, w, transform):
    t = fc_ref(inp.affine, w)
    t = t / t[:, :2].norm(dim=1, keepdim=True)
    b = w.shape[0]
    m_r, m_t = torch.eye(3, dtype=torch.float64).repeat(b, 1, 1), torch.eye(3, dtype=torch.float64).repeat(b, 1, 1)
    m_r[:, 0, 0], m_r[:, 0, 1], m_r[:, 1, 0], m_r[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
    m_t[:, 0, 2], m_t[:, 1, 2] = -t[:, 2], -t[:, 3]
    m = m_r @ m_t @ transform.double()[None]
    freqs, phases = inp.freqs.double()[None], inp.phases.double()[None]
    phases = phases + (freqs @ m[:, :2, 2:]).squeeze(2)
    freqs = freqs @ m[:, :2, :2]
    amp = (1 - (freqs.norm(dim=2) - inp.bandwidth) / (inp.sampling_rate / 2 - inp.bandwidth)).clamp(0, 1)
    theta = torch.eye(2, 3, dtype=torch.float64)
    theta[0, 0] = theta[1, 1] = 0.5 * inp.size / inp.sampling_rate
    grid = F.affine_grid(theta[None], [1, 1, inp.size, inp.size], align_corners=False)  # [1, H, W, 2]
    x = torch.einsum("hwk,bck->bhwc", grid[0], freqs) + phases[:, None, None]
    x = torch.sin(x * (2 * np.pi)) * amp[:, None, None]
    return (x @ (inp.weight.double() / np.sqrt(inp.channels)).t()).permute(0, 3, 1, 2)


def synthesis_ref(G, ws, transform=None):
    syn = G.synthesis
    ws = ws.double()
    x = input_ref(syn.input, ws[:, 0], syn.input.transform if transform is None else transform)
    for i, layer in enumerate(syn.layers()):
        x = layer_ref(layer, x, ws[:, i + 1])
    return (x * syn.output_scale).float()


# --------------------------------------------------------------------------------------------------------------------
# Architecture and numerics


def test_geometry_follows_the_config_for_t_and_r():
    # NVIDIA's layer names for the FFHQ-U 256 px T network, and R's 1x1 convs / radial filters from the kwargs alone.
    t = StyleGAN3Config(img_resolution=256)
    names = [s.name for s in t.layer_specs()]
    assert names[:4] == ["L0_36_512", "L1_36_512", "L2_36_512", "L3_52_512"]
    assert names[-3:] == ["L12_276_128", "L13_256_128", "L14_256_3"] and t.num_ws == 16
    r = StyleGAN3Config(
        img_resolution=256, conv_kernel=1, channel_base=65536, channel_max=1024, use_radial_filters=True
    )
    specs = r.layer_specs()
    assert specs[0].name == "L0_36_1024" and specs[0].conv_kernel == 1
    assert [s.down_radial for s in specs] == [True] * 12 + [False] * 3  # not the critically sampled ones, not ToRGB
    with torch.device("meta"):
        G = Generator(r)
    assert tuple(G.synthesis.L0_36_1024.down_filter.shape) == (12, 12)
    assert G.synthesis.L14_256_3.up_filter is None and "synthesis.L14_256_3.up_filter" not in G.state_dict()


def test_filters_are_nvidias_kaiser_and_jinc_designs():
    scipy_signal = pytest.importorskip("scipy.signal")  # installed with the align extra (make test)
    import scipy.special

    for spec in StyleGAN3Config(img_resolution=64).layer_specs()[:-1]:
        fs = spec.up_factor * spec.in_sampling_rate
        ours = design_lowpass_filter(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, fs)
        theirs = scipy_signal.firwin(numtaps=spec.up_taps, cutoff=spec.in_cutoff, width=spec.in_half_width * 2, fs=fs)
        np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-7)
        n, width = spec.down_taps, spec.out_half_width * 2
        x = (np.arange(n) - (n - 1) / 2) / fs
        r = np.hypot(*np.meshgrid(x, x))
        f = scipy.special.j1(2 * spec.out_cutoff * np.pi * r) / (np.pi * r)
        win = np.kaiser(n, scipy_signal.kaiser_beta(scipy_signal.kaiser_atten(n, width / (fs / 2))))
        f = f * np.outer(win, win)
        radial = design_lowpass_filter(n, spec.out_cutoff, width, fs, radial=True)
        np.testing.assert_allclose(radial.numpy(), f / f.sum(), atol=1e-7)


@pytest.mark.parametrize("kind", ["T", "R"])
def test_renders_match_the_reference_computation(gens, kind, device):
    G = gens[kind]
    gen = torch.Generator().manual_seed(0)
    w = G.mapping(torch.randn(2, G.z_dim, generator=gen))
    ws = torch.cat([w[:1], w[1:] + 0.5 * torch.randn(1, G.num_ws, G.w_dim, generator=gen)])  # a W and a W+ code
    ref = synthesis_ref(G, ws)  # on the CPU, in float64
    assert ref.abs().max() > 0.01
    T = make_transform(25.0, (0.15, -0.1))
    turned_ref = synthesis_ref(G, ws[1:], T)
    G, ws = on_device(G, device), ws.to(device)
    assert (G.synthesis(ws).cpu() - ref).abs().max() < 1e-5
    turned = G.synthesis(ws[1:], transform=T.to(device))
    assert (turned.cpu() - turned_ref).abs().max() < 1e-5
    assert (turned - G.synthesis(ws[1:])).abs().max() > 1e-2  # the transform does change the picture
    one = torch.cat([G.synthesis(ws[i : i + 1]) for i in range(2)])
    assert (one - G.synthesis(ws)).abs().max() < 1e-6  # an image renders the same alone and in a batch


def test_transform_is_nvidias_inverse_matrix_and_the_buffer_is_the_default(gens):
    G = gens["T"]
    a = math.radians(30)
    m = np.array([[math.cos(a), math.sin(a), 0.2], [-math.sin(a), math.cos(a), -0.1], [0, 0, 1]])  # gen_images.py
    np.testing.assert_allclose(make_transform(30, (0.2, -0.1)).numpy(), np.linalg.inv(m), atol=1e-6)
    ws = G.mapping(torch.randn(2, G.z_dim))
    T = make_transform(-40, (0.0, 0.2))
    explicit = G.synthesis(ws, transform=T)
    saved = G.synthesis.input.transform.clone()
    try:
        G.synthesis.input.transform.copy_(T)
        assert torch.equal(G.synthesis(ws), explicit)
    finally:
        G.synthesis.input.transform.copy_(saved)
    with pytest.raises(ConfigError, match="last row"):
        G.synthesis(ws, transform=torch.ones(3, 3))


def test_truncation_and_cutoff(gens):
    G = gens["R"]
    z = torch.randn(4, G.z_dim)
    w = G.mapping(z)
    assert w.shape == (4, 16, G.w_dim) and len(G.mapping.__dict__["_modules"]) == 2  # fc0, fc1: 2 layers
    t = G.mapping(z, truncation_psi=0.6)
    assert torch.allclose(t, G.w_avg + 0.6 * (w - G.w_avg), atol=1e-6)
    c = G.mapping(z, truncation_psi=0.6, truncation_cutoff=5)
    assert torch.allclose(c[:, :5], t[:, :5]) and torch.equal(c[:, 5:], w[:, 5:])
    assert torch.allclose(G(z, truncation_psi=0.6), G.synthesis(t), atol=1e-6)


@pytest.mark.parametrize(
    ("n", "factor", "taps", "pads"),
    [(150, 4, 24, (-6, -9)), (38, 2, 12, (9, 8)), (50, 2, 24, (3, 0)), (20, 2, 24, (9, 8)), (30, 4, 24, (0, 0))],
)
def test_blocked_filter_steps_match_the_convolution_and_their_adjoints(n, factor, taps, pads):
    from wplus.models import stylegan3 as s3

    f = torch.rand(taps, generator=torch.Generator().manual_seed(n))
    x = torch.randn(2, 3, n, n, dtype=torch.float64)
    for axis in (2, 3):
        if pads != (0, 0):  # an up-sampling step, NVIDIA's padding
            ref = s3._up_axis_conv(x, f.double(), factor, *pads, axis)
            y = s3._up_axis(x, f, factor, *pads, axis)
            g = torch.randn_like(ref)
            back = s3._up_axis_adjoint(g, f, factor, *pads, axis, n)
        else:  # a down-sampling step (both axes at once)
            ref = s3._down_axis_conv(s3._down_axis_conv(x, f.double(), factor, 3), f.double(), factor, 2)
            y = s3._down(x, f, factor)
            g = torch.randn_like(ref)
            back = s3._down_adjoint(g, f, factor, x.shape)
        assert y.shape == ref.shape and (y - ref).abs().max() < 1e-12
        assert abs(float((ref * g).sum() - (x * back).sum())) < 1e-10 * float(ref.abs().sum())  # <Ax, g> = <x, A'g>
    op, adjoint = s3._ops("up" if pads != (0, 0) else "down", f, n, factor, pads, x)
    assert (op.dense is None) == (n >= 38)  # long axes run in blocks, short ones as the dense matrix


@pytest.mark.parametrize("kind", ["T", "R"])
def test_renders_and_gradients_do_not_depend_on_the_channel_chunks(kind, one_thread, monkeypatch, device):
    from wplus.models import stylegan3 as s3

    G = random_generator((t_config if kind == "T" else r_config)(), seed=4, w_avg_samples=50).to(device)
    ws = G.mapping(torch.randn(2, G.z_dim).to(device)) + 0.3 * torch.randn(2, 16, G.w_dim).to(device)
    out = []
    for budget in (1 << 21, 1):  # one chunk per layer, then one channel at a time
        monkeypatch.setitem(s3.CHUNK_ELEMENTS, "cpu" if device.type == "cpu" else "other", budget)
        x = ws.clone().requires_grad_(True)
        img = G.synthesis(x)
        (img * torch.linspace(-1, 1, img.numel(), device=device).reshape(img.shape)).sum().backward()
        out.append((img.detach(), x.grad))
    scale = out[0][1].abs().max()
    assert (out[0][0] - out[1][0]).abs().max() < 1e-6 and (out[0][1] - out[1][1]).abs().max() < 1e-6 * scale * 10


@pytest.mark.parametrize("kind", ["T", "R"])
def test_frozen_backward_matches_plain_autograd(kind, one_thread, device):
    # A small clamp makes some activations saturate, so the recomputed clamp mask is exercised too. In float64:
    # in float32 the two paths' different rounding flips the odd pre-activation across the clamp boundary.
    cfg = (t_config if kind == "T" else r_config)(conv_clamp=0.5)
    frozen = random_generator(cfg, seed=3, w_avg_samples=50)
    plain = random_generator(cfg, seed=3, w_avg_samples=50).double().requires_grad_(True)  # ordinary autograd
    gen = torch.Generator().manual_seed(5)
    ws = frozen.mapping(torch.randn(2, cfg.z_dim, generator=gen)).double()
    ws = ws + 0.3 * torch.randn(2, 16, cfg.w_dim, generator=gen, dtype=torch.float64)
    frozen, plain, ws = frozen.double().to(device), plain.to(device), ws.to(device)
    target = torch.randn(2, 3, 32, 32, generator=gen, dtype=torch.float64).to(device)
    grads = []
    for G in (frozen, plain):
        x = ws.clone().requires_grad_(True)
        img = G.synthesis(x)
        (img * target).sum().backward()
        grads.append(x.grad)
    free = random_generator((t_config if kind == "T" else r_config)(conv_clamp=None), seed=3, w_avg_samples=50)
    assert (free.double().to(device).synthesis(ws) - img).abs().max() > 1e-3  # the clamp does act
    scale = grads[1].abs().max()
    assert scale > 0 and (grads[0] - grads[1]).abs().max() < 1e-10 * scale


def test_explicit_noise_is_refused_and_noise_modes_are_accepted(gens):
    G = gens["T"]
    ws = G.mapping(torch.randn(1, G.z_dim))
    assert G.noise_maps() == [] and G.synthesis.noise_layers() == []
    assert torch.equal(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="none"))
    assert torch.equal(G.synthesis(ws, noise=[]), G.synthesis(ws))
    with pytest.raises(ConfigError, match="no noise inputs"):
        G.synthesis(ws, noise=[torch.zeros(1, 1, 4, 4)])


# --------------------------------------------------------------------------------------------------------------------
# Files


@pytest.mark.parametrize(
    "kind,numpy1,nested", [("T", False, False), ("R", True, False), ("T", True, True)],
    ids=["T-numpy2-flat", "R-numpy1-flat", "T-numpy1-nested"],
)  # fmt: skip
def test_pickle_in_the_real_structure_loads_strictly(gens, tmp_path, kind, numpy1, nested):
    G = gens[kind]
    path = W.write_nvidia_stylegan3_pickle(G, tmp_path / "sg3.pkl", numpy1=numpy1, nested_kwargs=nested)
    data = path.read_bytes()
    assert b"torch_utils.persistence" in data and b"SynthesisInput" in data
    H = load_generator(path)
    assert isinstance(H, Generator) and H.config == G.config
    assert H.state_dict().keys() == G.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(H.state_dict().values(), G.state_dict().values(), strict=True))
    z = torch.randn(2, G.z_dim)
    assert torch.equal(H(z, truncation_psi=0.7), G(z, truncation_psi=0.7))
    # Our format: the config round-trips through the safetensors header.
    K = load_native_generator(save_generator(H, tmp_path / "sg3.safetensors"))
    assert K.config == G.config and torch.equal(K(z), G(z))


def test_config_comes_from_the_kwargs_and_unknown_kwargs_are_refused(tmp_path):
    beta = np.float64(0.5 ** (32 / 20e3))  # train.py's magnitude_ema_beta for batch 32, a numpy scalar in the file
    kw = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 1024, "img_channels": 3,
          "mapping_kwargs": {"num_layers": 2}, "channel_base": 65536, "channel_max": 1024,
          "magnitude_ema_beta": beta, "conv_kernel": 1, "use_radial_filters": True}  # fmt: skip
    cfg = stylegan3_config_from_kwargs(kw)
    assert cfg.conv_kernel == 1 and cfg.use_radial_filters and cfg.channel_base == 65536 and cfg.mapping_layers == 2
    assert isinstance(cfg.magnitude_ema_beta, float) and cfg.conv_clamp == 256
    with pytest.raises(CheckpointError, match=r"x\.pkl: unknown StyleGAN3 kwargs \['extended'\]"):
        stylegan3_config_from_kwargs({**kw, "extended": True}, "x.pkl")
    with pytest.raises(CheckpointError, match="describe no valid network.*channel_max"):
        stylegan3_config_from_kwargs({**kw, "channel_max": 10**9}, "x.pkl")


def test_a_tensor_of_the_wrong_shape_is_refused_in_one_line(gens, tmp_path):
    G = gens["T"]
    rec = W._sg3_record(G)
    rec.meta["state"]["_init_kwargs"] = W._EasyDict(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3,
                                                    mapping_kwargs={}, channel_base=1024, channel_max=32,
                                                    margin_size=4)  # fmt: skip
    W._dump({"G_ema": rec}, tmp_path / "bad.pkl", protocol=4, numpy1=False)
    with pytest.raises(CheckpointError, match=r"bad\.pkl: tensors do not match the StyleGAN3 network"):
        load_generator(tmp_path / "bad.pkl")


# --------------------------------------------------------------------------------------------------------------------
# Embedding and the commands


def test_projection_of_an_in_range_target_reaches_high_psnr(one_thread, mse_loss, device):
    G = random_generator(t_config(img_resolution=16, channel_base=256), seed=5, w_avg_samples=200).to(device)
    gen = torch.Generator().manual_seed(1)
    ws = G.mapping(torch.randn(1, G.z_dim, generator=gen).to(device), truncation_psi=0.7)
    target = G.synthesis(ws + 0.2 * torch.randn(ws.shape, generator=gen).to(device))  # a W+ code near the start
    target = target / target.abs().max().clamp(min=1.0)
    start = psnr(G.synthesis(G.w_avg.expand(1, G.num_ws, -1)), target)
    res = project(G, target, loss=mse_loss, space="w+", num_steps=100, lr=0.05, w_avg_samples=200)
    assert res.noise == [] and res.latent(0).noise == []
    assert res.metrics[0]["psnr"] > 30 and res.metrics[0]["psnr"] > float(start) + 10


def _run(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def sg3_files(tmp_path_factory, gens):
    tmp = tmp_path_factory.mktemp("sg3")
    G = gens["T"]
    model = save_generator(G, tmp / "sg3.safetensors")
    lat = []
    for seed in range(3):
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed)))
        lat.append(save_latent(tmp / f"l{seed}.npz", Latent(ws=ws, noise=[])))
    Image.new("RGB", (40, 40), (180, 60, 40)).save(tmp / "red.png")
    return tmp, model, lat


def test_project_cli_and_noise_options_refused(sg3_files):
    tmp, model, _ = sg3_files
    out = tmp / "proj"
    r = _run(["project", tmp / "red.png", "--model", model, "--loss", "mse", "--steps", 3, "--outdir", out,
              "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    saved = load_latent(out / "red" / "latent.npz")
    assert saved.ws.shape == (1, 16, 8) and saved.noise == []
    assert json.loads((out / "red" / "metrics.json").read_text())["steps"] == 3
    r = _run(["project", tmp / "red.png", "--model", model, "--loss", "mse", "--steps", 3, "--optimize-noise",
              "joint", "--outdir", tmp / "p2", "--device", "cpu"])  # fmt: skip
    assert r.exit_code != 0 and "has none (StyleGAN3)" in r.output and "Traceback" not in r.output


def test_edit_morph_mix_cli(sg3_files):
    tmp, model, lat = sg3_files
    r = _run(["morph", lat[0], lat[1], "--model", model, "--frames", 3, "--outdir", tmp / "morph", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert (tmp / "morph" / "morph.png").is_file()
    r = _run(["mix", lat[0], lat[1], "--content", lat[2], "--layers", "fine", "--model", model,
              "--outdir", tmp / "mix", "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    np.save(tmp / "d.npy", np.ones((16, 8)))
    r = _run(["edit", lat[0], "--direction", tmp / "d.npy", "--strength", "-1,1", "--layers", "0-15", "--model", model,
              "--outdir", tmp / "edit", "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    edited = load_latent(tmp / "edit" / "edit" / "s01.npz")
    assert torch.allclose(edited.ws, load_latent(lat[0]).ws + 1, atol=1e-5) and edited.noise == []


def test_generate_rotate_translate_and_refused_for_stylegan2(sg3_files, gens, tiny_generator):
    tmp, model, _ = sg3_files
    G = gens["T"]
    r = _run(["generate", "--model", model, "--seeds", "3", "--rotate", 30, "--translate", "0.1,-0.2",
              "--outdir", tmp / "gen", "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    from wplus.seeds import ws_from_seed

    _, ws = ws_from_seed(G, 3)
    want = G.synthesis(ws, transform=make_transform(30, (0.1, -0.2)))
    got = np.asarray(Image.open(tmp / "gen" / "seed0003.png"), dtype=np.float32)
    ref = ((want[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).numpy()
    assert np.abs(got - ref).max() <= 1.0
    sg2 = save_generator(tiny_generator, tmp / "sg2.safetensors")
    r = _run(["generate", "--model", sg2, "--seeds", "0", "--rotate", 10, "--outdir", tmp / "g2", "--device", "cpu"])
    assert r.exit_code != 0 and "--rotate" in r.output and "StyleGAN3" in r.output and "Traceback" not in r.output
    r = _run(["generate", "--model", model, "--translate", "1,x", "--outdir", tmp / "g3"])
    assert r.exit_code != 0 and "--translate" in r.output


def test_weights_info_and_convert_a_stylegan3_pickle(sg3_files, gens):
    tmp, _, _ = sg3_files
    pkl = W.write_nvidia_stylegan3_pickle(gens["R"], tmp / "r.pkl")
    r = _run(["weights", "info", pkl])
    assert r.exit_code == 0, r.output
    assert "stylegan3" in r.output and "  use_radial_filters  True\n" in r.output and "num_ws=16" in r.output
    r = _run(["weights", "convert", pkl, tmp / "r.safetensors"])
    assert r.exit_code == 0, r.output
    assert load_native_generator(tmp / "r.safetensors").config == gens["R"].config


def _small_stylegan2():
    from wplus.models import stylegan2

    cfg = stylegan2.StyleGAN2Config(img_resolution=8, z_dim=8, w_dim=8, channel_base=64, channel_max=8)
    return stylegan2.random_generator(cfg)


@pytest.mark.parametrize("kind", ["T", "R"])
def test_an_anchored_model_renders_w_avg_unchanged_and_ignores_the_pose_codes_carry(gens, kind):
    G = gens[kind]
    A = anchor_latent_space(G)
    assert not torch.equal(A.synthesis.input.affine.weight, G.synthesis.input.affine.weight)
    assert G.synthesis.input.affine.weight.abs().sum() > 0  # G itself is untouched
    avg = G.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1)
    with torch.no_grad():
        assert torch.allclose(A.synthesis(avg), G.synthesis(avg), atol=1e-6)
        ws = G.mapping(torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(3)))
        pose = A.synthesis.input.affine(ws[:, 0])
        assert torch.allclose(pose, pose[:1].expand_as(pose), atol=1e-6)  # one rotation/shift for every code
        assert not torch.allclose(G.synthesis.input.affine(ws[:, 0]), pose, atol=1e-3)
    with pytest.raises(ConfigError, match="for StyleGAN3 generators"):
        anchor_latent_space(_small_stylegan2())


def test_weights_convert_anchor_writes_a_model_that_projects(sg3_files, tmp_path):
    tmp, model, _ = sg3_files
    out = tmp_path / "anchored.safetensors"
    r = _run(["weights", "convert", "--anchor", model, out])
    assert r.exit_code == 0 and "latent space anchored" in r.output, r.output
    A, G = load_native_generator(out), load_native_generator(model)
    assert torch.count_nonzero(A.synthesis.input.affine.weight) == 0
    avg = G.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1)
    with torch.no_grad():
        assert torch.allclose(A.synthesis(avg), G.synthesis(avg), atol=1e-6)
    from wplus.models.stylegan2 import StyleGAN2Config
    from wplus.models.stylegan2 import random_generator as sg2

    sg2_file = save_generator(
        sg2(StyleGAN2Config(img_resolution=8, z_dim=8, w_dim=8, channel_base=64, channel_max=8)),
        tmp_path / "s.safetensors",
    )
    r = CliRunner().invoke(cli, ["weights", "convert", "--anchor", str(sg2_file), str(tmp_path / "x.safetensors")])
    assert r.exit_code != 0 and "--anchor is for StyleGAN3" in r.output and "Traceback" not in r.output
