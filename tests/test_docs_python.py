"""The Python in the documentation runs as written: offline, on the shipped model, in a fresh folder.

Every ```python block of README.md, docs/python.md and docs/stylespace.md runs, in order, in one namespace per file
(the blocks of a page build on each other, as in a notebook). A block preceded by the line
``<!-- not run: REASON -->`` is skipped; the reason must be given. docs/python.md and docs/stylespace.md must have
runnable blocks: they are the pages that promise they run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/python.md", "docs/stylespace.md"]
MUST_RUN = {"docs/python.md", "docs/stylespace.md"}
_SKIP = re.compile(r"<!--\s*not run:\s*(\S.*?)\s*-->")
_FENCE = re.compile(r"^```(\w*)\s*$")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """``(line, code, skip_reason)`` for each ```python block; the reason comes from the line before the fence."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start, lang = i, m[1]
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        if lang == "python":
            before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
            marker = _SKIP.search(before)
            if marker is None and "not run" in before:
                raise AssertionError(f"line {start}: write the marker as '<!-- not run: REASON -->', got {before!r}")
            blocks.append((start + 1, "\n".join(lines[start + 1 : i]), marker[1] if marker else None))
        i += 1
    return blocks


def test_block_reader_finds_blocks_and_markers():
    text = "x\n```python\na = 1\n```\n\n<!-- not run: needs a GPU -->\n```python\nb = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(2, "a = 1", None), (7, "b = 2", "needs a GPU")]
    with pytest.raises(AssertionError, match="not run: REASON"):
        python_blocks("<!-- not run -->\n```python\nc = 3\n```\n")


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS)
def test_python_blocks_run_offline(doc, tmp_path, monkeypatch, one_thread):
    path = ROOT / doc
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    runnable = [(line, code) for line, code, reason in blocks if reason is None]
    if not runnable:
        assert doc not in MUST_RUN, f"{doc} has no runnable ```python block"
        pytest.skip(f"{doc}: every python block is marked not run")
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "empty-cache"))  # no VGG-16: the offline route is the one shown
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, code in runnable:
        try:
            exec(compile(code, f"{doc}:{line}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"{doc}, the python block at line {line} failed: {type(e).__name__}: {e}") from e
