"""One answer to "which model": wplus.loading.resolve_model behind load_generator, --model, `wplus weights *`, align."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import wplus
import wplus.align
import wplus.shipped as shipped
from wplus.cli.common import open_model
from wplus.cli.main import cli
from wplus.errors import CheckpointError
from wplus.hub import REGISTRY, download, list_specs
from wplus.hub.download import sha256_file
from wplus.io.checkpoint import save_generator
from wplus.loading import load_generator_info, resolve_model


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))


def test_load_generator_takes_the_shipped_name(offline):
    info = load_generator_info("cartoon-faces-64")
    assert info.shipped and info.model_id == "cartoon-faces-64"
    assert info.path == shipped.shipped_generator_path() and info.sha256 == sha256_file(info.path)
    assert info.sha256 == shipped.SHIPPED_SHA256  # the pinned digest is the shipped file's
    G = wplus.load_generator("cartoon-faces-64")
    assert G.img_resolution == shipped.SHIPPED_RESOLUTION == 64
    assert open_model("cartoon-faces-64", device=torch.device("cpu")).model_id == "cartoon-faces-64"


def test_resolve_model_order_and_refusals(offline, tmp_path, monkeypatch, tiny_generator):
    # A file of that name in the working folder wins over the shipped name (as it does over registry names).
    monkeypatch.chdir(tmp_path)
    save_generator(tiny_generator, tmp_path / "cartoon-faces-64")
    found = resolve_model("cartoon-faces-64")
    assert found.path == Path("cartoon-faces-64") and not found.shipped
    own = save_generator(tiny_generator, tmp_path / "own.safetensors")
    assert resolve_model(own).path == own and resolve_model(str(own)).model_id == "own"
    with pytest.raises(CheckpointError, match=r"no-such-model: no such file or registered model.*wplus weights list"):
        resolve_model("no-such-model")
    # A registered file that is not a generator is refused before anything is fetched.
    with pytest.raises(CheckpointError, match="vgg16-imagenet: is registered as vgg16 weights, not a generator"):
        resolve_model("vgg16-imagenet")
    (tmp_path / "folder").mkdir()
    with pytest.raises(CheckpointError, match="folder: is a folder"):
        resolve_model(tmp_path / "folder")
    # An explicit registry name never falls back to the shipped model.
    with pytest.raises(wplus.OfflineError, match=shipped.DEFAULT_MODEL):
        resolve_model(shipped.DEFAULT_MODEL)


def test_default_falls_back_with_one_whole_notice(offline, caplog):
    url = REGISTRY[shipped.DEFAULT_MODEL].urls[0]
    notices: list[str] = []
    with caplog.at_level(logging.INFO, logger="wplus"):
        found = resolve_model(None, notice=notices.append)
    assert found.shipped and found.path == shipped.shipped_generator_path()
    assert len(notices) == 1 and "\n" not in notices[0]
    assert notices[0].startswith("using the shipped model cartoon-faces-64 (64 px cartoon faces) because the default")
    assert url in notices[0] and "wplus weights download stylegan2-ffhq-1024" in notices[0]  # whole, not cut
    assert not [r for r in caplog.records if r.name == "wplus.loading"]  # told once: no log record beside it
    with caplog.at_level(logging.WARNING, logger="wplus"):
        assert resolve_model(None).shipped  # without a callback the same line is logged, once
    assert [r.getMessage() for r in caplog.records if r.name == "wplus.loading"] == notices
    assert wplus.load_generator(None).img_resolution == 64


def test_cli_prints_the_fallback_notice_once(tmp_path):
    """A real process, so that the CLI's logging set-up takes part (CliRunner runs under pytest's handlers)."""
    env = {**os.environ, "WPLUS_OFFLINE": "1", "WPLUS_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "wplus", "generate", "--seeds", "0", "--outdir", str(tmp_path / "g")]
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("using the shipped model") == 1
    assert REGISTRY[shipped.DEFAULT_MODEL].urls[0] in run.stderr
    assert Image.open(tmp_path / "g" / "seed0000.png").size == (64, 64)


def test_weights_commands_take_the_shipped_name(offline, tmp_path, monkeypatch):
    r = CliRunner().invoke(cli, ["weights", "info", "cartoon-faces-64", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["model_id"] == "cartoon-faces-64" and summary["config"]["img_resolution"] == 64
    assert summary["sha256"] == shipped.SHIPPED_SHA256
    path = str(shipped.shipped_generator_path())
    r = CliRunner().invoke(cli, ["weights", "path", "cartoon-faces-64"])
    assert r.exit_code == 0 and r.output.strip() == path
    r = CliRunner().invoke(cli, ["weights", "download", "cartoon-faces-64"])
    assert r.exit_code == 0 and r.output.strip() == path
    r = CliRunner().invoke(cli, ["weights", "verify", "cartoon-faces-64"])
    assert r.exit_code == 0 and r.output.strip() == f"cartoon-faces-64: checksum ok, loads ({path})"
    # A damaged installation is caught by the pinned digest.
    bad = tmp_path / "assets" / "cartoon-faces-64.safetensors"
    bad.parent.mkdir()
    bad.write_bytes(Path(path).read_bytes()[:-1] + b" ")
    monkeypatch.setattr(shipped, "_asset", lambda name: tmp_path / "assets" / name)
    r = CliRunner().invoke(cli, ["weights", "verify", "cartoon-faces-64"])
    assert r.exit_code == 1 and "SHA-256" in r.output and "reinstall wplus" in r.output


def test_weights_list_has_a_header_a_legend_the_shipped_model_and_licences(tmp_path, monkeypatch):
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))
    r = CliRunner().invoke(cli, ["weights", "list"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "KIND", "RES", "FORMAT", "LICENCE", "DESCRIPTION"]
    assert lines[-1].startswith("STATUS: shipped (inside wplus), cached (downloaded) or remote")
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert rows["cartoon-faces-64"][:6] == ["cartoon-faces-64", "shipped", "stylegan2", "64", "wplus", "MIT"]
    assert set(rows) == {"cartoon-faces-64"} | {s.name for s in list_specs()}
    for spec in list_specs():
        assert rows[spec.name][1] == "remote" and rows[spec.name][5] == spec.license
    r = CliRunner().invoke(cli, ["weights", "list", "--json"])
    first = json.loads(r.output)[0]
    assert first["name"] == "cartoon-faces-64" and first["status"] == "shipped" and first["license"] == "MIT"
    assert first["sha256"] == shipped.SHIPPED_SHA256 and first["path"] == str(shipped.shipped_generator_path())


def test_cached_status_in_the_list(tmp_path, monkeypatch, tiny_generator):
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("WPLUS_OFFLINE", raising=False)
    src = save_generator(tiny_generator, tmp_path / "served.safetensors")
    spec = wplus.hub.WeightSpec(
        name="test-served", filename="g.safetensors", urls=(src.as_uri(),), sha256=None, size=None,
        license="CC0-1.0", source="tests", description="tiny", kind="stylegan2", resolution=16, format="wplus",
    )  # fmt: skip
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    download(spec, progress=False)
    r = CliRunner().invoke(cli, ["weights", "list"])
    row = next(line.split() for line in r.output.splitlines() if line.startswith("test-served "))
    assert row[:6] == ["test-served", "cached", "stylegan2", "16", "wplus", "CC0-1.0"]


def test_align_model_takes_the_shipped_name(offline, tmp_path, monkeypatch):
    """--model is resolved like everywhere else and sets --size (the landmark detector is stubbed: no dlib)."""
    sizes: list[int] = []

    def fake_align_faces(path, **kw):
        sizes.append(kw["output_size"])
        return []

    monkeypatch.setattr(wplus.align, "LandmarkDetector", lambda **kw: object())
    monkeypatch.setattr(wplus.align, "align_faces", fake_align_faces)
    Image.new("RGB", (20, 20)).save(tmp_path / "photo.png")
    r = CliRunner().invoke(
        cli, ["align", str(tmp_path / "photo.png"), "--model", "cartoon-faces-64", "--outdir", str(tmp_path / "o")]
    )
    assert r.exit_code == 0, r.output
    assert sizes == [64]
    r = CliRunner().invoke(
        cli, ["align", str(tmp_path / "photo.png"), "--model", "no-such-model", "--outdir", str(tmp_path / "o")]
    )
    assert r.exit_code == 1 and "no-such-model: no such file or registered model" in r.output


def test_shipped_has_no_resolver_of_its_own():
    """One answer to "which model": wplus.loading.resolve_model; wplus.shipped only knows its asset paths."""
    assert not hasattr(shipped, "resolve_model")
    assert resolve_model("cartoon-faces-64").path == shipped.shipped_generator_path()
