"""Projection speed: seconds per W+ step, FLOPs per step, peak memory, and a float32 matmul probe, in one run.

Each configuration runs in its own subprocess so that its peak resident memory (ru_maxrss) is its own.
Usage: python benchmarks/projection_speed.py [--steps 3] [--configs 256x1,256x4,1024x1,1024x4] [--json OUT]
       [--precision fp32,bf16] [--rounds 2] [--nvidia PATH]
``--precision`` takes a list: each configuration then times every precision in turn, ``--rounds`` times over
(fp32, bf16, fp32, bf16, ...), in one process, so the ratio is measured under the same load; config '64' is the
shipped cartoon-faces-64 model. bf16 on a CPU without native bf16 is measured as emulated
(WPLUS_ALLOW_EMULATED_BF16=1 is set for the benchmark).
``--nvidia PATH`` (a stylegan2-ada-pytorch checkout, fetched outside this repository) also times NVIDIA's own
``projector.project`` in the same process, alternating with ours, on NVIDIA's ``Generator`` built from that checkout
and loaded with the same weights (fp32 everywhere: num_fp16_res=0). Its LPIPS VGG-16 (a TorchScript file it would
download) is replaced by a stand-in of the same cost: our VGG-16 on random weights, all 13 convolutions at 256 px,
five unit-normalised taps as LPIPS uses. Its step is a W step with noise optimisation and noise regularisation;
ours is the W+ step our default runs.
Figures are meant as ratios to the probe (GFLOP/s of a 2048^2 float32 matmul on this machine).
Progress goes to stderr (a line every few seconds when that is not a terminal).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import torch

CONFIGS = {256: dict(img_resolution=256, channel_base=16384), 1024: dict(img_resolution=1024, channel_base=32768)}


def matmul_probe(n: int = 2048, reps: int = 10, rounds: int = 3) -> float:
    """GFLOP/s of a float32 n x n matmul: the best of ``rounds`` timings of ``reps`` products (this VM's single
    timings of one round ranged 123-169 GFLOP/s in one quiet hour; the best of three is the machine's rate)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def build_case(config: dict, batch: int, device: str | torch.device = "cpu", loss_resize: int | None = 256):
    """A random generator of ``config`` (StyleGAN2Config keywords), the paper's loss on random VGG weights (nothing
    downloaded) and a random target batch, all on ``device``: the setup every speed figure here measures."""
    from wplus.losses import PerceptualLoss
    from wplus.models.stylegan2 import StyleGAN2Config, random_generator
    from wplus.models.vgg16 import random_vgg16

    G = random_generator(StyleGAN2Config(**config), seed=0, w_avg_samples=1000).to(device)
    loss = PerceptualLoss(random_vgg16(0), resize=loss_resize).to(device)
    res = G.img_resolution
    target = (torch.rand(batch, 3, res, res, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
    return G, loss, target


def seconds_per_step(
    run: Callable[[int, Callable[[object], None]], object],
    steps: int,
    device: str | torch.device = "cpu",
    on_step: Callable[[], object] | None = None,
) -> float:
    """Seconds per step of ``run(num_steps, callback)`` (a projection or a tuning) after one warm-up step.

    The clock runs from the first step's callback to the last one's (one step alone: from the call), so set-up and
    the final render are left out. On CUDA each stamp waits for the queued kernels first.
    """
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else None
    run(1, lambda _: None)  # warm-up (allocations, oneDNN / cuDNN algorithm choice)
    stamps: list[float] = []

    def stamp(_: object) -> None:
        if sync is not None:
            sync()
        stamps.append(time.perf_counter())
        if on_step is not None:
            on_step()

    if sync is not None:
        sync()
    t0 = time.perf_counter()
    run(steps, stamp)
    return (stamps[-1] - stamps[0]) / (steps - 1) if steps > 1 else stamps[0] - t0


def build_shipped_case(batch: int, loss_resize: int | None = 256):
    """The shipped cartoon-faces-64 generator with the paper's loss on random VGG weights and a random target."""
    from wplus.losses import PerceptualLoss
    from wplus.models.vgg16 import random_vgg16
    from wplus.shipped import load_shipped_generator

    G = load_shipped_generator()
    loss = PerceptualLoss(random_vgg16(0), resize=loss_resize)
    target = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return G, loss, target


class LpipsVggStandIn(torch.nn.Module):
    """What NVIDIA's projector calls as ``vgg16(images, resize_images=False, return_lpips=True)``, at the same cost:
    images in [0, 255] through all 13 convolutions of a random VGG-16; the five ReLU taps LPIPS reads, each
    normalised over channels and scaled by 1/sqrt(size), concatenated. Only the time is meant to match."""

    TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")

    def __init__(self) -> None:
        super().__init__()
        from wplus.models.vgg16 import random_vgg16

        self.vgg = random_vgg16(0)

    def forward(self, x: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        from wplus.models.vgg16 import imagenet_normalize

        feats = self.vgg(imagenet_normalize(x / 255), taps=self.TAPS)
        parts = [f / f.square().sum(1, keepdim=True).add(1e-10).sqrt() / f[0].numel() ** 0.5 for f in feats.values()]
        return torch.cat([p.flatten(1) for p in parts], 1)


def nvidia_runner(nvidia: str, G: torch.nn.Module, target: torch.Tensor) -> Callable:
    """``run(num_steps, callback)`` for NVIDIA's ``projector.project`` on NVIDIA's Generator with ``G``'s weights."""
    import contextlib
    import copy
    import types

    sys.path.insert(0, nvidia)
    import projector  # NVIDIA's code, outside this repository
    from training.networks import Generator as NvidiaGenerator

    cfg = G.config
    Gn = NvidiaGenerator(z_dim=G.z_dim, c_dim=0, w_dim=G.w_dim, img_resolution=G.img_resolution, img_channels=3,
                         mapping_kwargs={"num_layers": cfg.mapping_layers},
                         synthesis_kwargs={"channel_base": cfg.channel_base, "channel_max": cfg.channel_max,
                                           "architecture": cfg.architecture, "num_fp16_res": 0,
                                           "conv_clamp": None}).eval()  # fmt: skip
    Gn.load_state_dict(G.state_dict())
    stand_in = LpipsVggStandIn()
    # The projector downloads its VGG and loads it with torch.jit.load: answer both with the stand-in, offline.
    projector.dnnlib.util.open_url = lambda *a, **k: contextlib.nullcontext()
    projector.torch = types.SimpleNamespace(**{**vars(torch), "jit": types.SimpleNamespace(load=lambda f: stand_in)})
    target_255 = ((target[0].clamp(-1, 1) + 1) * 127.5).detach()

    def run(num_steps: int, callback: Callable[[object], None]) -> None:
        def say(*args: object) -> None:
            if str(args[0]).startswith("step"):
                callback(None)

        projector.print = say  # its per-step log line (verbose=True) is our step stamp
        projector.project(copy.deepcopy(Gn), target_255, num_steps=num_steps, w_avg_samples=10000, verbose=True,
                          device=torch.device("cpu"))  # fmt: skip

    return run


def run_one(
    resolution: int,
    batch: int,
    steps: int,
    tune: bool,
    precisions: tuple[str, ...] = ("fp32",),
    rounds: int = 1,
    nvidia: str | None = None,
) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from wplus.runtime import tune_cpu_allocator

    if tune:
        tune_cpu_allocator()  # what the wplus command does at start-up

    from wplus.progress import progress
    from wplus.projection.project import project

    G, loss, target = build_shipped_case(batch) if resolution == 64 else build_case(CONFIGS[resolution], batch)
    runs = {
        p: (lambda n, cb, p=p: project(G, target, loss=loss, num_steps=n, callback=cb, precision=p)) for p in precisions
    }
    if nvidia is not None and batch == 1:  # NVIDIA's projector embeds one image at a time: batch-1 rows only
        runs["nvidia"] = nvidia_runner(nvidia, G, target)
    # Phases: the timed steps, the counted step and the counted tail, one bar unit each step (the warm-up: none).
    timed: dict[str, list[float]] = {p: [] for p in runs}
    with progress(steps * len(runs) * rounds + 2, desc=f"  {resolution}px batch {batch}", unit="step") as bar:
        for _ in range(rounds):
            for name, run in runs.items():  # alternating: the same load for each
                timed[name].append(seconds_per_step(run, steps, on_step=bar.update))
        per_step = min(timed[precisions[0]])
        with FlopCounterMode(display=False) as fc:
            project(G, target, loss=loss, num_steps=1)
        bar.update()
        # One projection step = one forward + backward + Adam update; final render/metrics add one forward each,
        # so count only the step: total minus the no-grad tail measured separately.
        with FlopCounterMode(display=False) as tail:
            project(G, target, loss=loss, num_steps=0)
        bar.update()
    flops = fc.get_total_flops() - tail.get_total_flops()
    nvidia_gflop = None
    if "nvidia" in runs:  # one NVIDIA step: a 2-step run minus a 1-step run (its w_avg set-up cancels)
        counts = []
        for n in (1, 2):
            with FlopCounterMode(display=False) as nv:
                runs["nvidia"](n, lambda _: None)
            counts.append(nv.get_total_flops())
        nvidia_gflop = (counts[1] - counts[0]) / 1e9
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(
        resolution=resolution,
        batch=batch,
        tuned_allocator=tune,
        s_per_step=per_step,
        gflop_per_step=flops / 1e9,
        achieved_gflops=flops / 1e9 / per_step,
        peak_rss_mib=peak_mib,
        s_per_step_by_precision={p: min(v) for p, v in timed.items()},
        nvidia_gflop_per_step=nvidia_gflop,
        s_per_step_rounds=timed,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--configs", default="256x1,256x4,1024x1,1024x4")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--no-tune", action="store_true", help="leave glibc's allocator as it is (to compare)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--precision", default="fp32", help="comma-separated precisions to time in turn (fp32,bf16)")
    ap.add_argument("--rounds", type=int, default=1, help="times each precision is measured, alternating")
    ap.add_argument("--nvidia", help="a stylegan2-ada-pytorch checkout: time its projector too, alternating")
    args = ap.parse_args()
    precisions = tuple(args.precision.split(","))
    if "bf16" in precisions:
        import os

        from wplus.precision import ALLOW_EMULATED_ENV

        os.environ[ALLOW_EMULATED_ENV] = "1"  # measure the emulated path too (the library refuses it otherwise)
    if args.one:
        res, batch = (int(v) for v in args.one.split("x"))
        print(json.dumps(run_one(res, batch, args.steps, not args.no_tune, precisions, args.rounds, args.nvidia)))
        return
    probe = matmul_probe()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 matmul probe: {probe:.1f} GFLOP/s")
    rows = []
    for cfg in args.configs.split(","):
        cmd = [sys.executable, __file__, "--one", cfg, "--steps", str(args.steps)]
        cmd += ["--no-tune"] if args.no_tune else []
        cmd += ["--precision", args.precision, "--rounds", str(args.rounds)]
        cmd += ["--nvidia", args.nvidia] if args.nvidia else []
        print(
            f"  measuring {cfg} (generator, warm-up, {args.steps} timed steps, FLOP count) ...",
            file=sys.stderr,
            flush=True,
        )
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)  # progress: stderr, passed through
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["step_x_probe"] = r["s_per_step"] * probe  # GFLOP-equivalents of probe time per step
        r["efficiency"] = r["achieved_gflops"] / probe
        rows.append(r)
        print(
            f"{r['resolution']:5d}px batch {r['batch']}: {r['s_per_step']:.3f} s/step "
            f"({r['s_per_step'] / r['batch']:.3f} s/image-step), {r['gflop_per_step']:.1f} GFLOP/step, "
            f"{r['achieved_gflops']:.1f} GFLOP/s = {r['efficiency']:.2f} x probe, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
        if len(r["s_per_step_by_precision"]) > 1:
            by = r["s_per_step_by_precision"]
            shown = ", ".join(f"{p} {by[p]:.3f} s/step ({by[p] / by[precisions[0]]:.2f}x)" for p in by)
            print(f"       best of {args.rounds} alternating rounds: {shown}", flush=True)
        if r.get("nvidia_gflop_per_step"):
            by, nv_gf = r["s_per_step_by_precision"], r["nvidia_gflop_per_step"]
            print(
                f"       NVIDIA's step: {nv_gf:.1f} GFLOP at {nv_gf / by['nvidia'] / probe:.2f} x probe; "
                f"ours {by['nvidia'] / r['s_per_step']:.2f}x faster. 3x faster at our FLOPs would need "
                f"{r['gflop_per_step'] / (by['nvidia'] / 3) / probe:.2f} x probe",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"probe_gflops": probe, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
