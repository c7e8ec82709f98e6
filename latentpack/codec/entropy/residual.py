"""Code the pixels a prediction missed: context-modelled range coding (lossless).

Given the decoder's uint8 prediction ``x_hat`` of an image's working pixels
``x``, each sample is coded with a categorical model chosen by a context::

    ctx = (bucket(x_hat) * n + bucket(left)) * n + bucket(up)
    bucket(v) = (v * levels) >> 8          (left/up: already decoded x, 0 at the border)

The model of a context is a row of integer counts over the 256 values of
``x`` (so it is the residual ``x - x_hat``'s distribution, shifted and clipped
to what is possible there). Rows are counted over the whole folder at
compress time and stored with the archive.

Order (encoder and decoder alike), per block of consecutive images:

    for d = 0, 1, ...:              anti-diagonals i + j = d of every image and channel
        ctx of every sample on d    (its left and up neighbours lie on d - 1)
        samples sorted by (ctx, position), coded run by run

so a whole anti-diagonal of a whole block decodes with one call per
context present, not one per sample.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import constriction
import numpy as np

from latentpack.codec.entropy.range_coding import CountModels, decode_runs, encode_runs, quantize_counts

__all__ = [
    "ContextParams",
    "CANDIDATE_PARAMS",
    "MAX_BLOCK_SAMPLES",
    "BlockLayout",
    "sample_contexts",
    "count_table",
    "choose_params",
    "plan_blocks",
    "encode_block",
    "decode_block",
]

#: A block holds at most this many samples (plus one image that alone exceeds it).
MAX_BLOCK_SAMPLES = 1 << 21
#: Context shapes tried by `choose_params`: (prediction levels, neighbour levels).
CANDIDATE_PARAMS = ((1, 1), (4, 1), (8, 2), (16, 2), (16, 4), (32, 4), (64, 4), (32, 8), (64, 8), (128, 8))
#: Samples gathered per bincount when counting.
_COUNT_CHUNK = 1 << 22
#: The stored tables are shuffled and deflated; choosing estimates their size with zlib at this level.
_TABLE_ZLIB_LEVEL = 4


@dataclass(frozen=True)
class ContextParams:
    """How samples are bucketed into contexts.

    Attributes:
        pred_levels: Buckets of the predicted value (1 to 256, a power of two).
        neighbour_levels: Buckets of each decoded neighbour (1 to 16, a power of two).
    """

    pred_levels: int
    neighbour_levels: int

    def __post_init__(self) -> None:
        for name, value, hi in (("pred_levels", self.pred_levels, 256), ("neighbour_levels", self.neighbour_levels, 16)):
            if not (isinstance(value, int) and 1 <= value <= hi and value & (value - 1) == 0):
                raise ValueError(f"`{name}` must be a power of two in [1, {hi}], got {value!r}")

    @property
    def n_contexts(self) -> int:
        return self.pred_levels * self.neighbour_levels**2


def sample_contexts(pred: np.ndarray, left: np.ndarray, up: np.ndarray, params: ContextParams) -> np.ndarray:
    """Context of each sample from its prediction and its decoded left/up neighbours (uint8 arrays)."""
    n = params.neighbour_levels
    p = (pred.astype(np.int32) * params.pred_levels) >> 8
    lb = (left.astype(np.int32) * n) >> 8
    ub = (up.astype(np.int32) * n) >> 8
    return (p * n + lb) * n + ub


def _neighbours(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and up neighbours of every sample of an (H, W, C) array (0 at the border)."""
    left = np.zeros_like(x)
    left[:, 1:] = x[:, :-1]
    up = np.zeros_like(x)
    up[1:] = x[:-1]
    return left, up


def _image_contexts(x: np.ndarray, pred: np.ndarray, params: ContextParams) -> np.ndarray:
    left, up = _neighbours(x)
    return sample_contexts(pred, left, up, params)


def _raw_counts(images: Sequence[np.ndarray], preds: Sequence[np.ndarray], params: ContextParams) -> np.ndarray:
    """(n_contexts, 256) int64 counts; keys are gathered over many images per bincount."""
    counts = np.zeros(params.n_contexts * 256, dtype=np.int64)
    keys: list[np.ndarray] = []
    pending = 0
    for k, (x, p) in enumerate(zip(images, preds)):
        keys.append((_image_contexts(x, p, params).astype(np.int64) * 256 + x).ravel())
        pending += x.size
        if pending >= _COUNT_CHUNK or k == len(images) - 1:
            counts += np.bincount(np.concatenate(keys), minlength=len(counts))
            keys, pending = [], 0
    return counts.reshape(params.n_contexts, 256)


def count_table(images: Sequence[np.ndarray], preds: Sequence[np.ndarray], params: ContextParams) -> np.ndarray:
    """Counts of each value in each context over the images, as stored (uint16, (n_contexts, 256))."""
    return quantize_counts(_raw_counts(images, preds, params))


def choose_params(
    images: Sequence[np.ndarray], preds: Sequence[np.ndarray], total_samples: int,
    candidates: Sequence[tuple[int, int]] = CANDIDATE_PARAMS,
) -> ContextParams:
    """The candidate with the smallest estimated file size (coded samples plus deflated table).

    Args:
        images: A sample of working pixels (H, W, C) uint8.
        preds: Their predictions.
        total_samples: Samples of the whole folder (scales the estimate).
        candidates: (pred_levels, neighbour_levels) pairs to try.
    """
    seen = sum(int(x.size) for x in images) or 1
    best, best_bits = None, np.inf
    for pl, nl in candidates:
        params = ContextParams(pl, nl)
        c = _raw_counts(images, preds, params)
        rows = c.sum(axis=1, keepdims=True)
        nz = c > 0
        data_bits = -(c[nz] * np.log2(c[nz] / np.broadcast_to(rows, c.shape)[nz])).sum() * total_samples / seen
        # the file holds the table deflated; a table of the whole folder has more non-zero entries
        table_bits = 8 * len(zlib.compress(quantize_counts(c).tobytes(), _TABLE_ZLIB_LEVEL))
        table_bits *= min(3.0, float(np.sqrt(total_samples / seen)))
        if data_bits + table_bits < best_bits:
            best, best_bits = params, data_bits + table_bits
    assert best is not None
    return best


