"""Named directions of the shipped model: the index, ``MODEL:NAME`` wherever a direction is taken, and
``wplus direction list``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import fake_named_assets
from wplus import shipped
from wplus.cli.main import cli
from wplus.edits.directions import load_direction
from wplus.errors import CheckpointError, ConfigError
from wplus.io.checkpoint import save_generator
from wplus.loading import file_sha256
from wplus.models.stylegan2 import random_generator


def _run(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_shipped_smile_is_named_and_is_todays_file():
    (smile,) = [d for d in shipped.named_directions() if d.name == "smile"]
    assert smile.spec == "cartoon-faces-64:smile" and smile.path == shipped.shipped_smile_direction_path()
    assert smile.strength[0] < 0 < smile.strength[1] and smile.description and smile.method
    by_name = load_direction("cartoon-faces-64:smile")
    by_file = load_direction(shipped.shipped_smile_direction_path())
    torch.testing.assert_close(by_name.vector, by_file.vector)
    assert by_name.metadata["named"] == "cartoon-faces-64:smile" and by_name.source == str(smile.path)


def test_unknown_names_and_models_get_one_line_listing_what_there_is(tmp_path, monkeypatch, tiny_generator):
    fake_named_assets(tmp_path, tiny_generator, monkeypatch)
    with pytest.raises(ConfigError, match=r"no direction named 'beard'; available: smile, glasses") as e:
        load_direction("cartoon-faces-64:beard")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"ffhq:smile: 'ffhq' is not a shipped model; .*cartoon-faces-64"):
        load_direction("ffhq:smile")
    # An existing file whose name reads as MODEL:NAME is that file.
    monkeypatch.chdir(tmp_path)
    assert shipped.parse_direction_spec("cartoon-faces-64:glasses") == ("cartoon-faces-64", "glasses")
    (tmp_path / "cartoon-faces-64:glasses").write_bytes(b"x")
    assert shipped.parse_direction_spec("cartoon-faces-64:glasses") is None
    with pytest.raises(ConfigError, match="unknown direction file type"):
        load_direction("cartoon-faces-64:glasses")


def test_a_named_direction_of_another_model_is_refused(tmp_path, monkeypatch, tiny_generator):
    fake_named_assets(tmp_path, tiny_generator, monkeypatch)
    d = load_direction("cartoon-faces-64:glasses", tiny_generator, model_sha256=shipped.SHIPPED_SHA256)
    assert d.vector.shape == (1, tiny_generator.w_dim)
    with pytest.raises(ConfigError, match=r"a direction of cartoon-faces-64, but the model rendering is other.pkl"):
        load_direction("cartoon-faces-64:glasses", model_sha256="0" * 64, model_id="other.pkl")


def test_a_broken_index_names_its_file(tmp_path, monkeypatch, tiny_generator):
    fake_named_assets(tmp_path, tiny_generator, monkeypatch)
    index = tmp_path / "cartoon-faces-64-directions.json"
    data = json.loads(index.read_text())
    data["directions"][0]["file"] = "../../etc/passwd.npz"
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="cartoon-faces-64-directions.json.*entry 0"):
        shipped.named_directions()
    index.write_text("{")
    with pytest.raises(CheckpointError, match="cannot read the index"):
        shipped.named_directions()
    index.unlink()
    assert shipped.named_directions() == []


def test_write_named_directions_refuses_duplicates(tmp_path):
    d = shipped.NamedDirection("cartoon-faces-64", "smile", "x.npz", "", (-1.0, 1.0), "")
    with pytest.raises(ConfigError, match="unique"):
        shipped.write_named_directions(tmp_path, "cartoon-faces-64", [d, d])


def test_cli_direction_list(tmp_path, monkeypatch, tiny_generator):
    fake_named_assets(tmp_path, tiny_generator, monkeypatch)
    r = _run(["direction", "list", "cartoon-faces-64"])
    assert r.exit_code == 0, r.output
    assert "cartoon-faces-64:smile" in r.output and "cartoon-faces-64:glasses" in r.output
    assert "val acc 0.910" in r.output and "cartoon-faces-64-glasses.npz" in r.output and "glasses test" in r.output
    r = _run(["direction", "list", "cartoon-faces-64", "--json"])
    rows = json.loads(r.output)
    assert [x["name"] for x in rows] == ["smile", "glasses"]
    assert rows[1]["val_accuracy"] == pytest.approx(0.91) and rows[1]["strength"] == [-2.0, 3.0]
    r = _run(["direction", "list", "stylegan2-ffhq-1024"])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "not a shipped model" in r.output


def test_cli_edit_takes_model_colon_name(tmp_path, monkeypatch, tiny_generator):
    (tmp_path / "assets").mkdir()
    fake_named_assets(tmp_path / "assets", tiny_generator, monkeypatch)
    from wplus.io.latents import Latent, save_latent

    latent = save_latent(tmp_path / "me.npz", Latent(ws=tiny_generator.mapping(torch.randn(1, 32), None)), npy=False)
    out = tmp_path / "e"
    args = ["edit", latent, "--strength", "0,3", "--model", "cartoon-faces-64", "--device", "cpu", "--outdir", out]
    r = _run([*args, "--direction", "cartoon-faces-64:glasses"])
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "edit.json").read_text())
    assert rec["parameters"]["direction"]["named"] == "cartoon-faces-64:glasses"
    assert rec["parameters"]["direction"]["sha256"] == file_sha256(tmp_path / "assets" / "cartoon-faces-64-glasses.npz")
    moved = np.load(out / "edit" / "s01.npz")["w"] - np.load(out / "edit" / "s00.npz")["w"]  # every row, 3 steps
    want = load_direction("cartoon-faces-64:glasses").vector.numpy()
    np.testing.assert_allclose(moved.reshape(-1, tiny_generator.w_dim), 3 * want.repeat(tiny_generator.num_ws, 0),
                               atol=1e-5)  # fmt: skip
    # An unknown name: refused when the line is parsed, listing the names.
    r = _run([*args, "--direction", "cartoon-faces-64:beard"])
    assert r.exit_code == 2 and "available: smile, glasses" in r.output and "--direction" in r.output
    # The right name, but another model renders: one line.
    other = save_generator(random_generator(tiny_generator.config, seed=5), tmp_path / "other.safetensors")
    r = _run([*args[:-4], "--model", other, "--device", "cpu", "--outdir", out, "--direction",
              "cartoon-faces-64:glasses"])  # fmt: skip
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "a direction of cartoon-faces-64, but the model rendering is other" in r.output
