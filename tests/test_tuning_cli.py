"""Pivotal tuning on the command line: project --tune, wplus tune, --tuning in every rendering command, and
weights convert --tuning, end to end on a tiny generator file."""

from __future__ import annotations

import json

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import tiny_config
from wplus.cli.main import cli
from wplus.cli.tuning_options import tuning_options, tuning_settings_options
from wplus.io.checkpoint import load_native_generator, save_generator
from wplus.io.images import load_image, pil_to_tensor
from wplus.io.latents import load_latent
from wplus.loading import file_sha256
from wplus.models.stylegan2 import random_generator
from wplus.tuning import TuningSettings, load_tuning

PROJECT = ["--steps", 15, "--lr", 0.05, "--loss", "mse", "--device", "cpu"]
TUNE = ["--tune-steps", 15, "--tune-lr", 3e-3, "--tune-locality", 0]


def _run(args, code=0):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == code, r.output
    return r


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tiny_generator, one_thread):
    tmp = tmp_path_factory.mktemp("tune")
    model = save_generator(tiny_generator, tmp / "tiny.safetensors")
    yy, xx = np.mgrid[0:16, 0:16] / 15.0
    Image.fromarray((np.stack([xx, yy, xx * yy], -1) * 255).astype(np.uint8)).save(tmp / "face.png")
    _run(["project", tmp / "face.png", "--model", model, "--tune", *TUNE, *PROJECT, "--outdir", tmp / "out"])
    return tmp, model, tmp / "out" / "face"


def test_project_tune_writes_the_tuning_and_both_metrics(tuned, tiny_generator):
    tmp, model, folder = tuned
    for name in ("tuning.safetensors", "untuned.png", "projection.png", "latent.npz", "metrics.json"):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    before, after = metrics["before_tuning"], metrics["after_tuning"]
    assert metrics["psnr"] == after["psnr"] > before["psnr"] + 1.0 and after["steps"] == 15 and before["steps"] == 15
    config = json.loads((folder / "config.json").read_text())
    assert config["space"] == "w"  # PTI's pivot: W unless --space is given
    t = load_tuning(folder / "tuning.safetensors")
    assert t.base_sha256 == file_sha256(model)
    latent = load_latent(folder / "latent.npz")
    with torch.no_grad():
        img = t.apply(tiny_generator).synthesis(latent.ws, noise=latent.noise)
    saved = pil_to_tensor(load_image(folder / "projection.png"))
    assert (img.clamp(-1, 1) - saved).abs().max() < 2 / 255 + 1e-6  # the PNG holds the tuned render


def test_tune_command_tunes_an_existing_folder(tuned, tmp_path):
    tmp, model, _ = tuned
    _run(["project", tmp / "face.png", "--model", model, *PROJECT, "--space", "w", "--outdir", tmp_path])
    folder = tmp_path / "face"
    before = json.loads((folder / "metrics.json").read_text())["psnr"]
    _run(["tune", folder, "--steps", 15, "--lr", 3e-3, "--locality", 0, "--device", "cpu"])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["before_tuning"]["psnr"] == pytest.approx(before, abs=1e-3) and metrics["psnr"] > before + 1.0
    assert metrics["after_tuning"]["loss_total"] < metrics["before_tuning"]["loss_total"]  # each state its own loss
    assert (folder / "untuned.png").is_file() and (folder / "tuning.safetensors").is_file()
    r = _run(["tune", folder, tmp_path / "missing", "--steps", 1, "--device", "cpu"], code=1)
    assert "already tuned" in r.output and "missing" in r.output and "0 of 2 folders tuned" in r.output
    assert f"failed: {folder}: already tuned" in r.output and f"{folder}: {folder}" not in r.output  # named once
    assert "--overwrite" in r.output
    first = json.loads((folder / "metrics.json").read_text())
    _run(["tune", folder, "--overwrite", "--tune-steps", 2, "--tune-lr", 3e-3, "--device", "cpu"])
    metrics = json.loads((folder / "metrics.json").read_text())
    # Tuned again from the base model and the untuned code: the same "before", a new number of steps.
    assert metrics["before_tuning"]["psnr"] == pytest.approx(first["before_tuning"]["psnr"], abs=1e-3)
    assert "before_tuning" not in metrics["before_tuning"]  # the untuned figures, not the first tuning's record
    assert metrics["after_tuning"]["steps"] == 2
    assert json.loads((folder / "config.json").read_text())["tuning"]["num_steps"] == 2


@pytest.mark.parametrize("command", ["edit", "morph", "mix", "expression", "render"])
def test_every_edit_command_renders_with_a_tuning_and_records_it(tuned, tmp_path, command):
    tmp, model, folder = tuned
    lat, tuning = folder / "latent.npz", folder / "tuning.safetensors"
    np.save(tmp_path / "d.npy", np.ones((1, 32), np.float32))
    args = {
        "edit": ["edit", lat, "--direction", tmp_path / "d.npy", "--strength", "0,1"],
        "morph": ["morph", lat, lat, "--frames", 2],
        "mix": ["mix", lat, lat, "--layers", "fine"],
        "expression": ["expression", lat, lat, lat, "--strength", "1"],
        "render": ["render", lat],
    }[command]
    _run([*args, "--model", model, "--tuning", tuning, "--outdir", tmp_path / "o", "--device", "cpu"])
    rec = json.loads(next((tmp_path / "o").glob("*.json")).read_text())
    assert rec["tuning"]["sha256"] == file_sha256(tuning) and rec["tuning"]["path"] == str(tuning)


