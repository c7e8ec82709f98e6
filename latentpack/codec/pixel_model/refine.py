"""Adaptive refinement of the pixel model (format 1.5, ``refinement = "node-context-counts"``).

The network's mixture is good at the shape of a sample's distribution but
blind to what a folder repeats exactly (MNIST's 252/253/254 plateaus, its
64/128/191 greys) and a little miscalibrated after rounding. Each sample is
coded as a path of binary decisions down one fixed tree over 0..255, and
every decision's model probability is refined by adaptive counts that
encoder and decoder keep alike, nothing stored::

    decision at split point `node` (1: "> 0?", 255: "= 255?", else halving 1..254)
      p = model's P(value >= node | interval), 16 bits      (from the integer CDF)
      key = (channel, node, context of W, N, NW, NE, bucket of p)
      q = counts' estimate, interpolated between p's two buckets   -> range coder
      after each wavefront: counts += what its decisions were

The counts start at each bucket's centre (a prior of `PRIOR` decisions), so
an untrained key codes as the model does. Every quantity is an integer
(the per-wavefront sums too), so every machine refines alike.
"""
from __future__ import annotations

import functools
from decimal import Decimal

import numpy as np

from latentpack.codec.pixel_model import luts
from latentpack.codec.pixel_model.network import clamp
from latentpack.formats.elements.pixels import REFINEMENTS

__all__ = ["REFINEMENT", "REFINEMENTS", "NODES", "CONTEXTS", "BUCKETS", "PROB_BITS", "AdaptiveCounts",
           "bucket_centres", "neighbour_contexts", "split_points"]

#: The refinement this version writes; `REFINEMENTS` are those it reads.
REFINEMENT = "node-context-counts"
assert REFINEMENT in REFINEMENTS
#: Split points 1..255 (0 unused); contexts: 4 levels of each of W, N, NW, NE; buckets of the model's p.
NODES, CONTEXTS, BUCKETS = 256, 256, 24
#: Probabilities have 16 fractional bits; interpolation weights and counts 12.
PROB_BITS, WEIGHT_BITS = 16, 12
#: Prior decisions each key starts with, in count units (1 decision = 2**WEIGHT_BITS).
PRIOR = 2 << WEIGHT_BITS
#: A key whose counts pass this total has both halved (rounded up): it keeps adapting.
LIMIT = 1 << 22
#: A neighbour's level: 0 for 0, 1 below 128, 2 below 250, 3 otherwise.
LEVEL_EDGES = (1, 128, 250)


@functools.lru_cache(maxsize=None)
def bucket_centres() -> np.ndarray:
    """``round(2**16 / (1 + exp(-(16 j / 23 - 8))))`` for ``j`` in 0..23 (decimal arithmetic, int64)."""
    ctx = luts._CTX
    one, scale = Decimal(1), Decimal(1 << PROB_BITS)
    out = [luts._round(ctx.divide(scale, one + luts._exp(-(ctx.divide(Decimal(16 * j), Decimal(BUCKETS - 1))
                                                          - Decimal(8)))))
           for j in range(BUCKETS)]
    table = np.array(out, dtype=np.int64)
    table.setflags(write=False)
    return table


def _levels() -> np.ndarray:
    return np.searchsorted(np.array(LEVEL_EDGES), np.arange(256), side="right").astype(np.int64)


_LEVELS = _levels()


def neighbour_contexts(padded: np.ndarray, rr: np.ndarray, cc: np.ndarray, channel: int,
                       origin: tuple[int, int]) -> np.ndarray:
    """``(N * P,)`` context of each sample (image-major): ``64 W + 16 N + 4 NW + NE`` of its levels.

    ``padded`` holds the block's samples at ``origin`` (row, column) with at least one zero row
    above and one zero column each side; neighbours outside the image are 0.
    """
    r0, c0 = origin
    r, c = r0 + rr, c0 + cc
    ctx = np.zeros((padded.shape[0], len(rr)), dtype=np.int64)
    for dr, dc in ((0, -1), (-1, 0), (-1, -1), (-1, 1)):
        ctx = ctx * 4 + _LEVELS[padded[:, r + dr, c + dc, channel]]
    return ctx.reshape(-1)


def split_points(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The tree's split point of each interval ``[lo, hi)``: 1 for [0, 256), 255 for [1, 256), else the middle."""
    return np.where(lo == 0, 1, np.where(hi == 256, 255, (lo + hi) // 2))


class AdaptiveCounts:
    """The counts of one block: ``n1`` (decisions "up") and ``n0`` per key, in 2**-12 units.

    Args:
        channels: Samples per pixel (the channel is part of every key).
    """

    def __init__(self, channels: int):
        centres = bucket_centres()
        up = (centres * PRIOR) >> PROB_BITS
        keys = channels * NODES * CONTEXTS
        self.n1 = np.tile(up, keys)
        self.n0 = np.tile(PRIOR - up, keys)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def refine(self, p: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Refined probabilities of "up" (16 bits, in 1..65535) for model probabilities ``p``.

        Args:
            p: int64 model probabilities, 16 bits.
            base: int64 ``(channel * NODES + node) * CONTEXTS + context`` of each decision.

        Returns:
            (q, the lower bucket's key, the interpolation weight of the upper one, 12 bits).
        """
        c = bucket_centres()
        j = clamp(np.searchsorted(c, p, side="right") - 1, 0, BUCKETS - 2)
        w = clamp(((p - c[j]) << WEIGHT_BITS) // (c[j + 1] - c[j]), 0, 1 << WEIGHT_BITS)
        k0 = base * BUCKETS + j
        e0 = (self.n1[k0] << PROB_BITS) // (self.n0[k0] + self.n1[k0])
        e1 = (self.n1[k0 + 1] << PROB_BITS) // (self.n0[k0 + 1] + self.n1[k0 + 1])
        q = (((1 << WEIGHT_BITS) - w) * e0 + w * e1) >> WEIGHT_BITS
        return clamp(q, 1, (1 << PROB_BITS) - 1), k0, w

    def record(self, k0: np.ndarray, w: np.ndarray, up: np.ndarray) -> None:
        """Keep decisions (``up``: 1 or 0) for `commit`."""
        self._pending.append((k0, w, up))

    def commit(self) -> None:
        """Add every recorded decision to the counts (both buckets, by weight); halve keys past `LIMIT`."""
        if not self._pending:
            return
        k0, w, up = (np.concatenate(a) for a in zip(*self._pending))
        self._pending = []
        low = (1 << WEIGHT_BITS) - w
        up = up.astype(bool)
        for keys, weight in ((k0, low), (k0 + 1, w)):   # integer sums: exact in any order
            np.add.at(self.n1, keys[up], weight[up])
            np.add.at(self.n0, keys[~up], weight[~up])
        touched = np.concatenate([k0, k0 + 1])
        big = touched[self.n0[touched] + self.n1[touched] > LIMIT]   # a key twice is still halved once
        self.n0[big] = (self.n0[big] + 1) >> 1
        self.n1[big] = (self.n1[big] + 1) >> 1
