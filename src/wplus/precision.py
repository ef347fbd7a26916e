"""Arithmetic precision of a run's generator and loss: float32, or bfloat16 under autocast where the machine has it.

``precision='bf16'`` runs the generator's forward pass and the loss under ``torch.autocast(dtype=torch.bfloat16)``
(convolutions and matmuls in bf16, reductions in fp32); what is optimised (the latent, noise maps, a tuning's
factors) and the optimiser's state stay float32, and the final render of a projection is float32 too.

bf16 pays only where the hardware computes it: CUDA GPUs that support it, and CPUs with AVX512-BF16 or AMX. On any
other CPU (AVX2 machines, AVX-512 without BF16) oneDNN emulates it and a step is slower than in fp32, so forcing
``'bf16'`` there is refused with one line, unless ``WPLUS_ALLOW_EMULATED_BF16=1`` (benchmarks measure the emulated
path with it). ``'auto'`` picks bf16 where it is native and a short probe found a bf16 convolution faster than the
fp32 one (measured once per process), else fp32. fp32 is the default.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Iterator
from typing import Literal

import torch

from wplus.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "Precision",
    "PRECISIONS",
    "ALLOW_EMULATED_ENV",
    "cpu_bf16_support",
    "resolve_precision",
    "autocast",
]

Precision = Literal["fp32", "bf16", "auto"]
PRECISIONS = ("fp32", "bf16", "auto")
ALLOW_EMULATED_ENV = "WPLUS_ALLOW_EMULATED_BF16"
_NATIVE_CAPABILITIES = ("AVX512_BF16", "AMX", "AVX512_AMX")  # torch.backends.cpu.get_cpu_capability() values
_NATIVE_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=1)
def cpu_bf16_support() -> str | None:
    """What gives this CPU native bf16 ('AVX512_BF16', 'AMX', a /proc/cpuinfo flag), or None (emulated).

    ``torch.backends.cpu.get_cpu_capability()`` names the widest vector ISA torch dispatches to (torch 2.13 reports
    'DEFAULT', 'AVX2', 'AVX512' and, on newer CPUs, 'AVX512_BF16' / 'AMX'); /proc/cpuinfo's flags say it on Linux
    whatever torch's kernels use (oneDNN's convolutions and matmuls check the ISA themselves)."""
    cap = torch.backends.cpu.get_cpu_capability().upper()
    if any(c in cap for c in _NATIVE_CAPABILITIES):
        return cap
    flags = _cpuinfo_flags() & set(_NATIVE_FLAGS)
    return sorted(flags)[0] if flags else None


def _cpu_isa() -> str:
    return torch.backends.cpu.get_cpu_capability()


@functools.lru_cache(maxsize=1)
def _bf16_probe_faster() -> bool:
    """Whether a channels_last 3x3 convolution (256 ch, 32 px, batch 2: a mid-size synthesis layer) runs faster
    under bf16 autocast than in fp32 here: best of 3 each, after a warm-up. Measured once per process (~0.1 s)."""
    x = torch.randn(2, 256, 32, 32).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3)

    def best(bf16: bool) -> float:
        times = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            torch.nn.functional.conv2d(x, w, padding=1)
            for _ in range(3):
                t = time.perf_counter()
                torch.nn.functional.conv2d(x, w, padding=1)
                times.append(time.perf_counter() - t)
        return min(times)

    fp32, bf16 = best(False), best(True)
    log.info("bf16 probe: conv %.2f ms in bf16 against %.2f ms in fp32", bf16 * 1e3, fp32 * 1e3)
    return bf16 < 0.9 * fp32


def _allow_emulated() -> bool:
    return os.environ.get(ALLOW_EMULATED_ENV, "").strip().lower() in ("1", "true", "yes")


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> Literal["fp32", "bf16"]:
    """The precision a run on ``device`` uses for ``precision`` ('fp32', 'bf16' or 'auto').

    Raises:
        ConfigError: an unknown name; 'bf16' on a CPU without native bf16 (unless ``WPLUS_ALLOW_EMULATED_BF16=1``)
            or on a CUDA device that does not support it; 'bf16' on another device type.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"got precision={precision!r}, expected one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return "fp32"
    kind = torch.device(device).type
    if kind == "cuda":
        ok = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not ok:
            raise ConfigError("this GPU does not support bf16; use --precision fp32")
        return "bf16" if ok else "fp32"
    if kind != "cpu":
        if precision == "bf16":
            raise ConfigError(f"bf16 runs on CPU and CUDA devices, not {kind}; use --precision fp32")
        return "fp32"
    native = cpu_bf16_support()
    if precision == "auto":
        return "bf16" if native is not None and _bf16_probe_faster() else "fp32"
    if native is None and not _allow_emulated():
        raise ConfigError(
            f"this CPU has no native bf16 ({_cpu_isa()} only): bf16 would be slower here; use --precision fp32"
        )
    return "bf16"


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str = "cpu") -> Iterator[None]:
    """bf16 autocast on ``device`` for a resolved ``precision`` 'bf16'; nothing for 'fp32'."""
    if precision != "bf16":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        yield
