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

from dataclasses import dataclass

import constriction
import numpy as np

from latentpack.codec.entropy.range_coding import CountModels, quantize_counts, undecodable
from latentpack.formats.schema import Latents, QuantizedLatents

__all__ = ["CodedLatents", "code_latents", "MAX_SYMBOLS", "CHUNK", "quantize_latents", "dequantize", "encode_latents", "decode_latents",
           "channel_index"]

#: Largest alphabet of a latent table (qmax - qmin + 1); latents are clipped to it.
MAX_SYMBOLS = 1 << 12
#: Latents handled at once where a whole-array temporary would grow with the archive.
CHUNK = 1 << 16
_BITS_PER_COUNT = 16


def quantize_latents(values: np.ndarray, step: float) -> np.ndarray:
    """``rint(values / step)`` as int32, clipped to `MAX_SYMBOLS` values around 0.

    Computed in float64 `CHUNK` values at a time: the only array as long as
    ``values`` that this makes is the int32 result.
    """
    if not (step > 0 and np.isfinite(step)):
        raise ValueError(f"`step` must be a positive finite number, got {step!r}")
    half = MAX_SYMBOLS // 2 - 1
    values = np.asarray(values)
    out = np.empty(values.shape, dtype=np.int32)
    flat, dst = values.reshape(-1), out.reshape(-1)
    for a in range(0, flat.size, CHUNK):
        dst[a : a + CHUNK] = np.clip(np.rint(np.asarray(flat[a : a + CHUNK], np.float64) / step), -half, half)
    return out


def dequantize(q: np.ndarray, step: float) -> np.ndarray:
    """``q * step`` computed in float64, returned as float32 (the same on every machine).

    The float64 products are made `CHUNK` values at a time, so the only array
    as long as ``q`` that this makes is the float32 result.
    """
    q = np.asarray(q)
    out = np.empty(q.shape, dtype=np.float32)
    flat, dst = q.reshape(-1), out.reshape(-1)
    for a in range(0, flat.size, CHUNK):
        dst[a : a + CHUNK] = np.asarray(flat[a : a + CHUNK], np.float64) * np.float64(step)
    return out


