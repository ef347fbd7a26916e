"""`wplus weights random/convert` options and file modes, and `wplus env` saying whether downloads are possible."""

from __future__ import annotations

import importlib
import json
import os
import re
import stat
import urllib.error

import pytest
from click.testing import CliRunner

from wplus.cli.env import environment
from wplus.cli.main import cli
from wplus.io.atomic import write_json

download_module = importlib.import_module("wplus.hub.download")  # the package's `download` function hides it
TINY = ["--channel-base", "64", "--channel-max", "8", "--w-dim", "8", "--mapping-layers", "1"]


@pytest.mark.parametrize("resolution", ["48", "0", "-16", "3"])
def test_weights_random_refuses_resolutions_the_config_refuses(tmp_path, resolution):
    out = tmp_path / "g.safetensors"
    r = CliRunner().invoke(cli, ["weights", "random", f"--resolution={resolution}", *TINY, str(out)])
    assert r.exit_code == 2, r.output
    assert "Invalid value for --resolution:" in r.output and "power of two in [4, 4096]" in r.output
    assert f"got {resolution}" in r.output and not out.exists()


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_model_files_get_the_modes_of_other_outputs(tmp_path, umask):
    old = os.umask(umask)
    try:
        random_out, converted = tmp_path / "r.safetensors", tmp_path / "c.safetensors"
        r = CliRunner().invoke(cli, ["weights", "random", "--resolution", "8", *TINY, str(random_out)])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(cli, ["weights", "convert", str(random_out), str(converted)])
        assert r.exit_code == 0, r.output
        other = write_json(tmp_path / "other.json", {})
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert stat.S_IMODE(other.stat().st_mode) == expected
    assert stat.S_IMODE(random_out.stat().st_mode) == expected
    assert stat.S_IMODE(converted.stat().st_mode) == expected


def _no_network(url, *, timeout):
    raise AssertionError(f"the test touched the network: {url}")


def test_env_is_offline_with_wplus_offline_and_probes_nothing(monkeypatch):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setattr(download_module, "open_url", _no_network)
    r = CliRunner().invoke(cli, ["env", "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["offline"] is True and info["network"] == "WPLUS_OFFLINE=1 forbids downloads"
    r = CliRunner().invoke(cli, ["env"])
    assert re.search(r"^offline +True$", r.output, re.M), r.output


def test_env_is_offline_when_no_server_answers(monkeypatch):
    monkeypatch.delenv("WPLUS_OFFLINE", raising=False)
    tried = []

    def unreachable(url, *, timeout):
        tried.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download_module, "open_url", unreachable)
    info = json.loads(CliRunner().invoke(cli, ["env", "--json"]).output)
    assert info["offline"] is True and len(tried) == 2
    assert info["network"].startswith("cannot reach api.ngc.nvidia.com (Name or service not known); cannot reach")


def test_env_is_online_when_a_server_answers_even_with_an_error_status(monkeypatch):
    monkeypatch.delenv("WPLUS_OFFLINE", raising=False)

    def forbidden(url, *, timeout):
        raise urllib.error.HTTPError(url, 403, "Forbidden", {}, None)

    monkeypatch.setattr(download_module, "open_url", forbidden)
    info = json.loads(CliRunner().invoke(cli, ["env", "--json"]).output)
    assert info["offline"] is False and info["network"] == "downloads possible"


def test_environment_takes_an_injected_probe():
    assert environment(probe=lambda: None)["offline"] is False
    info = environment(probe=lambda: "cannot reach anything")
    assert info["offline"] is True and info["network"] == "cannot reach anything"


class _FakeDist:
    """Package metadata as importlib.metadata gives it: extras and their requirements, with markers."""

    metadata = type("M", (), {"get_all": staticmethod(lambda key: ["align", "web", "ray"])})()
    requires = [
        "torch>=2.1",
        'dlib-bin>=19.24; extra == "align"',
        'scipy>=1.10; extra == "align"',
        'gradio>=5; extra == "web"',
        'ray[data]>=2.9; python_version >= "3.9" and extra == "ray"',
    ]


def test_extras_come_from_the_package_metadata_with_what_is_missing(monkeypatch):
    from importlib import metadata

    import wplus.extras as extras_module

    installed = {"wplus", "dlib", "scipy", "ray"}  # dlib built from source stands in for dlib-bin

    def distribution(name):
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return _FakeDist()

    monkeypatch.setattr(extras_module.metadata, "distribution", distribution)
    found = {e.name: e for e in extras_module.extras()}
    assert list(found) == ["align", "web", "ray"]
    assert found["align"].installed and found["align"].requires == ("dlib-bin", "scipy")
    assert not found["web"].installed and found["web"].missing == ("gradio",) and "serve" in found["web"].enables
    assert found["ray"].installed and found["ray"].requires == ("ray",)
    installed.discard("wplus")  # run from a source tree: no metadata, no guesses
    assert extras_module.extras() == []


def test_env_prints_one_aligned_line_per_extra(monkeypatch):
    from wplus.extras import extras

    monkeypatch.setenv("WPLUS_OFFLINE", "1")  # no network probe
    r = CliRunner().invoke(cli, ["env"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    head = lines[: lines.index("extras (pip install 'wplus[NAME]')")]
    assert len({len(line) - len(line.split(maxsplit=1)[1]) for line in head}) == 1  # values in one column
    rows = lines[len(head) + 1 :]
    names = [e.name for e in extras()]
    assert {"align", "video", "web", "ray"} <= set(names) and [row.split()[0] for row in rows] == names
    assert len({row.index("installed" if "installed" in row else "missing") for row in rows}) == 1
    assert "{" not in r.output and all(row.split()[1] in {"installed", "missing"} for row in rows)
    info = json.loads(CliRunner().invoke(cli, ["env", "--json"]).output)
    assert set(info["extras"]) == set(names) and {"installed", "missing", "enables"} <= set(info["extras"]["web"])


def test_plural_agrees_with_the_number():
    from wplus.text import plural

    assert [plural(n, "pair") for n in (0, 1, 2)] == ["0 pairs", "1 pair", "2 pairs"]
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == "3 entries"
