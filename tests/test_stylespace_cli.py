"""`wplus style` end to end on a tiny generator written to disk: extract, edit (one channel moves, strength 0 is the
unedited render, refusals in one line), stats --out, `wplus project --save-styles`; and the library's channel edits."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import tiny_config
from wplus.cli.main import cli
from wplus.errors import ConfigError
from wplus.io.checkpoint import save_generator
from wplus.io.images import tensor_to_pil
from wplus.io.latents import Latent, load_latent, save_latent
from wplus.loading import file_sha256, load_generator
from wplus.models.stylegan2 import random_generator
from wplus.stylespace import (
    Styles,
    edit_channels,
    load_styles,
    parse_channel_edit,
    render_styles,
    style_dims,
    style_layers,
    style_stats,
    sweep_channels,
    to_styles,
)

SAMPLES = 64  # statistics of the tiny model: quick, and cached under the test's own cache folder


@pytest.fixture
def workspace(tmp_path, tiny_generator, monkeypatch):
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))
    model = save_generator(tiny_generator, tmp_path / "tiny.safetensors")
    G = load_generator(model).eval()
    gen = torch.Generator().manual_seed(0)
    ws = torch.randn(1, G.num_ws, G.w_dim, generator=gen)
    noise = [torch.randn(1, 1, *n.shape[-2:], generator=gen) for n in G.noise_maps()]
    latent = save_latent(tmp_path / "l.npz", Latent(ws=ws, noise=noise, model_sha256=file_sha256(model)))
    return tmp_path, model, G, latent


def _run(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _render_latent(G, path):
    code = load_latent(path)
    with torch.no_grad():
        return G.synthesis(code.ws, noise=code.noise)


def _one_line_error(result, *names):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    assert any(n in errors[0] for n in names), errors[0]
    return errors[0]


def test_extract_then_render_is_the_latents_render(workspace):
    tmp, model, G, latent = workspace
    r = _run(["style", "extract", latent, "--model", model, "--outdir", tmp / "x", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    f = load_styles(tmp / "x" / "styles.npz", G, model_sha256=file_sha256(model))
    assert f.styles.dims == style_dims(G) and f.model_sha256 == file_sha256(model)
    with torch.no_grad():
        via_s = render_styles(G, f.styles, f.noise)
    assert (via_s - _render_latent(G, latent)).abs().max() < 1e-5


def test_style_edit_moves_only_the_named_channel(workspace):
    tmp, model, G, latent = workspace
    out = tmp / "e"
    layer = style_layers(G)[3]
    r = _run(["style", "edit", latent, "--channel", "3_5", "--strength", "-2,0,3", "--samples", SAMPLES,
              "--scale", 1, "--model", model, "--outdir", out, "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    code = load_latent(latent)
    with torch.no_grad():
        before = to_styles(G, code.ws)
    sigma = float(style_stats(G, samples=SAMPLES).std[layer.name][0, 5])
    for k, s in enumerate([-2.0, 0.0, 3.0]):
        f = load_styles(out / "style-edit" / f"s{k:02d}.npz", G, model_sha256=file_sha256(model))
        assert f.styles.batch == 1 and len(f.noise) == len(code.noise)
        for name in f.styles:
            diff = f.styles[name] - before[name]
            if name != layer.name:
                assert torch.equal(f.styles[name], before[name]), name
            else:
                assert torch.equal(diff[:, :5], torch.zeros_like(diff[:, :5]))
                assert torch.equal(diff[:, 6:], torch.zeros_like(diff[:, 6:]))
                assert abs(float(diff[0, 5]) - s * sigma) < 1e-4 * max(1.0, abs(s * sigma))
    # the strength-0 frame of the picture is the unedited render (--scale 1: frames side by side, 2 px apart)
    R, pad = G.img_resolution, 2
    unedited = np.asarray(tensor_to_pil(_render_latent(G, latent)[0]), dtype=np.int16)
    with Image.open(out / "style-edit.png") as sheet:
        frames = [np.asarray(sheet.convert("RGB").crop((pad + k * (R + pad), pad, pad + k * (R + pad) + R, pad + R)),
                             dtype=np.int16) for k in range(3)]  # fmt: skip
    assert np.abs(frames[1] - unedited).max() <= 1
    assert np.abs(frames[2] - unedited).max() > 0  # and an edit shows
    rec = json.loads((out / "style-edit.json").read_text())
    p = rec["parameters"]
    assert p["strength"] == [-2.0, 0.0, 3.0] and p["units"] == "std" and p["stats"]["samples"] == SAMPLES
    ch = p["channels"][0]
    assert ch["name"] == "3_5" and ch["path"] == f"{layer.name}:5" and abs(ch["std"] - sigma) < 1e-6
    assert rec["inputs"][0]["path"] == str(latent) and len(rec["outputs"]) >= 4


def test_style_edit_raw_units_weights_and_module_path_names(workspace):
    tmp, model, G, latent = workspace
    # a styles file as input, two channels (one weighted against the strength), raw units
    assert _run(["style", "extract", latent, "--model", model, "--outdir", tmp / "x", "--device", "cpu"]).exit_code == 0
    layers = style_layers(G)
    a, b = layers[0], layers[2]
    out = tmp / "raw"
    r = _run(["style", "edit", tmp / "x" / "styles.npz", "--channel", f"{a.name}:1", "--channel", "2_0*-0.5",
              "--strength", "0:1:2", "--raw", "--model", model, "--outdir", out, "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    src = load_styles(tmp / "x" / "styles.npz", G)
    moved = load_styles(out / "style-edit" / "s01.npz", G)
    assert abs(float(moved.styles[a.name][0, 1] - src.styles[a.name][0, 1]) - 1.0) < 1e-5
    assert abs(float(moved.styles[b.name][0, 0] - src.styles[b.name][0, 0]) + 0.5) < 1e-5
    p = json.loads((out / "style-edit.json").read_text())["parameters"]
    assert p["units"] == "raw" and p["stats"] is None and [c["weight"] for c in p["channels"]] == [1.0, -0.5]
    assert all(torch.equal(load_styles(out / "style-edit" / "s00.npz", G).styles[k], src.styles[k]) for k in src.styles)


def test_style_edit_projects_an_image_input(workspace):
    tmp, model, G, _ = workspace
    Image.new("RGB", (20, 20), (200, 30, 30)).save(tmp / "red.png")
    r = _run(["style", "edit", tmp / "red.png", "--channel", "0_0", "--strength", "-1,1", "--samples", SAMPLES,
              "--steps", 2, "--perceptual-weight", 0, "--model", model, "--outdir", tmp / "p",
              "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp / "p" / "style-edit.json").read_text())
    assert rec["inputs"][0]["projected"] is True and (tmp / "p" / "style-edit" / "s01.npz").is_file()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--channel", "99_0"], ["--channel", "99_0"]),  # no such layer index
        (["--channel", "synthesis.b999.conv1:0"], ["--channel"]),  # no such module
        (["--channel", "0_9999"], ["--channel", "0_9999"]),  # channel out of range
        (["--channel", "nonsense"], ["--channel"]),
        (["--channel", "0_1*x"], ["--channel"]),  # a weight that is no number
        (["--channel", "0_1", "--strength", "a,b"], ["--strength"]),
        (["--channel", "0_1", "--strength", "1:2:0"], ["--strength"]),
        (["--channel", "0_1", "--strength", "nan"], ["--strength"]),
    ],
)
def test_style_edit_refusals_are_one_line_naming_the_flag(workspace, args, names):
    tmp, model, G, latent = workspace
    r = _run(["style", "edit", latent, *args, "--model", model, "--outdir", tmp / "bad", "--device", "cpu"])
    _one_line_error(r, *names)
    assert not (tmp / "bad" / "style-edit.png").exists()


def test_style_edit_refuses_styles_of_another_model(workspace):
    tmp, model, G, latent = workspace
    assert _run(["style", "extract", latent, "--model", model, "--outdir", tmp / "x", "--device", "cpu"]).exit_code == 0
    other_same_shape = save_generator(random_generator(tiny_config(16), seed=7), tmp / "other.safetensors")
    other_shape = save_generator(random_generator(tiny_config(16, channel_max=16), seed=8), tmp / "narrow.safetensors")
    for other in (other_same_shape, other_shape):
        r = _run(["style", "edit", tmp / "x" / "styles.npz", "--channel", "0_0", "--samples", SAMPLES,
                  "--model", other, "--outdir", tmp / "bad", "--device", "cpu"])  # fmt: skip
        _one_line_error(r, str(tmp / "x" / "styles.npz"))


def test_project_save_styles_renders_as_the_latent(workspace):
    tmp, model, G, _ = workspace
    Image.new("RGB", (20, 20), (30, 90, 200)).save(tmp / "blue.png")
    r = _run(["project", tmp / "blue.png", "--model", model, "--outdir", tmp / "proj", "--steps", 2,
              "--perceptual-weight", 0, "--save-styles", "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    folder = tmp / "proj" / "blue"
    f = load_styles(folder / "styles.npz", G, model_sha256=file_sha256(model))
    code = load_latent(folder / "latent.npz")
    assert f.model_sha256 == code.model_sha256 == file_sha256(model) and f.model_id == code.model_id
    assert len(f.noise) == len(code.noise) and all(torch.equal(a, b) for a, b in zip(f.noise, code.noise, strict=True))
    with torch.no_grad():
        via_s = render_styles(G, f.styles, f.noise)
    assert (via_s - _render_latent(G, folder / "latent.npz")).abs().max() < 1e-5
    # without the flag: no styles file
    r = _run(["project", tmp / "blue.png", "--model", model, "--outdir", tmp / "plain", "--steps", 2,
              "--perceptual-weight", 0, "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0 and not (tmp / "plain" / "blue" / "styles.npz").exists()


def test_project_save_styles_of_a_tuned_projection_renders_as_projection_png(workspace):
    from wplus.tuning import load_tuning

    tmp, model, G, _ = workspace
    Image.new("RGB", (20, 20), (30, 200, 90)).save(tmp / "green.png")
    r = _run(["project", tmp / "green.png", "--model", model, "--outdir", tmp / "proj", "--steps", 2,
              "--perceptual-weight", 0, "--tune", "--tune-steps", 2, "--save-styles", "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    folder = tmp / "proj" / "green"
    tuned = load_tuning(folder / "tuning.safetensors").apply(G)
    f = load_styles(folder / "styles.npz", G, model_sha256=file_sha256(model))
    with torch.no_grad():
        via_s = render_styles(tuned, f.styles, f.noise)
    assert (via_s - _render_latent(tuned, folder / "latent.npz")).abs().max() < 1e-5
    with torch.no_grad():  # the tuned generator's styles, not the model's
        assert not torch.equal(to_styles(G, load_latent(folder / "latent.npz").ws).flat(), f.styles.flat())


def test_stats_csv_has_a_row_per_channel_matching_style_stats(workspace):
    tmp, model, G, _ = workspace
    r = _run(["style", "stats", model, "--samples", SAMPLES, "--out", tmp / "stats.csv", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    with open(tmp / "stats.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == style_dims(G)
    st = style_stats(G, samples=SAMPLES)
    layers = {x.name: x for x in style_layers(G)}
    for row in rows:
        layer, c = layers[row["layer"]], int(row["channel"])
        assert row["name"] == f"{layer.index}_{c}" and row["kind"] == layer.kind
        for key, ref in (("mean", st.mean), ("std", st.std)):
            v = float(ref[layer.name][0, c])
            assert abs(float(row[key]) - v) <= 1e-5 * max(1.0, abs(v)), (row, key, v)


def test_edit_channels_and_sweeps():
    s = Styles({"a": torch.zeros(1, 3), "b": torch.ones(1, 2)})
    std = Styles({"a": torch.tensor([[1.0, 2.0, 3.0]]), "b": torch.tensor([[0.5, 0.5]])})

    class Stats:  # only .std is read
        pass

    st = Stats()
    st.std = std
    e = edit_channels(s, [("a", 1, 1.0), ("b", 0, -2.0)], st, 3.0)
    assert e["a"].tolist() == [[0.0, 6.0, 0.0]] and e["b"].tolist() == [[-2.0, 1.0]]
    assert s["a"].tolist() == [[0.0, 0.0, 0.0]]  # the input is left alone
    raw = edit_channels(s, [("a", 2, 1.0)], None, 0.25)
    assert raw["a"].tolist() == [[0.0, 0.0, 0.25]]
    zero = edit_channels(s, [("a", 2, 1.0)], st, 0.0)
    assert all(torch.equal(zero[k], s[k]) for k in s)
    sw = sweep_channels(s, [("a", 0, 1.0)], st, [-1.0, 0.0, 2.0])
    assert sw.batch == 3 and sw["a"][:, 0].tolist() == [-1.0, 0.0, 2.0] and torch.equal(sw["b"], s["b"].repeat(3, 1))
    for bad in ([("c", 0, 1.0)], [("a", 3, 1.0)], [("a", 0, float("inf"))], []):
        with pytest.raises(ConfigError):
            edit_channels(s, bad, st, 1.0)


def test_parse_channel_edit_reads_weights(tiny_generator):
    layers = style_layers(tiny_generator)
    assert parse_channel_edit(layers, "2_3")[1:] == (3, 1.0)
    layer, c, w = parse_channel_edit(layers, f"{layers[1].name}:4*-1.5")
    assert (layer, c, w) == (layers[1], 4, -1.5)
    for bad in ("2_3*", "2_3*inf", "2_3*abc", "2_3*1*2"):
        with pytest.raises(ConfigError, match="--channel"):
            parse_channel_edit(layers, bad)
