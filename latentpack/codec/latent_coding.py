"""Quantised latents, range-coded with count tables stored in the archive.

::

    y (float32) -> q = rint(y / step) -> symbol = q - qmin -> table of its channel
                -> one range-coded stream, symbols ordered by (table, position)
    stream -> symbols -> q -> y_hat = q * step (float64 multiply, then float32)

A latent's *channel* is its index along the last axis of its tensor. The
coder keeps either one table shared by all channels or one per channel,
whichever the estimate (coded bits plus table bits) says is smaller.
"""
from __future__ import annotations

import constriction
import numpy as np

from latentpack.codec.entropy import CountModels, decode_runs, encode_runs, quantize_counts
from latentpack.formats.schema import QuantizedLatents

__all__ = ["MAX_SYMBOLS", "quantize_latents", "dequantize", "encode_latents", "decode_latents",
           "channel_index"]

#: Largest alphabet of a latent table (qmax - qmin + 1); latents are clipped to it.
MAX_SYMBOLS = 1 << 12
_BITS_PER_COUNT = 16


def quantize_latents(values: np.ndarray, step: float) -> np.ndarray:
    """``rint(values / step)`` as int32, clipped to `MAX_SYMBOLS` values around 0."""
    if not (step > 0 and np.isfinite(step)):
        raise ValueError(f"`step` must be a positive finite number, got {step!r}")
    half = MAX_SYMBOLS // 2 - 1
    return np.clip(np.rint(np.asarray(values, np.float64) / step), -half, half).astype(np.int32)


def dequantize(q: np.ndarray, step: float) -> np.ndarray:
    """``q * step`` computed in float64, returned as float32 (the same on every machine)."""
    return (np.asarray(q, np.float64) * np.float64(step)).astype(np.float32)


def channel_index(offsets: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """The channel of every flat latent: its index along the last axis."""
    c = shapes[:, 2].astype(np.int64) if len(shapes) else np.zeros(0, np.int64)
    counts = np.diff(offsets)
    starts = np.repeat(offsets[:-1], counts)
    return ((np.arange(int(offsets[-1]), dtype=np.int64) - starts) % np.repeat(np.maximum(c, 1), counts)).astype(np.int64)


def _table_cost(symbols: np.ndarray, rows: np.ndarray, n_rows: int, k: int) -> float:
    key = rows * k + symbols
    counts = np.bincount(key, minlength=n_rows * k).reshape(n_rows, k)
    tot = counts.sum(axis=1, keepdims=True)
    nz = counts > 0
    data = -(counts[nz] * np.log2(counts[nz] / np.broadcast_to(tot, counts.shape)[nz])).sum()
    return float(data + counts.size * _BITS_PER_COUNT)


def encode_latents(q: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, step: float) -> QuantizedLatents:
    """Range-code flat quantised latents.

    Args:
        q: Flat int32 quantised latents (the order of ``/latents/values``).
        offsets: (w+1,) int64 offsets of each image's latents.
        shapes: (w, 3) int32 latent shapes.
        step: The quantisation step used.

    Returns:
        The stored form.
    """
    q = np.asarray(q, dtype=np.int64)
    channels = channel_index(offsets, shapes)
    n_channels = int(shapes[:, 2].max()) if len(shapes) else 1
    qmin = int(q.min()) if q.size else 0
    k = (int(q.max()) - qmin + 1) if q.size else 1
    symbols = q - qmin
    shared = _table_cost(symbols, np.zeros_like(channels), 1, k)
    per_channel = _table_cost(symbols, channels, n_channels, k)
    table_of_channel = np.arange(n_channels, dtype=np.int32) if per_channel < shared else np.zeros(n_channels, np.int32)
    n_tables = int(table_of_channel.max()) + 1
    rows = table_of_channel[channels].astype(np.int64)
    counts = np.bincount(rows * k + symbols, minlength=n_tables * k).reshape(n_tables, k)
    counts = quantize_counts(counts)
    order = np.lexsort((np.arange(len(rows)), rows))
    encoder = constriction.stream.queue.RangeEncoder()
    encode_runs(encoder, symbols[order], rows[order], CountModels(counts))
    return QuantizedLatents(step=float(step), qmin=qmin, table_of_channel=table_of_channel, counts=counts,
                        stream=np.asarray(encoder.get_compressed(), dtype=np.uint32))


def decode_latents(coded: QuantizedLatents, offsets: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """Decode the flat int32 quantised latents (mirror of `encode_latents`)."""
    channels = channel_index(offsets, shapes)
    rows = coded.table_of_channel[channels].astype(np.int64)
    order = np.lexsort((np.arange(len(rows)), rows))
    decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(coded.stream, dtype=np.uint32))
    symbols = decode_runs(decoder, rows[order], CountModels(coded.counts))
    out = np.empty(len(rows), dtype=np.int64)
    out[order] = symbols
    return (out + coded.qmin).astype(np.int32)
