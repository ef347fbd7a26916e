"""The optional extras (``pip install 'wplus[align]'``, ...): which are installed, and what each one enables.

The list of extras and their packages is read from the installed package's metadata (pyproject.toml's
``[project.optional-dependencies]``), so it cannot drift from what ``pip install`` does; only the one-line
descriptions of what each extra enables are kept here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

__all__ = ["Extra", "extras", "EXTRA_USES"]

EXTRA_USES = {
    "align": "wplus align and project --align (dlib face landmarks)",
    "video": "MP4 next to the GIFs of morph, edit, expression, mix, project --save-video",
    "web": "wplus serve (the gradio web UI)",
    "browser": "the real-browser test of the web UI (Playwright)",
    "ray": "project --engine ray (datasets across a Ray cluster)",
    "plot": "the figures of wplus study, project --plot and the benchmarks (matplotlib)",
    "study": "wplus study: its figures and the scikit-image photographs of its out-of-domain classes",
    "dev": "the tests and lint (pytest, ruff, scikit-image)",
}

# A requirement is also met by a distribution that installs the same module under another name.
_SAME_MODULE = {"dlib-bin": ("dlib",)}

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


@dataclass(frozen=True)
class Extra:
    """One extra: its name, the distributions it installs, those missing here, and what it enables."""

    name: str
    requires: tuple[str, ...]
    missing: tuple[str, ...]
    enables: str

    @property
    def installed(self) -> bool:
        return not self.missing


def _installed(dist: str) -> bool:
    for name in (dist, *_SAME_MODULE.get(dist.lower(), ())):
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        return True
    return False


def extras(distribution: str = "wplus") -> list[Extra]:
    """The extras ``distribution`` declares, in its metadata's order, each with what is missing of it.

    Returns:
        One :class:`Extra` per extra; an empty list when ``distribution`` is not installed (run from a source tree
        without ``pip install -e .``), as then no metadata says what the extras are.
    """
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return []
    names = dist.metadata.get_all("Provides-Extra") or []
    needs: dict[str, list[str]] = {name: [] for name in names}
    for req in dist.requires or []:
        marker = _EXTRA_MARKER.search(req)
        match = _NAME.match(req)
        if marker and match and marker[1] in needs:
            needs[marker[1]].append(match[1])
    return [
        Extra(name, tuple(reqs), tuple(r for r in reqs if not _installed(r)), EXTRA_USES.get(name, ""))
        for name, reqs in needs.items()
    ]
