"""``wplus render`` and the reader behind it (``load_codes``): every code of a latent file, rendered as saved."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from wplus.cli.main import cli
from wplus.edits.render import render
from wplus.io.checkpoint import save_generator
from wplus.io.latents import Latent, load_codes, save_latent
from wplus.loading import file_sha256


@pytest.fixture
def workspace(tmp_path, tiny_generator):
    G = tiny_generator
    model = save_generator(G, tmp_path / "tiny.safetensors")
    gen = torch.Generator().manual_seed(0)
    ws = torch.randn(1, G.num_ws, G.w_dim, generator=gen)
    noise = [torch.randn(1, 1, *n.shape[-2:], generator=gen) for n in G.noise_maps()]
    latent = save_latent(tmp_path / "me.npz", Latent(ws=ws, noise=noise, model_sha256=file_sha256(model)))
    codes = torch.randn(3, G.num_ws, G.w_dim, generator=gen)  # e4e's latents.pt: one code per image
    torch.save(codes, tmp_path / "latents.pt")
    return tmp_path, model, latent, ws, noise, codes


def _run(*args):
    return CliRunner().invoke(cli, ["render", *(str(a) for a in args), "--device", "cpu"], catch_exceptions=False)


def _png(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_render_saved_latent_equals_library_render(workspace, tiny_generator):
    tmp, model, latent, ws, noise, _ = workspace
    out = tmp / "r"
    r = _run(latent, "--model", model, "--outdir", out)
    assert r.exit_code == 0, r.output
    want = render(tiny_generator, ws, noise)[0]
    assert np.array_equal(_png(out / "me.png"), np.asarray(want))
    rec = json.loads((out / "render.json").read_text())
    assert rec["command"] == "render" and rec["model"]["sha256"] == file_sha256(model)
    assert rec["inputs"][0]["sha256"] == file_sha256(latent) and rec["inputs"][0]["noise"] == "saved"
    assert "warning" not in rec["inputs"][0] and "warning" not in r.stderr
    assert rec["parameters"]["truncation_psi"] == 1.0 and rec["parameters"]["size"] == tiny_generator.img_resolution
    assert rec["outputs"] == [str(out / "me.png")] and rec["tuning"] is None


def test_render_every_code_of_an_e4e_file_and_one_with_index(workspace, tiny_generator):
    tmp, model, _, _, _, codes = workspace
    G = tiny_generator
    r = _run(tmp / "latents.pt", "--model", model, "--outdir", tmp / "all")
    assert r.exit_code == 0, r.output
    for i in range(3):  # no saved noise: the generator's constant noise
        assert np.array_equal(_png(tmp / "all" / f"latents_{i}.png"), np.asarray(render(G, codes[i : i + 1])[0]))
    r = _run(tmp / "latents.pt", "--index", 1, "--model", model, "--outdir", tmp / "one")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp / "one").iterdir()) == ["latents_1.png", "render.json"]
    assert np.array_equal(_png(tmp / "one" / "latents_1.png"), _png(tmp / "all" / "latents_1.png"))
    rendered = json.loads((tmp / "one" / "render.json").read_text())["parameters"]["rendered"]
    assert [(e["code"], e["output"]) for e in rendered] == [(1, str(tmp / "one" / "latents_1.png"))]


def test_render_dict_of_named_codes(workspace, tiny_generator):
    tmp, model, _, _, _, codes = workspace
    torch.save({"x.jpg": codes[0], "y.jpg": codes[1:2]}, tmp / "named.pt")
    r = _run(tmp / "named.pt", "--model", model, "--outdir", tmp / "n", "--json")
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert [e["source"] for e in rec["parameters"]["rendered"]] == ["x.jpg", "y.jpg"]
    assert np.array_equal(_png(tmp / "n" / "named_1.png"), np.asarray(render(tiny_generator, codes[1:2])[0]))
    assert rec == json.loads((tmp / "n" / "render.json").read_text())


def test_render_index_out_of_range_is_one_line(workspace):
    tmp, model, latent, *_ = workspace
    r = _run(tmp / "latents.pt", "--index", 3, "--model", model, "--outdir", tmp / "x")
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert r.output.strip().splitlines() == [f"Error: --index 3: {tmp / 'latents.pt'} holds 3 codes (0 to 2)"]
    r = _run(latent, "--index", 1, "--model", model, "--outdir", tmp / "y")
    assert r.exit_code != 0 and "holds 1 code (0 to 0)" in r.output


def test_render_warns_when_the_latent_names_another_model(workspace, tiny_generator):
    tmp, model, _, ws, noise, _ = workspace
    other = save_latent(tmp / "other.npz", Latent(ws=ws, noise=noise, model_sha256="ab" * 32), npy=False)
    r = _run(other, "--model", model, "--outdir", tmp / "w")
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and str(other) in warnings[0] and "abababababab" in warnings[0]
    entry = json.loads((tmp / "w" / "render.json").read_text())["inputs"][0]
    assert entry["latent_model_sha256"] == "ab" * 32 and "another model" in entry["warning"]
    assert (tmp / "w" / "other.png").is_file()


def test_render_trunc_zero_is_w_avg_and_size_resizes(workspace, tiny_generator):
    tmp, model, latent, ws, noise, _ = workspace
    G = tiny_generator
    r = _run(latent, "--trunc", 0, "--model", model, "--outdir", tmp / "t")
    assert r.exit_code == 0, r.output
    w_avg = G.w_avg.expand(1, G.num_ws, G.w_dim)
    assert np.array_equal(_png(tmp / "t" / "me.png"), np.asarray(render(G, w_avg, noise)[0]))
    r = _run(latent, "--size", 40, "--model", model, "--outdir", tmp / "s")
    assert r.exit_code == 0, r.output
    want = render(G, ws, noise)[0].resize((40, 40), Image.Resampling.LANCZOS)
    assert np.array_equal(_png(tmp / "s" / "me.png"), np.asarray(want))
    assert json.loads((tmp / "s" / "render.json").read_text())["parameters"]["size"] == 40


def test_render_save_latents_and_repeated_stems(workspace, tiny_generator):
    tmp, model, latent, ws, noise, _ = workspace
    (tmp / "b").mkdir()
    twin = save_latent(tmp / "b" / "me.npz", Latent(ws=-ws, noise=noise), npy=False)
    r = _run(latent, twin, "--save-latents", "--trunc", 0.5, "--model", model, "--outdir", tmp / "l")
    assert r.exit_code == 0, r.output
    assert {p.name for p in (tmp / "l").iterdir()} == {"me.png", "me.npz", "me_2.png", "me_2.npz", "render.json"}
    saved = load_codes(tmp / "l" / "me_2.npz", tiny_generator)[0]
    G = tiny_generator
    assert torch.allclose(saved.ws, G.w_avg + 0.5 * (-ws - G.w_avg), atol=1e-6) and saved.model_sha256 == file_sha256(
        model
    )
    assert np.array_equal(_png(tmp / "l" / "me_2.png"), np.asarray(render(G, saved.ws, saved.noise)[0]))


def test_render_refuses_bad_input_in_one_line(workspace):
    tmp, model, *_ = workspace
    Image.new("RGB", (8, 8)).save(tmp / "face.png")
    for args, words in [
        ((tmp / "face.png",), "is an image"),
        ((tmp / "missing.npz",), "no such file"),
        ((tmp / "latents.pt", "--trunc", "nan"), "--trunc"),
    ]:
        r = _run(*args, "--model", model, "--outdir", tmp / "bad")
        assert r.exit_code != 0 and words in r.output and "Traceback" not in r.output, r.output


def test_load_codes_splits_multi_code_numpy_files(tmp_path, tiny_generator):
    G = tiny_generator
    codes = np.random.default_rng(0).standard_normal((2, G.num_ws, G.w_dim)).astype(np.float32)
    np.save(tmp_path / "toolkit.npy", codes)
    np.savez(tmp_path / "projected_w.npz", w=codes)
    for name in ("toolkit.npy", "projected_w.npz"):
        got = load_codes(tmp_path / name, G)
        assert len(got) == 2 and all(torch.equal(g.ws[0], torch.from_numpy(c)) for g, c in zip(got, codes, strict=True))
    np.save(tmp_path / "one.npy", codes[0])
    assert len(load_codes(tmp_path / "one.npy", G)) == 1
