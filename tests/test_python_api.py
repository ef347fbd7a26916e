"""The library's front door: wplus.default_loss, project() without a loss, models given in every form, and the
provenance of folders written from Python. All offline, on the shipped model or tiny generators."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import wplus
from conftest import tiny_config
from wplus.data.faces import draw_face, sample_attributes
from wplus.errors import CheckpointError, ImageError, OfflineError
from wplus.formats.dispatch import find_discriminator, load_discriminator_for
from wplus.loading import LoadedGenerator, ModelFile, generator_file
from wplus.models.stylegan2_discriminator import Discriminator
from wplus.models.vgg16 import random_vgg16
from wplus.projection.outputs import write_projection_folder
from wplus.shipped import SHIPPED_MODEL, SHIPPED_SHA256


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No network and an empty cache: VGG-16 weights cannot be had."""
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "empty-cache"))


@pytest.fixture(scope="module")
def info() -> LoadedGenerator:
    return wplus.load_generator_info(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def face(info) -> torch.Tensor:
    return wplus.load_target(draw_face(sample_attributes(1_000_003)), info.G)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save(random_vgg16(seed=0).state_dict(), path)
    return path


def model_forms(info: LoadedGenerator) -> dict[str, object]:
    """The shipped model as each thing the library accepts as a model."""
    return {
        "name": SHIPPED_MODEL,
        "path": info.path,
        "path-text": str(info.path),
        "ModelFile": wplus.resolve_model(SHIPPED_MODEL),
        "LoadedGenerator": info,
        "generator": info.G,
    }


def test_loaded_generator_remembers_its_file(info):
    found = generator_file(info.G)
    assert found == ModelFile(info.path, SHIPPED_MODEL, shipped=True, sha256=SHIPPED_SHA256)
    assert (
        "model_file" not in info.G.state_dict()
        and generator_file(wplus.random_generator(tiny_config(), seed=0)) is None
    )


def test_every_form_of_a_model_is_accepted(info):
    for form, model in model_forms(info).items():
        assert wplus.resolve_model(model).path == info.path, form
        assert find_discriminator(model).name == f"{SHIPPED_MODEL}-D.safetensors", form
        assert isinstance(load_discriminator_for(model), Discriminator), form
        G = wplus.load_generator(model)
        assert G.img_resolution == 64 and generator_file(G).sha256 == SHIPPED_SHA256, form
    assert wplus.load_generator_info(wplus.resolve_model(SHIPPED_MODEL)).sha256 == SHIPPED_SHA256


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("no-such-model", "no-such-model: no such file or registered model"),
        (42, "got a int as the model"),
        ("in-memory", "was built in memory, not read from a file"),
    ],
)
def test_a_bad_model_is_one_line(model, words):
    if model == "in-memory":
        model = wplus.random_generator(tiny_config(), seed=0)
    for call in (wplus.load_generator, wplus.resolve_model, find_discriminator, load_discriminator_for):
        with pytest.raises(CheckpointError, match=words) as e:
            call(model)
        assert "\n" not in str(e.value)


def test_default_loss_offline_falls_back_to_the_discriminator_and_says_so(info, offline):
    for form, model in model_forms(info).items():
        said: list[str] = []
        loss = wplus.default_loss(model, notice=said.append)
        assert loss.settings.loss == "dfeat+mse" and loss.dfeat is not None and loss.settings.needs_vgg is False, form
        assert len(said) == 1 and "cartoon-faces-64's discriminator features instead (loss=dfeat+mse)" in said[0]
        assert "vgg_weights=FILE" in said[0]


def test_default_loss_keeps_the_recipes_other_terms(offline):
    loss = wplus.default_loss(SHIPPED_MODEL, settings=wplus.resolve_settings("course"), notice=lambda _: None)
    assert (loss.settings.loss, loss.settings.dfeat_weight, loss.settings.l1_weight) == ("dfeat+l1", 0.01, 10.0)


