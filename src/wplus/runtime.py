"""Process-level performance settings for CPU runs.

glibc serves allocations above 32 MiB with fresh ``mmap`` pages and unmaps them on free, so every optimisation step
of a large generator page-faults (and zero-fills) its activations again: at 1024 px that costs more than the
convolutions themselves (benchmarks/projection_speed.py measures it). :func:`tune_cpu_allocator` asks glibc to keep
freed memory in the heap instead, so the next step reuses it. It changes the whole process, so the library never
calls it on its own: the ``wplus`` command does at start-up, and Python users may call it once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER = -1  # glibc stores the trim threshold as size_t: -1 becomes SIZE_MAX, i.e. never give the heap top back

__all__ = ["tune_cpu_allocator"]


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
