"""Output names shared by the commands that write one result per input file (``project``, ``align``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["unique_dirs", "face_name"]


def unique_dirs(paths: list[Path], outdir: Path) -> list[Path]:
    """``outdir/<stem>`` per input, with ``_2``, ``_3``, ... for later inputs whose stem repeats (a/x.png, b/x.jpg)."""
    seen: dict[str, int] = {}
    dirs = []
    for p in paths:
        n = seen.get(p.stem, 0)
        seen[p.stem] = n + 1
        dirs.append(outdir / (p.stem if n == 0 else f"{p.stem}_{n + 1}"))
    return dirs


def face_name(stem: str, index: int) -> str:
    """``<stem>_01``, ``<stem>_02``, ... (1-based, two digits, as FFHQ's alignment tools name them)."""
    return f"{stem}_{index:02d}"
