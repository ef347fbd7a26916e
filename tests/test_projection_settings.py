"""One owner for a projection run: ProjectionSettings, the shared CLI options, the result and its folder."""

from __future__ import annotations

import dataclasses
import json
import math
import typing

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from wplus.cli.main import cli
from wplus.cli.projection_options import OPTIONS, flag_of, projection_options
from wplus.errors import ConfigError, ProjectionDivergedError
from wplus.io.checkpoint import save_generator
from wplus.io.latents import load_latent
from wplus.projection import PRESETS, ProjectionSettings, SettingError, project, resolve_settings
from wplus.projection.outputs import FOLDER_FILES, ProgressVideo, write_history_plot, write_projection_folder
from wplus.projection.settings import PresetName

FAST_LR, FAST_STEPS = 1.0, 600  # the fast preset (L-BFGS) as docs/time_to_quality.md documents it

PROJECTING_COMMANDS = [
    ["project"],
    ["morph"],
    ["mix"],
    ["expression"],
    ["edit"],
    ["direction", "from-pairs"],
    ["direction", "from-images"],
]
FIELDS = [f.name for f in dataclasses.fields(ProjectionSettings) if f.name != "preset"]

# A value different from the default for every field, as typed on a command line, and the setting it gives.
NON_DEFAULT = {
    "space": ("w", "w"),
    "init": ("random", "random"),
    "num_steps": ("7", 7),
    "lr": ("0.2", 0.2),
    "betas": ("0.5,0.9", (0.5, 0.9)),
    "eps": ("1e-6", 1e-6),
    "seed": ("4294967295", 2**32 - 1),
    "w_avg_samples": ("500", 500),
    "optimizer": ("lbfgs", "lbfgs"),
    "lr_rampup": ("0.1", 0.1),
    "lr_rampdown": ("0.2", 0.2),
    "w_noise": ("0.05", 0.05),
    "w_noise_ramp": ("0.5", 0.5),
    "latent_reg_weight": ("2", 2.0),
    "optimize_noise": ("stage2", "stage2"),
    "noise_init": ("random", "random"),
    "noise_reg_weight": ("1e5", 1e5),
    "noise_renormalize": (None, False),  # a flag: --no-noise-renormalize
    "noise_steps": ("3", 3),
    "noise_lr": ("0.05", 0.05),
    "patience": ("20", 20),
    "stop_psnr": ("30", 30.0),
    "coarse_resolution": ("8", 8),
    "coarse_fraction": ("0.5", 0.5),
    "loss": ("perceptual+mse+l1", "perceptual+mse+l1"),
    "perceptual_weight": ("0.5", 0.5),
    "mse_weight": ("3", 3.0),
    "l1_weight": ("4", 4.0),
    "lpips_weight": ("5", 5.0),
    "dfeat_weight": ("6", 6.0),
    "layers": ("conv1_1,conv2_2", ("conv1_1", "conv2_2")),
    "taps": ("pre_relu", "pre_relu"),
    "loss_resize": ("0", None),
    "precision": ("bf16", "bf16"),
}


@click.command()
@projection_options
def _echo_settings(projection):
    click.echo(json.dumps(projection.settings.to_dict()))


