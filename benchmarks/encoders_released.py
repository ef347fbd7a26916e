"""Seconds per image of the released encoders' forward pass at 256 px on this CPU (random full-size weights).

pSp's GradualStyleEncoder (IR-SE50 + FPN, 18 map2style blocks), e4e's Encoder4Editing and one ReStyle step
(BackboneEncoder, 6 channels), batch 1, with 1 and 2 threads: one warm-up pass, then the median of ``--repeats``.
The machine's load average is printed beside, since other processes on the same cores inflate the figures, and so
are the pass's GFLOP and its rate as a fraction of a float32 matmul probe (projection_speed.matmul_probe, measured
at the same thread count): the ceiling a pass of convolutions can approach on this CPU.

    python benchmarks/encoders_released.py [--repeats 3] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from projection_speed import matmul_probe
from torch.utils.flop_counter import FlopCounterMode

from wplus.models.psp_encoders import EncoderArch, build_encoder


def seconds(net: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        net(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--which", nargs="+", default=["GradualStyleEncoder", "Encoder4Editing", "BackboneEncoder"])
    args = ap.parse_args()
    for etype in args.which:
        arch = EncoderArch(etype, 6 if etype == "BackboneEncoder" else 3, 18)
        net = build_encoder(arch)
        params = sum(p.numel() for p in net.parameters()) / 1e6
        x = torch.rand(1, arch.input_nc, 256, 256) * 2 - 1
        with torch.inference_mode(), FlopCounterMode(display=False) as fc:
            net(x)
        gflop = fc.get_total_flops() / 1e9
        for n in args.threads:
            torch.set_num_threads(n)
            s = seconds(net, x, args.repeats)
            load, probe = os.getloadavg()[0], matmul_probe()
            print(f"{etype:22s} {params:6.1f} M params, 256 px, {n} thread{'s' if n > 1 else ' '}: {s:6.2f} s/image "
                  f"({gflop:.0f} GFLOP, {gflop / s:.0f} GFLOP/s = {gflop / s / probe:.2f} x the {probe:.0f} GFLOP/s "
                  f"matmul probe; load average {load:.1f} on {os.cpu_count()} cores)")  # fmt: skip
        del net


if __name__ == "__main__":
    main()
