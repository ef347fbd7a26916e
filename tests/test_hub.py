"""Tests of the weights registry and verified downloads; files are served from local ``file://`` URLs."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
from pathlib import Path

import pytest

from wplus.errors import CheckpointError, ChecksumMismatchError, OfflineError, WplusError
from wplus.hub import (
    REGISTRY,
    WeightSpec,
    cache_dir,
    cached_path,
    download,
    fetch,
    get_spec,
    list_specs,
    register,
    sha256_file,
)

# The package re-exports the function `download`, which shadows the module of the same name as an attribute.
download_module = importlib.import_module("wplus.hub.download")

NAME = "test-weights"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never read or write the user's real cache, whatever the environment says.
    monkeypatch.delenv("WPLUS_OFFLINE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "env-cache"))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def payload() -> bytes:
    # A few 64 KiB chunks plus a tail, so streaming really loops.
    return os.urandom(3 * 64 * 1024 + 123)


@pytest.fixture
def source(tmp_path: Path, payload: bytes) -> Path:
    path = tmp_path / "server" / "weights.bin"
    path.parent.mkdir()
    path.write_bytes(payload)
    return path


def _spec(source: Path, sha256: str | None, *, urls: tuple[str, ...] | None = None, kind: str = "test") -> WeightSpec:
    return WeightSpec(
        name=NAME,
        filename="weights.bin",
        urls=urls or (source.as_uri(),),
        sha256=sha256,
        size=None,
        license="MIT",
        source="local test file",
        description="test weights",
        kind=kind,
    )


def _register(monkeypatch: pytest.MonkeyPatch, spec: WeightSpec) -> WeightSpec:
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    return spec


@pytest.fixture
def spec(monkeypatch: pytest.MonkeyPatch, source: Path, payload: bytes) -> WeightSpec:
    return _register(monkeypatch, _spec(source, hashlib.sha256(payload).hexdigest()))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _entries(folder: Path) -> list[Path]:
    """Everything under ``folder``, hidden temporary files and empty folders included."""
    return sorted(folder.rglob("*")) if folder.exists() else []


class _FailingReader(io.BytesIO):
    """A response that delivers some bytes, then raises ``error`` mid-stream."""

    def __init__(self, data: bytes, error: BaseException):
        super().__init__(data)
        self.error = error
        self.calls = 0

    def read(self, size: int | None = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise self.error
        return super().read(size)


# --------------------------------------------------------------------------------------------------------------------
# Registry


def test_builtin_specs_are_registered() -> None:
    vgg = get_spec("vgg16-imagenet")
    assert vgg.filename == "vgg16-397923af.pth"
    assert vgg.sha256 == "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"
    assert vgg.sha256.startswith(vgg.filename.split("-")[1].split(".")[0])  # torch.hub's file-name convention
    assert vgg.license == "BSD-3-Clause" and vgg.kind == "vgg16"
    lpips = get_spec("lpips-vgg-v0.1")
    assert lpips.size == 7289 and lpips.license == "BSD-2-Clause"
    assert lpips.urls[0].endswith("lpips/weights/v0.1/vgg.pth")
    assert [s.name for s in list_specs()] == sorted(REGISTRY)


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(WplusError, match="vgg16-imagenet"):
        get_spec("no-such-weights")


def test_register_refuses_silent_overwrite(monkeypatch: pytest.MonkeyPatch, source: Path) -> None:
    first = _register(monkeypatch, _spec(source, None))
    assert register(first) is first  # re-registering the same spec is harmless
    with pytest.raises(WplusError, match="already registered"):
        register(_spec(source, "0" * 64))


def test_spec_rejects_malformed_sha(source: Path) -> None:
    with pytest.raises(WplusError, match="64 lowercase hex"):
        _spec(source, "ABC")


# --------------------------------------------------------------------------------------------------------------------
# Cache location


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert cache_dir() == tmp_path / "env"
    monkeypatch.delenv("WPLUS_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "wplus"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "wplus"


def test_sha256_file(source: Path, payload: bytes) -> None:
    assert sha256_file(source) == hashlib.sha256(payload).hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# Downloads


def test_download_lands_in_cache(
    spec: WeightSpec, cache: Path, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = download(NAME, cache=cache, progress=True)
    assert path == cached_path(spec, cache) == cache / NAME / "weights.bin"
    assert path.read_bytes() == payload
    assert _files(cache) == [path]  # no temporary file left behind

    # A verified cached file is returned without touching the network.
    def no_network(url: str, *, timeout: float) -> io.BytesIO:
        raise AssertionError("network used for a cached file")

    monkeypatch.setattr(download_module, "open_url", no_network)
    assert download(spec, cache=cache) == path


def test_download_uses_env_cache_by_default(spec: WeightSpec, tmp_path: Path) -> None:
    assert download(NAME, progress=False) == tmp_path / "env-cache" / NAME / "weights.bin"


def test_checksum_mismatch_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, source: Path, payload: bytes, cache: Path
) -> None:
    _register(monkeypatch, _spec(source, "0" * 64))
    with pytest.raises(ChecksumMismatchError) as info:
        download(NAME, cache=cache, progress=False)
    message = str(info.value)
    assert "0" * 64 in message and hashlib.sha256(payload).hexdigest() in message
    assert source.as_uri() in message
    assert _entries(cache) == []


def test_offline_names_file_and_remedies(spec: WeightSpec, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        download(NAME, cache=cache)
    message = str(info.value)
    assert NAME in message and "weights.bin" in message
    assert spec.urls[0] in message
    assert str(cache / NAME / "weights.bin") in message
    assert f"wplus weights download {NAME}" in message
    assert _entries(cache) == []


def test_offline_message_names_vgg_flag(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    with pytest.raises(OfflineError, match="--vgg-weights PATH") as info:
        fetch("vgg16-imagenet", cache=cache)
    assert "vgg16-397923af.pth" in str(info.value)


def test_offline_still_serves_cache(spec: WeightSpec, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = download(NAME, cache=cache, progress=False)
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    assert download(NAME, cache=cache) == path


@pytest.mark.parametrize(
    ("error", "raised"), [(KeyboardInterrupt(), KeyboardInterrupt), (ConnectionResetError("reset"), OfflineError)]
)
def test_interrupted_download_leaves_nothing(
    spec: WeightSpec,
    cache: Path,
    payload: bytes,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    raised: type[BaseException],
) -> None:
    reader = _FailingReader(payload, error)
    monkeypatch.setattr(download_module, "open_url", lambda url, *, timeout: reader)
    with pytest.raises(raised):
        download(NAME, cache=cache, progress=False)
    assert reader.calls == 3  # it did write data before failing
    assert _entries(cache) == []


def test_unreachable_url_is_offline_error_and_next_url_is_tried(
    monkeypatch: pytest.MonkeyPatch, source: Path, payload: bytes, tmp_path: Path, cache: Path
) -> None:
    missing = (tmp_path / "nowhere" / "weights.bin").as_uri()
    sha = hashlib.sha256(payload).hexdigest()
    _register(monkeypatch, _spec(source, sha, urls=(missing,)))
    with pytest.raises(OfflineError, match="nowhere") as info:
        download(NAME, cache=cache, progress=False)
    assert "wplus weights download" in str(info.value)
    assert _entries(cache) == []

    _register(monkeypatch, _spec(source, sha, urls=(missing, source.as_uri())))
    assert download(NAME, cache=cache, progress=False).read_bytes() == payload


def test_corrupted_cache_file_is_detected_and_force_repairs(spec: WeightSpec, cache: Path, payload: bytes) -> None:
    path = download(NAME, cache=cache, progress=False)
    path.write_bytes(b"truncated")
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(NAME, cache=cache)
    assert info.value.path == str(path)
    assert download(NAME, cache=cache, progress=False, force=True).read_bytes() == payload


# --------------------------------------------------------------------------------------------------------------------
# Trust on first use


def test_trust_on_first_use(monkeypatch: pytest.MonkeyPatch, source: Path, payload: bytes, cache: Path) -> None:
    _register(monkeypatch, _spec(source, None))
    path = download(NAME, cache=cache, progress=False)
    records = json.loads((cache / "checksums.json").read_text())
    assert records[NAME]["sha256"] == hashlib.sha256(payload).hexdigest()
    assert _files(cache) == sorted([path, cache / "checksums.json"])
    assert fetch(NAME, cache=cache, allow_download=False) == path

    path.write_bytes(payload[::-1])
    with pytest.raises(ChecksumMismatchError, match="first use"):
        fetch(NAME, cache=cache, allow_download=False)

    # The record also guards re-downloads: a server now serving other bytes is refused.
    path.unlink()
    source.write_bytes(b"changed upstream")
    with pytest.raises(ChecksumMismatchError):
        download(NAME, cache=cache, progress=False)
    assert not path.exists()


def test_trust_on_first_use_adopts_file_placed_by_hand(
    monkeypatch: pytest.MonkeyPatch, source: Path, payload: bytes, cache: Path
) -> None:
    _register(monkeypatch, _spec(source, None))
    placed = cache / NAME / "weights.bin"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(payload)
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    assert fetch(NAME, cache=cache) == placed
    assert json.loads((cache / "checksums.json").read_text())[NAME]["sha256"] == hashlib.sha256(payload).hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# fetch


def test_fetch_explicit_path_wins(
    spec: WeightSpec, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    explicit = tmp_path / "my-copy.bin"
    explicit.write_bytes(b"user supplied")
    assert fetch(NAME, path=explicit, cache=cache) == explicit
    assert _entries(cache) == []


def test_fetch_missing_explicit_path(spec: WeightSpec, tmp_path: Path) -> None:
    missing = tmp_path / "missing.bin"
    with pytest.raises(CheckpointError, match="missing.bin") as info:
        fetch(NAME, path=missing)
    assert info.value.path == str(missing)


def test_fetch_without_download(spec: WeightSpec, cache: Path, payload: bytes) -> None:
    with pytest.raises(OfflineError, match="downloading is disabled"):
        fetch(NAME, cache=cache, allow_download=False)
    path = fetch(NAME, cache=cache, progress=False)
    assert path.read_bytes() == payload
    assert fetch(NAME, cache=cache, allow_download=False) == path
