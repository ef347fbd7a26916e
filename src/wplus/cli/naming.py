"""Output names shared by the commands that write one result per input file (``project``, ``align``).

The rules live in :mod:`wplus.datasets.inputs` (the library's), so that ``project``'s dataset runs and ``align``
name outputs alike.
"""

from __future__ import annotations

from pathlib import Path

from wplus.datasets.inputs import face_name, unique_names

__all__ = ["unique_dirs", "face_name"]


def unique_dirs(paths: list[Path], outdir: Path) -> list[Path]:
    """``outdir/<stem>`` per input, with ``_2``, ``_3``, ... for later inputs whose stem repeats (a/x.png, b/x.jpg)."""
    return [outdir / name for name in unique_names(p.stem for p in paths)]
