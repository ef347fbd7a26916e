"""Verified, atomic downloads into the wplus cache.

Layout: ``<cache>/<spec.name>/<spec.filename>`` (a folder per spec because upstream file names such as LPIPS'
``vgg.pth`` are not unique), plus ``<cache>/checksums.json`` for trust-on-first-use records.

A download streams into a hidden temporary file next to its destination, hashes while streaming, is checked
against the registry's SHA-256 and only then is renamed into place with :func:`os.replace`, so the cache never
holds a partial or unverified file, whatever interrupts the transfer.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from tqdm import tqdm

from wplus.errors import CheckpointError, ChecksumMismatchError, OfflineError, WplusError
from wplus.hub.registry import WeightSpec, get_spec

__all__ = ["cache_dir", "cached_path", "sha256_file", "open_url", "download", "fetch", "is_offline", "network_problem"]

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_TIMEOUT_S = 60.0
_CHECKSUMS_FILE = "checksums.json"
# CLI flags that take an explicit weights path, by spec kind; used only to word the error messages.
_CLI_FLAGS = {
    "vgg16": "--vgg-weights",
    "lpips": "--lpips-weights",
    "stylegan2": "--model",
    "stylegan1": "--model",
    "stylegan3": "--model",
    "psp-encoder": "--encoder",
}


class _NetworkError(Exception):
    """A failure while talking to a server (as opposed to writing the cache), internal to this module."""


# --------------------------------------------------------------------------------------------------------------------
# Paths and hashes


def cache_dir(cache: str | Path | None = None) -> Path:
    """Return the cache root (not created).

    Precedence: the ``cache`` argument, then ``$WPLUS_CACHE``, then ``$XDG_CACHE_HOME/wplus``, then
    ``~/.cache/wplus``.

    Args:
        cache: Explicit cache folder.

    Returns:
        The cache root, user-expanded.
    """
    if cache is not None:
        return Path(cache).expanduser()
    env = os.environ.get("WPLUS_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and Path(xdg).expanduser().is_absolute():
        return Path(xdg).expanduser() / "wplus"
    return Path.home() / ".cache" / "wplus"


def cached_path(spec_or_name: WeightSpec | str, cache: str | Path | None = None) -> Path:
    """Return where the file of ``spec_or_name`` lives in the cache (whether or not it is there)."""
    spec = _resolve(spec_or_name)
    return cache_dir(cache) / spec.name / spec.filename


def sha256_file(path: str | Path) -> str:
    """Return the lowercase hex SHA-256 of a file, reading it in chunks.

    Args:
        path: File to hash.

    Returns:
        64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def is_offline() -> bool:
    """Whether ``WPLUS_OFFLINE`` forbids network access (``1``, ``true``, ``yes`` or ``on``)."""
    return os.environ.get("WPLUS_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def open_url(url: str, *, timeout: float) -> BinaryIO:
    """Open ``url`` for reading; the single place where wplus touches the network.

    Tests replace this function to simulate servers and failures.

    Args:
        url: Address to read (``https://``, ``file://``, ...).
        timeout: Socket timeout in seconds.

    Returns:
        A binary file-like response; ``headers`` (with ``Content-Length``) is used when present.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "wplus"})
    return urllib.request.urlopen(request, timeout=timeout)


def network_problem(urls: Iterable[str], *, timeout: float = 3.0) -> str | None:
    """Why nothing can be downloaded, or None when the server of one of ``urls`` answers.

    Opens each URL with :func:`open_url` (so proxies are honoured and tests can replace it) and closes it after
    the headers; any HTTP answer, an error status included, means the network works. Nothing is read or written.

    Args:
        urls: Addresses to try in turn.
        timeout: Seconds to wait for each.

    Returns:
        None, ``'WPLUS_OFFLINE=1 ...'`` when downloads are switched off (nothing is tried), or the reasons.
    """
    if is_offline():
        return "WPLUS_OFFLINE=1 forbids downloads"
    reasons = []
    for url in urls:
        try:
            with contextlib.closing(open_url(url, timeout=timeout)):
                return None
        except urllib.error.HTTPError:
            return None  # the server answered
        except (OSError, http.client.HTTPException) as exc:
            reasons.append(f"cannot reach {urllib.parse.urlsplit(url).netloc} ({getattr(exc, 'reason', exc)})")
    return "; ".join(reasons) or "no URL to try"


# --------------------------------------------------------------------------------------------------------------------
# Public entry points


def download(
    spec_or_name: WeightSpec | str,
    *,
    cache: str | Path | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Return the cached file of a registered spec, downloading and verifying it first if needed.

    A file already in the cache is checked against the spec's SHA-256 (or, for specs without one, against the
    SHA-256 recorded at its first download in ``<cache>/checksums.json``). The download tries ``spec.urls`` in
    order, streams into a temporary file in the cache folder, verifies it and moves it into place atomically.

    Args:
        spec_or_name: A :class:`WeightSpec` or a registered name.
        cache: Cache root; see :func:`cache_dir`.
        progress: Show a progress bar on stderr.
        force: Download again even if a cached copy exists (a trust-on-first-use record is then replaced).

    Returns:
        Path of the verified file in the cache.

    Raises:
        OfflineError: ``WPLUS_OFFLINE=1`` is set or no URL could be reached; the message says how to supply the file.
        ChecksumMismatchError: The downloaded or cached file does not have the expected SHA-256.
        WplusError: The cache folder cannot be written.

    Example:
        >>> path = download("vgg16-imagenet")  # doctest: +SKIP
    """
    spec = _resolve(spec_or_name)
    root = cache_dir(cache)
    if not force:
        found = _from_cache(spec, root)
        if found is not None:
            return found
    if is_offline():
        raise OfflineError(
            f"{_describe(spec)} is not in the cache and WPLUS_OFFLINE=1 forbids downloading it from "
            f"{spec.urls[0]}. {_how_to_supply(spec, root)}"
        )
    # With force, a trust-on-first-use record is replaced by the new download rather than enforced.
    expected = spec.sha256 or (None if force else _recorded_checksum(root, spec))
    return _download_any(spec, root, expected=expected, progress=progress)


def fetch(
    name: WeightSpec | str,
    *,
    path: str | Path | None = None,
    cache: str | Path | None = None,
    allow_download: bool = True,
    progress: bool = True,
) -> Path:
    """Find the file of a registered spec: explicit path, then the cache, then a download.

    An explicit ``path`` is returned as is (the loader checks its content), so users may supply re-saved or
    converted copies.

    Args:
        name: Registered name (or spec).
        path: Explicit file supplied by the user; takes precedence over everything else.
        cache: Cache root; see :func:`cache_dir`.
        allow_download: If False, a file missing from the cache raises :class:`OfflineError` instead of downloading.
        progress: Show a progress bar on stderr while downloading.

    Returns:
        Path of the file to load.

    Raises:
        CheckpointError: ``path`` is given but is not an existing file.
        OfflineError: The file must be downloaded but that is disabled or impossible.
        ChecksumMismatchError: A cached or downloaded file fails verification.
    """
    spec = _resolve(name)
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise CheckpointError(explicit, f"no such file; expected the {_describe(spec)} weights file")
        return explicit
    if allow_download:
        return download(spec, cache=cache, progress=progress)
    root = cache_dir(cache)
    found = _from_cache(spec, root)
    if found is None:
        raise OfflineError(
            f"{_describe(spec)} is not in the cache and downloading is disabled. {_how_to_supply(spec, root)}"
        )
    return found


# --------------------------------------------------------------------------------------------------------------------
# Helpers


def _resolve(spec_or_name: WeightSpec | str) -> WeightSpec:
    return spec_or_name if isinstance(spec_or_name, WeightSpec) else get_spec(spec_or_name)


def _describe(spec: WeightSpec) -> str:
    return f"{spec.name} ({spec.filename})"


def _how_to_supply(spec: WeightSpec, root: Path) -> str:
    flag = _CLI_FLAGS.get(spec.kind)
    explicit = f"pass it explicitly (e.g. `{flag} PATH`)" if flag else "pass its path explicitly"
    return (
        f"To supply it: put the file at {root / spec.name / spec.filename}, {explicit}, "
        f"or run `wplus weights download {spec.name}` with network access."
    )


def _from_cache(spec: WeightSpec, root: Path) -> Path | None:
    """Return the cached file if present and verified, None if absent; raise if present but wrong."""
    dest = root / spec.name / spec.filename
    if not dest.is_file():
        return None
    expected = spec.sha256 or _recorded_checksum(root, spec)
    actual = sha256_file(dest)
    if expected is None:
        # Trust on first use: a file the user put in the cache by hand becomes the reference.
        _record_checksum(root, spec, actual)
        return dest
    if actual != expected:
        origin = "the registry" if spec.sha256 else f"{root / _CHECKSUMS_FILE} at first use"
        raise ChecksumMismatchError(
            dest,
            f"SHA-256 is {actual}, expected {expected} (from {origin}) for {_describe(spec)}; "
            f"delete the file and run `wplus weights download {spec.name}`, or pass a good copy explicitly",
        )
    return dest


def _download_any(spec: WeightSpec, root: Path, *, expected: str | None, progress: bool) -> Path:
    """Try each URL in turn; a checksum mismatch wins over network errors when nothing succeeds."""
    failures: list[str] = []
    mismatch: ChecksumMismatchError | None = None
    for url in spec.urls:
        try:
            path, actual = _download_one(spec, url, root, expected=expected, progress=progress)
        except _NetworkError as exc:
            failures.append(f"{url}: {exc}")
            _warn_if_retrying(spec, url, str(exc))
            continue
        except ChecksumMismatchError as exc:
            mismatch = exc
            _warn_if_retrying(spec, url, str(exc))
            continue
        if spec.sha256 is None:
            _record_checksum(root, spec, actual)
        return path
    if mismatch is not None:
        raise mismatch
    raise OfflineError(f"could not download {_describe(spec)} ({'; '.join(failures)}). {_how_to_supply(spec, root)}")


def _warn_if_retrying(spec: WeightSpec, url: str, reason: str) -> None:
    # The final failure is raised with every reason, so only a fall-back to another mirror is worth a warning.
    if url != spec.urls[-1]:
        logger.warning("download of %s from %s failed (%s); trying the next URL", spec.filename, url, reason)


def _download_one(spec: WeightSpec, url: str, root: Path, *, expected: str | None, progress: bool) -> tuple[Path, str]:
    dest = root / spec.name / spec.filename
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{spec.filename}.", suffix=".part")
    except OSError as exc:
        raise WplusError(
            f"cannot write to the cache folder {dest.parent}: {exc}; set WPLUS_CACHE or pass cache="
        ) from exc
    tmp = Path(tmp_name)
    logger.info("downloading %s from %s", _describe(spec), url)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _stream(url, out, total=spec.size, desc=spec.filename, progress=progress)
        if expected is not None and actual != expected:
            raise ChecksumMismatchError(
                url, f"SHA-256 of the download is {actual}, expected {expected} for {_describe(spec)}"
            )
        os.replace(tmp, dest)
    except BaseException:
        # Includes KeyboardInterrupt: never leave a partial file behind (nor the folder made for it).
        tmp.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            dest.parent.rmdir()
        raise
    return dest, actual


def _stream(url: str, out: IO[bytes], *, total: int | None, desc: str, progress: bool) -> str:
    """Copy ``url`` into ``out`` and return the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    try:
        response = open_url(url, timeout=_TIMEOUT_S)
    except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
        raise _NetworkError(str(exc)) from exc
    with contextlib.closing(response):
        total = _content_length(response) or total
        with tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr, disable=not progress
        ) as bar:
            for chunk in _chunks(response):
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def _chunks(response: BinaryIO) -> Iterator[bytes]:
    while True:
        try:
            chunk = response.read(_CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise _NetworkError(str(exc)) from exc
        if not chunk:
            return
        yield chunk


def _content_length(response: Any) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------------------------
# Trust on first use: specs without a registered SHA-256 get one recorded at their first download.


def _read_checksums(root: Path) -> dict[str, dict[str, str]]:
    path = root / _CHECKSUMS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(path, f"cannot read trust-on-first-use checksums ({exc}); delete the file") from exc
    if not isinstance(data, dict):
        raise CheckpointError(path, "expected a JSON object of checksums; delete the file")
    return data


def _write_checksums(root: Path, data: dict[str, dict[str, str]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{_CHECKSUMS_FILE}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp_name, root / _CHECKSUMS_FILE)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _record_checksum(root: Path, spec: WeightSpec, sha256: str) -> None:
    data = _read_checksums(root)
    data[spec.name] = {"filename": spec.filename, "sha256": sha256}
    _write_checksums(root, data)
    logger.info("recorded SHA-256 %s for %s (trust on first use)", sha256, _describe(spec))


def _recorded_checksum(root: Path, spec: WeightSpec) -> str | None:
    entry = _read_checksums(root).get(spec.name)
    return entry.get("sha256") if isinstance(entry, dict) else None
