"""wplus study: every study end to end on a tiny generator, the exact transforms, defect regions, resuming, errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from wplus.cli.main import cli
from wplus.errors import ConfigError
from wplus.formats._testing import random_discriminator
from wplus.io.checkpoint import save_discriminator, save_generator
from wplus.models.stylegan2 import StyleGAN2Config, random_generator
from wplus.models.stylegan2_discriminator import DiscriminatorConfig
from wplus.study import STUDIES
from wplus.study.regions import DEFECTS, blank, defect_mask, part_masks
from wplus.study.transforms import rotate, shift_pixels, translate, zoom_in, zoom_out

STEPS = ["--quick", "--steps", "2"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A 16 px generator file with a discriminator beside it (the offline loss reads its features)."""
    folder = tmp_path_factory.mktemp("model")
    cfg = StyleGAN2Config(img_resolution=16, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)
    G = random_generator(cfg, seed=1, noise_strength=0.1)
    path = save_generator(G, folder / "tiny.safetensors")
    D = random_discriminator(DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32), seed=2)
    save_discriminator(D, folder / "tiny-D.safetensors")
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")


def run(*args: str) -> object:
    return CliRunner().invoke(cli, ["study", *args], catch_exceptions=False)


@pytest.mark.parametrize("name", list(STUDIES))
def test_each_study_writes_its_four_files(name, model, tmp_path):
    r = run(name, "--model", str(model), "--outdir", str(tmp_path), *STEPS, "--loss-resize", "32")
    assert r.exit_code == 0, r.output
    for f in ("results.csv", "results.md", "figure.png", "study.json"):
        assert (tmp_path / f).stat().st_size > 0, f
    with open(tmp_path / "results.csv") as f:
        header = next(csv.reader(f))
    assert set(STUDIES[name].columns) <= set(header), header
    record = json.loads((tmp_path / "study.json").read_text())
    assert len(record["model"]["sha256"]) == 64 and record["wplus_version"]
    assert all(len(i["sha256"]) == 64 for i in record["inputs"]) and record["inputs"]
    assert record["settings"]["num_steps"] == 2
    assert "discriminator" in (tmp_path / "results.md").read_text() or name == "resolution"  # the stand-in is said
    assert Image.open(tmp_path / "figure.png").format == "PNG"


def test_rerun_skips_finished_units_and_redoes_lost_ones(model, tmp_path):
    args = ["transforms", "--model", str(model), "--outdir", str(tmp_path), *STEPS, "--json"]
    first = json.loads(run(*args).stdout)["transforms"]
    assert first["projected"] == 7 and first["reused"] == 0
    again = json.loads(run(*args).stdout)["transforms"]
    assert again["projected"] == 0 and again["reused"] == 7
    # A run killed mid-way: what had not been marked done (the JSON is written last) is redone, nothing else.
    done = sorted((tmp_path / "units" / "transforms").glob("*/*.json"))
    done[0].unlink()
    third = json.loads(run(*args).stdout)["transforms"]
    assert third["projected"] == 1 and third["reused"] == 6
    other = json.loads(run(*args[:-3], "--steps", "3", "--json").stdout)["transforms"]
    assert other["projected"] == 7  # other settings: other units


def test_translation_is_a_shift():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    right = translate(x, 3)
    assert torch.equal(right[..., 3:], x[..., :-3]) and torch.all(right[..., :3] == -1)
    left = translate(x, -5)
    assert torch.equal(left[..., :-5], x[..., 5:]) and torch.all(left[..., -5:] == -1)
    assert shift_pixels(1024, 140 / 1024) == 140 and shift_pixels(64, 140 / 1024) == 9


def test_rotations_and_zooms_are_exact():
    x = torch.rand(3, 16, 16)
    assert torch.equal(rotate(rotate(x, 180), 180), x)
    assert torch.equal(rotate(rotate(rotate(rotate(x, 90), 90), 90), 90), x)
    assert torch.equal(rotate(x, 180), x.flip(-1).flip(-2))
    zin = zoom_in(x)
    assert torch.equal(zin[:, ::2, ::2], x[:, 4:12, 4:12]) and torch.equal(zin[:, 1::2, 1::2], x[:, 4:12, 4:12])
    assert torch.allclose(zoom_out(zin)[:, 4:12, 4:12], x[:, 4:12, 4:12])
    assert torch.all(zoom_out(x)[:, :4] == -1)
    with pytest.raises(ConfigError, match="multiple of 90"):
        rotate(x, 45)


def test_defect_regions_blank_only_their_pixels():
    from wplus.data.faces import HELD_OUT_SEED_BASE, face_array, sample_attributes

    seed = HELD_OUT_SEED_BASE + 7000
    img = torch.from_numpy(face_array(seed, size=64).copy()).permute(2, 0, 1).float() / 127.5 - 1
    masks = part_masks(sample_attributes(seed), 64)
    for d in DEFECTS:
        m = defect_mask(masks, d) > 0
        out = blank(img, m.float())
        assert torch.equal(out[:, ~m], img[:, ~m])
        if m.any():
            assert (out[:, m] == out[:, m][:, :1]).all()  # one colour over the region
    assert not (masks["eyes"].bool() & masks["mouth"].bool()).any()
    assert not (masks["nose"].bool() & masks["mouth"].bool()).any()


def test_bad_inputs_get_one_line(model, tmp_path):
    r = CliRunner().invoke(cli, ["study", "tables", "--outdir", str(tmp_path)])
    assert r.exit_code != 0 and "unknown study 'tables'" in r.output
    empty = tmp_path / "cats"
    empty.mkdir()
    r = CliRunner().invoke(cli, ["study", "classes", str(empty), "--model", str(model), "--outdir", str(tmp_path)])
    assert r.exit_code != 0 and f"{empty}: no images" in r.output
    assert "Traceback" not in r.output
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    Image.new("RGB", (20, 20), (200, 150, 120)).save(photos / "a.png")
    Image.new("L", (30, 30), 255).save(masks / "a-eyes.png")
    args = ["study", "defects", str(photos), "--masks", str(masks), "--model", str(model), "--outdir", str(tmp_path)]
    r = CliRunner().invoke(cli, [*args, *STEPS])
    assert r.exit_code != 0 and "a-eyes.png: mask is 30x30, expected 20x20" in r.output
    assert len([line for line in r.output.splitlines() if "mask" in line]) == 1


def test_figures_need_matplotlib_only_when_drawn(monkeypatch):
    from wplus.study.plotting import pyplot

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"pip install 'wplus\[plot\]'"):
        pyplot()
