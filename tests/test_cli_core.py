"""`wplus project`, `generate`, `weights random`, `env` end to end through click, plus our file formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from wplus.cli.main import cli
from wplus.errors import CheckpointError
from wplus.io.checkpoint import load_native_generator, save_generator
from wplus.io.latents import load_latent
from wplus.models.vgg16 import random_vgg16
from wplus.projection.outputs import FOLDER_FILES


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "weights",
            "random",
            "--resolution",
            "16",
            "--channel-base",
            "256",
            "--channel-max",
            "32",
            "--mapping-layers",
            "2",
            "--w-dim",
            "32",
            "--noise-strength",
            "0.1",
            str(d / "tiny.safetensors"),
        ],
    )
    assert res.exit_code == 0, res.output
    torch.save(random_vgg16(0).state_dict(), d / "vgg.pth")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(d / "a.png")
    Image.fromarray(rng.integers(0, 255, (30, 30), dtype=np.uint8), mode="L").save(d / "b.jpg")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return d


def test_weights_random_is_seeded_and_reloads(files, tmp_path):
    runner = CliRunner()
    args = [
        "weights",
        "random",
        "--resolution",
        "16",
        "--channel-base",
        "256",
        "--channel-max",
        "32",
        "--mapping-layers",
        "2",
        "--w-dim",
        "32",
        "--noise-strength",
        "0.1",
    ]
    assert runner.invoke(cli, [*args, str(tmp_path / "again.safetensors")]).exit_code == 0
    a = load_native_generator(files / "tiny.safetensors")
    b = load_native_generator(tmp_path / "again.safetensors")
    assert a.config == b.config and a.num_ws == 6
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_project_cli_batch_with_a_bad_file(files, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        [
            "project",
            str(files / "a.png"),
            str(files / "broken.png"),
            str(files / "b.jpg"),
            "--model",
            str(files / "tiny.safetensors"),
            "--vgg-weights",
            str(files / "vgg.pth"),
            "--steps",
            "5",
            "--loss-resize",
            "32",
            "--batch-size",
            "2",
            "--outdir",
            str(out),
            "--save-video",
            "--seed",
            "3",
            "--json",
        ],
    )
    assert res.exit_code == 1  # one file failed: reported, the others still projected
    assert "broken.png" in res.output and "2 of 3 images projected" in res.output
    for stem in ("a", "b"):
        d = out / stem
        for name in (*FOLDER_FILES, "proj.gif"):
            assert (d / name).is_file(), name
        with np.load(d / "latent.npz", allow_pickle=False) as z:
            assert z["w"].shape == (1, 6, 32) and z["w"].dtype == np.float32
            assert str(z["space"]) == "w+" and int(z["num_ws"]) == 6 and len(str(z["model_sha256"])) == 64
        assert np.load(d / "latent.npy", allow_pickle=False).shape == (6, 32)
        assert Image.open(d / "projection.png").size == (16, 16)
        metrics = json.loads((d / "metrics.json").read_text())
        assert {"psnr", "ssim", "loss_total", "loss_mse", "w_dist_from_avg", "steps", "seconds"} <= set(metrics)
        config = json.loads((d / "config.json").read_text())
        assert config["seed"] == 3 and config["space"] == "w+" and "wplus_version" in config
        assert Image.open(d / "proj.gif").n_frames == 5
    assert not (out / "broken").exists()


def test_projection_png_renders_the_saved_latent(files, tmp_path):
    out = tmp_path / "o"
    res = CliRunner().invoke(
        cli,
        [
            "project",
            str(files / "a.png"),
            "--model",
            str(files / "tiny.safetensors"),
            "--perceptual-weight",
            "0",
            "--steps",
            "3",
            "--space",
            "z",
            "--outdir",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    G = load_native_generator(files / "tiny.safetensors")
    lat = load_latent(out / "a" / "latent.npz")
    assert lat.space == "z" and lat.z is not None and len(lat.noise) == len(G.noise_maps())
    with torch.no_grad():
        img = G.synthesis(lat.ws, noise=lat.noise)
        assert torch.allclose(G.mapping(lat.z), lat.ws, atol=1e-5)
    again = ((img[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    assert np.array_equal(again, np.asarray(Image.open(out / "a" / "projection.png")))


def test_init_latent_continues_a_projection(files, tmp_path):
    model = str(files / "tiny.safetensors")
    base = ["project", str(files / "a.png"), "--model", model, "--perceptual-weight", "0", "--json"]
    first = CliRunner().invoke(cli, [*base, "--steps", "10", "--lr", "0.05", "--outdir", str(tmp_path / "1")])
    assert first.exit_code == 0, first.output
    start = tmp_path / "1" / "a" / "latent.npz"
    zero = CliRunner().invoke(
        cli, [*base, "--steps", "0", "--init-latent", str(start), "--outdir", str(tmp_path / "2")]
    )
    assert zero.exit_code == 0, zero.output
    assert torch.equal(load_latent(tmp_path / "2" / "a" / "latent.npz").ws, load_latent(start).ws)
    config = json.loads((tmp_path / "2" / "a" / "config.json").read_text())
    assert config["init_latent"]["path"] == str(start) and len(config["init_latent"]["sha256"]) == 64
    more = CliRunner().invoke(
        cli, [*base, "--steps", "10", "--lr", "0.05", "--init-latent", str(start), "--outdir", str(tmp_path / "3")]
    )
    assert more.exit_code == 0, more.output
    loss = [json.loads(r.stdout)["results"][0]["loss_total"] for r in (first, more)]
    assert loss[1] < loss[0]
    bad = CliRunner().invoke(cli, [*base, "--space", "z", "--init-latent", str(start), "--outdir", str(tmp_path / "4")])
    assert bad.exit_code != 0 and "--space w+ or w" in bad.output


def test_generate_cli(files, tmp_path):
    res = CliRunner().invoke(
        cli,
        [
            "generate",
            "--model",
            str(files / "tiny.safetensors"),
            "--seeds",
            "0-2,5",
            "--trunc",
            "0.7",
            "--outdir",
            str(tmp_path),
            "--save-latents",
        ],
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"seed000{i}.png" for i in (0, 1, 2, 5)]
    assert load_latent(tmp_path / "seed0005.npz").ws.shape == (1, 6, 32)


def test_env_cli_json(monkeypatch):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")  # no network probe
    res = CliRunner().invoke(cli, ["env", "--json"])
    assert res.exit_code == 0
    info = json.loads(res.output)
    assert info["torch"] == torch.__version__ and "cache_dir" in info


@pytest.mark.parametrize("how", ["flag", "env"])
def test_threads_option_sets_torchs_cpu_threads(monkeypatch, how):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    before = torch.get_num_threads()
    args = ["--threads", "1", "env", "--json"] if how == "flag" else ["env", "--json"]
    env = {} if how == "flag" else {"WPLUS_THREADS": "1"}
    try:
        res = CliRunner().invoke(cli, args, env=env)
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["cpu_threads"] == 1
    finally:
        torch.set_num_threads(before)
    res = CliRunner().invoke(cli, ["--threads", "0", "env"])
    assert res.exit_code == 2 and "--threads" in res.output


def test_missing_vgg_weights_offline_is_one_line(files, tmp_path, monkeypatch):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(
        cli,
        [
            "project",
            str(files / "a.png"),
            "--model",
            str(files / "tiny.safetensors"),
            "--steps",
            "1",
            "--outdir",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1
    assert "vgg16-397923af.pth" in res.output and "--vgg-weights" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("args", [["--model", "nope.safetensors"], ["--model", "{bad}"]])
def test_bad_model_is_one_line(files, tmp_path, args):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    model = str(bad) if args[1] == "{bad}" else str(tmp_path / args[1])
    res = CliRunner().invoke(cli, ["generate", "--model", model, "--outdir", str(tmp_path)])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and "Traceback" not in res.output


def test_native_checkpoint_round_trip_and_errors(tiny_generator, tmp_path):
    path = save_generator(tiny_generator, tmp_path / "g.safetensors", metadata={"source": "test"})
    G = load_native_generator(path)
    z = torch.randn(2, G.z_dim)
    assert torch.equal(G(z), tiny_generator(z))
    (tmp_path / "plain.safetensors").write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="plain.safetensors"):
        load_native_generator(tmp_path / "plain.safetensors")


def test_default_model_falls_back_to_shipped_when_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(cli, ["generate", "--seeds", "0", "--outdir", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output
    assert "using the shipped model cartoon-faces-64" in res.output
    assert Image.open(tmp_path / "g" / "seed0000.png").size == (64, 64)
    # An explicitly named registry model does not fall back: it fails, saying how to supply the file.
    res = CliRunner().invoke(cli, ["generate", "--model", "stylegan2-ffhq-1024", "--outdir", str(tmp_path / "h")])
    assert res.exit_code == 1 and "stylegan2-ffhq-1024" in res.output and "Traceback" not in res.output
