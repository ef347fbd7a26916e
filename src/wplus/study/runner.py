"""Run a study (or all of them) on a context: pick the images, time it, write the four files."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from wplus.errors import ConfigError
from wplus.study.core import StudyContext, write_outputs
from wplus.study.inputs import Item, default_items
from wplus.study.studies import STUDIES, STUDY_ORDER

__all__ = ["run_study", "study_names", "check_study"]

QUICK_SPACES = ("faces", "animals")


def study_names() -> list[str]:
    return [*STUDY_ORDER, "all"]


def check_study(name: str) -> None:
    """Raises ConfigError naming an unknown study and the known ones."""
    if name not in study_names():
        raise ConfigError(f"unknown study {name!r}, expected one of: {', '.join(study_names())}")


def _items_for(name: str, ctx: StudyContext, given: Sequence[Item] | None) -> list[Item]:
    if given:
        return list(given)
    classes = STUDIES[name].classes
    if ctx.quick and name == "spaces":
        classes = QUICK_SPACES  # 5 conditions each: one in-domain and one out-of-domain class keep it short
    return default_items(ctx.G.img_resolution, per_class=ctx.per_class, classes=classes)


def run_study(name: str, ctx: StudyContext, items: Sequence[Item] | None = None) -> dict[str, dict]:
    """Run study ``name`` ('all': every study in order, each into ``OUTDIR/NAME/``, one unit store) and write its
    files. Returns {study: {'files': [...], 'seconds': s, 'projected': n, 'reused': m}}."""
    check_study(name)
    names = list(STUDY_ORDER) if name == "all" else [name]
    out = {}
    for n in names:
        chosen = _items_for(n, ctx, items)
        if not chosen:
            raise ConfigError(f"study {n}: no images (scikit-image missing? give IMAGES)")
        before = (ctx.projected, ctx.reused)
        t0 = time.perf_counter()
        result = STUDIES[n].run(ctx, chosen)
        seconds = time.perf_counter() - t0
        folder = ctx.outdir / n if name == "all" else ctx.outdir
        files = write_outputs(n, result, ctx, chosen, Path(folder), seconds)
        out[n] = {"files": [str(f) for f in files], "seconds": round(seconds, 2),
                  "projected": ctx.projected - before[0], "reused": ctx.reused - before[1]}  # fmt: skip
    return out