def plan_blocks(sizes: Sequence[int], max_samples: int = MAX_BLOCK_SAMPLES) -> np.ndarray:
    """Image index boundaries of blocks of consecutive images, each <= ``max_samples`` samples.

    Returns:
        (n_blocks + 1,) int64, from 0 to ``len(sizes)``.
    """
    bounds = [0]
    acc = 0
    for i, s in enumerate(sizes):
        if acc and acc + s > max_samples:
            bounds.append(i)
            acc = 0
        acc += int(s)
    if len(sizes):
        bounds.append(len(sizes))
    return np.asarray(bounds, dtype=np.int64)


class BlockLayout:
    """Where every sample of a block sits: its anti-diagonal and its neighbours.

    Args:
        shapes: (H, W, C) of each image of the block, in order; samples are
            numbered image after image, each in C order.
    """

    def __init__(self, shapes: Sequence[tuple[int, int, int]]):
        diag, left, up = [], [], []
        start = 0
        self.starts = []
        for h, w, c in shapes:
            n = h * w * c
            idx = np.arange(n, dtype=np.int64).reshape(h, w, c)
            i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            diag.append(np.broadcast_to((i + j)[..., None], (h, w, c)).ravel())
            lft = np.full((h, w, c), -1, dtype=np.int64)
            lft[:, 1:] = idx[:, :-1] + start
            upp = np.full((h, w, c), -1, dtype=np.int64)
            upp[1:] = idx[:-1] + start
            left.append(lft.ravel())
            up.append(upp.ravel())
            self.starts.append(start)
            start += n
        self.size = start
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        d = np.concatenate(diag) if diag else np.zeros(0, np.int64)
        self.order = np.argsort(d, kind="stable")  # by diagonal, then position
        self.diag_bounds = np.searchsorted(d[self.order], np.arange(int(d.max()) + 2 if d.size else 1))
        self.left = np.concatenate(left) if left else np.zeros(0, np.int64)
        self.up = np.concatenate(up) if up else np.zeros(0, np.int64)
        # -1 (outside the image) reads the sentinel slot at the end, which holds 0
        self.left[self.left < 0] = self.size
        self.up[self.up < 0] = self.size

    def split(self, flat: np.ndarray) -> list[np.ndarray]:
        """Cut a block's flat samples back into (H, W, C) images."""
        return [flat[s : s + h * w * c].reshape(h, w, c) for s, (h, w, c) in zip(self.starts, self.shapes)]


def _coding_order(layout: BlockLayout, ctx: np.ndarray) -> np.ndarray:
    """Sample indices in coding order: by diagonal, then context, then position."""
    out = np.empty(layout.size, dtype=np.int64)
    for a, b in zip(layout.diag_bounds[:-1], layout.diag_bounds[1:]):
        idx = layout.order[a:b]
        out[a:b] = idx[np.argsort(ctx[idx], kind="stable")]
    return out


def encode_block(images: Sequence[np.ndarray], preds: Sequence[np.ndarray], params: ContextParams,
                 models: CountModels) -> np.ndarray:
    """Range-code a block of images given their predictions.

    Args:
        images: Working pixels, (H, W, C) uint8 each.
        preds: Their predictions, same shapes.
        params: The context shape.
        models: Models of the stored count table.

    Returns:
        The block's stream as uint32 words.
    """
    layout = BlockLayout([x.shape for x in images])
    x = np.concatenate([np.asarray(a, np.uint8).ravel() for a in images] + [np.zeros(1, np.uint8)])
    p = np.concatenate([np.asarray(a, np.uint8).ravel() for a in preds])
    ctx = sample_contexts(p, x[layout.left], x[layout.up], params)
    order = _coding_order(layout, ctx)
    encoder = constriction.stream.queue.RangeEncoder()
    encode_runs(encoder, x[order], ctx[order], models)
    return np.asarray(encoder.get_compressed(), dtype=np.uint32)


def decode_block(stream: np.ndarray, preds: Sequence[np.ndarray], params: ContextParams,
                 models: CountModels) -> list[np.ndarray]:
    """Decode a block coded by `encode_block` (mirror image, diagonal by diagonal).

    Returns:
        The working pixels, (H, W, C) uint8 each.
    """
    layout = BlockLayout([p.shape for p in preds])
    p = np.concatenate([np.asarray(a, np.uint8).ravel() for a in preds]) if preds else np.zeros(0, np.uint8)
    x = np.zeros(layout.size + 1, dtype=np.uint8)
    decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(stream, dtype=np.uint32))
    for a, b in zip(layout.diag_bounds[:-1], layout.diag_bounds[1:]):
        idx = layout.order[a:b]
        ctx = sample_contexts(p[idx], x[layout.left[idx]], x[layout.up[idx]], params)
        o = np.argsort(ctx, kind="stable")
        x[idx[o]] = decode_runs(decoder, ctx[o], models)
    return layout.split(x[:-1])
