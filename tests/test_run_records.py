"""What a run says and records (issue 26, section 5): one state per figure after --tune, the image's name in
history.png, the manifest for single images, --model required where the default cannot be had, only the loss
terms that ran, input files checked first (before any notice), repeated inputs said, projected edit inputs' PSNR."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import wplus.projection.outputs as outputs
from wplus.cli.main import cli
from wplus.errors import OfflineError
from wplus.io.checkpoint import save_generator
from wplus.io.latents import Latent, save_latent
from wplus.loading import resolve_model
from wplus.shipped import DEFAULT_MODEL, SHIPPED_MODEL

FAST = ["--loss", "mse", "--steps", "2", "--w-avg-samples", "64", "--device", "cpu"]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No network and an empty cache: the default model and VGG-16 cannot be had."""
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def work(tmp_path, tiny_generator):
    model = save_generator(tiny_generator, tmp_path / "tiny.safetensors")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    G = tiny_generator
    latent = Latent(ws=torch.zeros(1, G.num_ws, G.w_dim), noise=[])
    save_latent(tmp_path / "l.npz", latent)
    return tmp_path, model


def _run(args, code=0):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    return r


def _records(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


# ---- 1. after --tune, each figure belongs to one state


def test_tuned_metrics_keep_before_and_after_apart(work):
    tmp, model = work
    out = tmp / "out"
    r = _run(["project", tmp / "a.png", "--model", model, *FAST, "--steps", 15, "--lr", 0.05, "--space", "w",
              "--tune", "--tune-steps", 15, "--tune-lr", 3e-3, "--tune-locality", 0, "--outdir", out])  # fmt: skip
    m = json.loads((out / "a" / "metrics.json").read_text())
    before, after = m["before_tuning"], m["after_tuning"]
    assert after["psnr"] > before["psnr"] + 1.0 and m["psnr"] == after["psnr"] and m["ssim"] == after["ssim"]
    # Each block has its own loss terms: the tuned render is measured with the projection's loss.
    assert set(before) >= {"loss_total", "loss_mse", "psnr", "ssim", "steps"} and before["steps"] == 15
    assert set(after) >= {"loss_total", "loss_mse", "steps", "rank"} and after["steps"] == 15
    assert after["loss_total"] < before["loss_total"]
    assert "loss_total" not in m  # no loose loss beside the tuned PSNR
    # The image's line reports both states.
    line = next(s for s in r.output.splitlines() if s.startswith("a.png: psnr"))
    assert f"psnr {before['psnr']:.2f} -> {after['psnr']:.2f} dB" in line
    assert f"loss {before['loss_total']:.4f} -> {after['loss_total']:.4f}" in line
    # A tuned folder is recognised as such by `wplus tune`.
    r = _run(["tune", out / "a", "--steps", 1, "--device", "cpu"], code=1)
    assert "already tuned" in r.output


# ---- 2. history.png is titled with the image, not the temporary folder


def test_plot_title_is_the_image_stem(work, monkeypatch):
    tmp, model = work
    titles = []
    monkeypatch.setattr(outputs, "write_history_plot", lambda path, rows, *, title="": titles.append(title))
    _run(["project", tmp / "a.png", "--model", model, *FAST, "--plot", "--outdir", tmp / "out"])
    assert titles == ["a"]


# ---- 3. every run into an OUTDIR goes through its manifest


def test_a_single_image_run_reads_and_writes_the_manifest(work):
    tmp, model = work
    out = tmp / "out"
    _run(["project", tmp / "a.png", tmp / "b.png", "--model", model, *FAST, "--outdir", out])
    n = len(_records(out))
    stamp = (out / "a" / "latent.npz").stat().st_mtime_ns
    r = _run(["project", tmp / "a.png", "--model", model, *FAST, "--outdir", out])
    assert "skipped 1 of 1 image done earlier" in r.output
    assert (out / "a" / "latent.npz").stat().st_mtime_ns == stamp and len(_records(out)) == n
    r = _run(["project", tmp / "a.png", "--model", model, *FAST, "--outdir", out, "--overwrite"])
    added = _records(out)[n:]
    assert [(rec["status"], rec["outputs"]) for rec in added] == [("running", []), ("done", ["a"])]
    assert added[-1]["input"] == str((tmp / "a.png").resolve())
    # A first run of one image into a fresh folder starts the manifest.
    _run(["project", tmp / "b.png", "--model", model, *FAST, "--outdir", tmp / "fresh"])
    assert [rec["status"] for rec in _records(tmp / "fresh")] == ["running", "done"]


# ---- 4. no silent cartoon model for a user's photo


def test_resolve_model_without_fallback_says_how_to_get_a_model(offline):
    with pytest.raises(OfflineError, match=f"wplus weights download {DEFAULT_MODEL}.*--model {SHIPPED_MODEL}"):
        resolve_model(None, fallback=False)
    assert resolve_model(None).shipped  # the library's default keeps its fallback


@pytest.mark.parametrize("command", ["project", "edit", "morph", "mix", "expression", "from-pairs"])
def test_commands_on_a_users_photo_need_a_model_offline(offline, work, command):
    tmp, _ = work
    lat = tmp / "l.npz"
    args = {
        "project": ["project", tmp / "a.png"],
        "edit": ["edit", lat, "--direction", lat],
        "morph": ["morph", lat, lat],
        "mix": ["mix", lat, lat],
        "expression": ["expression", lat, lat, lat],
        "from-pairs": ["direction", "from-pairs", lat, lat],
    }[command]
    r = _run([*args, "--outdir", tmp / "o", "--device", "cpu"], code=1)
    lines = [s for s in r.output.splitlines() if s.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: no --model given")
    assert DEFAULT_MODEL in lines[0] and f"wplus weights download {DEFAULT_MODEL}" in lines[0]
    assert f"--model {SHIPPED_MODEL}" in lines[0] and "using the shipped model" not in r.output
    assert not (tmp / "o").exists()


def test_generate_still_falls_back_loudly(offline, tmp_path):
    r = _run(["generate", "--seeds", 0, "--outdir", tmp_path / "g", "--device", "cpu"])
    assert r.output.count("using the shipped model") == 1
    assert Image.open(tmp_path / "g" / "seed0000.png").size == (64, 64)


# ---- 5. records list what ran


def test_an_mse_run_records_only_its_terms(work):
    tmp, model = work
    _run(["project", tmp / "a.png", "--model", model, *FAST, "--outdir", tmp / "out"])
    folder = tmp / "out" / "a"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert sorted(k for k in metrics if k.startswith("loss_")) == ["loss_mse", "loss_total"]
    with open(folder / "history.csv", newline="") as f:
        assert next(csv.reader(f)) == ["step", "seconds", "psnr", "loss_total", "loss_mse"]
    config = json.loads((folder / "config.json").read_text())
    assert config["loss"] == "mse" and "layers" not in config and "taps" not in config


def test_a_perceptual_run_records_its_vgg_layers(work, tmp_path):
    from wplus.models.vgg16 import random_vgg16

    tmp, model = work
    torch.save(random_vgg16(0).state_dict(), tmp / "vgg.pth")
    args = ["--loss", "perceptual", "--vgg-weights", tmp / "vgg.pth", "--loss-resize", 32, "--steps", 1]
    _run(["project", tmp / "a.png", "--model", model, *FAST, *args, "--outdir", tmp / "out"])
    folder = tmp / "out" / "a"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert "loss_perceptual" in metrics and "loss_mse" not in metrics and "loss_conv1_1" in metrics
    config = json.loads((folder / "config.json").read_text())
    assert config["layers"] == ["conv1_1", "conv1_2", "conv3_2", "conv4_2"] and config["taps"] == "post_relu"


# ---- 6, 7. files checked first, in one line naming the flag, before any notice


@pytest.mark.parametrize("flag", ["--mask", "--init-latent", "--vgg-weights", "--lpips-weights", "--tuning"])
def test_a_missing_file_is_one_line_naming_its_flag_before_any_notice(offline, work, flag):
    tmp, _ = work
    command = ["morph", tmp / "l.npz", tmp / "a.png"] if flag == "--tuning" else ["project", tmp / "a.png"]
    # The shipped model without cached VGG weights would print the discriminator-feature notice.
    r = _run([*command, "--model", SHIPPED_MODEL, flag, tmp / "missing.png", "--outdir", tmp / "o"], code=2)
    assert f"'{flag}'" in r.output and "missing.png" in r.output and "does not exist" in r.output
    assert "VGG-16" not in r.output and not (tmp / "o").exists()


def test_a_missing_edit_input_is_named_before_the_model_is_read(offline, work):
    tmp, _ = work
    r = _run(["morph", tmp / "l.npz", tmp / "gone.npz", "--outdir", tmp / "o"], code=2)  # no --model: not reached
    assert "gone.npz" in r.output and "does not exist" in r.output and "--model" not in r.output


def test_a_repeated_input_is_said_to_be_skipped(work):
    tmp, model = work
    r = _run(["project", tmp / "a.png", tmp / "a.png", "--model", model, *FAST, "--outdir", tmp / "out"])
    assert f"skipped 1 repeated input ({tmp / 'a.png'})" in r.output
    assert sorted(p.name for p in (tmp / "out").iterdir() if p.is_dir()) == ["a"]


# ---- 8. an edit's projected input: its PSNR said and recorded


def test_edit_commands_report_and_record_the_projection_of_image_inputs(work):
    tmp, model = work
    out = tmp / "m"
    r = _run(["morph", tmp / "a.png", tmp / "l.npz", "--model", model, "--frames", 2, *FAST, "--outdir", out])
    line = next(s for s in r.output.splitlines() if s.startswith("projected a.png: "))
    rec = json.loads((out / "morph.json").read_text())
    projected, latent = rec["inputs"]
    assert projected["projected"] is True and projected["projection"]["steps"] == 2
    assert line.startswith(f"projected a.png: psnr {projected['projection']['psnr']:.2f} dB in 2 steps")
    assert "projection" not in latent
