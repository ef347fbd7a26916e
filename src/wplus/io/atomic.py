"""Atomic file writes: write to a temporary file beside the target, then ``os.replace`` it into place.

A crash or Ctrl-C never leaves a half-written output behind, and an existing file is only replaced by a complete one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is renamed to ``path``, on error removed.

    ``suffix`` defaults to the target's own suffix so that writers that pick a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=(path.suffix if suffix is None else suffix) + ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # Keep the real extension last: writers such as PIL and numpy pick the format from it.
    real_tmp = tmp_path.with_name(tmp_path.name[: -len(".tmp")])
    tmp_path.rename(real_tmp)
    try:
        yield real_tmp
        # mkstemp makes 0600 files, and some writers (safetensors) replace the file with their own 0600 one:
        # set the usual permissions of new files (0666 less the umask) on whatever the writer left.
        os.chmod(real_tmp, 0o666 & ~_umask())
        os.replace(real_tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            real_tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically. Returns ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")
