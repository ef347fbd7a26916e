"""Every edit command end to end through click's CliRunner on a tiny generator written to disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from wplus.cli.main import cli
from wplus.io.checkpoint import save_generator
from wplus.io.latents import Latent, load_latent, save_latent
from wplus.loading import file_sha256


@pytest.fixture
def workspace(tmp_path, tiny_generator):
    G = tiny_generator
    model = save_generator(G, tmp_path / "tiny.safetensors")
    paths = []
    for seed in range(4):
        gen = torch.Generator().manual_seed(seed)
        ws = torch.randn(1, G.num_ws, G.w_dim, generator=gen)
        noise = [torch.randn(1, 1, *n.shape[-2:], generator=gen) for n in G.noise_maps()]
        paths.append(
            save_latent(tmp_path / f"l{seed}.npz", Latent(ws=ws, noise=noise, model_sha256=file_sha256(model)))
        )
    return tmp_path, model, paths


def _run(args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def _record(path):
    rec = json.loads(path.read_text())
    assert rec["model"]["sha256"] and len(rec["model"]["sha256"]) == 64
    return rec


def test_morph_cli(workspace):
    tmp, model, lat = workspace
    out = tmp / "morph"
    r = _run(["morph", lat[0], lat[1], lat[2], "--model", model, "--frames", 5, "--pingpong", "--outdir", out,
              "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    with Image.open(out / "morph.gif") as gif:
        assert gif.n_frames == 8
    assert (out / "morph.png").is_file()
    rec = _record(out / "morph.json")
    assert rec["parameters"]["frames"] == 5 and rec["parameters"]["pingpong"] is True
    assert [i["path"] for i in rec["inputs"]] == [str(p) for p in lat[:3]]
    assert rec["inputs"][0]["noise"] == "saved"


def test_morph_cli_projects_image_inputs(workspace):
    tmp, model, lat = workspace
    Image.new("RGB", (20, 20), (200, 30, 30)).save(tmp / "red.png")
    out = tmp / "m2"
    r = _run(["morph", tmp / "red.png", lat[1], "--model", model, "--frames", 3, "--steps", 2,
              "--perceptual-weight", 0, "--outdir", out, "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rec = _record(out / "morph.json")
    assert rec["inputs"][0]["projected"] is True and rec["parameters"]["projection"]["num_steps"] == 2


def test_mix_cli_grid_latents_and_video(workspace, tiny_generator):
    tmp, model, lat = workspace
    G = tiny_generator
    out = tmp / "mix"
    r = _run(["mix", lat[0], lat[1], lat[2], "--content", lat[3], "--layers", "fine", "--video", "--frames", 4,
              "--model", model, "--outdir", out, "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    R, pad = 256, 2  # 16-px frames are enlarged to 256 px; each row has a caption band under it
    with Image.open(out / "mix.png") as sheet:
        assert sheet.width == 3 * R + 4 * pad and sheet.height > 3 * R + 4 * pad
    mixed = load_latent(out / "mixed" / "c1_s0.npz")
    content, style = load_latent(lat[3]), load_latent(lat[1])
    rows = _record(out / "mix.json")["parameters"]["rows"]
    for row in range(G.num_ws):
        src = style if row in rows else content
        assert torch.equal(mixed.ws[0, row], src.ws[0, row])
    with Image.open(out / "mix_video.gif") as gif:
        assert gif.n_frames == 4


def test_mix_cli_bad_layers_is_one_line_error(workspace):
    tmp, model, lat = workspace
    r = _run(["mix", lat[0], lat[1], "--layers", "0-99", "--model", model, "--outdir", tmp / "x", "--device", "cpu"])
    assert r.exit_code != 0 and "outside" in r.output and "Traceback" not in r.output


def test_expression_cli(workspace, tiny_generator):
    tmp, model, lat = workspace
    out = tmp / "expr"
    r = _run(["expression", lat[0], lat[1], lat[2], "--strength", "0:1:3", "--threshold", 5, "--norm", "l2",
              "--model", model, "--outdir", out, "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rec = _record(out / "expression.json")
    norms = np.array(rec["parameters"]["row_norms"])
    assert rec["parameters"]["kept_rows"] == [i for i, n in enumerate(norms) if n >= 5]
    with Image.open(out / "expression.gif") as gif:
        assert gif.n_frames == 3
    w1, w2, w3 = (load_latent(p).ws for p in lat[:3])
    last = load_latent(out / "expression" / "s02.npz").ws
    kept = torch.tensor(norms >= 5)
    assert torch.allclose(last[0, kept], (w1 + w3 - w2)[0, kept], atol=1e-5)
    assert torch.equal(last[0, ~kept], w1[0, ~kept])


def test_edit_cli_with_toolkit_npy_and_wrong_shape(workspace, tiny_generator):
    tmp, model, lat = workspace
    G = tiny_generator
    vec = np.tile(np.linspace(-1, 1, G.w_dim), (G.num_ws, 1))
    np.save(tmp / "smile.npy", vec)
    out = tmp / "edit"
    r = _run(["edit", lat[0], "--direction", tmp / "smile.npy", "--strength", "-2,0,2", "--layers", "0-1",
              "--model", model, "--outdir", out, "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rec = _record(out / "edit.json")
    assert rec["parameters"]["direction"]["kind"] == "toolkit" and rec["parameters"]["layers"] == [0, 1]
    base, edited = load_latent(lat[0]).ws, load_latent(out / "edit" / "s02.npz").ws
    assert torch.allclose(edited[0, :2], base[0, :2] + 2 * torch.from_numpy(vec[:2]).float(), atol=1e-5)
    assert torch.equal(edited[0, 2:], base[0, 2:])
    np.save(tmp / "bad.npy", np.zeros((1, 512)))
    r = _run(["edit", lat[0], "--direction", tmp / "bad.npy", "--model", model, "--outdir", out, "--device", "cpu"])
    assert r.exit_code != 0 and "bad.npy" in r.output and f"w_dim={G.w_dim}" in r.output


def test_direction_from_pairs_then_edit(workspace, tiny_generator):
    tmp, model, lat = workspace
    (tmp / "pairs.txt").write_text(f"# neutral expressive\n{lat[2].name} {lat[3].name}\n")
    out = tmp / "dirs"
    r = _run(["direction", "from-pairs", lat[0], lat[1], "--pairs-file", tmp / "pairs.txt", "--name", "smile",
              "--model", model, "--outdir", out, "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    with np.load(out / "smile.npz", allow_pickle=False) as data:
        vec = torch.from_numpy(data["direction"])
        meta = json.loads(str(data["metadata"]))
    w = [load_latent(p).ws[0] for p in lat]
    assert torch.allclose(vec, ((w[1] - w[0]) + (w[3] - w[2])) / 2, atol=1e-6)
    assert meta["num_pairs"] == 2 and (out / "smile.json").is_file()
    r = _run(["direction", "info", out / "smile.npz"])
    assert r.exit_code == 0 and '"kind": "ours"' in r.output
    r = _run(["edit", lat[0], "--direction", out / "smile.npz", "--strength", "1", "--model", model,
              "--outdir", tmp / "e2", "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert torch.allclose(load_latent(tmp / "e2" / "edit" / "s00.npz").ws[0], w[0] + vec, atol=1e-5)
    r = _run(["direction", "from-pairs", lat[0], "--model", model, "--outdir", out, "--device", "cpu"])
    assert r.exit_code != 0 and "pairs" in r.output


def test_z_codes_morph_in_z_and_edit_after_mapping(tmp_path, tiny_generator):
    G = tiny_generator
    model = save_generator(G, tmp_path / "tiny.safetensors")
    paths = []
    for seed in (10, 11):
        z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            ws = G.mapping(z, None)
        paths.append(save_latent(tmp_path / f"z{seed}.npz", Latent(ws=ws, space="z", z=z), npy=False))
    r = _run(["morph", *paths, "--mode", "slerp", "--frames", 3, "--model", model, "--outdir", tmp_path / "m",
              "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rec = _record(tmp_path / "m" / "morph.json")
    assert rec["parameters"]["interp_space"] == "z" and rec["inputs"][0]["noise"] == "generator const"
    r = _run(["mix", *paths, "--layers", "coarse", "--model", model, "--outdir", tmp_path / "x", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    mixed = load_latent(tmp_path / "x" / "mixed" / "c0_s0.npz").ws
    a, b = load_latent(paths[0]).ws, load_latent(paths[1]).ws
    assert torch.equal(mixed[0, 0], b[0, 0]) and torch.equal(mixed[0, -1], a[0, -1])


def test_direction_from_images_projects_pairs_jointly_and_skips_a_bad_pair(workspace, tiny_generator):
    from wplus.io.images import tensor_to_pil

    tmp, model, _ = workspace
    G = tiny_generator
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        w = G.mapping(torch.randn(3, G.z_dim, generator=g))
        e = torch.zeros(1, G.num_ws, G.w_dim)
        e[:, 2:5] = 0.8 * torch.randn(1, 3, G.w_dim, generator=g)
        before, after = G.synthesis(w, noise_mode="const"), G.synthesis(w + e, noise_mode="const")
    names = []
    for i in range(3):
        for side, img in (("b", before[i]), ("a", after[i])):
            tensor_to_pil(img).save(tmp / f"{side}{i}.png")
            names.append(tmp / f"{side}{i}.png")
    (tmp / "broken.png").write_bytes(b"not a png")
    out = tmp / "dirs"
    args = ["direction", "from-images", *names, tmp / "broken.png", names[1], "--name", "edit", "--steps", 200,
            "--model", model, "--outdir", out, "--device", "cpu", "--perceptual-weight", 0]  # fmt: skip
    r = _run(args)
    assert r.exit_code == 0, r.output
    assert "skipping pair 3" in r.output and "broken.png" in r.output
    with np.load(out / "edit.npz", allow_pickle=False) as data:
        vec = torch.from_numpy(data["direction"])
        meta = json.loads(str(data["metadata"]))
    assert vec.shape == (G.num_ws, G.w_dim) and torch.isfinite(vec).all() and vec.norm() > 0
    assert meta["method"] == "shared offset of jointly projected pairs" and meta["num_pairs"] == 3
    rec = _record(out / "edit.json")
    params = rec["parameters"]
    assert params["pairs_used"] == [0, 1, 2] and params["skipped"][0]["pair"] == 3
    from wplus.metrics import psnr

    with torch.no_grad():  # the start of every code: w_avg; the joint projection must improve on it clearly
        start = G.synthesis(G.w_avg.reshape(1, 1, -1).expand(3, G.num_ws, -1), noise_mode="const")
    floor = torch.stack([psnr(start, before), psnr(start, after)], 1) + 4
    assert (torch.tensor(params["pair_psnr_db"]) > floor).all(), (params["pair_psnr_db"], floor)
    assert [i["role"] for i in rec["inputs"]] == ["before0", "after0", "before1", "after1", "before2", "after2"]
    with Image.open(out / "edit_pairs.png") as sheet:
        assert sheet.width > 4 * 16 and sheet.height > 3 * 16
    r = _run([*args[:-4], "--space", "w", "--device", "cpu"])
    assert r.exit_code != 0 and "W+" in r.output