def _settings_of(args):
    r = CliRunner().invoke(_echo_settings, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_every_settings_field_has_exactly_one_option():
    assert sorted(o.field for o in OPTIONS) == sorted(FIELDS)
    assert len({o.flag for o in OPTIONS}) == len(OPTIONS)
    assert sorted(NON_DEFAULT) == sorted(FIELDS)  # the next test covers every field


@pytest.mark.parametrize("name", FIELDS)
def test_each_option_reaches_its_setting(name):
    text, want = NON_DEFAULT[name]
    flag = flag_of(name)
    args = ["--no-noise-renormalize"] if name == "noise_renormalize" else [flag, text]
    loss_for = {"l1_weight": "perceptual+mse+l1", "lpips_weight": "lpips+mse", "dfeat_weight": "dfeat+mse"}
    if name in loss_for:
        args += ["--loss", loss_for[name]]
    got = _settings_of(args)[name]
    want = list(want) if isinstance(want, tuple) else want
    assert got == (pytest.approx(want) if isinstance(want, float) else want)
    assert got != _settings_of([])[name] or name in loss_for


@pytest.mark.parametrize("command", PROJECTING_COMMANDS, ids=" ".join)
def test_projecting_commands_share_every_option(command):
    text = CliRunner().invoke(cli, [*command, "--help-all"], terminal_width=200).output
    for flag in ["--preset", "--vgg-weights", "--lpips-weights"] + [o.flag.split("/")[0] for o in OPTIONS]:
        assert f"{flag} " in text or f"{flag}/" in text, f"{' '.join(command)} has no {flag}"


def test_preset_then_explicit_options():
    s = _settings_of(["--preset", "nvidia", "--steps", "9", "--space", "w+"])
    assert (s["preset"], s["num_steps"], s["space"], s["lr"], s["noise_reg_weight"]) == ("nvidia", 9, "w+", 0.1, 1e5)


def test_presets_are_the_names_of_the_literal():
    assert tuple(PRESETS) == typing.get_args(PresetName)
    for name, s in PRESETS.items():
        assert s.preset == name


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--seed", str(2**70)], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--loss-resize", "1"], "--loss-resize"),
        (["--lr", "inf"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--mse-weight", "nan"], "--mse-weight"),
        (["--eps", "0"], "--eps"),
        (["--betas", "1.5,0.9"], "--betas"),
        (["--betas", "x"], "--betas"),
        (["--vgg-layers", "conv9_9"], "--vgg-layers"),
        (["--loss", "mse", "--mse-weight", "0"], "--mse-weight"),
        (["--loss", "mse", "--l1-weight", "2"], "--l1-weight"),
    ],
)
def test_bad_option_values_name_the_flag(args, flag):
    r = CliRunner().invoke(_echo_settings, args)
    assert r.exit_code == 2 and r.exception is not None and not isinstance(r.exception, ValueError)
    assert flag in r.output and "Traceback" not in r.output


def test_settings_validate_on_construction_and_name_the_field():
    with pytest.raises(SettingError) as e:
        ProjectionSettings(w_noise=math.inf)
    assert e.value.field == "w_noise"
    with pytest.raises(SettingError, match="num_steps"):
        ProjectionSettings(num_steps=2.5)
    with pytest.raises(SettingError, match="seed"):
        ProjectionSettings().replace(seed=True)
    with pytest.raises(ConfigError, match="unknown projection setting"):
        ProjectionSettings().replace(steps=3)
    assert ProjectionSettings(optimize_noise=True).optimize_noise == "joint"
    assert ProjectionSettings(num_steps=np.int64(5)).num_steps == 5


def test_settings_round_trip_through_config_json():
    s = resolve_settings("nvidia", num_steps=12, betas=(0.8, 0.99), layers=("conv1_1",))
    assert ProjectionSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_project_takes_settings_and_keywords(tiny_generator, mse_loss):
    G = tiny_generator
    target = G.synthesis(G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(5)), None))
    base = ProjectionSettings(space="w", num_steps=3, lr=0.05, seed=2)
    a = project(G, target, loss=mse_loss, settings=base)
    b = project(G, target, loss=mse_loss, space="w", num_steps=3, lr=0.05, seed=2)
    c = project(G, target, loss=mse_loss, settings=base, num_steps=4)
    assert torch.equal(a.ws, b.ws) and a.settings == b.settings == base
    assert c.settings.num_steps == 4 and c.history["total"].shape[0] == 4
    with pytest.raises(SettingError, match="lr"):
        project(G, target, loss=mse_loss, lr=-1.0)


def test_result_latent_picks_one_image_of_a_batch(tiny_generator, mse_loss):
    G = tiny_generator
    target = G.synthesis(G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(6)), None))
    r = project(G, target, loss=mse_loss, num_steps=2, optimize_noise="joint", noise_init="random")
    lat = r.latent(1, model_sha256="abc")
    assert torch.equal(lat.ws, r.ws[1:2]) and lat.model_sha256 == "abc"
    assert all(torch.equal(n, m[1:2]) for n, m in zip(lat.noise, r.noise, strict=True))
    with pytest.raises(IndexError):
        r.latent(2)


