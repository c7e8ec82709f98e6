"""Coding a block of equal-shaped images under the pixel model, wavefront by wavefront.

A sample at (r, c) depends on the window above and to its left, so all
samples with the same ``t = (cols + 1) * r + c`` (one wavefront) can be coded
together, across every image of the block::

    for t in wavefronts:             for k in channels:
        features of (every image, every (r, c) on t), channel k  -> IntegerMLP -> mixture
        stage 1: 0, 255 or between        -> one constriction call for the whole wavefront
        then halve the interval of the samples still open, one call per halving

Encoding and decoding run this very loop (the encoder knows the samples,
the decoder fills them in), so both build identical features and CDFs.
"""
from __future__ import annotations

from typing import Iterator

import constriction
import numpy as np

from latentpack.codec.pixel_model.network import (
    ACT_BITS,
    VALUE_UNIT,
    IntegerMLP,
    PixelModelSpec,
    clamp,
    mixture_cdf,
    mixture_params,
)
from latentpack.codec.pixel_model.refine import CONTEXTS, NODES, PROB_BITS, AdaptiveCounts, neighbour_contexts, split_points

__all__ = ["encode_block", "decode_block", "block_features", "training_features", "code_length_bits"]

#: Rows of features run through the network at once (bounds the temporaries).
CHUNK_ROWS = 1 << 16
_FAMILY = constriction.stream.model.Categorical(perfect=False)
#: Probability floor of every value (out of a total of at least 2**31): keeps each value above the
#: range coder's 2**-24 resolution, so the stream's size is the model's code length.
FLOOR = 1 << 11
#: Odd multipliers of the row hash (fixed: the decoder must group rows as the encoder did).
_HASH = np.random.default_rng(0x1A7E).integers(1, 1 << 62, 512, dtype=np.int64) | 1


def _padded(images: np.ndarray, spec: PixelModelSpec) -> np.ndarray:
    return np.pad(images, ((0, 0), (spec.rows, 0), (spec.cols, spec.cols), (0, 0)))


