"""What every study shares: the context (model, loss, settings, output folder), the resumable units of work, and
writing ``results.csv``, ``results.md``, ``figure.png`` and ``study.json``.

A unit is one projection: (study, image, condition). Its result — the final metrics, the loss and PSNR against steps,
and the code — is written to ``OUTDIR/units/STUDY/RECIPE/KEY.npz`` (the code) and then ``KEY.json`` (the metrics),
each atomically; the JSON is the mark that the unit is done. ``RECIPE`` is a hash of what decides the result (the
settings, the loss, the model's SHA-256), so a rerun with other settings recomputes and a rerun with the same ones
skips every finished unit — also after a ``kill -9`` (a unit whose target
image changed since is recomputed). Units of one condition are projected as one batch (every image
follows the trajectory it would alone with Adam).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wplus.io.atomic import atomic_write, write_json
from wplus.progress import progress
from wplus.projection import ProjectionSettings, project

__all__ = ["StudyContext", "Unit", "UnitResult", "StudyResult", "write_outputs", "HISTORY_POINTS"]

HISTORY_POINTS = 200  # loss / PSNR against steps kept per unit, evenly spaced


@dataclass
class Unit:
    """One projection to run: a key unique within its study, the target [C, R, R], and its start code (or None)."""

    key: str
    target: torch.Tensor
    init: torch.Tensor | None = None


@dataclass
class UnitResult:
    key: str
    metrics: dict[str, Any]
    ws: torch.Tensor  # [num_ws, w_dim]
    history: dict[str, list[float]]  # 'step', 'loss', 'psnr'
    reused: bool = False


@dataclass
class StudyResult:
    """What a study returns: the rows of ``results.csv`` (``columns`` in order), the Markdown table(s), notes, and a
    function drawing ``figure.png`` with matplotlib (given the ``pyplot`` module and the path)."""

    rows: list[dict[str, Any]]
    columns: list[str]
    markdown: str
    figure: Callable[[Any, Path], None]
    notes: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class StudyContext:
    """The model, the loss, the settings and the output folder of a study run.

    Attributes:
        G: the generator; ``model`` its file record ({path, id, sha256}).
        loss: the loss module every study uses unless it varies the loss; ``loss_settings`` its recipe (after the
            offline fallback, a ``dfeat`` kind); ``discriminator``: the model's D when the loss reads it.
        settings: the projection settings (every projection option of the command line).
        quick: few images and steps. ``per_class``: images per class; ``rounds``: re-embedding rounds.
        projected: how many units were projected in this process (the tests count them).
    """

    G: torch.nn.Module
    model: dict[str, str]
    loss: torch.nn.Module
    loss_settings: ProjectionSettings
    settings: ProjectionSettings
    outdir: Path
    quick: bool = False
    per_class: int = 2
    rounds: int = 3
    discriminator: torch.nn.Module | None = None
    vgg: torch.nn.Module | None = None
    notes: list[str] = field(default_factory=list)
    projected: int = 0
    reused: int = 0
    show_progress: bool = True
    batch_size: int = 8
    options: dict[str, Any] = field(default_factory=dict)  # a study's own options (shifts, masks folder, ...)
    cache: dict[str, Any] = field(default_factory=dict)  # built once per run (a random generator, masks)

    @property
    def device(self) -> torch.device:
        p = next(iter(self.G.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def offline_loss(self) -> bool:
        """True when the loss is the discriminator-feature stand-in for VGG-16."""
        return "dfeat" in self.loss_settings.terms

    def recipe(self, settings: ProjectionSettings, *extra: Any) -> str:
        text = json.dumps([settings.to_dict(), self.loss_settings.to_dict(), self.model.get("sha256", ""), *extra],
                          sort_keys=True, default=str)  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def project_units(
        self,
        study: str,
        units: Sequence[Unit],
        *,
        settings: ProjectionSettings | None = None,
        loss: torch.nn.Module | None = None,
        G: torch.nn.Module | None = None,
        recipe_extra: Sequence[Any] = (),
        desc: str = "",
    ) -> list[UnitResult]:
        """The results of ``units``, read back where finished and projected (in batches) where not."""
        s = settings or self.settings
        folder = self.outdir / "units" / _safe(study) / self.recipe(s, *recipe_extra)
        out: dict[str, UnitResult] = {}
        todo = []
        for u in units:
            done = _read_unit(folder, u.key)
            if done is not None and done.metrics.get("target_sha256") != _tensor_sha(u.target):
                done = None  # the same name, another image (a changed input or region): recompute
            if done is not None:
                out[u.key] = done
                self.reused += 1
            else:
                todo.append(u)
        if todo:
            gen = G if G is not None else self.G
            with progress(s.total_steps * len(todo), desc=f"  {study} {desc}".rstrip(), unit="step",
                          disable=not self.show_progress) as bar:  # fmt: skip
                for start in range(0, len(todo), self.batch_size):
                    batch = todo[start : start + self.batch_size]
                    for r in self._project(gen, batch, s, loss if loss is not None else self.loss, bar):
                        _write_unit(folder, r)
                        out[r.key] = r
                        self.projected += 1
        return [out[u.key] for u in units]

    def _project(
        self, G: torch.nn.Module, batch: list[Unit], s: ProjectionSettings, loss: torch.nn.Module, bar: Any
    ) -> list[UnitResult]:
        target = torch.stack([u.target for u in batch]).to(self.device)
        inits = [u.init for u in batch]
        init = None
        if all(i is not None for i in inits):
            init = torch.stack([i.reshape(-1, i.shape[-1]) for i in inits]).to(self.device)  # type: ignore[union-attr]
            if s.space == "w":
                init = init[:, 0]
        n = len(batch)
        r = project(G, target, loss=loss, settings=s, init=init, callback=lambda st: bar.update(n))
        steps = len(r.step_seconds)
        keep = np.unique(np.linspace(0, steps - 1, min(steps, HISTORY_POINTS)).round().astype(int)) if steps else []
        results = []
        for i, u in enumerate(batch):
            m = dict(r.metrics[i])
            m["loss"] = m.get("loss_total", float("nan"))
            m["target_sha256"] = _tensor_sha(u.target)
            hist = {
                "step": [int(k) + 1 for k in keep],
                "loss": [float(r.history["total"][k, i]) for k in keep],
                "psnr": [float(r.history["psnr"][k, i]) for k in keep],
            }
            results.append(UnitResult(u.key, m, r.ws[i].detach().cpu(), hist))
        return results


def _tensor_sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name)


def _read_unit(folder: Path, key: str) -> UnitResult | None:
    js, npz = folder / f"{_safe(key)}.json", folder / f"{_safe(key)}.npz"
    if not js.exists() or not npz.exists():
        return None
    try:
        rec = json.loads(js.read_text())
        with np.load(npz) as z:
            ws = torch.from_numpy(z["ws"])
    except (OSError, ValueError, KeyError):
        return None  # a damaged unit (never written by us atomically): recompute it
    return UnitResult(key, rec["metrics"], ws, rec["history"], reused=True)


def _write_unit(folder: Path, r: UnitResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, ws=r.ws.numpy())
    atomic_write(folder / f"{_safe(r.key)}.npz", lambda p: p.write_bytes(buf.getvalue()))
    write_json(folder / f"{_safe(r.key)}.json", {"key": r.key, "metrics": r.metrics, "history": r.history})


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (numbers to 4 significant digits)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def group_mean(rows: Sequence[dict[str, Any]], by: Sequence[str], values: Sequence[str]) -> list[dict[str, Any]]:
    """Mean of ``values`` over rows sharing the ``by`` columns, in first-seen order, with the count ``n``."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[b] for b in by), []).append(r)
    out = []
    for key, rs in groups.items():
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        for v in values:
            xs = [float(r[v]) for r in rs if r.get(v) not in (None, "")]
            row[v] = float(np.mean(xs)) if xs else ""
        row["n"] = len(rs)
        out.append(row)
    return out