def test_default_loss_without_a_notice_logs_a_warning(offline, caplog):
    wplus.default_loss(SHIPPED_MODEL)
    assert any("discriminator features instead" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_default_loss_with_vgg_weights_is_the_papers_loss(info, vgg_file, offline):
    said: list[str] = []
    for model in (info.G, wplus.random_generator(tiny_config(), seed=0)):  # in memory too: D is not needed
        loss = wplus.default_loss(model, vgg_weights=vgg_file, notice=said.append)
        assert loss.settings.loss == "perceptual+mse" and loss.perceptual.uses_vgg and loss.dfeat is None
    assert said == []


def test_default_loss_with_neither_says_what_to_pass(offline):
    G = wplus.random_generator(tiny_config(), seed=0)
    with pytest.raises(OfflineError) as e:
        wplus.default_loss(G)
    message = str(e.value)
    assert "\n" not in message and "vgg_weights=FILE" in message and "wplus weights download vgg16-imagenet" in message


def test_project_without_a_loss_runs_offline_and_records_what_ran(info, face, offline, tmp_path, one_thread):
    result = wplus.project(info.G, face, num_steps=25, lr=0.05)
    psnr = result.history["psnr"][:, 0]
    assert result.metrics[0]["psnr"] > float(psnr[0]) + 2.0  # 25 steps climb well over 2 dB from w_avg
    assert (result.settings.loss, result.settings.perceptual_weight, result.settings.dfeat_weight) == (
        "dfeat+mse",
        0.0,
        1.0,
    )
    assert "loss_dfeat" in result.metrics[0] and result.model == generator_file(info.G)

    write_projection_folder(tmp_path / "f", result, target=face)
    config = json.loads((tmp_path / "f" / "config.json").read_text())
    assert config["model"] == {"id": SHIPPED_MODEL, "sha256": SHIPPED_SHA256, "path": str(info.path)}
    assert config["loss"] == "dfeat+mse"
    code = wplus.load_latent(tmp_path / "f" / "latent.npz")
    assert (code.model_id, code.model_sha256) == (SHIPPED_MODEL, SHIPPED_SHA256)


def test_tune_without_a_loss_uses_the_default_loss_offline(info, face, offline, one_thread):
    from wplus.tuning import tune

    pivot = wplus.project(info.G, face, num_steps=10, lr=0.05, space="w")
    t = tune(info.G, face, pivot.ws, noise=pivot.noise, num_steps=5)
    m = t.info["metrics"]
    assert m["psnr_after"][0] > m["psnr_before"][0] + 0.5
    assert t.info["loss"] == type(wplus.default_loss(info.G)).__name__  # the loss project() would have chosen


def test_folder_of_an_in_memory_generator_records_no_model_and_explicit_ids_win(tiny_generator, mse_loss, tmp_path):
    G = tiny_generator
    target = G.synthesis(G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(3)), None))
    result = wplus.project(G, target, loss=mse_loss, num_steps=2)
    assert result.model is None
    write_projection_folder(tmp_path / "a", result, target=target)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["model"] == {"id": "", "sha256": ""}
    write_projection_folder(tmp_path / "b", result, target=target, model_id="mine", model_sha256="ab" * 32)
    code = wplus.load_latent(tmp_path / "b" / "latent.npz")
    assert (code.model_id, code.model_sha256) == ("mine", "ab" * 32)


def test_project_records_the_recipe_of_the_loss_it_was_given(tiny_generator):
    G = tiny_generator
    target = G.synthesis(G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(4)), None))
    loss, _ = wplus.build_loss(wplus.resolve_settings(loss="l1"))
    result = wplus.project(G, target, loss=loss, settings=wplus.PRESETS["course"].replace(num_steps=2))
    s = result.settings
    assert (s.preset, s.loss, s.l1_weight, s.perceptual_weight, s.num_steps) == ("course", "l1", 1.0, 0.0, 2)


def test_load_target_crops_like_project_and_refuses_a_missing_file(tmp_path, info):
    wide = Image.new("RGB", (90, 30), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 30, 30))  # the left third is blue: a centre crop drops it
    centre = wplus.load_target(wide, info.G)
    squashed = wplus.load_target(wide, 64, crop="none")
    assert centre.shape == squashed.shape == (1, 3, 64, 64)
    assert float(centre[0, 2].max()) < -0.9 and float(squashed[0, 2, :, :10].mean()) > 0.9
    with pytest.raises(ImageError, match="missing.png: no such file"):
        wplus.load_target(tmp_path / "missing.png", info.G)
    with pytest.raises(wplus.ConfigError, match="crop='square'"):
        wplus.load_target(wide, 64, crop="square")
