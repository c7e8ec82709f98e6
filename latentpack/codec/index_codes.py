"""Codes generated from an image's index (``--codes index``): nothing stored per image.

The latent at flat position ``f`` of ``/latents`` (image ``i``'s entry ``k``
is at ``f = offsets[i] + k``, which is ``i * y + k`` when every image has
``y`` latents) is::

    s = splitmix64(seed * 0x9E3779B97F4A7C15 + f)              (mod 2**64)
    code = byte0(s) + byte1(s) + byte2(s) + byte3(s) - 510      (in [-510, 510])

a bell-shaped integer (standard deviation about 147.8), the same on every
machine and every numpy version (only uint64 wrap-around arithmetic). Its
real value is ``code * step``; `DEFAULT_STEP` makes the standard deviation
about 1.15.
"""
from __future__ import annotations

import numpy as np

from latentpack.errors import OptionError

__all__ = ["DEFAULT_STEP", "splitmix64", "index_codes"]

#: Real value of one generated unit (a power of two: exact in any float).
DEFAULT_STEP = 2.0**-7
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of ``x + golden`` on uint64 arrays (wrapping)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def index_codes(positions: np.ndarray, seed: int) -> np.ndarray:
    """The int32 codes at the given flat latent positions.

    Args:
        positions: Flat positions ``f``, shape (n,).
        seed: Generator seed, in [0, 2**63).

    Returns:
        (n,) int32 codes.
    """
    if not 0 <= seed < 1 << 63:
        raise OptionError(f"`seed` must be in [0, 2**63), got {seed}")
    f = np.asarray(positions, dtype=np.uint64).reshape(-1)
    with np.errstate(over="ignore"):
        s = splitmix64(np.uint64(seed) * _GOLDEN + f)
    total = np.zeros(s.shape, dtype=np.int64)
    for b in range(4):
        total += ((s >> np.uint64(8 * b)) & np.uint64(0xFF)).astype(np.int64)
    return (total - 510).astype(np.int32)
