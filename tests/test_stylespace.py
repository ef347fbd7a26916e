"""Style space core: layers and names, W+ -> S -> image round trips on v1/v2/v3, NVIDIA's affine formulas on a
pickle in NVIDIA's layout, single-channel edits, styles files and their refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_config
from wplus.errors import ConfigError, ShapeError, WplusError
from wplus.formats import _testing as W
from wplus.formats.nvidia_pkl import _walk, read_nvidia_pickle
from wplus.loading import load_generator
from wplus.models import stylegan1, stylegan2, stylegan3
from wplus.stylespace import (
    Styles,
    channel_label,
    load_styles,
    parse_channel,
    render_styles,
    save_styles,
    style_dims,
    style_layers,
    to_styles,
)


def _v2() -> stylegan2.Generator:
    return stylegan2.random_generator(tiny_config(16), seed=3, noise_strength=0.2)


@pytest.fixture(scope="module")
def generators() -> dict[str, torch.nn.Module]:
    v1 = stylegan1.random_generator(
        stylegan1.StyleGAN1Config(img_resolution=16, fmap_base=64, fmap_max=16, z_dim=16, w_dim=16,
                                  mapping_layers=2, mapping_fmaps=24),
        seed=4, noise_strength=0.3,
    )  # fmt: skip
    v3 = stylegan3.random_generator(
        stylegan3.StyleGAN3Config(img_resolution=32, channel_base=512, channel_max=16, z_dim=8, w_dim=8,
                                  margin_size=4),
        seed=5, w_avg_samples=50,
    )  # fmt: skip
    return {"v1": v1, "v2": _v2(), "v3": v3}


@pytest.mark.parametrize("kind", ["v1", "v2", "v3"])
def test_render_styles_of_to_styles_renders_the_code(generators, kind):
    G = generators[kind]
    torch.manual_seed(0)
    ws = G.mapping(torch.randn(3, G.z_dim))
    ws = ws + 0.3 * torch.randn_like(ws)  # distinct rows: each layer must read its own row
    with torch.no_grad():
        direct = G.synthesis(ws)
        s = to_styles(G, ws)
        via_s = render_styles(G, s)
    assert s.batch == 3 and s.dims == style_dims(G)
    assert (direct - via_s).abs().max() < 1e-5
    # and the styles change the image: a render of other styles differs
    with torch.no_grad():
        other = render_styles(G, s.map(lambda v: v.flip(0)))
    assert (other - direct).abs().max() > 1e-2


@pytest.mark.parametrize("kind", ["v1", "v2", "v3"])
def test_styles_are_what_the_forward_pass_modulates_with(generators, kind):
    """Capture every affine's output during an ordinary render: to_styles gives the same values (gains applied)."""
    G = generators[kind]
    ws = G.mapping(torch.randn(2, G.z_dim)) + 0.2 * torch.randn(2, G.num_ws, G.w_dim)
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in G.synthesis.named_modules():
        if name.endswith(".affine") or name.endswith(".style") or name == "input.affine":
            layer = "synthesis." + name.rsplit(".", 1)[0]
            handles.append(module.register_forward_hook(lambda m, i, o, layer=layer: seen.__setitem__(layer, o)))
    with torch.no_grad():
        G.synthesis(ws)
        s = to_styles(G, ws)
    for h in handles:
        h.remove()
    assert list(s) == list(seen)  # same layers, in forward order
    for layer in style_layers(G):
        assert torch.allclose(s[layer.name], seen[layer.name] * layer.gain, atol=1e-6), layer.name


def test_w_codes_broadcast_and_bad_shapes_are_refused(generators):
    G = generators["v2"]
    w = G.mapping(torch.randn(1, G.z_dim))[:, 0]
    a, b = to_styles(G, w), to_styles(G, w[:, None].expand(-1, G.num_ws, -1))
    assert torch.equal(a.flat(), b.flat())
    with pytest.raises(ShapeError, match=rf"\[B, {G.num_ws}, {G.w_dim}\]"):
        to_styles(G, torch.zeros(1, G.num_ws + 1, G.w_dim))
    s = to_styles(G, w)
    broken = dict(s)
    broken.pop(next(iter(s)))
    with pytest.raises(ShapeError, match="missing"):
        render_styles(G, broken)