def test_a_diverging_projection_stops_with_a_clear_error(tiny_generator, mse_loss):
    G = tiny_generator
    target = torch.zeros(1, 3, G.img_resolution, G.img_resolution)
    with pytest.raises(ProjectionDivergedError, match="diverged at step .*lower the learning rate"):
        project(G, target, loss=mse_loss, num_steps=20, lr=1e30)


def test_folder_writer_writes_what_the_result_holds(tiny_generator, mse_loss, tmp_path):
    G = tiny_generator
    target = G.synthesis(G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(7)), None))
    video = ProgressVideo(target, 3)
    r = project(G, target, loss=mse_loss, num_steps=3, seed=1, callback=video)
    metrics = write_projection_folder(
        tmp_path / "img", r, target=target, model_sha256="f00", provenance={"image": "x.png"}, video=video
    )
    for name in FOLDER_FILES + ("proj.gif",):
        assert (tmp_path / "img" / name).is_file(), name
    lat = load_latent(tmp_path / "img" / "latent.npz")
    assert torch.equal(lat.ws, r.ws) and lat.model_sha256 == "f00"
    config = json.loads((tmp_path / "img" / "config.json").read_text())
    assert ProjectionSettings.from_dict(config) == r.settings and config["image"] == "x.png"
    assert json.loads((tmp_path / "img" / "metrics.json").read_text()) == pytest.approx(metrics)
    assert len(video.frames[0]) == 3


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from conftest import tiny_config
    from wplus.models.stylegan2 import random_generator

    d = tmp_path_factory.mktemp("settings")
    save_generator(random_generator(tiny_config(16), seed=1, noise_strength=0.1), d / "tiny.safetensors")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / "a.png")
    return d


def test_cli_divergence_is_one_line_and_writes_nothing(model_file, tmp_path):
    args = ["project", model_file / "a.png", "--model", model_file / "tiny.safetensors", "--loss", "mse"]
    args += ["--lr", "1e30", "--steps", "20", "--outdir", tmp_path / "o", "--device", "cpu"]
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 1 and "diverged" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o" / "a" / "latent.npz").exists()


def test_edit_commands_project_images_with_the_settings_given(model_file, tmp_path):
    model = model_file / "tiny.safetensors"
    args = ["morph", model_file / "a.png", model_file / "a.png", "--model", model, "--frames", "2", "--steps", "2"]
    args += ["--space", "w", "--loss", "mse", "--lr", "0.05", "--outdir", tmp_path / "m", "--device", "cpu"]
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "m" / "morph.json").read_text())
    proj = rec["parameters"]["projection"]
    assert (proj["space"], proj["loss"], proj["lr"], proj["num_steps"]) == ("w", "mse", 0.05, 2)
    assert rec["inputs"][0]["space"] == "w"


def test_direction_from_images_refuses_settings_it_would_ignore(model_file, tmp_path):
    a = model_file / "a.png"
    args = ["direction", "from-images", a, a, "--model", model_file / "tiny.safetensors", "--loss", "mse"]
    args += ["--optimize-noise", "joint", "--outdir", tmp_path / "d", "--device", "cpu"]
    r = CliRunner().invoke(cli, [str(x) for x in args])
    assert r.exit_code == 1 and "--optimize-noise" in r.output


