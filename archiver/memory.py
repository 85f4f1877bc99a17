"""The C allocator's settings for a process that reads objects of many megabytes (glibc only).

glibc serves an allocation of at least its *mmap threshold* with a mapping of
its own, returned to the system when freed; below it, from an arena, where a
freed block stays in the process. The threshold starts at 128 KiB and, each
time such a mapping is freed, rises to its size (up to 32 MiB): after the
first rollup's lines (16 MiB) are freed, the next ones come from the arenas,
one per thread that allocates (up to 8 per core), and every arena keeps the
largest buffers it ever held. A cold ``get`` at 300,000 calls peaked at
168 MiB instead of 126 MiB for the same work.

:func:`tune` fixes the threshold at 4 MiB: buffers that large go back to the
system when freed; smaller ones, nearly all, are unchanged. (Fewer arenas,
M_ARENA_MAX 2, did the opposite: ``archiver rollup`` of 300,000 calls peaked
at 295 MiB instead of 133 MiB, and 110 MiB with the threshold alone.)
Elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt's parameter (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024


def tune() -> bool:
    """Set glibc's mmap threshold; True when it did."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # not glibc's C library
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
