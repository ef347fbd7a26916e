"""The StyleGAN2 port: NVIDIA key layout and counts, and the forward pass against a plain reference written here."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_config
from wplus.errors import ConfigError, ShapeError
from wplus.models.stylegan2 import Generator, StyleGAN2Config, count_parameters, random_generator


@pytest.mark.parametrize(
    ("resolution", "channel_base", "n_tensors", "n_params", "num_ws"),
    [(1024, 32768, 182, 30_370_060, 18), (256, 16384, 144, 24_767_458, 14), (256, 32768, 144, 30_034_338, 14)],
)
def test_official_layout_counts(resolution, channel_base, n_tensors, n_params, num_ws):
    G = Generator(StyleGAN2Config(img_resolution=resolution, channel_base=channel_base))
    assert len(G.state_dict()) == n_tensors
    assert count_parameters(G) == n_params
    assert G.num_ws == num_ws


def test_official_key_shapes_1024():
    sd = Generator(StyleGAN2Config(img_resolution=1024)).state_dict()
    assert sd["mapping.fc7.weight"].shape == (512, 512)
    assert sd["mapping.w_avg"].shape == (512,)
    assert sd["synthesis.b4.const"].shape == (512, 4, 4)
    assert sd["synthesis.b4.resample_filter"].shape == (4, 4)
    assert sd["synthesis.b128.conv0.weight"].shape == (256, 512, 3, 3)
    assert sd["synthesis.b1024.conv0.weight"].shape == (32, 64, 3, 3)
    assert sd["synthesis.b1024.torgb.weight"].shape == (3, 32, 1, 1)
    assert sd["synthesis.b1024.conv1.noise_const"].shape == (1024, 1024)
    assert sd["synthesis.b64.conv1.noise_strength"].shape == ()
    assert sd["synthesis.b64.conv0.affine.weight"].shape == (512, 512)
    assert "synthesis.b4.conv0.weight" not in sd


# ---- an independent, deliberately plain reference forward (weight modulation, per-sample loops) ------------------


def _ref_fc(x, weight, bias, lr_mul=1.0, act=False):
    y = x @ (weight * lr_mul / math.sqrt(weight.shape[1])).t() + bias * lr_mul
    return F.leaky_relu(y, 0.2) * math.sqrt(2) if act else y


def _ref_blur(x, pad):
    k1 = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = torch.outer(k1, k1)
    k = k / k.sum() * 4
    x = F.pad(x, pad)
    return F.conv2d(x, k[None, None].repeat(x.shape[1], 1, 1, 1), groups=x.shape[1])


def _ref_layer(x, sd, p, w, up, noise, clamp):
    s = _ref_fc(w, sd[p + ".affine.weight"], sd[p + ".affine.bias"])  # [in]
    W = sd[p + ".weight"] * s[None, :, None, None]
    W = W / torch.sqrt(W.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
    if up:
        C, H = x.shape[0], x.shape[1]
        z = torch.zeros(C, 2 * H - 1, 2 * H - 1)
        z[:, ::2, ::2] = x
        z = F.pad(z, (2, 2, 2, 2))
        y = F.conv2d(z[None], W.flip([2, 3]))[0]  # transposed conv == zero-insert + conv with the flipped kernel
        y = _ref_blur(y[None], (1, 1, 1, 1))[0]
    else:
        y = F.conv2d(x[None], W, padding=1)[0]
    y = y + noise * sd[p + ".noise_strength"]
    y = F.leaky_relu(y + sd[p + ".bias"][:, None, None], 0.2) * math.sqrt(2)
    return y.clamp(-clamp, clamp) if clamp is not None else y


def _ref_torgb(x, sd, p, w, clamp):
    s = _ref_fc(w, sd[p + ".affine.weight"], sd[p + ".affine.bias"]) / math.sqrt(x.shape[0])
    W = sd[p + ".weight"] * s[None, :, None, None]
    y = F.conv2d(x[None], W)[0] + sd[p + ".bias"][:, None, None]
    return y.clamp(-clamp, clamp) if clamp is not None else y


def _ref_synthesis(sd, ws, resolution, clamp=None):
    out = []
    for b in range(ws.shape[0]):
        w = ws[b]
        x = _ref_layer(
            sd["synthesis.b4.const"], sd, "synthesis.b4.conv1", w[0], False, sd["synthesis.b4.conv1.noise_const"], clamp
        )
        img = _ref_torgb(x, sd, "synthesis.b4.torgb", w[1], clamp)
        i = 1
        r = 8
        while r <= resolution:
            p = f"synthesis.b{r}"
            x = _ref_layer(x, sd, p + ".conv0", w[i], True, sd[p + ".conv0.noise_const"], clamp)
            x = _ref_layer(x, sd, p + ".conv1", w[i + 1], False, sd[p + ".conv1.noise_const"], clamp)
            z = torch.zeros(img.shape[0], 2 * img.shape[1], 2 * img.shape[2])
            z[:, ::2, ::2] = img
            img = _ref_blur(z[None], (2, 1, 2, 1))[0] + _ref_torgb(x, sd, p + ".torgb", w[i + 2], clamp)
            i += 2
            r *= 2
        out.append(img)
    return torch.stack(out)


@pytest.mark.parametrize("conv_clamp", [None, 0.5])
def test_synthesis_matches_plain_reference(conv_clamp, device):
    G = random_generator(tiny_config(32, conv_clamp=conv_clamp), seed=3, noise_strength=0.3)
    sd = {k: v.double().float() for k, v in G.state_dict().items()}
    ws = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0)))
    ws = ws + 0.5 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(1))  # genuine W+
    ours = G.to(device).synthesis(ws.to(device), noise_mode="const").cpu()  # against the reference on the CPU
    ref = _ref_synthesis(sd, ws, 32, conv_clamp)
    assert ours.shape == (3, 3, 32, 32)
    assert (ours - ref).abs().max().item() < 1e-5


def test_mapping_matches_reference_with_truncation():
    G = random_generator(tiny_config(16), seed=4)
    sd = G.state_dict()
    z = torch.randn(4, G.z_dim)
    x = z / torch.sqrt(z.square().mean(1, keepdim=True) + 1e-8)
    for i in range(2):
        x = _ref_fc(x, sd[f"mapping.fc{i}.weight"], sd[f"mapping.fc{i}.bias"], lr_mul=0.01, act=True)
    ws = G.mapping(z)
    assert torch.allclose(ws, x[:, None].expand(-1, G.num_ws, -1), atol=1e-6)
    avg = sd["mapping.w_avg"]
    wt = G.mapping(z, truncation_psi=0.7, truncation_cutoff=3)
    assert torch.allclose(wt[:, :3], avg + 0.7 * (x[:, None] - avg), atol=1e-6)
    assert torch.allclose(wt[:, 3:], x[:, None].expand(-1, G.num_ws - 3, -1), atol=1e-6)


def test_noise_modes(tiny_generator):
    G = tiny_generator
    ws = G.mapping(torch.randn(2, G.z_dim))
    const1, const2 = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
    assert torch.equal(const1, const2)
    torch.manual_seed(0)
    rnd = G.synthesis(ws, noise_mode="random")
    none = G.synthesis(ws, noise_mode="none")
    assert not torch.allclose(rnd, const1) and not torch.allclose(none, const1)
    zeros = [torch.zeros_like(n) for n in G.noise_maps()]
    assert torch.allclose(G.synthesis(ws, noise=zeros), none, atol=1e-6)
    assert torch.allclose(G.synthesis(ws, noise=G.noise_maps()), const1, atol=1e-6)


def test_batch_is_per_sample(tiny_generator_on):
    G = tiny_generator_on
    ws = G.mapping(torch.randn(3, G.z_dim).to(G.w_avg.device))
    full = G.synthesis(ws)
    single = torch.cat([G.synthesis(ws[i : i + 1]) for i in range(3)])
    assert torch.allclose(full, single, atol=1e-5)


@pytest.mark.parametrize("architecture", ["orig", "resnet"])
def test_other_architectures_run(architecture):
    G = random_generator(tiny_config(16, architecture=architecture), seed=0)
    assert G.synthesis.b16.torgb is not None
    assert not hasattr(G.synthesis.b8, "torgb")
    if architecture == "resnet":
        assert G.synthesis.b8.skip.weight.shape == (32, 32, 1, 1)
    img = G(torch.randn(2, G.z_dim))
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()


def test_conditional_mapping():
    G = Generator(tiny_config(16, c_dim=4))
    c = torch.eye(4)[:2]
    assert G.mapping(torch.randn(2, 32), c).shape == (2, G.num_ws, 32)
    assert G.mapping.embed.weight.shape == (32, 4)
    with pytest.raises(ConfigError, match="conditional"):
        G.mapping(torch.randn(2, 32))


def test_shape_errors(tiny_generator):
    with pytest.raises(ShapeError, match=r"expected \[B, 6, 32\]"):
        tiny_generator.synthesis(torch.zeros(1, 5, 32))
    with pytest.raises(ConfigError):
        StyleGAN2Config(img_resolution=48)
    with pytest.raises(ConfigError, match="unknown StyleGAN2Config keys"):
        StyleGAN2Config.from_dict({"img_resolution": 16, "bogus": 1})


@pytest.mark.parametrize("conv_clamp", [None, 0.3])
def test_frozen_weight_gradients_equal_autograd(conv_clamp, device):
    """The memory-lean backward used when weights are frozen gives autograd's gradients (ws and noise)."""
    G = random_generator(tiny_config(32, conv_clamp=conv_clamp), seed=5, noise_strength=0.3).to(device)
    ws0 = G.mapping(torch.randn(2, G.z_dim).to(device)) + 0.5 * torch.randn(2, G.num_ws, G.w_dim).to(device)
    noise0 = [torch.randn(2, 1, *n.shape[-2:]).to(device) for n in G.noise_maps()]
    target = torch.randn(2, 3, 32, 32).to(device)

    def grads(frozen: bool):
        G.requires_grad_(not frozen)
        ws = ws0.clone().requires_grad_(True)
        noise = [n.clone().requires_grad_(True) for n in noise0]
        img = G.synthesis(ws, noise=noise)
        (img - target).square().sum().backward()
        return img.detach(), ws.grad, [n.grad for n in noise]

    img_a, gw_a, gn_a = grads(frozen=False)
    img_f, gw_f, gn_f = grads(frozen=True)
    G.requires_grad_(False)
    assert torch.allclose(img_a, img_f, atol=1e-5)
    for a, f in zip([gw_a, *gn_a], [gw_f, *gn_f], strict=True):  # float32 agreement, relative to the gradient's size
        assert (a - f).abs().max() <= 1e-5 * a.abs().max()


