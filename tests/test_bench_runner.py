"""`make bench` (benchmarks/run_all.py): the speed figures first, the long quality check only when asked for."""

from __future__ import annotations

import importlib.util
from pathlib import Path

RUN_ALL = Path(__file__).parents[1] / "benchmarks" / "run_all.py"


def _run_all():
    spec = importlib.util.spec_from_file_location("bench_run_all", RUN_ALL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_runs_speed_first_and_quality_only_on_request():
    run_all = _run_all()
    default = [p.name for p in run_all.plan(quality=False)]
    assert default[:2] == ["projection_speed.py", "checkpoint_load.py"]
    assert "check_demo_model.py" not in default and "run_all.py" not in default
    assert "gpu_check.py" not in [p.name for p in run_all.plan(quality=True)]  # by hand, on a GPU (docs/gpu.md)
    with_quality = [p.name for p in run_all.plan(quality=True)]
    assert with_quality[: len(default)] == default and with_quality[-1] == "check_demo_model.py"
    assert [p.name for p in run_all.plan(quality=True, only=["check_demo_model"])] == ["check_demo_model.py"]


def test_time_to_quality_runs_quick_unless_quality():
    run_all = _run_all()
    script = run_all.HERE / "time_to_quality.py"
    assert run_all.arguments(script, quality=False) == ["--quick"]
    assert run_all.arguments(script, quality=True) == []
    assert script in run_all.plan(quality=False)
