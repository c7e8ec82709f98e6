"""Keep freed memory in the process while TensorFlow trains (glibc only).

TensorFlow's CPU allocator takes every step's tensors from ``malloc``. glibc
serves blocks over its mmap threshold (128 KiB at first) with fresh ``mmap``
pages and returns trimmed heap to the kernel, so each training step faults
its gradients and activations in again: on MNIST (70,000 digits, the ``mlp``
design) the default settings cost 167 million page faults and 630 s of system
time in a 16-minute run, half the training time. Raising the mmap and trim
thresholds keeps those pages mapped: the same run then faults about 150,000
times and trains twice as fast, for at most ``TRIM_THRESHOLD`` more resident
memory.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Blocks up to this size come from the heap instead of their own mmap.
MMAP_THRESHOLD = 64 * 1024 * 1024
#: Free heap kept before glibc gives memory back to the kernel.
TRIM_THRESHOLD = 256 * 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Tune glibc's ``malloc`` for a training loop; a no-op elsewhere.

    Returns:
        True when the settings were applied (Linux with glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    ok = mallopt(_M_TOP_PAD, 16 * 1024 * 1024) == 1 and ok
    return ok