def _wavefronts(h: int, w: int, spec: PixelModelSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    s = spec.wavefront_stride
    rr, cc = np.mgrid[0:h, 0:w]
    t = (s * rr + cc).ravel()
    order = np.argsort(t, kind="stable")
    bounds = np.searchsorted(t[order], np.arange(t.max() + 2))
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        yield rr.ravel()[idx], cc.ravel()[idx]


def block_features(padded: np.ndarray, rr: np.ndarray, cc: np.ndarray, channel: int,
                   spec: PixelModelSpec, shape: tuple[int, int]) -> np.ndarray:
    """Integer inputs ``(N * P, spec.inputs)`` of sample ``channel`` at positions (rr, cc) of every image.

    Rows are image-major: all P positions of image 0, then of image 1, ...
    """
    n = padded.shape[0]
    p = len(rr)
    h, w = shape
    offs = np.array(spec.offsets)
    rows = spec.rows + rr[None, :] + offs[:, :1]
    cols = spec.cols + cc[None, :] + offs[:, 1:]
    win = padded[:, rows, cols, :]                       # (N, n_off, P, C)
    parts = [win.transpose(0, 2, 1, 3).reshape(n * p, -1).astype(np.int64) * VALUE_UNIT]
    if spec.channels > 1:
        earlier = np.zeros((n, p, spec.channels - 1), dtype=np.int64)
        if channel:
            earlier[:, :, :channel] = padded[:, spec.rows + rr, spec.cols + cc, :channel]
        onehot = np.zeros((n * p, spec.channels), dtype=np.int64)
        onehot[:, channel] = 1 << ACT_BITS
        parts += [earlier.reshape(n * p, -1) * VALUE_UNIT, onehot]
    if spec.position:
        pos = np.stack([(rr.astype(np.int64) << ACT_BITS) // h, (cc.astype(np.int64) << ACT_BITS) // w], axis=1)
        parts.append(np.broadcast_to(pos, (n, p, 2)).reshape(n * p, 2))
    return np.concatenate(parts, axis=1)


def training_features(images: np.ndarray, spec: PixelModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Every sample's inputs (float32, the integer inputs / 2**12) and value, for training."""
    n, h, w, c = images.shape
    padded = _padded(images, spec)
    rr, cc = (a.ravel() for a in np.mgrid[0:h, 0:w])
    xs, ys = [], []
    for k in range(c):
        xs.append(block_features(padded, rr, cc, k, spec, (h, w)).astype(np.float32) / (1 << ACT_BITS))
        ys.append(images[:, rr, cc, k].reshape(-1))
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


def _run_network(mlp: IntegerMLP, feats: np.ndarray):
    """Mixture parameters of each distinct row, and every row's index into them.

    Rows are grouped by a wrapping 64-bit hash of their integers; rows that share
    a hash share parameters. The decoder builds the same rows, hence the same
    groups, so even a collision codes correctly (merely a little worse).
    """
    keys = feats @ _HASH[: feats.shape[1]] if len(feats) else np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rows = feats[first]
    outs = [mlp(rows[a:a + CHUNK_ROWS]) for a in range(0, len(rows), CHUNK_ROWS)]
    out = np.concatenate(outs) if outs else np.zeros((0, mlp.spec.outputs), dtype=np.int64)
    return mixture_params(out, mlp.spec.components), inverse.reshape(-1)


def _code_wavefront(coder, params, row: np.ndarray, values: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Encode ``values`` (or decode as many as ``row`` has); returns them and their ideal bits.

    ``params`` are the mixtures of the distinct rows, ``row`` each sample's index into them.
    Stage 1 picks one of {0}, {1..254}, {255}; the middle is then halved until one
    value is left. Each split needs the CDF at one new edge; an interval of m values
    carries a floor of m * FLOOR, so every value keeps a probability of at least FLOOR.
    """
    m = len(params)
    total = mixture_cdf(params, np.full((m, 1), 256))[:, 0]
    ends = mixture_cdf(params, np.tile(np.array([[1, 255]]), (m, 1)))
    probs = np.stack([ends[:, 0] + FLOOR, ends[:, 1] - ends[:, 0] + 254 * FLOOR, total - ends[:, 1] + FLOOR], axis=1)
    probs = probs.astype(np.float64)[row]
    first = _code(coder, probs, None if values is None else np.select([values == 0, values == 255], [0, 2], 1))
    bits = _bits(probs, first) if values is not None else 0.0
    lo = np.where(first == 0, 0, np.where(first == 2, 255, 1)).astype(np.int64)
    hi = np.where(first == 1, 255, lo + 1)
    f_lo, f_hi = ends[row, 0], ends[row, 1]
    active = np.nonzero(first == 1)[0]
    while len(active):
        a_lo, a_hi = lo[active], hi[active]
        mid = (a_lo + a_hi) // 2
        f_mid = mixture_cdf(params[row[active]], mid[:, None])[:, 0]
        probs = np.stack([f_mid - f_lo[active] + (mid - a_lo) * FLOOR, f_hi[active] - f_mid + (a_hi - mid) * FLOOR],
                         axis=1).astype(np.float64)
        right = _code(coder, probs, None if values is None else (values[active] >= mid).astype(np.int64))
        if values is not None:
            bits += _bits(probs, right)
        up = right == 1
        lo[active] = np.where(up, mid, a_lo)
        hi[active] = np.where(up, a_hi, mid)
        f_lo[active] = np.where(up, f_mid, f_lo[active])
        f_hi[active] = np.where(up, f_hi[active], f_mid)
        active = active[hi[active] - lo[active] > 1]
    return lo, bits


def _code(coder, probs: np.ndarray, symbols: np.ndarray | None) -> np.ndarray:
    """One constriction call: encode ``symbols`` under per-row ``probs``, or decode as many."""
    if symbols is not None:
        coder.encode(symbols.astype(np.int32), _FAMILY, probs)
        return symbols
    return np.asarray(coder.decode(_FAMILY, probs), dtype=np.int64)


def _bits(probs: np.ndarray, symbols: np.ndarray) -> float:
    return -float(np.log2(probs[np.arange(len(symbols)), symbols] / probs.sum(axis=1)).sum())


def _code_refined(coder, params, row: np.ndarray, values: np.ndarray | None, counts: AdaptiveCounts,
                  channel: int, context: np.ndarray) -> tuple[np.ndarray, float]:
    """As `_code_wavefront`, with every decision a binary one refined by ``counts`` (format 1.5).

    A sample walks the tree of `refine.split_points` from ``[0, 256)``: one call per round for
    every sample still open; the model's probability of "up" at split ``mid`` of ``[lo, hi)`` is
    ``(G(hi) - G(mid)) / (G(hi) - G(lo))`` with ``G(v) = F(v) + v * FLOOR``; ``context`` is
    each row's `refine.neighbour_contexts`.
    """
    m, n = len(params), len(row)
    edges = mixture_cdf(params, np.tile(np.array([[1, 255, 256]]), (m, 1)))
    lo, hi = np.zeros(n, dtype=np.int64), np.full(n, 256, dtype=np.int64)
    g_lo, g_hi = np.zeros(n, dtype=np.int64), edges[row, 2] + 256 * FLOOR
    active, bits, depth = np.arange(n), 0.0, 0
    while len(active):
        a_lo, a_hi = lo[active], hi[active]
        mid = split_points(a_lo, a_hi)
        if depth == 0:    # [0, 256): split at 1
            g_mid = edges[row, 0] + FLOOR
        elif depth == 1:  # [1, 256): split at 255
            g_mid = edges[row[active], 1] + 255 * FLOOR
        else:
            g_mid = mixture_cdf(params[row[active]], mid[:, None])[:, 0] + mid * FLOOR
        depth += 1
        top = g_hi[active]
        p = clamp(((top - g_mid) << PROB_BITS) // (top - g_lo[active]), 1, (1 << PROB_BITS) - 1)
        q, k0, w = counts.refine(p, (channel * NODES + mid) * CONTEXTS + context[active])
        probs = np.stack([(1 << PROB_BITS) - q, q], axis=1).astype(np.float64)
        up = _code(coder, probs, None if values is None else (values[active] >= mid).astype(np.int64))
        if values is not None:
            bits += _bits(probs, up)
        counts.record(k0, w, up)
        is_up = up == 1
        lo[active] = np.where(is_up, mid, a_lo)
        hi[active] = np.where(is_up, a_hi, mid)
        g_lo[active] = np.where(is_up, g_mid, g_lo[active])
        g_hi[active] = np.where(is_up, top, g_mid)
        active = active[hi[active] - lo[active] > 1]
    counts.commit()
    return lo, bits


def _run_block(coder, images: np.ndarray, mlp: IntegerMLP, decoding: bool) -> float:
    spec = mlp.spec
    n, h, w, c = images.shape
    padded = _padded(images, spec)
    counts = AdaptiveCounts(c) if mlp.refinement else None
    bits = 0.0
    for rr, cc in _wavefronts(h, w, spec):
        for k in range(c):
            params, row = _run_network(mlp, block_features(padded, rr, cc, k, spec, (h, w)))
            known = None if decoding else padded[:, spec.rows + rr, spec.cols + cc, k].reshape(-1).astype(np.int64)
            if counts is None:
                values, b = _code_wavefront(coder, params, row, known)
            else:
                context = neighbour_contexts(padded, rr, cc, k, (spec.rows, spec.cols))
                values, b = _code_refined(coder, params, row, known, counts, k, context)
            bits += b
            if decoding:
                padded[:, spec.rows + rr, spec.cols + cc, k] = values.reshape(n, len(rr))
    if decoding:
        images[...] = padded[:, spec.rows:, spec.cols:spec.cols + w, :]
    return bits


def encode_block(images: np.ndarray, mlp: IntegerMLP) -> tuple[np.ndarray, float]:
    """Range-code ``images`` ``(N, h, w, channels)`` uint8; returns the uint32 stream and its ideal bits."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != mlp.spec.channels or images.dtype != np.uint8:
        raise ValueError(f"`images` must be uint8 (N, h, w, {mlp.spec.channels}), got {images.dtype} {images.shape}")
    encoder = constriction.stream.queue.RangeEncoder()
    bits = _run_block(encoder, images, mlp, decoding=False)
    return np.asarray(encoder.get_compressed(), dtype=np.uint32), bits


def decode_block(stream: np.ndarray, mlp: IntegerMLP, count: int, shape: tuple[int, int]) -> np.ndarray:
    """Decode ``count`` images of ``shape`` (h, w) from a stream written by `encode_block`."""
    h, w = shape
    images = np.zeros((count, h, w, mlp.spec.channels), dtype=np.uint8)
    decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(stream, dtype=np.uint32))
    _run_block(decoder, images, mlp, decoding=True)
    return images


def code_length_bits(images: np.ndarray, mlp: IntegerMLP) -> float:
    """The ideal code length of ``images`` under the integer model (what `encode_block` reports)."""
    return encode_block(images, mlp)[1]