def test_render_with_a_tuning_renders_the_tuned_generator(tuned, tmp_path):
    tmp, model, folder = tuned
    lat, tuning = folder / "latent.npz", folder / "tuning.safetensors"
    _run(["render", lat, "--model", model, "--outdir", tmp_path / "plain", "--device", "cpu"])
    _run(["render", lat, "--model", model, "--tuning", tuning, "--outdir", tmp_path / "t", "--device", "cpu"])
    plain, tuned_png = (np.asarray(Image.open(tmp_path / d / "latent.png"), np.int16) for d in ("plain", "t"))
    assert np.abs(plain - tuned_png).max() > 0


def test_generate_with_a_tuning_renders_the_tuned_generator(tuned, tmp_path, tiny_generator):
    tmp, model, folder = tuned
    tuning = folder / "tuning.safetensors"
    _run(["generate", "--model", model, "--seeds", 3, "--outdir", tmp_path / "plain", "--device", "cpu"])
    _run(
        ["generate", "--model", model, "--seeds", 3, "--tuning", tuning, "--outdir", tmp_path / "t", "--device", "cpu"]
    )
    plain, tuned_png = (np.asarray(Image.open(tmp_path / d / "seed0003.png"), np.int16) for d in ("plain", "t"))
    assert np.abs(plain - tuned_png).max() > 0
    rec = json.loads((tmp_path / "t" / "generate.json").read_text())
    assert rec["tuning"]["sha256"] == file_sha256(tuning) and rec["parameters"]["seeds"] == [3]


def test_a_tuning_for_another_model_is_refused_naming_the_flag(tuned, tmp_path):
    tmp, _, folder = tuned
    other = save_generator(random_generator(tiny_config(16), seed=42), tmp_path / "other.safetensors")
    r = _run(["generate", "--model", other, "--seeds", 0, "--tuning", folder / "tuning.safetensors",
              "--outdir", tmp_path / "g"], code=2)  # fmt: skip
    assert "--tuning" in r.output and "use the model it was tuned on" in r.output and "Traceback" not in r.output


def test_weights_convert_bakes_a_tuning_into_a_plain_generator(tuned, tmp_path, tiny_generator):
    tmp, model, folder = tuned
    out = tmp_path / "baked.safetensors"
    _run(["weights", "convert", "--tuning", folder / "tuning.safetensors", model, out])
    baked = load_native_generator(out)
    latent = load_latent(folder / "latent.npz")
    want = load_tuning(folder / "tuning.safetensors").apply(tiny_generator)
    with torch.no_grad():
        a, b = (g.synthesis(latent.ws, noise=latent.noise) for g in (baked, want))
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    ("args", "flag"),
    [(["--locality-samples", 0], "--locality-samples"), (["--lr", 0], "--lr"), (["--rank", -1], "--rank")],
)
def test_bad_tuning_flags_are_refused_naming_the_flag(tuned, tmp_path, args, flag):
    _, model, folder = tuned
    r = _run(["tune", folder, *args], code=2)
    assert flag in r.output and "Traceback" not in r.output


def _settings_from(decorator, args):
    """The TuningSettings a command declared with ``decorator`` receives for ``args``."""
    got = []

    @click.command()
    @decorator
    def cmd(tuning):
        got.append(tuning)

    r = CliRunner().invoke(cmd, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return got[0]


def test_tuning_settings_have_one_spelling_on_both_commands_and_short_aliases_on_tune():
    values = {"steps": 7, "rank": 0, "lr": 3e-4, "locality": 0, "radius": 1.5, "locality-samples": 3,
              "pixel-weight": 0.5, "stop-psnr": 30}  # fmt: skip
    canonical = [a for k, v in values.items() for a in (f"--tune-{k}", v)] + ["--tune-biases"]
    short = [a for k, v in values.items() for a in (f"--{k}", v)] + ["--biases"]
    want = TuningSettings(num_steps=7, lr=3e-4, rank=None, locality_weight=0.0, locality_radius=1.5,
                          locality_samples=3, pixel_weight=0.5, biases=True, stop_psnr=30.0)  # fmt: skip
    assert _settings_from(tuning_settings_options, canonical) == want  # wplus tune, project's spelling
    assert _settings_from(tuning_settings_options, short) == want  # wplus tune, the aliases
    assert _settings_from(tuning_options, ["--tune", *canonical]) == want  # wplus project
    assert _settings_from(tuning_settings_options, []) == TuningSettings()
    assert _settings_from(tuning_settings_options, ["--no-biases"]) == _settings_from(tuning_options, ["--tune"])
