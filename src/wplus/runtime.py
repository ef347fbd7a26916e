"""Process-level performance settings for CPU runs.

glibc serves allocations above 32 MiB with fresh ``mmap`` pages and unmaps them on free, so every optimisation step
of a large generator page-faults (and zero-fills) its activations again: at 1024 px that costs more than the
convolutions themselves (benchmarks/projection_speed.py measures it). :func:`tune_cpu_allocator` asks glibc to keep
freed memory in the heap instead, so the next step reuses it. It changes the whole process, so the library never
calls it on its own: the ``wplus`` command does at start-up, and Python users may call it once.

OpenMP worker threads that finish a parallel region spin on the CPU for a while before they sleep (libgomp's default
wait policy). On a machine whose cores other processes also use, the spinning threads take turns away from the ones
with work, and a step gets several times slower than a fair share of the cores would make it (a 64 px batch-4 step:
0.96 s against 0.20 s with two busy neighbours on 2 cores). :func:`prefer_passive_openmp_wait` sets
``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy; OpenMP reads it once, when torch is imported, so
``import wplus`` applies it before it imports torch (it has no effect when torch was imported first).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Iterator

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER = -1  # glibc stores the trim threshold as size_t: -1 becomes SIZE_MAX, i.e. never give the heap top back

__all__ = ["tune_cpu_allocator", "prefer_passive_openmp_wait", "set_cpu_threads", "at_most_cpu_threads"]


def set_cpu_threads(n: int) -> None:
    """Use ``n`` threads for torch's CPU kernels (intra-op) and at most ``n`` for inter-op work.

    By default torch starts one thread per core; on a machine shared with other jobs, fewer threads than cores keep
    a run from competing with itself for the cores it can get (``wplus --threads N``, or ``WPLUS_THREADS``).
    """
    import torch

    if n < 1:
        raise ValueError(f"got {n} threads, expected at least 1")
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(min(n, torch.get_num_interop_threads()))
    except RuntimeError:  # inter-op threads can be set once, before any inter-op work started
        log.debug("inter-op threads already started; left at %d", torch.get_num_interop_threads())


@contextlib.contextmanager
def at_most_cpu_threads(n: int) -> Iterator[None]:
    """Run the block with at most ``n`` intra-op threads, then restore the count it found.

    For small dense linear algebra (a 512 x 512 eigendecomposition), which threads cannot speed up: on a busy shared
    machine MKL's threaded LAPACK spends its time waiting for its own workers. benchmarks/edit_directions.py measured
    SeFa of a config-f generator at 0.6 to 15 s with 2 threads and 0.3 to 0.5 s with one, on 2 cores shared with
    other jobs.
    """
    import torch

    before = torch.get_num_threads()
    if before > n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before > n:
            torch.set_num_threads(before)


def prefer_passive_openmp_wait() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless it is set already, or torch is already imported (then it is too late).

    Returns:
        True when this call set it.
    """
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def tune_cpu_allocator() -> bool:
    """Serve large allocations from the heap and keep freed memory for reuse (glibc on Linux only).

    Returns:
        True when the setting was applied, False where it does not apply (not Linux/glibc) or failed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER))
    log.debug("glibc allocator tuned for reuse: %s", ok)
    return ok
