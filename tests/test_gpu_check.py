"""benchmarks/gpu_check.py keeps working on the CPU (its small mode), so the day a GPU is lent it runs at once."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

GPU_CHECK = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("bench_gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_small_cpu_run_prints_and_writes_the_table(tmp_path, capsys, one_thread):
    out = tmp_path / "gpu_check.json"
    assert _gpu_check().main(["--device", "cpu", "--small", "--skip-tests", "--json-out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    assert [(r["case"], r["device"], r["batch"], r["precision"]) for r in rows] == [
        ("projection", "cpu", 1, "fp32"),
        ("projection", "cpu", 8, "fp32"),
        ("tuning", "cpu", 1, "fp32"),
    ]
    for r in rows:
        assert r["error"] is None and r["size"] == 32 and r["s_per_step"] > 0 and r["peak_mib"] > 0
        assert r["image_steps_per_s"] == pytest.approx(r["batch"] / r["s_per_step"])
    assert "img-steps/s" in printed and printed.count("\nprojection  cpu") == 2 and "\ntuning      cpu" in printed


def test_cuda_plan_has_every_precision_and_the_cpu_comparison():
    gpu_check = _gpu_check()
    rows = [
        (c, str(d), s["config"]["img_resolution"], b, p)
        for c, d, s, b, p in gpu_check.plan(torch.device("cuda"), False)
    ]
    cuda = [("projection", "cuda", 1024, b, p) for p in ("fp32", "tf32", "bf16-autocast") for b in (1, 8)]
    cpu = [("projection", "cpu", 32, 1, "fp32"), ("projection", "cpu", 32, 8, "fp32"), ("tuning", "cpu", 32, 1, "fp32")]
    assert rows == [*cuda, ("tuning", "cuda", 1024, 1, "fp32"), *cpu]
    assert gpu_check.FULL["config"] == {"img_resolution": 1024, "channel_base": 32768}  # config-f
    assert len(gpu_check.plan(torch.device("cuda"), False, cpu_comparison=False)) == 7
    assert [r[1] for r in gpu_check.plan(torch.device("cpu"), True)] == [torch.device("cpu")] * 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_in_one_line(capsys):
    assert _gpu_check().main(["--device", "cuda", "--skip-tests"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
