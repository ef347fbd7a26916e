"""Projection steps on a shared machine: idle, and with competing busy processes, for each OpenMP wait policy.

Each measurement runs in a fresh subprocess (OpenMP reads its wait policy once, when torch is imported):

- ``spin``: ``OMP_WAIT_POLICY`` set but empty, so ``import wplus`` leaves libgomp's default (threads spin a while
  before they sleep) in place: what wplus did before it chose a policy;
- ``passive``: what ``import wplus`` now sets (idle threads sleep at once).

The load is N plain Python processes that each keep one core busy (``--load 1`` by default, as the target asks).
Workloads: the shipped 64 px model at batch 4 (what ``make demo`` projects) and a random 1024 px config-f generator
at batch 1, W+ with a pixel loss, seconds per step after one warm-up step. The figure that matters is the ratio of
loaded to idle time, within one run.

Usage: python benchmarks/under_load.py [--load 1] [--steps64 20] [--steps1024 3] [--only 64,1024,demo] [--json OUT]
``demo`` times the whole ``wplus demo`` (offline) in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
import wplus, torch
from wplus.models.stylegan2 import StyleGAN2Config, random_generator
from wplus.projection import project
from wplus.shipped import load_shipped_generator
res, steps = int(sys.argv[1]), int(sys.argv[2])
class MSE:
    def prepare_target(self, t):
        return t
    def __call__(self, x, t):
        m = (x - t).square().flatten(1).mean(1)
        return {"mse": m, "total": m}
if res == 64:
    G, batch = load_shipped_generator(), 4
else:
    G = random_generator(StyleGAN2Config(img_resolution=res, channel_base=32768), seed=0, w_avg_samples=1000)
    batch = 1
target = torch.rand(batch, 3, res, res) * 2 - 1
project(G, target, loss=MSE(), num_steps=1)
stamps = []
t0 = time.perf_counter()
project(G, target, loss=MSE(), num_steps=steps, callback=lambda st: stamps.append(time.perf_counter()))
import os
print(json.dumps({"s_per_step": (stamps[-1] - t0) / steps, "policy": os.environ.get("OMP_WAIT_POLICY"),
                  "threads": torch.get_num_threads()}))
"""


def busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(res: int, steps: int, policy: str) -> float:
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "" if policy == "spin" else "PASSIVE"
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(res), str(steps)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["s_per_step"]


def measure_demo(policy: str) -> float:
    """Seconds of ``wplus demo`` (what ``make demo`` runs) in a fresh process, offline, into a temporary folder."""
    import tempfile

    env = dict(os.environ, WPLUS_OFFLINE="1")
    env["OMP_WAIT_POLICY"] = "" if policy == "spin" else "PASSIVE"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "wplus", "demo", "--outdir", tmp], env=env, capture_output=True,
                       check=True)  # fmt: skip
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load", type=int, default=1, help="competing busy processes")
    ap.add_argument("--steps64", type=int, default=20)
    ap.add_argument("--steps1024", type=int, default=3)
    ap.add_argument("--only", default="64,1024", help="workloads: 64, 1024 and/or demo (the whole `wplus demo`)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    print(f"cores: {os.cpu_count()}, competing busy processes: {args.load}", flush=True)
    for res in args.only.split(","):
        steps = args.steps64 if res == "64" else args.steps1024
        run = (lambda p: measure_demo(p)) if res == "demo" else (lambda p, r=int(res), n=steps: measure(r, n, p))
        for policy in ("spin", "passive"):
            idle = run(policy)
            procs = [busy() for _ in range(args.load)]
            try:
                time.sleep(0.5)
                loaded = run(policy)
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            rows.append({"resolution": res, "policy": policy, "idle_s": idle, "loaded_s": loaded})
            unit = "s" if res == "demo" else "s/step"
            print(
                f"{res:>5}{'' if res == 'demo' else ' px'}  {policy:<8} idle {idle:7.3f} {unit}   "
                f"loaded {loaded:7.3f} {unit}   ratio {loaded / idle:5.2f}x",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