def write_outputs(
    name: str, result: StudyResult, ctx: StudyContext, items: Sequence[Any], outdir: Path, seconds: float
) -> list[Path]:
    """Write the study's four files into ``outdir``; returns their paths."""
    from wplus import __version__
    from wplus.study.plotting import FIGURE_PURPOSE, pyplot

    outdir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=result.columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in result.rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    csv_path = atomic_write(outdir / "results.csv", lambda p: p.write_text(buf.getvalue()))
    notes = [*ctx.notes, *result.notes]
    md = [f"# wplus study {name}", "", result.markdown, ""]
    if notes:
        md += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    md_path = atomic_write(outdir / "results.md", lambda p: p.write_text("\n".join(md)))
    plt = pyplot(FIGURE_PURPOSE)
    fig_path = outdir / "figure.png"
    atomic_write(fig_path, lambda p: result.figure(plt, p))
    record = {
        "study": name,
        "wplus_version": __version__,
        "model": ctx.model,
        "settings": ctx.settings.to_record(),
        "loss": ctx.loss_settings.to_record(),
        "offline_loss": ctx.offline_loss,
        "quick": ctx.quick,
        "per_class": ctx.per_class,
        "options": result.options,
        "inputs": [i.record() for i in items],
        "notes": notes,
        "seconds": round(seconds, 2),
        "projected": ctx.projected,
        "reused": ctx.reused,
        "time": time.time(),
    }
    json_path = write_json(outdir / "study.json", record)
    return [csv_path, md_path, fig_path, json_path]
