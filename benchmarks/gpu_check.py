"""One GPU check, for the day a device is lent: the device tests, then projection and tuning speed, in one table.

Steps: (a) ``pytest -m device --device DEV`` (the tests that take conftest's ``device`` fixture: synthesis forward and
backward of StyleGAN1/2/3, the losses, projection, tuning); (b) W+ projection steps, batch 1 and 8, on a random
1024 px config-f generator with the paper's loss on random VGG weights (nothing downloaded), in float32 and, on CUDA,
with TF32 matmuls/convolutions and under bfloat16 autocast; (c) one tuning step (wplus.tuning, rank 1 delta) on the
same generator. The table: case, device, size, batch, precision, s/step, image-steps/s, peak memory. On CUDA the same
cases also run on the CPU at the small size, for comparison. There is no encoder in wplus yet, so no encoder row.

Usage: python benchmarks/gpu_check.py [--device cuda|cpu] [--small] [--time-budget 300] [--json-out FILE]
``--device cpu --small`` runs in seconds (the test suite runs it so that this script keeps working).
Peak memory: CUDA's max_memory_allocated for each case; on the CPU the process's peak RSS so far (it only grows).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

# wplus before torch: importing it sets OpenMP's passive wait policy, which must precede torch's first import
# (wplus.runtime; spinning idle threads make CPU runs many times slower on a shared machine).
from wplus.runtime import tune_cpu_allocator

# isort: split
import torch

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("projection_speed", HERE / "projection_speed.py")
projection_speed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(projection_speed)

FULL = dict(config=projection_speed.CONFIGS[1024], loss_resize=256, steps=5)  # config-f, the paper's VGG input
SMALL = dict(
    config=dict(img_resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32),
    loss_resize=32,
    steps=2,
)
BATCHES = (1, 8)


def precisions(device: torch.device) -> list[str]:
    return ["fp32", "tf32", "bf16-autocast"] if device.type == "cuda" else ["fp32"]


@contextlib.contextmanager
def precision(name: str, device: torch.device):
    """fp32: TF32 off (the reference); tf32: TF32 matmuls and convolutions; bf16-autocast: torch.autocast bfloat16."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "tf32"
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16) if name == "bf16-autocast" else contextlib.nullcontext():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(case: str, device: torch.device, size: dict, batch: int, prec: str) -> dict:
    """One row: seconds per step of ``case`` ('projection' or 'tuning') and what it implies."""
    from wplus.projection.project import project
    from wplus.tuning import tune

    row = dict(case=case, device=str(device), size=size["config"]["img_resolution"], batch=batch, precision=prec)
    G, loss, target = projection_speed.build_case(size["config"], batch, device, size["loss_resize"])
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    if case == "projection":

        def run(n, cb):
            return project(G, target, loss=loss, space="w+", num_steps=n, callback=cb)
    else:
        ws = G.w_avg.reshape(1, 1, -1).repeat(batch, G.num_ws, 1)

        def run(n, cb):
            return tune(G, target, ws, loss=loss, num_steps=n, rank=1, callback=cb)

    with precision(prec, device):
        s = projection_speed.seconds_per_step(run, size["steps"], device)
    return {**row, "s_per_step": s, "image_steps_per_s": batch / s, "peak_mib": peak_mib(device), "error": None}


def cases(device: torch.device, size: dict) -> list[tuple]:
    """(case, device, size, batch, precision) of one device: projection at every batch and precision, one tuning."""
    out = [("projection", device, size, b, p) for p in precisions(device) for b in BATCHES]
    return out + [("tuning", device, size, 1, "fp32")]


def plan(device: torch.device, small: bool, cpu_comparison: bool = True) -> list[tuple]:
    """Every case of a run: ``device``'s (small or full size), then on CUDA the CPU's at the small size."""
    out = cases(device, SMALL if small else FULL)
    return out + cases(torch.device("cpu"), SMALL) if device.type == "cuda" and cpu_comparison else out


def run_tests(device: torch.device, timeout: float) -> dict:
    """(a): pytest on the device-parametrised tests; its summary line and exit status."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "device", "--device", str(device)]
    cmd.append(str(HERE.parent / "tests"))
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(command=" ".join(cmd[1:]), returncode=None, summary=f"timed out after {timeout:.0f} s", tail="")
    lines = out.stdout.strip().splitlines()
    summary = next(
        (ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ (passed|failed|skipped|error)", ln)), ""
    )
    return dict(
        command=" ".join(cmd[1:]),
        returncode=out.returncode,
        summary=summary or f"exit {out.returncode}",
        seconds=time.perf_counter() - t0,
        tail="\n".join((out.stdout + out.stderr).strip().splitlines()[-30:]) if out.returncode else "",
    )


def table(rows: list[dict]) -> str:
    head = f"{'case':<11} {'device':<7} {'size':>5} {'batch':>5} {'precision':<13} {'s/step':>9} {'img-steps/s':>11} "
    head += f"{'peak MiB':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        left = f"{r['case']:<11} {r['device']:<7} {r['size']:>5} {r['batch']:>5} {r['precision']:<13} "
        if r["error"]:
            lines.append(left + r["error"])
        else:
            lines.append(left + f"{r['s_per_step']:>9.4f} {r['image_steps_per_s']:>11.2f} {r['peak_mib']:>9.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--small", action="store_true", help="a 32 px generator and 2 timed steps (CI, the CPU)")
    ap.add_argument("--time-budget", type=float, default=300.0, help="seconds for the whole check (default 300)")
    ap.add_argument("--skip-tests", action="store_true", help="leave out step (a), the pytest run")
    ap.add_argument("--no-cpu", action="store_true", help="on CUDA, leave out the CPU comparison rows")
    ap.add_argument("--json-out", help="also write the table (and the test summary) to this JSON file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"--device {device}: CUDA is not available (torch {torch.__version__}); use --device cpu", file=sys.stderr
        )
        return 2
    tune_cpu_allocator()  # as the wplus command does at start-up
    start = time.perf_counter()
    left = lambda: args.time_budget - (time.perf_counter() - start)  # noqa: E731

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__}, {device}: {name}", flush=True)
    tests = None
    if not args.skip_tests:
        tests = run_tests(device, timeout=max(30.0, 0.4 * args.time_budget))
        print(f"(a) {tests['command']}: {tests['summary']}", flush=True)
        if tests["tail"]:
            print(tests["tail"], flush=True)

    rows = []
    for case, dev, size, batch, prec in plan(device, args.small, cpu_comparison=not args.no_cpu):
        print(f"  {case} {dev} batch {batch} {prec} ...", file=sys.stderr, flush=True)
        if left() <= 0:
            row = dict(case=case, device=str(dev), size=size["config"]["img_resolution"], batch=batch, precision=prec)
            rows.append({**row, "error": "not run: time budget spent"})
            continue
        try:
            rows.append(measure(case, dev, size, batch, prec))
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:  # recorded in the table; the exit status says so
            row = dict(case=case, device=str(dev), size=size["config"]["img_resolution"], batch=batch, precision=prec)
            rows.append({**row, "error": f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"})
    print(table(rows), flush=True)
    print(f"({time.perf_counter() - start:.0f} s)", flush=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"torch": torch.__version__, "device": name, "tests": tests, "rows": rows}, f, indent=2)
    failed = any(r["error"] for r in rows) or (tests is not None and tests["returncode"] != 0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