def test_ffhq_1024_layers_and_names():
    """The FFHQ config-f table StyleSpace prints: 26 layers, ToRGB at 1, 4, 7, ..., 25, 9,088 channels."""
    with torch.device("meta"):
        G = stylegan2.Generator(stylegan2.StyleGAN2Config(img_resolution=1024))
    layers = style_layers(G)
    channels = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    expected = [("synthesis.b4.conv1", 512), ("synthesis.b4.torgb", 512)]
    for res in [8, 16, 32, 64, 128, 256, 512, 1024]:
        expected += [(f"synthesis.b{res}.conv0", channels[res // 2]), (f"synthesis.b{res}.conv1", channels[res]),
                     (f"synthesis.b{res}.torgb", channels[res])]  # fmt: skip
    assert [(x.name, x.channels) for x in layers] == expected
    assert sum(x.channels for x in layers) == 9088
    assert [x.index for x in layers if x.kind == "torgb"] == list(range(1, 26, 3))
    # W+ rows: ToRGB of a block shares the row of the next block's first conv (18 rows in all)
    assert [x.w_row for x in layers][:6] == [0, 1, 1, 2, 3, 3] and layers[-1].w_row == 17
    # both namings, both ways
    layer, c = parse_channel(layers, "6_501")
    assert (layer.name, c) == ("synthesis.b16.conv1", 501) and channel_label(layer, c) == "6_501"
    assert parse_channel(layers, "synthesis.b16.conv1:501") == (layer, 501)
    assert parse_channel(layers, "25_31")[0].name == "synthesis.b1024.torgb"


@pytest.mark.parametrize(
    ("text", "match"),
    [("26_0", "layer index 26 is out of range"), ("24_32", "channel 32 is out of range"),
     ("synthesis.b9.conv1:3", "no style layer"), ("smile", "expected LAYER_CHANNEL")],
)  # fmt: skip
def test_bad_channel_names_say_what_exists(text, match):
    with torch.device("meta"):
        G = stylegan2.Generator(stylegan2.StyleGAN2Config(img_resolution=1024))
    with pytest.raises(ConfigError, match=match) as e:
        parse_channel(style_layers(G), text)
    assert "--channel" in str(e.value) and "\n" not in str(e.value)


def test_shipped_model_has_the_documented_style_space():
    G = load_generator("cartoon-faces-64")
    layers = style_layers(G)
    assert len(layers) == 14 and style_dims(G) == 2240
    assert sum(x.channels for x in layers if x.kind == "torgb") == 768


def test_styles_of_an_nvidia_pickle_follow_nvidias_affine_formulas(generators, tmp_path):
    """Independent reference: the affine weights as stored in the pickle, with NVIDIA's FullyConnectedLayer formula
    (``w @ (W / sqrt(in)).T + b``) and ToRGB's 1/sqrt(C_in), in float64 numpy."""
    path = W.write_nvidia_pickle(generators["v2"], tmp_path / "net.pkl")
    G = load_generator(path)
    raw: dict[str, torch.Tensor] = {}
    _walk(read_nvidia_pickle(path)["G_ema"], "", raw, path)
    ws = G.mapping(torch.randn(2, G.z_dim)) + 0.1 * torch.randn(2, G.num_ws, G.w_dim)
    s = to_styles(G, ws)
    wsn = ws.double().numpy()
    for layer in style_layers(G):
        Wt = raw[f"{layer.name}.affine.weight"].double().numpy()
        b = raw[f"{layer.name}.affine.bias"].double().numpy()
        ref = wsn[:, layer.w_row] @ (Wt / np.sqrt(Wt.shape[1])).T + b
        if layer.kind == "torgb":
            ref = ref / np.sqrt(layer.channels)
        assert np.abs(s[layer.name].double().numpy() - ref).max() < 1e-5, layer.name


def test_a_single_channel_edit_moves_only_that_channel(generators):
    G = generators["v2"]
    s = to_styles(G, G.mapping(torch.randn(2, G.z_dim)))
    layer, c = parse_channel(style_layers(G), "3_5")
    e = s.with_channel(layer.name, c, 2.5)
    diff = (e.flat() - s.flat()).abs()
    col = sum(x.channels for x in style_layers(G)[: layer.index]) + c
    assert torch.allclose(diff[:, col], torch.full((2,), 2.5))
    diff[:, col] = 0
    assert diff.max() == 0
    with torch.no_grad():
        assert (render_styles(G, e) - render_styles(G, s)).abs().max() > 1e-4


def test_styles_file_round_trip(generators, tmp_path):
    G = generators["v2"]
    s = to_styles(G, G.mapping(torch.randn(2, G.z_dim)))
    noise = G.noise_maps()
    p = save_styles(tmp_path / "styles.npz", s, noise=noise, model_id="tiny", model_sha256="ab" * 32, source="x.png")
    back = load_styles(p, G, model_sha256="ab" * 32)
    assert torch.equal(back.styles.flat(), s.flat()) and back.model_id == "tiny" and back.source == "x.png"
    assert len(back.noise) == len(noise) and all(torch.equal(a, b) for a, b in zip(back.noise, noise, strict=True))
    with np.load(p, allow_pickle=False) as data:  # readable without pickle, one array per layer
        assert data["synthesis.b4.conv1"].shape == (2, style_layers(G)[0].channels)


def test_styles_file_refusals_name_the_file(generators, tmp_path):
    G = generators["v2"]
    s = to_styles(G, G.mapping(torch.randn(1, G.z_dim)))
    p = save_styles(tmp_path / "styles.npz", s, model_sha256="ab" * 32)
    with pytest.raises(ConfigError, match="styles of model abababababab"):
        load_styles(p, G, model_sha256="cd" * 32)
    other = stylegan2.random_generator(tiny_config(32), seed=1)
    with pytest.raises(ConfigError, match="another generator"):
        load_styles(p, other)
    bad = save_styles(tmp_path / "nan.npz", s.map(lambda v: v * float("nan")))
    with pytest.raises(ConfigError, match="NaN"):
        load_styles(bad, G)
    np.savez(tmp_path / "latent.npz", w=np.zeros((1, G.num_ws, G.w_dim), np.float32))
    with pytest.raises(WplusError, match="not a styles file"):
        load_styles(tmp_path / "latent.npz", G)
    # a header declaring an absurd batch is refused before any data is read
    huge = {k: np.zeros((1, v.shape[1]), np.float32) for k, v in s.items()}
    first = next(iter(huge))
    huge[first] = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32,
                                            shape=(100_000, s[first].shape[1]))  # fmt: skip
    np.savez(tmp_path / "huge.npz", __format__=np.array("wplus-styles-1"), **huge)
    with pytest.raises(ConfigError, match=r"\[B<=4096"):
        load_styles(tmp_path / "huge.npz", G)


def test_styles_container():
    s = Styles({"a": torch.zeros(2, 3), "b": torch.ones(2, 1)})
    assert s.unflatten(s.flat()).flat().equal(s.flat())
    assert Styles.cat([s.select(1), s.select(0)]).batch == 2 and s.repeat(3).batch == 6
    with pytest.raises(ShapeError):
        Styles({"a": torch.zeros(2, 3), "b": torch.zeros(3, 3)})


def test_style_stats_match_numpy_and_are_cached(generators, tmp_path):
    from wplus.stylespace import sample_styles, style_stats

    G = generators["v2"]
    st = style_stats(G, samples=300, seed=2, model_sha256="ef" * 32, cache=tmp_path)
    ref = sample_styles(G, 300, seed=2).flat().double().numpy()
    assert np.allclose(st.mean.flat()[0].numpy(), ref.mean(0), atol=1e-5)
    assert np.allclose(st.std.flat()[0].numpy(), ref.std(0, ddof=1), atol=1e-4)
    cached = list((tmp_path / "stylespace").glob("*.npz"))
    assert len(cached) == 1
    again = style_stats(G, samples=300, seed=2, model_sha256="ef" * 32, cache=tmp_path)
    assert torch.equal(again.std.flat(), st.std.flat())
    z = st.standardise(sample_styles(G, 300, seed=2)).flat()
    assert z.mean(0).abs().max() < 1e-3 and (z.std(0) - 1).abs().max() < 1e-3