def test_history_csv_has_the_columns_and_monotone_seconds(tiny_generator, mse_loss, tmp_path):
    import csv

    G = tiny_generator
    target = G.synthesis(G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(8)), None))
    r = project(G, target, loss=mse_loss, num_steps=5, latent_reg_weight=0.1)
    write_projection_folder(tmp_path / "h", r, target=target)
    with open(tmp_path / "h" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "seconds", "psnr", "loss_total", "loss_mse", "loss_latent_reg"]
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4, 5]
    seconds = [float(row["seconds"]) for row in rows]
    assert all(b >= a for a, b in zip(seconds, seconds[1:], strict=False)) and seconds[0] > 0
    assert float(rows[-1]["psnr"]) == pytest.approx(float(r.history["psnr"][-1, 0]), rel=1e-5)
    metrics = json.loads((tmp_path / "h" / "metrics.json").read_text())
    assert metrics["seconds_total"] >= seconds[-1] and metrics["steps"] == 5
    write_history_plot(tmp_path / "h" / "history.png", r.history_rows(0), title="h")
    img = np.asarray(Image.open(tmp_path / "h" / "history.png").convert("RGB"))
    assert img.shape == (300, 1040, 3) and (img < 128).any() and (img == 255).mean() > 0.5
    blue = (img[..., 2] > 150) & (img[..., 0] < 80)  # the PSNR curve's colour
    assert blue[:, :520].sum() > 100 and blue[:, 520:].sum() > 100  # a curve in each panel


def test_early_stopping_stops_and_still_writes_everything(tiny_generator, mse_loss, tmp_path):
    G = tiny_generator
    target = G.synthesis(G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(9)), None))
    full = project(G, target, loss=mse_loss, num_steps=60, lr=0.05)
    goal = float(full.history["psnr"][20, 0])
    r = project(G, target, loss=mse_loss, num_steps=60, lr=0.05, stop_psnr=goal)
    assert r.metrics[0]["steps"] <= 21 and r.history["psnr"].shape[0] == r.metrics[0]["steps"]
    assert float(r.history["psnr"][-1, 0]) >= goal and "stop_psnr" in r.stopped_early[0]
    write_projection_folder(tmp_path / "e", r, target=target)
    for name in FOLDER_FILES:
        assert (tmp_path / "e" / name).is_file(), name
    assert json.loads((tmp_path / "e" / "config.json").read_text())["stopped_early"] == r.stopped_early
    # A constant target the generator cannot improve on beyond a plateau: patience ends the run.
    flat = project(G, target, loss=mse_loss, num_steps=400, lr=1e-9, patience=5)
    assert flat.metrics[0]["steps"] < 400 and "did not improve for 5 steps" in flat.stopped_early[0]


def test_import_wplus_sets_a_passive_openmp_wait_unless_the_user_chose(tmp_path):
    import os
    import subprocess
    import sys

    code = "import os, wplus; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"


def _tiny_d(seed=0):
    from wplus.models.stylegan2_discriminator import Discriminator, DiscriminatorConfig

    torch.manual_seed(seed)
    return Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32)).eval()


def test_dfeat_term_is_the_discriminator_feature_distance():
    from wplus.losses import DiscriminatorFeatures, ImageLoss

    D = _tiny_d()
    gen = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1, torch.rand(1, 3, 16, 16, generator=gen) * 2 - 1
    ref = DiscriminatorFeatures(D, mse_weight=0.0)
    want = ref(a, ref.prepare_target(b))["perceptual"]
    loss = ImageLoss(None, perceptual_weight=0.0, mse_weight=0.0, discriminator=D, dfeat_weight=2.0)
    got = loss(a, loss.prepare_target(b))
    assert torch.allclose(got["dfeat"], want, atol=1e-6) and torch.allclose(got["total"], 2 * want, atol=1e-6)
    with pytest.raises(ConfigError, match="needs a discriminator"):
        ImageLoss(None, perceptual_weight=0.0, dfeat_weight=1.0)


@pytest.mark.parametrize("preset", [None, "image2stylegan", "nvidia", "course"])
def test_every_preset_resolves_with_discriminator_features_in_place_of_vgg(preset):
    s = resolve_settings(preset)
    d = s.with_discriminator_features()
    assert not d.needs_vgg and "dfeat" in d.terms and s.needs_vgg
    assert [t for t in s.terms if t not in ("perceptual", "lpips")] == [t for t in d.terms if t != "dfeat"]
    assert d.dfeat_weight == (s.lpips_weight if "lpips" in s.terms else s.perceptual_weight)
    assert (d.space, d.num_steps, d.lr, d.optimize_noise) == (s.space, s.num_steps, s.lr, s.optimize_noise)


