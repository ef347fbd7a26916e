"""load_generator(name | url), the model zoo, and `wplus weights convert | list | download | verify | path | info`."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from conftest import tiny_config
from wplus.cli.main import cli
from wplus.errors import ChecksumMismatchError
from wplus.formats import _testing as W
from wplus.hub import REGISTRY, WeightSpec, cached_path, list_specs
from wplus.io.checkpoint import load_native_generator
from wplus.loading import load_generator, load_generator_info
from wplus.models.stylegan2 import random_generator


@pytest.fixture(scope="module")
def G():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield random_generator(tiny_config(8), seed=0, w_avg_samples=50)
    torch.set_num_threads(n)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("WPLUS_OFFLINE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def served(G, tmp_path, monkeypatch, cache):
    """A registered zoo entry whose URL is a local file (no network)."""
    (tmp_path / "served").mkdir()
    src = W.write_nvidia_pickle(G, tmp_path / "served" / "tiny.pkl")
    spec = WeightSpec(
        name="test-tiny",
        filename="tiny.pkl",
        urls=(src.as_uri(),),
        sha256=None,
        size=None,
        license="CC0-1.0",
        source="tests",
        description="tiny test generator",
        kind="stylegan2",
        resolution=8,
        format="nvidia-pkl",
    )
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    return spec


def test_zoo_lists_the_field_checkpoints():
    names = {s.name for s in list_specs()}
    for name in [
        "stylegan2-ffhq-1024",
        "stylegan2-ffhq-512",
        "stylegan2-ffhq-256",
        "stylegan2-afhqcat-512",
        "stylegan2-afhqdog-512",
        "stylegan2-afhqwild-512",
        "stylegan2-metfaces-1024",
        "stylegan2-celebahq-256",
        "stylegan2-tf-car-512",
        "stylegan2-tf-cat-256",
        "stylegan2-tf-church-256",
        "stylegan2-tf-horse-256",
        "stylegan2-tf-ffhq-1024",
        "lpips-vgg-v0.1",
        "vgg16-imagenet",
    ]:
        assert name in names
    for spec in list_specs():
        assert spec.source and spec.license
        if spec.kind == "stylegan2":
            assert spec.resolution and spec.format in ("nvidia-pkl", "tf-pkl")


def test_load_by_name_records_and_enforces_first_use_checksum(G, served, cache):
    info = load_generator_info("test-tiny")
    assert info.model_id == "test-tiny" and info.path == cached_path("test-tiny")
    assert json.loads((cache / "checksums.json").read_text())["test-tiny"]["sha256"] == info.sha256
    assert load_generator("test-tiny").num_ws == G.num_ws  # cached now
    info.path.write_bytes(info.path.read_bytes()[:-1] + b"!")  # corrupt the cache
    with pytest.raises(ChecksumMismatchError, match="tiny.pkl"):
        load_generator("test-tiny")


def test_load_by_url(G, tmp_path, cache):
    src = W.write_rosinality(G, tmp_path / "ros.pt")
    info = load_generator_info(src.as_uri())
    assert info.model_id.startswith("url-") and info.path.parent.parent == cache
    assert info.G.num_ws == G.num_ws
    # --model takes URLs too (kept as text, not normalised like a path)
    r = CliRunner().invoke(cli, ["generate", "--model", src.as_uri(), "--seeds", "0", "--outdir", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "g" / "seed0000.png").is_file()


def test_cli_convert_and_info(G, tmp_path):
    src = W.write_tf_pickle(G, tmp_path / "tf.pkl")
    out = tmp_path / "g.safetensors"
    r = CliRunner().invoke(cli, ["weights", "convert", str(src), str(out)])
    assert r.exit_code == 0, r.output
    H = load_native_generator(out)
    ws = torch.randn(1, G.num_ws, G.w_dim)
    assert (H.synthesis(ws) - G.synthesis(ws)).abs().max() <= 1e-5
    r = CliRunner().invoke(cli, ["weights", "info", str(src), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["num_ws"] == G.num_ws and summary["config"]["img_resolution"] == 8 and len(summary["sha256"]) == 64
    r = CliRunner().invoke(cli, ["weights", "info", str(out)])
    assert r.exit_code == 0 and f"num_ws={G.num_ws}" in r.output
    rows = r.output.splitlines()[1:]  # after the path: "  key  value", values in one column
    starts = {len(row) - len(row.split(maxsplit=1)[1]) for row in rows}
    assert len(rows) >= 10 and len(starts) == 1 and any(row.startswith("  mapping_layers  ") for row in rows)


def test_cli_errors_are_one_line(tmp_path):
    (tmp_path / "bad.pkl").write_bytes(b"")
    r = CliRunner().invoke(cli, ["weights", "info", str(tmp_path / "bad.pkl")])
    assert r.exit_code == 1 and "bad.pkl" in r.output and "empty" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["weights", "convert", str(tmp_path / "bad.pkl"), str(tmp_path / "o.bin")])
    assert r.exit_code != 0 and ".safetensors" in r.output


def test_cli_list_download_path_verify(served, cache):
    r = CliRunner().invoke(cli, ["weights", "list", "--json"])
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert not rows["test-tiny"]["cached"] and rows["stylegan2-ffhq-1024"]["resolution"] == 1024
    r = CliRunner().invoke(cli, ["weights", "path", "test-tiny"])
    assert r.output.strip() == str(cached_path("test-tiny"))
    r = CliRunner().invoke(cli, ["weights", "verify", "test-tiny"])
    assert r.exit_code == 1 and "not in the cache" in r.output
    r = CliRunner().invoke(cli, ["weights", "download", "test-tiny"])
    assert r.exit_code == 0 and r.output.strip() == str(cached_path("test-tiny"))
    r = CliRunner().invoke(cli, ["weights", "list"])
    assert ["test-tiny", "cached"] in [line.split()[:2] for line in r.output.splitlines()]
    r = CliRunner().invoke(cli, ["weights", "verify", "test-tiny"])
    assert r.exit_code == 0 and "checksum ok, loads" in r.output
    cached_path("test-tiny").write_bytes(b"tampered")
    r = CliRunner().invoke(cli, ["weights", "verify", "test-tiny"])
    assert r.exit_code == 1 and "SHA-256" in r.output


def test_generate_cli_takes_a_registered_name_and_a_foreign_file(G, served, tmp_path):
    r = CliRunner().invoke(cli, ["generate", "--model", "test-tiny", "--seeds", "0", "--outdir", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    src = W.write_tf_pickle(G, tmp_path / "tf.pkl")
    r = CliRunner().invoke(cli, ["generate", "--model", str(src), "--seeds", "1", "--outdir", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "o").glob("*.png"))) >= 1 and len(list((tmp_path / "p").glob("*.png"))) >= 1


def test_conditional_nvidia_pickle_needs_a_class_label(tmp_path):
    from wplus.models.stylegan2 import Generator, seeded_init_

    src = W.write_nvidia_pickle(seeded_init_(Generator(tiny_config(8, c_dim=3)), 1).eval(), tmp_path / "cond.pkl")
    args = ["generate", "--model", str(src), "--seeds", "0", "--outdir", str(tmp_path / "o")]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code != 0 and "--class" in r.output
    r = CliRunner().invoke(cli, [*args, "--class", "2"])
    assert r.exit_code == 0, r.output
