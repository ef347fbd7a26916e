"""Library tests of wplus.edits on tiny generators: morph, crossover, expression clean-up, directions, rendering."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from wplus.edits import (
    Direction,
    apply_direction,
    clean_difference,
    direction_from_pairs,
    expression_transfer,
    interpolate,
    load_code,
    load_direction,
    mix_styles,
    morph,
    named_layer_ranges,
    parse_layers,
    render,
    save_direction,
    slerp,
    style_mixing_grid,
    style_morph,
)
from wplus.edits.render import latent_noise, pingpong, save_frames
from wplus.errors import ConfigError, ShapeError, WplusError
from wplus.io.latents import Latent, save_latent


def _latent(G, seed: int, *, z: bool = False, noise: bool = True) -> Latent:
    gen = torch.Generator().manual_seed(seed)
    if z:
        zz = torch.randn(1, G.z_dim, generator=gen)
        with torch.no_grad():
            ws = G.mapping(zz, None)
    else:
        zz, ws = None, torch.randn(1, G.num_ws, G.w_dim, generator=gen)
    maps = [torch.randn(1, 1, *n.shape[-2:], generator=gen) for n in G.noise_maps()] if noise else []
    return Latent(ws=ws, space="z" if z else "w+", noise=maps, z=zz)


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


# ---------------------------------------------------------------------------------------------------- morphing


def test_interpolate_endpoints_exact_and_midpoint():
    a, b = torch.randn(1, 6, 32), torch.randn(1, 6, 32)
    assert torch.equal(interpolate(a, b, 0.0), a)
    assert torch.equal(interpolate(a, b, 1.0), b)
    assert torch.allclose(interpolate(a, b, 0.5), (a + b) / 2)
    s = slerp(a[0, 0], b[0, 0], 0.5)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    assert torch.allclose(s.norm(), (a[0, 0].norm() + b[0, 0].norm()) / 2, atol=1e-5)


def test_morph_endpoints_render_exactly_the_inputs(tiny_generator):
    G = tiny_generator
    a, b = _latent(G, 1), _latent(G, 2)
    res = morph(G, [a, b], frames=5)
    frames = render(G, res.ws, res.noise)
    assert len(frames) == 5 and res.space == "w+"
    ref_a = render(G, a.ws, a.noise)[0]
    ref_b = render(G, b.ws, b.noise)[0]
    assert np.array_equal(_pixels(frames[0]), _pixels(ref_a))
    assert np.array_equal(_pixels(frames[-1]), _pixels(ref_b))
    assert not np.array_equal(_pixels(frames[2]), _pixels(ref_a))
    assert torch.allclose(res.ws[2], (a.ws[0] + b.ws[0]) / 2)


def test_morph_three_keys_passes_through_middle_key(tiny_generator):
    G = tiny_generator
    keys = [_latent(G, s) for s in (1, 2, 3)]
    res = morph(G, keys, frames=5)
    assert torch.equal(res.ws[2], keys[1].ws[0])
    assert torch.equal(res.noise[0][2], keys[1].noise[0][0])


def test_morph_z_codes_slerp_then_map(tiny_generator):
    G = tiny_generator
    a, b = _latent(G, 4, z=True), _latent(G, 5, z=True)
    res = morph(G, [a, b], frames=3, mode="slerp")
    assert res.space == "z"
    with torch.no_grad():
        mid = G.mapping(slerp(a.z, b.z, 0.5), None)
    assert torch.allclose(res.ws[1], mid[0], atol=1e-6)
    assert torch.equal(res.ws[0], a.ws[0]) and torch.equal(res.ws[-1], b.ws[0])
    with pytest.raises(ConfigError, match="slerp"):
        morph(G, [_latent(G, 1), _latent(G, 2)], frames=3, mode="slerp")


def test_morph_rejects_one_key(tiny_generator):
    with pytest.raises(ConfigError, match="at least 2"):
        morph(tiny_generator, [_latent(tiny_generator, 1)], frames=3)


# --------------------------------------------------------------------------------------------------- crossover


def test_crossover_takes_each_row_from_the_right_source():
    content = torch.arange(6.0).reshape(1, 6, 1).expand(1, 6, 4)
    style = -torch.arange(6.0).reshape(1, 6, 1).expand(1, 6, 4) - 100
    out = mix_styles(content, style, "2-3,5")
    for r in range(6):
        src = style if r in (2, 3, 5) else content
        assert torch.equal(out[0, r], src[0, r])
    assert torch.equal(content[0, 2], torch.full((4,), 2.0))  # inputs untouched


def test_named_ranges_scale_to_num_ws():
    r18 = named_layer_ranges(18)
    assert r18["coarse"] == [0, 1, 2, 3] and r18["middle"] == [4, 5, 6, 7] and r18["fine"] == list(range(8, 18))
    assert r18["paper"] == list(range(9, 18)) and r18["toolkit"] == list(range(7, 18))
    for n in (6, 8, 14, 16):
        r = named_layer_ranges(n)
        assert r["coarse"] + r["middle"] + r["fine"] == list(range(n))
        assert all(r[k] for k in ("coarse", "middle", "fine"))
    assert parse_layers("middle,fine", 18) == list(range(4, 18))
    with pytest.raises(ConfigError, match="outside"):
        parse_layers("0-20", 18)
    with pytest.raises(ConfigError, match="names"):
        parse_layers("bogus", 18)


def test_style_grid_and_style_video(tiny_generator):
    G = tiny_generator
    contents = [_latent(G, 1), _latent(G, 2)]
    styles = [_latent(G, 3), _latent(G, 4), _latent(G, 5)]
    sheet, cells = style_mixing_grid(G, contents, styles, "fine")
    R, pad = G.img_resolution, 2
    assert sheet.size == (4 * R + 5 * pad, 3 * R + 4 * pad)
    expect = render(G, mix_styles(contents[1].ws, styles[2].ws, "fine"), contents[1].noise)[0]
    assert np.array_equal(_pixels(cells[1][2]), _pixels(expect))
    ws, noise = style_morph(G, contents[0], styles, "fine", frames=5)
    assert ws.shape == (5, G.num_ws, G.w_dim)
    fine = parse_layers("fine", G.num_ws)
    coarse = [r for r in range(G.num_ws) if r not in fine]
    assert torch.equal(ws[:, coarse], contents[0].ws[:, coarse].expand(5, -1, -1))
    assert torch.equal(ws[-1, fine], styles[-1].ws[0, fine])


# -------------------------------------------------------------------------------------------------- expression


@pytest.mark.parametrize("norm", ["l2", "rms"])
def test_expression_cleanup_zeroes_exactly_sub_threshold_rows(norm):
    w_dim = 16
    scale = 1.0 if norm == "l2" else 1.0 / 4.0  # rms = l2 / sqrt(16)
    row_l2 = torch.tensor([0.5, 0.99, 1.0, 1.01, 3.0, 0.0])  # measured norms, in units of the threshold
    unit = torch.ones(w_dim) / 4.0  # unit L2 vector
    delta = (row_l2[:, None] / scale) * unit[None]
    out = clean_difference(delta[None], threshold=1.0, norm=norm)
    expect_kept = [False, False, True, True, True, False]
    assert out.kept.tolist() == expect_kept
    assert torch.allclose(out.norms, row_l2, atol=1e-5)
    for r, keep in enumerate(expect_kept):
        assert torch.equal(out.delta[0, r], delta[r] if keep else torch.zeros(w_dim))


def test_expression_transfer_formula_and_normalisation():
    w1 = torch.randn(1, 6, 8)
    w2 = torch.randn(1, 6, 8)
    diff = torch.zeros(1, 6, 8)
    diff[0, 1] = 2.0  # norm 2*sqrt(8) > 1: kept
    diff[0, 4] = 0.01  # below 1: dropped
    w3 = w2 + diff
    out = expression_transfer(w1, w2, w3, strength=[0, 0.5, 2])
    assert out.shape == (3, 6, 8)
    assert torch.allclose(out[0], w1[0])
    assert torch.allclose(out[2, 1], w1[0, 1] + 2 * diff[0, 1], atol=1e-5)
    assert torch.allclose(out[2, 4], w1[0, 4])
    g = clean_difference(diff, normalize="global").delta
    assert torch.allclose(g.norm(), torch.tensor(1.0))
    rows = clean_difference(diff, normalize="rows").delta
    assert torch.allclose(rows[0, 1].norm(), torch.tensor(1.0)) and torch.equal(rows[0, 4], torch.zeros(8))
    with pytest.raises(ShapeError):
        expression_transfer(w1, w2[:, :5], w3)


# -------------------------------------------------------------------------------------------------- directions


def _expected_mask(rows: list[int], num_ws: int) -> torch.Tensor:
    m = torch.zeros(num_ws, dtype=torch.bool)
    m[rows] = True
    return m


def _check_edit(G, d: Direction, rows: list[int], step: torch.Tensor):
    ws = torch.randn(1, G.num_ws, G.w_dim)
    out = apply_direction(ws, d, [0.0, 2.0])
    assert torch.equal(out[0], ws[0])
    mask = _expected_mask(rows, G.num_ws)
    assert torch.equal(out[1, ~mask], ws[0, ~mask])
    assert torch.allclose(out[1, mask], ws[0, mask] + 2 * step[mask], atol=1e-5)


def test_toolkit_npy_applies_to_first_rows(tmp_path):
    G = SimpleNamespace(num_ws=18, w_dim=8)  # a 1024-px generator's code layout; only the sizes matter here
    vec = np.tile(np.random.default_rng(0).normal(size=(1, G.w_dim)), (18, 1)).astype(np.float64)
    np.save(tmp_path / "smile.npy", vec)
    d = load_direction(tmp_path / "smile.npy", G)
    assert d.kind == "toolkit" and d.layers == list(range(8))
    _check_edit(G, d, list(range(8)), torch.from_numpy(vec).float())


def test_interfacegan_npy_and_pt_apply_to_all_rows(tmp_path, tiny_generator):
    G = tiny_generator
    vec = torch.randn(1, G.w_dim)
    np.save(tmp_path / "age.npy", vec.numpy())
    torch.save(vec, tmp_path / "age.pt")
    for name in ("age.npy", "age.pt"):
        d = load_direction(tmp_path / name, G)
        assert d.kind == "interfacegan" and d.layers is None
        _check_edit(G, d, list(range(G.num_ws)), vec.expand(G.num_ws, -1))


def test_e4e_pose_pt_is_per_row(tmp_path, tiny_generator):
    G = tiny_generator
    vec = torch.randn(1, G.num_ws, G.w_dim)
    torch.save(vec, tmp_path / "pose.pt")
    d = load_direction(tmp_path / "pose.pt", G)
    assert d.kind == "e4e"
    _check_edit(G, d, list(range(G.num_ws)), vec[0])
    out = apply_direction(torch.zeros(1, G.num_ws, G.w_dim), d, 1.0, layers=[1, 2])
    assert torch.equal(out[0, 1:3], vec[0, 1:3]) and torch.equal(out[0, 0], torch.zeros(G.w_dim))


def test_ganspace_component_scaled_by_std(tmp_path, tiny_generator):
    G = tiny_generator
    pca = {"mean": torch.randn(1, G.w_dim), "comp": torch.randn(5, 1, G.w_dim), "std": torch.rand(5) + 0.5}
    torch.save(pca, tmp_path / "ffhq_pca.pt")
    d = load_direction(tmp_path / "ffhq_pca.pt", G, component=3)
    assert d.kind == "ganspace" and d.metadata["component"] == 3
    _check_edit(G, d, list(range(G.num_ws)), (pca["comp"][3] * pca["std"][3]).expand(G.num_ws, -1))
    with pytest.raises(ConfigError, match="component 0..4"):
        load_direction(tmp_path / "ffhq_pca.pt", G)


def test_wrong_direction_shapes_are_rejected(tmp_path, tiny_generator):
    G = tiny_generator
    np.save(tmp_path / "wide.npy", np.zeros((1, G.w_dim + 1)))
    np.save(tmp_path / "rows.npy", np.zeros((G.num_ws + 1, G.w_dim)))
    torch.save(torch.zeros(2, 3, 4, 5), tmp_path / "rank4.pt")
    torch.save({"comp": torch.zeros(3, 1, 7), "std": torch.ones(3)}, tmp_path / "pca.pt")
    want = f"expected \\[1, {G.w_dim}\\] or \\[{G.num_ws}, {G.w_dim}\\]"
    for name in ("wide.npy", "rows.npy"):
        with pytest.raises(ShapeError, match=want):
            load_direction(tmp_path / name, G)
    with pytest.raises(ShapeError, match="rank4.pt"):
        load_direction(tmp_path / "rank4.pt", G)
    with pytest.raises(ShapeError, match=f"w_dim={G.w_dim}"):
        load_direction(tmp_path / "pca.pt", G, component=0)
    with pytest.raises(ShapeError):
        apply_direction(torch.zeros(1, G.num_ws, G.w_dim), torch.zeros(3, G.w_dim), 1.0)


def test_pt_with_code_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(WplusError, match="weights_only"):
        load_direction(tmp_path / "evil.pt")


def test_direction_from_pairs_roundtrip(tmp_path, tiny_generator):
    G = tiny_generator
    n = [torch.randn(1, G.num_ws, G.w_dim) for _ in range(3)]
    e = [x + torch.full_like(x, 0.5) + 0.1 * i for i, x in enumerate(n)]
    vec = direction_from_pairs(n, e)
    assert vec.shape == (G.num_ws, G.w_dim)
    assert torch.allclose(vec, torch.full_like(vec, 0.6), atol=1e-5)
    save_direction(tmp_path / "d.npz", vec, metadata={"layers": [0, 1]})
    d = load_direction(tmp_path / "d.npz", G)
    assert d.kind == "ours" and d.layers == [0, 1] and torch.equal(d.vector, vec)
    with pytest.raises(ConfigError, match="pairs"):
        direction_from_pairs(n, e[:2])


# ------------------------------------------------------------------------------------------ inputs and outputs


def test_load_code_reads_npz_npy_and_checks_shapes(tmp_path, tiny_generator):
    G = tiny_generator
    lat = _latent(G, 7)
    save_latent(tmp_path / "latent.npz", lat)
    a = load_code(tmp_path / "latent.npz", G)
    b = load_code(tmp_path / "latent.npy", G)
    assert torch.equal(a.ws, lat.ws) and torch.equal(b.ws, lat.ws)
    assert len(a.noise) == len(G.noise_maps()) and b.noise == []
    assert torch.equal(latent_noise(b, G)[0], G.noise_maps()[0])
    np.save(tmp_path / "w.npy", np.zeros((1, G.w_dim), dtype=np.float32))
    assert load_code(tmp_path / "w.npy", G).ws.shape == (1, G.num_ws, G.w_dim)
    np.save(tmp_path / "bad.npy", np.zeros((G.num_ws, G.w_dim + 2), dtype=np.float32))
    with pytest.raises(ShapeError, match="bad.npy.*num_ws"):
        load_code(tmp_path / "bad.npy", G)
    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    with pytest.raises(ConfigError, match="face.png"):
        load_code(tmp_path / "face.png", G)
    seen = []
    got = load_code(tmp_path / "face.png", G, projector=lambda p: seen.append(p) or lat)
    assert seen == [tmp_path / "face.png"] and torch.equal(got.ws, lat.ws)
    with pytest.raises(WplusError, match="missing.npz"):
        load_code(tmp_path / "missing.npz", G)


def test_gif_frame_count_and_size(tmp_path, tiny_generator):
    G = tiny_generator
    res = morph(G, [_latent(G, 1), _latent(G, 2)], frames=6)
    frames = pingpong(render(G, res.ws, res.noise))
    assert len(frames) == 10
    paths = save_frames(frames, tmp_path / "m", fps=10)
    with Image.open(tmp_path / "m.gif") as gif:
        assert gif.n_frames == 10 and gif.size == (G.img_resolution, G.img_resolution)
    assert tmp_path / "m.png" in paths


def test_mp4_written_with_video_extra(tmp_path, tiny_generator):
    pytest.importorskip("imageio_ffmpeg")
    G = tiny_generator
    res = morph(G, [_latent(G, 1), _latent(G, 2)], frames=4)
    paths = save_frames(render(G, res.ws, res.noise), tmp_path / "m", fps=10)
    mp4 = tmp_path / "m.mp4"
    assert mp4 in paths and mp4.stat().st_size > 0
    assert mp4.read_bytes()[4:8] == b"ftyp"


def test_rosinality_projector_latent_is_an_edit_input(tiny_generator, tmp_path):
    G = tiny_generator
    w = G.mapping(torch.randn(1, G.z_dim))[0]
    noise = [n[0] for n in G.noise_maps()]
    torch.save({"face.png": {"img": torch.zeros(3, 16, 16), "latent": w, "noise": noise}}, tmp_path / "proj.pt")
    code = load_code(tmp_path / "proj.pt", G)
    assert torch.allclose(code.ws, w[None]) and len(code.noise) == len(noise)
    torch.save({"a": {"latent": w}, "b": {"latent": w}}, tmp_path / "two.pt")
    with pytest.raises(ConfigError, match="holds 2 codes"):
        load_code(tmp_path / "two.pt", G)