def test_project_offline_uses_the_models_discriminator_and_records_it(model_file, tmp_path, monkeypatch):
    from wplus.io.checkpoint import save_discriminator

    save_discriminator(_tiny_d(), model_file / "tiny-D.safetensors")
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "empty-cache"))
    args = ["project", model_file / "a.png", "--model", model_file / "tiny.safetensors", "--steps", "30"]
    args += ["--lr", "0.05", "--outdir", tmp_path / "o", "--device", "cpu"]
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    assert "discriminator features instead (--loss dfeat+mse)" in r.output
    config = json.loads((tmp_path / "o" / "a" / "config.json").read_text())
    assert (config["loss"], config["perceptual_weight"], config["dfeat_weight"]) == ("dfeat+mse", 0.0, 1.0)
    import csv

    with open(tmp_path / "o" / "a" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert "loss_dfeat" in rows[0] and float(rows[-1]["loss_total"]) < 0.8 * float(rows[0]["loss_total"])


def test_dfeat_loss_without_a_discriminator_is_one_line(model_file, tmp_path):
    (model_file / "tiny-D.safetensors").unlink(missing_ok=True)
    args = ["project", model_file / "a.png", "--model", model_file / "tiny.safetensors", "--loss", "dfeat+mse"]
    r = CliRunner().invoke(cli, [str(a) for a in [*args, "--outdir", tmp_path / "o", "--device", "cpu"]])
    assert r.exit_code == 1 and "no discriminator found with this generator" in r.output
    assert "Traceback" not in r.output


def test_project_offline_reads_d_from_an_nvidia_snapshot(tmp_path, monkeypatch):
    from conftest import tiny_config
    from wplus.formats._testing import write_nvidia_pickle
    from wplus.models.stylegan2 import random_generator

    G = random_generator(tiny_config(16), seed=1, noise_strength=0.1)
    write_nvidia_pickle(G, tmp_path / "snapshot.pkl", D=_tiny_d(1))
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "empty-cache"))
    args = ["project", tmp_path / "a.png", "--model", tmp_path / "snapshot.pkl", "--steps", "3", "--preset", "course"]
    r = CliRunner().invoke(cli, [str(a) for a in [*args, "--outdir", tmp_path / "o", "--device", "cpu"]])
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "o" / "a" / "config.json").read_text())
    assert (config["preset"], config["loss"], config["dfeat_weight"], config["l1_weight"]) == (
        "course",
        "dfeat+l1",
        0.01,
        10.0,
    )


def test_fast_preset_resolves_to_its_documented_values_in_config_json(tiny_generator, mse_loss, tmp_path):
    s = resolve_settings("fast")
    documented = {"space": "w+", "lr": FAST_LR, "lr_rampdown": 0.0, "num_steps": FAST_STEPS, "optimizer": "lbfgs"}
    assert {k: getattr(s, k) for k in documented} == documented
    G = tiny_generator
    target = G.synthesis(G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(2)), None))
    r = project(G, target, loss=mse_loss, settings=s.replace(num_steps=3))
    write_projection_folder(tmp_path / "f", r, target=target)
    config = json.loads((tmp_path / "f" / "config.json").read_text())
    assert config["preset"] == "fast" and config["lr"] == FAST_LR and config["optimizer"] == "lbfgs"


@pytest.mark.slow
def test_fast_reaches_the_plain_recipes_psnr_in_fewer_steps(mse_loss):
    """On the shipped model (the preset was chosen there): fast in 150 steps gets at least as far as the plain
    recipe (Adam, constant lr 0.01) in 600."""
    from wplus.shipped import load_shipped_generator
    from wplus.train.quality import held_out_faces

    G = load_shipped_generator()
    target = held_out_faces(1000, 1, G.img_resolution)
    plain = project(G, target, loss=mse_loss, num_steps=600)
    fast = project(G, target, loss=mse_loss, settings=PRESETS["fast"].replace(num_steps=150))
    assert fast.metrics[0]["steps"] == 150 and fast.metrics[0]["psnr"] >= plain.metrics[0]["psnr"] - 0.05, (
        fast.metrics[0]["psnr"],
        plain.metrics[0]["psnr"],
    )