def test_fused_upsampling_path_matches_reference(monkeypatch, device):
    """Large up-sampling layers run as one 6x6 transposed conv; force that path on a tiny model and compare."""
    import wplus.models.stylegan2 as sg2

    G = random_generator(tiny_config(32), seed=3, noise_strength=0.3)
    sd = {k: v.clone() for k, v in G.state_dict().items()}
    ws = G.mapping(torch.randn(2, G.z_dim)) + 0.5 * torch.randn(2, G.num_ws, G.w_dim)
    ref = _ref_synthesis(sd, ws, 32)  # on the CPU
    G, ws = G.to(device), ws.to(device)
    monkeypatch.setattr(sg2, "FUSE_UPSAMPLING_ELEMENTS", 0)
    assert (G.synthesis(ws).cpu() - ref).abs().max().item() < 1e-5
    G.requires_grad_(True)  # the autograd path fuses too
    assert (G.synthesis(ws).cpu() - ref).abs().max().item() < 1e-5
    G.requires_grad_(False)
    test_frozen_weight_gradients_equal_autograd(None, device)  # and the frozen backward of the fused path is exact


@pytest.mark.parametrize("channels_last", [True, False])
def test_channel_dots_matches_the_float64_einsum_in_chunks_and_whole(monkeypatch, channels_last):
    from wplus.models import stylegan2 as sg2

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(2, 6, 9, 11, generator=gen).contiguous(memory_format=fmt) for _ in range(2))
    ref = torch.einsum("bchw,bchw->bc", a.double(), b.double())
    whole = sg2._channel_dots(a, b)
    monkeypatch.setattr(sg2, "CHANNEL_DOTS_CHUNK", 2 * 6 * 7)  # 7 rows a chunk: 15 chunks, the last one short
    chunked = sg2._channel_dots(a, b)
    assert whole.shape == chunked.shape == (2, 6)
    assert torch.allclose(whole.double(), ref, atol=1e-5) and torch.allclose(chunked.double(), ref, atol=1e-5)
