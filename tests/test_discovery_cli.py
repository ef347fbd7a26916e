"""`wplus direction sefa | pca | fit`, `wplus sample` and `wplus edit --set` end to end through click's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wplus.cli.main import cli
from wplus.edits.directions import load_direction
from wplus.io.checkpoint import save_generator
from wplus.io.latents import Latent, load_latent, save_latent
from wplus.loading import file_sha256
from wplus.seeds import z_from_seed


def _run(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _one_line_error(result, *needles):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    line = [ln for ln in result.output.splitlines() if ln.startswith("Error")]
    assert len(line) == 1, result.output
    for needle in needles:
        assert needle in line[0], line[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_generator):
    return save_generator(tiny_generator, tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def samples(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("samples")
    r = _run(["sample", model, "--seeds", "0-399", "--out", out, "--device", "cpu"])
    assert r.exit_code == 0, r.output
    return out / "codes.npz"


def test_sample_writes_seeded_codes_and_images(model, samples, tiny_generator, tmp_path):
    with np.load(samples, allow_pickle=False) as f:
        assert f["seeds"].tolist() == list(range(400))
        assert f["z"].shape == (400, tiny_generator.z_dim) and f["w"].shape == (400, tiny_generator.w_dim)
        assert np.array_equal(f["z"][7], z_from_seed(7, tiny_generator.z_dim)[0].numpy())
        assert json.loads(str(f["metadata"]))["model_sha256"] == file_sha256(model)
    r = _run(["sample", model, "--seeds", "3,5", "--trunc", "0.5", "--images", "--out", tmp_path, "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "seed0003.png").is_file() and (tmp_path / "seed0005.png").is_file()
    with np.load(tmp_path / "codes.npz", allow_pickle=False) as f:
        with torch.no_grad():
            w = tiny_generator.mapping(torch.from_numpy(f["z"]), truncation_psi=0.5)[:, 0]
        assert np.allclose(f["w"], w.numpy(), atol=1e-6)
    _one_line_error(_run(["sample", model, "--seeds", "9-2", "--out", tmp_path]), "--seeds", "2-9")


def test_sefa_cli_writes_ours_and_rosinalitys_file(model, tiny_generator, tmp_path):
    out = tmp_path / "sefa.npz"
    r = _run(["direction", "sefa", model, "--out", out, "--layers", "0-2", "--num", "6", "--format", "rosinality",
              "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    assert summary["layers"] == [0, 1, 2] and summary["num"] == 6
    with np.load(out, allow_pickle=False) as f:
        meta = json.loads(str(f["metadata"]))
        assert f["components"].shape == (6, 32) and f["eigenvalues"].shape == (6,)
        assert (
            meta["model_sha256"] == file_sha256(model) and meta["variant"] == "genforce" and meta["layers"] == [0, 1, 2]
        )
    pt = torch.load(tmp_path / "sefa.pt", map_location="cpu", weights_only=True)
    assert pt["eigvec"].shape == (32, 6) and pt["ckpt"] == str(model)
    _one_line_error(_run(["direction", "sefa", model, "--out", tmp_path / "x.pt"]), "--out", ".npz")
    _one_line_error(_run(["direction", "sefa", model, "--out", out, "--layers", "0-40"]), "layers", "outside")


def test_pca_cli_and_edit_with_set_and_strength(model, tiny_generator, tmp_path):
    out = tmp_path / "pca.npz"
    r = _run(["direction", "pca", model, "--samples", "3000", "--components", "5", "--std-samples", "500", "--out", out,
              "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    gan = torch.load(tmp_path / "pca.pt", map_location="cpu", weights_only=True)
    assert gan["comp"].shape == (5, 1, 32) and gan["mean"].shape == (1, 32) and gan["std"].shape == (5,)
    G = tiny_generator
    latent = save_latent(tmp_path / "me.npz", Latent(ws=torch.randn(1, G.num_ws, G.w_dim), noise=G.noise_maps()))
    r = _run(["edit", latent, "--direction", tmp_path / "pca.pt", "--component", 2, "--set", "-1,2", "--layers", "1-2",
              "--model", model, "--outdir", tmp_path / "set", "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    comp, mean, std = gan["comp"][2, 0], gan["mean"][0], float(gan["std"][2])
    for k, target in enumerate([-1.0, 2.0]):
        ws = load_latent(tmp_path / "set" / "edit" / f"s{k:02d}.npz").ws[0]
        assert torch.allclose((ws[1:3] - mean) @ comp, torch.full((2,), target * std), atol=1e-4)
        assert torch.equal(ws[[0, 3, 4, 5]], load_latent(latent).ws[0, [0, 3, 4, 5]])
    rec = json.loads((tmp_path / "set" / "edit.json").read_text())
    assert rec["parameters"]["set"] == [-1.0, 2.0] and rec["parameters"]["strength"] is None
    # --strength keeps the relative step s·std, on our npz as on the GANSpace dict
    r = _run(["edit", latent, "--direction", out, "--component", 2, "--strength", "1.5", "--model", model, "--outdir",
              tmp_path / "step", "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    moved = load_latent(tmp_path / "step" / "edit" / "s00.npz").ws[0] - load_latent(latent).ws[0]
    assert torch.allclose(moved, (1.5 * std * comp).expand_as(moved), atol=1e-5)
    both = _run(["edit", latent, "--direction", out, "--component", 2, "--strength", "1", "--set", "1", "--model",
                 model, "--outdir", tmp_path / "x"])  # fmt: skip
    assert both.exit_code != 0 and "not both" in both.output


def _planted_scores(samples, tmp_path):
    with np.load(samples, allow_pickle=False) as f:
        w, seeds = f["w"].astype(np.float64), f["seeds"]
    n = np.random.RandomState(0).randn(w.shape[1])
    n /= np.linalg.norm(n)
    scores = w @ n
    return seeds, scores, n


def test_fit_cli_writes_interfacegan_and_our_boundary(samples, model, tiny_generator, tmp_path):
    seeds, scores, n = _planted_scores(samples, tmp_path)
    order = np.random.RandomState(3).permutation(len(seeds))  # a CSV in any order, by seed
    csv = tmp_path / "scores.csv"
    csv.write_text("seed,score\n" + "".join(f"{seeds[i]},{float(scores[i])!r}\n" for i in order))
    r = _run(["direction", "fit", samples, csv, "--ratio", "0.25", "--out", tmp_path / "attr.npz", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    assert summary["per_side"] == 100 and summary["num_train"] == 140 and summary["num_val"] == 60
    boundary = np.load(tmp_path / "attr.npy", allow_pickle=False)
    assert boundary.dtype == np.float64 and boundary.shape == (1, 32) and np.isclose(np.linalg.norm(boundary), 1)
    assert float((boundary @ n)[0]) > 0.8  # 140 training codes in 32 dims; test_discovery pins the precision
    d = load_direction(tmp_path / "attr.npz", tiny_generator)
    assert d.kind == "ours" and d.metadata["val_accuracy"] == summary["val_accuracy"] and d.metadata["space"] == "w"
    assert np.allclose(d.vector.numpy(), boundary, atol=1e-6)
    # the same scores as an .npy in the codes' order give the same boundary
    np.save(tmp_path / "scores.npy", scores)
    r = _run(["direction", "fit", samples, tmp_path / "scores.npy", "--ratio", "0.25", "--out", tmp_path / "b.npz"])
    assert r.exit_code == 0, r.output
    assert np.allclose(np.load(tmp_path / "b.npy"), boundary)
    # conditional on an InterFaceGAN .npy and one of our .npz boundaries: orthogonal to both
    other = tmp_path / "other.npy"
    np.save(other, np.random.RandomState(4).randn(1, 32))
    second = _run(
        ["direction", "fit", samples, tmp_path / "scores.npy", "--ratio", "0.1", "--out", tmp_path / "b2.npz"]
    )
    assert second.exit_code == 0, second.output
    r = _run(["direction", "fit", samples, csv, "--ratio", "0.25", "--condition", other, "--condition",
              tmp_path / "b2.npz", "--out", tmp_path / "c.npz"])  # fmt: skip
    assert r.exit_code == 0, r.output
    c, b2 = np.load(tmp_path / "c.npy"), np.load(tmp_path / "b2.npy").astype(np.float32).astype(np.float64)
    assert abs(float((c @ np.load(other).T)[0, 0])) < 1e-6 and abs(float((c @ b2.T)[0, 0])) < 1e-6
    # a Z boundary is written, but edits of W codes refuse it
    r = _run(["direction", "fit", samples, csv, "--ratio", "0.25", "--space", "z", "--out", tmp_path / "z.npz"])
    assert r.exit_code == 0, r.output
    latent = save_latent(tmp_path / "me.npz", Latent(ws=torch.randn(1, 6, 32)))
    r = _run(["edit", latent, "--direction", tmp_path / "z.npz", "--model", model, "--outdir", tmp_path / "e"])
    _one_line_error(r, "z.npz", "--space w")


def test_fit_cli_refuses_bad_scores_in_one_line(samples, tmp_path):
    seeds, scores, _ = _planted_scores(samples, tmp_path)
    out = ["--out", tmp_path / "o.npz"]
    short = tmp_path / "short.npy"
    np.save(short, scores[:-1])
    _one_line_error(_run(["direction", "fit", samples, short, *out]), "short.npy", "399 scores", "codes.npz", "400")
    nan = scores.copy()
    nan[10] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    _one_line_error(_run(["direction", "fit", samples, tmp_path / "nan.npy", *out]), "nan.npy", "index 10")
    lines = "".join(f"{s},{v}\n" for s, v in zip(seeds, scores, strict=True))
    (tmp_path / "nan.csv").write_text("seed,score\n" + lines.replace(f"\n5,{scores[5]}\n", "\n5,nan\n"))
    _one_line_error(_run(["direction", "fit", samples, tmp_path / "nan.csv", *out]), "nan.csv:7", "finite")
    (tmp_path / "stranger.csv").write_text("seed,score\n" + lines.replace(f"\n5,{scores[5]}\n", "\n123456,1.0\n"))
    _one_line_error(_run(["direction", "fit", samples, tmp_path / "stranger.csv", *out]), "seed 123456", "codes.npz")
    (tmp_path / "bare.csv").write_text(lines)
    _one_line_error(_run(["direction", "fit", samples, tmp_path / "bare.csv", *out]), "bare.csv", "header")
    (tmp_path / "good.csv").write_text("seed,score\n" + lines)
    np.save(tmp_path / "wide.npy", np.ones((1, 33)))
    r = _run(["direction", "fit", samples, tmp_path / "good.csv", "--condition", tmp_path / "wide.npy", *out])
    _one_line_error(r, "wide.npy", "[1, 32]")
