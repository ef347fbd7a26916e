"""Checkpoint loading: time and peak memory to load a 1024-px config-f StyleGAN2 in each format, and conversion time.

The files are written by the test writers (wplus.formats._testing) from a random 1024-px config-f generator
(30.4 M parameters). Each load runs in its own subprocess so that its peak resident memory (VmHWM) is its own;
"baseline" is the RSS of the same process after imports, before loading.
Usage: python benchmarks/checkpoint_load.py [--workdir DIR] [--json OUT]
Progress goes to stderr (a line every few seconds when that is not a terminal).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMATS = ["nvidia.pkl", "nvidia-fp16.pkl", "tf.pkl", "rosinality.pt", "wplus.safetensors"]


def _status_mib(key: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process; per address space, so not inherited from the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: str) -> None:
    import torch

    from wplus.loading import load_generator

    torch.set_num_threads(1)
    base = _status_mib("VmRSS")
    t = time.perf_counter()
    G = load_generator(path)
    dt = time.perf_counter() - t
    peak = _status_mib("VmHWM")
    print(json.dumps({"seconds": dt, "peak_mib": peak, "baseline_mib": base, "num_ws": G.num_ws}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch

    from wplus.formats import _testing as W
    from wplus.io.checkpoint import save_generator
    from wplus.loading import load_generator
    from wplus.models.stylegan2 import StyleGAN2Config, random_generator
    from wplus.progress import progress

    torch.set_num_threads(1)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="wplus-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    writers = {
        "nvidia.pkl": lambda G, p: W.write_nvidia_pickle(G, p),
        "nvidia-fp16.pkl": lambda G, p: W.write_nvidia_pickle(G, p, fp16_min_res=128),
        "tf.pkl": W.write_tf_pickle,
        "rosinality.pt": W.write_rosinality,
        "wplus.safetensors": save_generator,
    }
    with progress(1 + len(writers), desc="writing the test checkpoints", unit="file") as bar:
        G = random_generator(StyleGAN2Config(), seed=0, w_avg_samples=100)
        bar.update()
        for name, write in writers.items():
            write(G, work / name)
            bar.update()
    results = {}
    for name in FORMATS:
        out = subprocess.run([sys.executable, __file__, "--child", str(work / name)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["file_mib"] = (work / name).stat().st_size / 2**20
        results[name] = r
        print(
            f"load {name:<18} {r['seconds']:6.2f} s  peak RSS {r['peak_mib']:7.0f} MiB "
            f"(baseline {r['baseline_mib']:.0f}, file {r['file_mib']:.0f} MiB)",
            flush=True,
        )
    for name in ("nvidia.pkl", "tf.pkl", "rosinality.pt"):
        t = time.perf_counter()
        save_generator(load_generator(work / name), work / f"converted-{name}.safetensors")
        dt = time.perf_counter() - t
        results[f"convert {name}"] = {"seconds": dt}
        print(f"convert {name:<15} {dt:6.2f} s (load + write safetensors)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