def channel_index(offsets: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """The channel of every flat latent, int32: its index along the last axis."""
    offsets = np.asarray(offsets, dtype=np.int64)
    out = np.empty(int(offsets[-1]) if len(offsets) else 0, dtype=np.int32)
    for a, b, channels in _channel_chunks(offsets, shapes):
        out[a:b] = channels
    return out


def _channel_chunks(offsets: np.ndarray, shapes: np.ndarray):
    """``(a, b, channels of latents a..b-1)`` for whole images, about `CHUNK` latents at a time."""
    c = np.maximum(shapes[:, 2].astype(np.int64), 1) if len(shapes) else np.ones(0, np.int64)
    counts = np.diff(offsets)
    i, w = 0, len(counts)
    while i < w:
        j = min(max(int(np.searchsorted(offsets, offsets[i] + CHUNK, side="right")) - 1, i + 1), w)
        a, b = int(offsets[i]), int(offsets[j])
        starts = np.repeat(offsets[i:j], counts[i:j])
        yield a, b, (np.arange(a, b, dtype=np.int64) - starts) % np.repeat(c[i:j], counts[i:j])
        i = j


def _table_cost(counts: np.ndarray) -> float:
    """Estimated bits of coding with these count tables, ``(tables, k)``: the symbols' bits plus the tables'."""
    tot = counts.sum(axis=1, keepdims=True)
    nz = counts > 0
    data = -(counts[nz] * np.log2(counts[nz] / np.broadcast_to(tot, counts.shape)[nz])).sum()
    return float(data + counts.size * _BITS_PER_COUNT)


def _channel_counts(q: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, qmin: int, k: int,
                    n_channels: int) -> np.ndarray:
    """``(n_channels, k)`` int64 counts of each channel's symbols ``q - qmin``, a chunk of images at a time."""
    counts = np.zeros(n_channels * k, dtype=np.int64)
    for a, b, channels in _channel_chunks(offsets, shapes):
        counts += np.bincount(channels * k + (q[a:b].astype(np.int64) - qmin), minlength=n_channels * k)
    return counts.reshape(n_channels, k)


def encode_latents(q: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, step: float) -> QuantizedLatents:
    """Range-code flat quantised latents.

    Symbols are coded table by table (table 0's in flat order, then table
    1's, ...). Besides ``q`` and the stream, memory is one byte a latent for
    its table (none with one shared table) and `CHUNK`-sized temporaries.

    Args:
        q: Flat int32 quantised latents (the order of ``/latents/values``).
        offsets: (w+1,) int64 offsets of each image's latents.
        shapes: (w, 3) int32 latent shapes.
        step: The quantisation step used.

    Returns:
        The stored form.
    """
    q = np.asarray(q).reshape(-1)
    offsets = np.asarray(offsets, dtype=np.int64)
    n_channels = int(shapes[:, 2].max()) if len(shapes) else 1
    qmin = int(q.min()) if q.size else 0
    # at least two symbols: a one-symbol table is not a distribution the range coder accepts
    k = max(2, (int(q.max()) - qmin + 1) if q.size else 1)
    per_channel = _channel_counts(q, offsets, shapes, qmin, k, n_channels)
    shared = per_channel.sum(axis=0, keepdims=True)
    split = _table_cost(per_channel) < _table_cost(shared)
    table_of_channel = np.arange(n_channels, dtype=np.int32) if split else np.zeros(n_channels, np.int32)
    counts = quantize_counts(per_channel if split else shared)
    models = CountModels(counts)
    encoder = constriction.stream.queue.RangeEncoder()
    for table, symbols in _table_runs(q, offsets, shapes, table_of_channel, qmin):
        encoder.encode(symbols, models.model(table))
    return QuantizedLatents(step=float(step), qmin=qmin, table_of_channel=table_of_channel, counts=counts,
                        stream=np.asarray(encoder.get_compressed(), dtype=np.uint32))


def _table_runs(q: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, table_of_channel: np.ndarray, qmin: int):
    """``(table, int32 symbols)`` in coding order: each table's symbols in flat order, a chunk at a time."""
    n_tables = int(table_of_channel.max()) + 1 if len(table_of_channel) else 1
    if n_tables == 1:
        for a in range(0, q.size, 16 * CHUNK):
            yield 0, (q[a : a + 16 * CHUNK] - qmin).astype(np.int32)
        return
    rows = np.empty(q.size, dtype=np.min_scalar_type(n_tables - 1))
    for a, b, channels in _channel_chunks(offsets, shapes):
        rows[a:b] = table_of_channel[channels]
    for table in range(n_tables):
        for a in range(0, q.size, 16 * CHUNK):
            symbols = q[a : a + 16 * CHUNK][rows[a : a + 16 * CHUNK] == table]
            if symbols.size:
                yield table, (symbols - qmin).astype(np.int32)


def decode_latents(coded: QuantizedLatents, offsets: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """Decode the flat int32 quantised latents (mirror of `encode_latents`).

    The stream holds the symbols of table 0 (in flat order), then table 1's,
    and so on; each table's symbols are decoded in one run and scattered to
    the latents whose channel uses it. Besides the int32 result, memory is
    the table of each latent (one byte a latent up to 256 tables) and one
    boolean mask; with one table in use, nothing but the result.

    Raises:
        CorruptArchiveError: the stream or a count table does not decode
            (constriction's assertion), naming ``/latents/stream``.
    """
    with undecodable("/latents/stream", "the latent stream"):
        return _decode_latents(coded, offsets, shapes)


def _decode_latents(coded: QuantizedLatents, offsets: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    offsets = np.asarray(offsets, dtype=np.int64)
    n = int(offsets[-1]) if len(offsets) else 0
    decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(coded.stream, dtype=np.uint32))
    models = CountModels(coded.counts)
    strided = _decode_per_channel(decoder, models, coded.table_of_channel, offsets, shapes, n)
    if strided is not None:
        strided += np.int32(coded.qmin)
        return strided
    table_of_channel = coded.table_of_channel.astype(np.min_scalar_type(max(len(models) - 1, 0)))
    rows = np.empty(n, dtype=table_of_channel.dtype)
    for a, b, channels in _channel_chunks(offsets, shapes):
        rows[a:b] = table_of_channel[channels]
    per_row = np.bincount(rows, minlength=len(models))
    used = np.flatnonzero(per_row)
    if len(used) == 1:
        del rows
        out = np.asarray(decoder.decode(models.model(int(used[0])), n), dtype=np.int32)
    else:
        out = np.empty(n, dtype=np.int32)
        for r in used:
            out[rows == r] = decoder.decode(models.model(int(r)), int(per_row[r]))
    out += np.int32(coded.qmin)
    return out


def _decode_per_channel(decoder, models: CountModels, table_of_channel: np.ndarray, offsets: np.ndarray,
                        shapes: np.ndarray, n: int) -> np.ndarray | None:
    """The symbols when every image has ``c`` channels and each of several tables codes one channel.

    Every image's latents are a whole number of ``c``-channel pixels, so
    latent ``p``'s channel is ``p % c`` and a table's symbols fill one
    column of the ``(n / c, c)`` view, in order: no table index per latent,
    no mask per table. None when that does not hold (the general path then
    decodes).
    """
    if not len(shapes) or n == 0:
        return None
    c = int(shapes[0, 2])
    tables = np.asarray(table_of_channel[:c], dtype=np.int64) if c >= 1 else np.zeros(0, np.int64)
    if c < 2 or not (shapes[:, 2] == c).all() or (offsets % c).any() or len(np.unique(tables)) != c:
        return None
    out = np.empty(n, dtype=np.int32)
    columns = out.reshape(-1, c)
    for r in np.sort(tables):  # the stream holds table 0's symbols, then table 1's, ...
        k = int(np.flatnonzero(tables == r)[0])
        columns[:, k] = decoder.decode(models.model(int(r)), n // c)
    return out


@dataclass
class CodedLatents:
    """Float latents quantised at one step and range-coded.

    Attributes:
        q: Flat int32 integer latents (None when not kept: a lossy archive needs them only to code them).
        values: ``q * step`` as float32 (what the decoder sees).
        latents: The `Latents` to store (coded, no float values).
        stored_bits: Bits of the coded stream.
        step: The step.
    """

    q: np.ndarray | None
    values: np.ndarray
    latents: Latents
    stored_bits: int
    step: float

    @property
    def float_latents(self) -> Latents:
        """The dequantised latents, as a decoder runs them."""
        return Latents(values=self.values, offsets=self.latents.offsets, shapes=self.latents.shapes)


def code_latents(float_latents: Latents, step: float, *, keep_integers: bool = True) -> CodedLatents:
    """Quantise float latents to ``step`` and range-code them.

    ``keep_integers=False`` drops the int32 integers once coded (``q`` is None): 4 bytes a latent less
    while the archive is assembled, for a lossy archive, whose measuring needs only the values.
    """
    q = quantize_latents(float_latents.values, step)
    quantized = encode_latents(q, float_latents.offsets, float_latents.shapes, step)
    latents = Latents(values=np.zeros(0, np.float32), offsets=float_latents.offsets, shapes=float_latents.shapes,
                      quantized=quantized)
    values = dequantize(q, step)
    return CodedLatents(q if keep_integers else None, values, latents, quantized.stored_bits, step)
