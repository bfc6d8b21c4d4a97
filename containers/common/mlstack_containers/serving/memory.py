"""glibc's allocator set up for the workers (:func:`reuse_freed_memory`); no numpy here, so
that ``python -m mlstack_containers.serving`` can call it before anything starts a thread."""

from __future__ import annotations

import ctypes

# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
KEEP_FREE_HEAP = 256 * 1024 * 1024


def reuse_freed_memory() -> bool:
    """Let each worker reuse the memory of a finished request instead of returning it.

    A 6 MB batch allocates tens of MB of short-lived buffers (the body, the parsed matrix, the
    predictions, the response text). glibc gives every buffer above its mmap threshold its own
    ``mmap`` and unmaps it on free, so each request faulted in ~10,000 fresh pages, which the
    kernel zeroes: ~20 ms of system time in a ~95 ms request, and formatting 1 M predictions
    took 40 ms of CPU instead of 16 (bench/README.md). Buffers up to 32 MiB (the most glibc
    allows) now come from the heap, and up to 256 MiB of freed heap is kept for the next
    request, so a worker's memory stays at its peak instead of going back and forth.
    One arena for all of a worker's threads: glibc gives each thread that allocates its own
    arena, made of 64 MiB heaps that are unmapped whole once empty, whatever the trim
    threshold, so a 6 MB batch answered on a pool thread faulted in ~6,000 fresh pages again
    (~20 ms of system time of a ~130 ms request; bench/README.md, issue 26); the threads of a
    worker take turns on Python's lock anyway. An arena made before the limit stays in use
    (a worker's thread may take over one that a thread of the master made, such as numpy's
    OpenBLAS threads started on import), so ``python -m mlstack_containers.serving`` calls
    this before importing anything else, and the workers inherit it. False where the C
    library is not glibc (no ``mallopt``): its defaults then stay.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        and mallopt(_M_TRIM_THRESHOLD, KEEP_FREE_HEAP)
        and mallopt(_M_ARENA_MAX, 1)
    )
