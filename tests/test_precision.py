"""precision='fp32'|'bf16'|'auto': bf16 autocast agrees with fp32 to a stated tolerance, CPUs without native bf16
get fp32 under 'auto' and a one-line refusal when bf16 is forced, and --precision reaches config.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from wplus import precision as prec
from wplus.cli.main import cli
from wplus.errors import ConfigError
from wplus.io.checkpoint import save_generator
from wplus.projection import project
from wplus.tuning import load_tuning, tune

# Measured on the tiny 16-px generator: the same code rendered under bf16 autocast differs from its fp32 render by
# at most ~0.03 (images in [-1, 1]); 8 bits of mantissa are ~0.4 % per value, accumulated over the layers.
RENDER_TOLERANCE = 0.08
LOSS_TOLERANCE = 0.05  # relative difference of the final loss of 20 Adam steps, fp32 against bf16


@pytest.fixture
def native(monkeypatch):
    """Make this CPU report native bf16 (and the probe find it faster) whatever it has."""
    monkeypatch.setattr(prec, "cpu_bf16_support", lambda: "AVX512_BF16")
    monkeypatch.setattr(prec, "_bf16_probe_faster", lambda: True)
    monkeypatch.delenv(prec.ALLOW_EMULATED_ENV, raising=False)


@pytest.fixture
def emulated(monkeypatch):
    """Make this CPU report no native bf16 (an AVX2 machine)."""
    monkeypatch.setattr(prec, "cpu_bf16_support", lambda: None)
    monkeypatch.setattr(prec, "_cpu_isa", lambda: "AVX2")
    monkeypatch.delenv(prec.ALLOW_EMULATED_ENV, raising=False)


def _target(G, seed=3):
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.synthesis(G.mapping(z, None) * 0.7, noise_mode="const")


def test_auto_is_fp32_and_forced_bf16_is_refused_in_one_line_without_native_bf16(emulated, tiny_generator, mse_loss):
    assert prec.resolve_precision("auto") == "fp32"
    assert prec.resolve_precision("fp32") == "fp32"
    with pytest.raises(ConfigError) as e:
        prec.resolve_precision("bf16")
    assert str(e.value) == ("this CPU has no native bf16 (AVX2 only): bf16 would be slower here; use --precision fp32")
    G = tiny_generator
    r = project(G, _target(G), loss=mse_loss, num_steps=2, precision="auto")
    assert r.settings.precision == "fp32" and r.record()["precision"] == "fp32"
    with pytest.raises(ConfigError, match="no native bf16"):
        project(G, _target(G), loss=mse_loss, num_steps=2, precision="bf16")


def test_auto_is_bf16_on_a_native_cpu_and_emulation_can_be_allowed(native, monkeypatch):
    assert prec.resolve_precision("auto") == "bf16" and prec.resolve_precision("bf16") == "bf16"
    monkeypatch.setattr(prec, "_bf16_probe_faster", lambda: False)
    assert prec.resolve_precision("auto") == "fp32"  # native but not measured faster
    monkeypatch.setattr(prec, "cpu_bf16_support", lambda: None)
    monkeypatch.setenv(prec.ALLOW_EMULATED_ENV, "1")
    assert prec.resolve_precision("bf16") == "bf16"
    with pytest.raises(ConfigError, match="expected one of"):
        prec.resolve_precision("fp16")


def test_bf16_render_of_the_same_code_is_close_to_fp32(tiny_generator, one_thread):
    G = tiny_generator
    ws = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1)), None)
    with torch.no_grad():
        a = G.synthesis(ws, noise_mode="const")
        with prec.autocast("bf16"):
            b = G.synthesis(ws, noise_mode="const")
    assert b.dtype == torch.bfloat16
    diff = float((a - b.float()).abs().max())
    assert 0 < diff < RENDER_TOLERANCE


def test_bf16_and_fp32_projections_agree(native, tiny_generator, mse_loss, one_thread):
    G = tiny_generator
    target = _target(G)
    a = project(G, target, loss=mse_loss, num_steps=20, lr=0.05, precision="fp32")
    b = project(G, target, loss=mse_loss, num_steps=20, lr=0.05, precision="bf16")
    assert b.settings.precision == "bf16" and b.record()["precision"] == "bf16"
    # master copy in fp32: the code, the final render and the per-step records are float32
    assert b.ws.dtype == b.images.dtype == b.history["total"].dtype == torch.float32
    la, lb = a.metrics[0]["loss_total"], b.metrics[0]["loss_total"]
    first = float(a.history["total"][0, 0])
    assert lb < 0.5 * first  # bf16 optimises too
    assert abs(la - lb) <= LOSS_TOLERANCE * la
    assert abs(a.metrics[0]["psnr"] - b.metrics[0]["psnr"]) < 0.5
    c = project(G, target, loss=mse_loss, num_steps=4, optimizer="lbfgs", lr=1.0, precision="bf16")
    assert c.metrics[0]["loss_total"] < float(c.history["total"][0, 0])


def test_bf16_tuning_keeps_fp32_factors_and_improves(native, tiny_generator, mse_loss, one_thread):
    G = tiny_generator
    target = _target(G, seed=4)[:1]
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(9)), None)
    t = tune(G, target, ws, loss=mse_loss, num_steps=10, lr=3e-3, locality_weight=0.0, precision="bf16")
    m = t.info["metrics"]
    assert t.info["precision"] == "bf16" and m["psnr_after"][0] > m["psnr_before"][0]
    assert all(v.dtype == torch.float32 for v in t.factors.values())


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from conftest import tiny_config
    from wplus.models.stylegan2 import random_generator

    d = tmp_path_factory.mktemp("precision")
    save_generator(random_generator(tiny_config(16), seed=1, noise_strength=0.1), d / "tiny.safetensors")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / "a.png")
    return d


def _project_cli(model_file, out, *extra):
    args = ["project", model_file / "a.png", "--model", model_file / "tiny.safetensors", "--loss", "mse"]
    args += ["--steps", "2", "--outdir", out, "--device", "cpu", *extra]
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_precision_reaches_config_json(native, model_file, tmp_path):
    r = _project_cli(model_file, tmp_path / "o", "--precision", "bf16")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o" / "a" / "config.json").read_text())["precision"] == "bf16"


def test_cli_refuses_emulated_bf16_in_one_line(emulated, model_file, tmp_path):
    r = _project_cli(model_file, tmp_path / "o", "--precision", "bf16")
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "this CPU has no native bf16 (AVX2 only)" in r.output
    lines = [ln for ln in r.output.splitlines() if "native bf16" in ln]
    assert len(lines) == 1
    r = _project_cli(model_file, tmp_path / "p", "--precision", "auto")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "p" / "a" / "config.json").read_text())["precision"] == "fp32"


# -- tuning and encoder training take the same setting ----------------------------------------------------------------


def _one_line_refusal(r):
    assert r.exit_code != 0 and "Traceback" not in r.output, r.output
    assert len([ln for ln in r.output.splitlines() if "native bf16" in ln]) == 1, r.output


def test_settings_reject_an_unknown_precision():
    from wplus.train.encoder import EncoderTrainSettings
    from wplus.tuning import TuningSettings

    for make in (TuningSettings, EncoderTrainSettings):
        with pytest.raises(ConfigError, match="expected one of fp32, bf16, auto") as e:
            make(precision="fp16")
        assert "\n" not in str(e.value)
    assert TuningSettings(precision="bf16").kwargs()["precision"] == "bf16"


def test_tune_cli_precision_is_refused_without_native_bf16_and_recorded_as_it_ran(
    emulated, model_file, tmp_path, monkeypatch, one_thread
):
    assert _project_cli(model_file, tmp_path / "o", "--space", "w").exit_code == 0
    folder = tmp_path / "o" / "a"
    tune_args = ["tune", str(folder), "--steps", "1", "--locality", "0", "--device", "cpu"]
    r = CliRunner().invoke(cli, [*tune_args, "--precision", "bf16"])
    _one_line_refusal(r)
    assert not (folder / "tuning.safetensors").exists()
    monkeypatch.setenv(prec.ALLOW_EMULATED_ENV, "1")
    r = CliRunner().invoke(cli, [*tune_args, "--precision", "bf16"])
    assert r.exit_code == 0, r.output
    assert json.loads((folder / "config.json").read_text())["tuning"]["precision"] == "bf16"
    assert load_tuning(folder / "tuning.safetensors").info["precision"] == "bf16"
    r = CliRunner().invoke(cli, [*tune_args, "--precision", "auto", "--overwrite"])  # no native bf16: fp32
    assert r.exit_code == 0, r.output
    assert json.loads((folder / "config.json").read_text())["tuning"]["precision"] == "fp32"


def test_project_tune_follows_the_projection_precision(emulated, model_file, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv(prec.ALLOW_EMULATED_ENV, "1")
    r = _project_cli(model_file, tmp_path / "o", "--precision", "bf16", "--tune", "--tune-steps", "1",
                     "--tune-locality", "0")  # fmt: skip
    assert r.exit_code == 0, r.output
    folder = tmp_path / "o" / "a"
    assert json.loads((folder / "config.json").read_text())["precision"] == "bf16"
    assert load_tuning(folder / "tuning.safetensors").info["precision"] == "bf16"


def test_encoder_train_precision_is_refused_recorded_and_kept_on_resume(
    emulated, model_file, tmp_path, monkeypatch, one_thread
):
    from wplus.io.checkpoint import read_metadata
    from wplus.models.encoder import load_encoder_file

    out = tmp_path / "enc"
    args = ["encoder", "train", "--model", str(model_file / "tiny.safetensors"), "--outdir", str(out),
            "--pool-size", "8", "--batch-size", "4", "--perceptual-weight", "0", "--device", "cpu"]  # fmt: skip
    r = CliRunner().invoke(cli, [*args, "--steps", "1", "--precision", "bf16"])
    _one_line_refusal(r)
    assert not out.exists()
    monkeypatch.setattr(prec, "cpu_bf16_support", lambda: "AVX512_BF16")  # a native bf16 CPU, as far as wplus knows
    r = CliRunner().invoke(cli, [*args, "--steps", "1", "--precision", "bf16"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "metrics.json").read_text())["training"]["settings"]["precision"] == "bf16"
    meta = read_metadata(out / "train-state.safetensors")
    assert json.loads(meta["run"])["precision"] == "bf16"
    encoder = load_encoder_file(out / "encoder.safetensors")
    assert all(p.dtype == torch.float32 for p in encoder.parameters())  # the master weights stay fp32
    r = CliRunner().invoke(cli, [*args, "--steps", "2", "--resume"])  # the default fp32 is another run
    assert r.exit_code != 0 and "trained in bf16, this run would be fp32; pass --precision bf16" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(cli, [*args, "--steps", "2", "--resume", "--precision", "bf16"])
    assert r.exit_code == 0, r.output
    assert json.loads(read_metadata(out / "train-state.safetensors")["step"]) == 2
