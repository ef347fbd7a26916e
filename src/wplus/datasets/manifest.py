"""The manifest of a dataset run: ``OUTDIR/manifest*.jsonl``, one JSON record per line, appended as work happens.

Each writer owns one file, so concurrent writers never share one (a Slurm array on a network filesystem, where
appends from several hosts are not atomic): an unsharded run writes ``manifest.jsonl``, shard ``I`` of ``N``
writes ``manifest.shard-I-of-N.jsonl``. Readers merge every ``manifest*.jsonl`` in the folder; for each input the
record with the latest ``time`` wins. A record (:class:`Record`) says::

    input            the image's absolute path (its identity)
    input_sha256     SHA-256 of the image file
    settings_sha256  SHA-256 of the run's recipe: resolved ProjectionSettings, the model's SHA-256, preprocessing
    status           'running' (claimed, not finished), 'done', or 'failed' (with ``error``, one line)
    outputs          its folders, relative to OUTDIR (one; one per face with --align)
    seconds          projection wall time of the image (its batch's, divided among the batch's images)
    psnr             final PSNR in dB (the mean over faces with --align)
    started, time    Unix times at which its batch started and this record was written
    writer           which manifest file wrote it ('main', 'shard-0-of-4', 'ray')

A record is one ``os.write`` of one line to a file opened for appending, then ``fsync``: a ``kill -9`` can at worst
cut the last line short, and readers skip such a line (counted in ``bad_lines``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from wplus.errors import ConfigError

__all__ = [
    "MANIFEST",
    "Record",
    "Shard",
    "Status",
    "ManifestWriter",
    "manifest_path",
    "read_manifests",
    "latest_records",
    "recipe_sha256",
    "summarize",
]

MANIFEST = "manifest.jsonl"
Status = Literal["running", "done", "failed"]
_SHARD_FILE = re.compile(r"manifest\.shard-(\d+)-of-(\d+)\.jsonl")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): the ``--shard I/N`` of a Slurm array task."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and self.count >= 1 and isinstance(self.index, int)):
            raise ConfigError(f"got shard {self.index}/{self.count}, expected integers I/N with N >= 1")
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"got shard {self.index}/{self.count}, expected I from 0 to {self.count - 1} "
                "(0-based, as $SLURM_ARRAY_TASK_ID with --array=0-N-1)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``'2/8'`` -> ``Shard(2, 8)``."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None:
            raise ConfigError(f"got {text!r}, expected I/N such as 0/4 (shard I of N, I from 0)")
        return cls(int(match[1]), int(match[2]))

    @property
    def writer(self) -> str:
        return f"shard-{self.index}-of-{self.count}"


@dataclass(frozen=True)
class Record:
    """One line of a manifest (see the module docstring for the fields)."""

    input: str
    input_sha256: str
    settings_sha256: str
    status: Status
    outputs: list[str] = field(default_factory=list)
    seconds: float | None = None
    psnr: float | None = None
    error: str | None = None
    started: float | None = None
    time: float = 0.0
    writer: str = "main"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        missing = {"input", "input_sha256", "settings_sha256", "status"} - set(d)
        if missing or d.get("status") not in ("running", "done", "failed"):
            raise ValueError(f"not a manifest record: {sorted(missing) or d.get('status')!r}")
        return cls(**{k: v for k, v in d.items() if k in known})


def manifest_path(outdir: str | Path, writer: str = "main") -> Path:
    """The manifest file a writer appends to: ``manifest.jsonl`` for 'main', ``manifest.<writer>.jsonl`` else."""
    return Path(outdir) / (MANIFEST if writer == "main" else f"manifest.{writer}.jsonl")


class ManifestWriter:
    """Appends records to one manifest file, one ``os.write`` + ``fsync`` per record."""

    def __init__(self, outdir: str | Path, writer: str = "main"):
        self.writer = writer
        self.path = manifest_path(outdir, writer)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: Record) -> None:
        line = record.to_json() + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            if _ends_mid_line(fd):  # a writer killed mid-line: start ours on a fresh line
                line = "\n" + line
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def record(self, **values: Any) -> Record:
        """Append ``Record(**values)`` stamped with this writer and the time; return it."""
        rec = Record(**{"time": time.time(), "writer": self.writer, **values})
        self.append(rec)
        return rec


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def read_manifests(outdir: str | Path) -> tuple[list[Record], int]:
    """Every record of every ``manifest*.jsonl`` in ``outdir`` (file by file, in line order), and the number of
    lines that were not records (a line cut short by a kill, say)."""
    records: list[Record] = []
    bad = 0
    for path in sorted(Path(outdir).glob("manifest*.jsonl")):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    records.append(Record.from_dict(json.loads(line)))
                except (ValueError, TypeError):
                    bad += 1
    return records, bad


def latest_records(records: Iterable[Record]) -> dict[str, Record]:
    """The record of each input with the latest ``time`` (a later line wins a tie)."""
    out: dict[str, Record] = {}
    for r in records:
        if r.input not in out or r.time >= out[r.input].time:
            out[r.input] = r
    return out


def recipe_sha256(recipe: dict[str, Any]) -> str:
    """SHA-256 of a JSON-ready dict, independent of key order (what ``settings_sha256`` holds)."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _busy_seconds(spans: list[tuple[float, float]]) -> float:
    """Length of the union of time intervals: wall time during which some writer was working."""
    total, end = 0.0, None
    for a, b in sorted(spans):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def summarize(outdir: str | Path) -> dict[str, Any]:
    """Counts per status, the failures, and throughput, merged over every manifest file in ``outdir``.

    ``images_per_hour`` divides the images done by the wall time during which any writer was projecting (the union
    of the batches' [started, time] spans), so shards that run at once are not double-counted and pauses between
    reruns are not counted at all.

    Raises:
        ConfigError: ``outdir`` holds no manifest.
    """
    outdir = Path(outdir)
    files = sorted(outdir.glob("manifest*.jsonl"))
    if not files:
        raise ConfigError(f"{outdir}: no manifest*.jsonl here; expected the --outdir of a `wplus project` run")
    records, bad = read_manifests(outdir)
    latest = latest_records(records)
    counts = {s: sum(r.status == s for r in latest.values()) for s in ("done", "failed", "running")}
    done = [r for r in latest.values() if r.status == "done"]
    spans = [(r.started, r.time) for r in records if r.status in ("done", "failed") and r.started is not None]
    busy = _busy_seconds(spans)
    seconds = [r.seconds for r in done if r.seconds is not None]
    psnrs = [r.psnr for r in done if r.psnr is not None]
    return {
        "outdir": str(outdir),
        "manifests": [p.name for p in files],
        "images": len(latest),
        **counts,
        "failures": [{"input": r.input, "error": r.error} for r in latest.values() if r.status == "failed"],
        "busy_seconds": busy,
        "images_per_hour": (len(done) * 3600 / busy) if busy > 0 else None,
        "mean_seconds_per_image": (sum(seconds) / len(seconds)) if seconds else None,
        "mean_psnr": (sum(psnrs) / len(psnrs)) if psnrs else None,
        "bad_lines": bad,
    }
