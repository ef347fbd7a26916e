"""Run the benchmarks of this folder (``make bench``): the speed figures first, then any other script; the long
quality check of the shipped model (check_demo_model.py, most of an hour on 2 CPU cores) only with ``--quality``
(``make bench QUALITY=1``), which also runs time_to_quality.py in full instead of its ``--quick`` mode.

Usage: python benchmarks/run_all.py [--quality] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
SPEED = ["projection_speed.py", "checkpoint_load.py"]  # minutes, run first
QUALITY = ["check_demo_model.py"]  # long, behind --quality
# Not a figure of this machine: the device check runs the device tests and wants a GPU (docs/gpu.md); run it by hand.
# fit_shipped_directions.py writes package assets (and needs the attribute probe): the lead runs it once, by hand.
SEPARATE = ["gpu_check.py", "fit_shipped_directions.py"]
QUICK_UNLESS_QUALITY = {"time_to_quality.py": ["--quick"]}  # the full runs (5000-step paper recipe) with --quality


def arguments(script: Path, quality: bool) -> list[str]:
    """Extra arguments of a script: its quick mode unless ``quality``."""
    return [] if quality else QUICK_UNLESS_QUALITY.get(script.name, [])


def plan(quality: bool, only: list[str] | None = None) -> list[Path]:
    """The scripts to run, in order: speed figures, then the rest, then (with ``quality``) the quality check."""
    found = sorted(p.name for p in HERE.glob("*.py") if p.name not in ("run_all.py", "__init__.py", *SEPARATE))
    names = [n for n in SPEED if n in found] + [n for n in found if n not in SPEED + QUALITY]
    names += [n for n in QUALITY if n in found] if quality else []
    if only:
        names = [n for n in names if n in only or n.removesuffix(".py") in only]
    return [HERE / n for n in names]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quality", action="store_true", help="also run check_demo_model.py (long)")
    ap.add_argument("--only", nargs="+", default=None, help="run only these scripts (names, with or without .py)")
    args = ap.parse_args()
    scripts = plan(args.quality, args.only)
    status = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script), *arguments(script, args.quality)])
        print(f"== {script.name}: {'ok' if rc == 0 else f'exit {rc}'} in {time.perf_counter() - t0:.0f} s", flush=True)
        status |= rc
    if not args.quality and not args.only:
        print("(the shipped model's quality check is not run by default: make bench QUALITY=1)", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
