"""What the IMAGES arguments of ``wplus project`` name: files, folders (recursively), globs and ``@list.txt`` files.

Each argument becomes image files, in a deterministic order, each with the name of its output folder:

- a file is taken as given (a file that cannot be decoded fails on its own later, and the rest go on);
  its folder is named after its stem;
- a folder becomes every image file below it (suffixes from :data:`wplus.io.images.IMAGE_SUFFIXES`; names that
  start with '.' or '_' are skipped, as are such folders), sorted; each is named by its path inside the folder
  without the suffix (``frames/a/001.png`` given as ``frames`` -> ``a/001``), so a dataset's layout is kept;
- a pattern with ``*``, ``?`` or ``[`` is a glob (``**`` descends into folders), matched sorted, image files only;
- ``@list.txt`` names one argument per line (blank lines and ``#`` comments skipped); relative entries are read
  from the list's folder, so a list works from any working directory.

A file named twice is projected once (``repeated`` collects the later mentions, so a caller can say so). Names
that repeat get ``_2``, ``_3``, ... in order (:func:`unique_names`).
A missing file, a folder without images, a glob that matches none and an unreadable list are a
:class:`~wplus.errors.ConfigError` with one line naming it: a long run never starts on a typo.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wplus.errors import ConfigError
from wplus.io.images import IMAGE_SUFFIXES
from wplus.text import plural

__all__ = ["InputImage", "expand_inputs", "unique_names", "face_name", "GLOB_CHARS"]

GLOB_CHARS = frozenset("*?[")
_SUFFIXES = ", ".join(sorted(IMAGE_SUFFIXES))


@dataclass(frozen=True)
class InputImage:
    """One image to project: its file and the name of its folder inside OUTDIR (posix, may hold '/')."""

    path: Path
    name: str

    @property
    def key(self) -> str:
        """The image's identity in a manifest: its absolute path (symbolic links kept as they are)."""
        return os.path.abspath(self.path)


def unique_names(names: Iterable[str]) -> list[str]:
    """The names with ``_2``, ``_3``, ... added to later repeats (``['a', 'a', 'b'] -> ['a', 'a_2', 'b']``)."""
    seen: dict[str, int] = {}
    taken = set(names := list(names))
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        if n == 0:
            out.append(name)
            continue
        k = n + 1
        while f"{name}_{k}" in taken:  # a later input may really be called a_2
            k += 1
        out.append(f"{name}_{k}")
        taken.add(out[-1])
    return out


def face_name(stem: str, index: int) -> str:
    """``<stem>_01``, ``<stem>_02``, ... (1-based, two digits, as FFHQ's alignment tools name them)."""
    return f"{stem}_{index:02d}"


def expand_inputs(args: Sequence[str | Path], *, repeated: list[Path] | None = None) -> list[InputImage]:
    """The images the arguments name, in order, each once, with unique folder names (see the module docstring).

    Args:
        args: files, folders, globs and ``@list.txt`` files.
        repeated: if given, receives each file left out because an earlier argument already named it.

    Raises:
        ConfigError: a file that does not exist, a folder without image files, a glob without matches, a list
            file that cannot be read or names nothing.
    """
    found: list[tuple[Path, str]] = []
    for arg in args:
        found.extend(_expand(str(arg), base=None, depth=0))
    seen: set[str] = set()
    kept = []
    for path, name in found:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            kept.append((path, name))
        elif repeated is not None:
            repeated.append(path)
    names = unique_names(name for _, name in kept)
    return [InputImage(path, name) for (path, _), name in zip(kept, names, strict=True)]


def _expand(arg: str, base: Path | None, depth: int) -> list[tuple[Path, str]]:
    if arg.startswith("@") and depth == 0:
        return _from_list(Path(arg[1:]), depth)
    path = Path(arg) if base is None or Path(arg).is_absolute() else base / arg
    if path.is_dir():
        return _from_folder(path)
    if path.exists():
        return [(path, path.stem)]
    if GLOB_CHARS & set(arg):
        matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
        images = [m for m in matches if _is_image(m)]
        if not images:
            got = f"{plural(len(matches), 'path')}, none an image file" if matches else "nothing"
            raise ConfigError(f"{path}: the pattern matches {got}; expected image files ({_SUFFIXES})")
        return [(m, m.stem) for m in images]
    raise ConfigError(f"{path}: no such file or folder; check the path (or quote a glob such as 'photos/*.jpg')")


def _from_folder(folder: Path) -> list[tuple[Path, str]]:
    images = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        images.extend(Path(root, f) for f in sorted(files) if _is_image(Path(root, f)))
    if not images:
        raise ConfigError(f"{folder}: no image files in this folder or below; expected {_SUFFIXES} files")
    images.sort(key=lambda p: p.relative_to(folder).parts)
    return [(p, p.relative_to(folder).with_suffix("").as_posix()) for p in images]


def _from_list(list_file: Path, depth: int) -> list[tuple[Path, str]]:
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ConfigError(f"@{list_file}: cannot read the list ({why}); expected a text file, a path a line") from None
    entries = [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
    if not entries:
        raise ConfigError(f"@{list_file}: the list names no files; expected one image path (or folder, glob) a line")
    out = []
    for entry in entries:
        out.extend(_expand(entry, base=list_file.parent, depth=depth + 1))
    return out


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith((".", "_"))
