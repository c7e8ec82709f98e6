"""(1.5) The record of images added to an archive after it was written (``latentpack add``).

The in-memory value of the ``/additions`` element (`latentpack.formats.elements.additions`);
numpy only, re-exported by `latentpack.formats.schema`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Additions"]


@dataclass
class Additions:
    """(1.5) The batches of images added to an archive after it was written (``latentpack add``).

    Batch ``k`` is the rows ``first[k]`` to ``first[k+1] - 1`` (the last batch
    runs to the last row); the rows before ``first[0]`` are the images the
    archive was written with.

    Attributes:
        first: ``(b,)`` int64 row of each batch's first image, increasing.
        created: When each batch was added (ISO 8601, UTC).
        writer: The software that added each batch (``"latentpack 0.2.0"``).
        sha256_all: ``(b, 32)`` uint8: each batch's sha256 of the concatenated
            full 32-byte digests of its images, in archive order.
    """

    first: np.ndarray
    created: list[str]
    writer: list[str]
    sha256_all: np.ndarray

    @property
    def batches(self) -> int:
        return int(len(self.first))

    def batch_of(self, w: int) -> np.ndarray:
        """``(w,)`` int64: the batch of each row, or -1 for the images the archive was written with."""
        return np.searchsorted(np.asarray(self.first, dtype=np.int64), np.arange(w), side="right") - 1

    def bounds(self, w: int) -> list[tuple[int, int]]:
        """``(start, end)`` rows of each batch."""
        first = [int(v) for v in self.first]
        return list(zip(first, first[1:] + [w]))
