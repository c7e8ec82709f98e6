"""Range coding with categorical models built from integer counts (constriction).

Every probability model latentpack stores is a table of integer counts, one
row per context. A row becomes a `constriction` categorical model through
``counts / counts.sum()`` in float64: one IEEE division per entry, so every
machine builds the very same model from the same integers. Symbols that a
row never saw still get constriction's smallest probability, so any symbol
can be coded (at a cost).

Symbols are coded in *runs*: consecutive symbols sharing one context are
coded with one call, which keeps Python out of the per-symbol loop::

    symbols, contexts -> order -> runs of one context -> RangeEncoder -> uint32 words
    uint32 words -> RangeDecoder -> the same runs -> symbols

The caller decides the order; the decoder must replay it run by run.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import constriction
import numpy as np

from latentpack.formats.errors import ArchiveError, CorruptArchiveError

__all__ = ["MAX_COUNT", "STREAM_ERRORS", "quantize_counts", "CountModels", "encode_runs", "decode_runs", "run_bounds",
           "table_bits", "undecodable"]

#: What constriction (and numpy on what it returns) raises on a stream or a count table
#: that does not decode: its Rust assertions arrive as AssertionError, bad models as ValueError.
STREAM_ERRORS = (AssertionError, ValueError, RuntimeError, IndexError, OverflowError, FloatingPointError)

#: Counts are stored as uint16 and rescaled to at most this total per row.
MAX_COUNT = (1 << 16) - 1


def quantize_counts(counts: np.ndarray, max_total: int = MAX_COUNT) -> np.ndarray:
    """Scale each row of a count table down to at most ``max_total``, keeping seen symbols >= 1.

    Args:
        counts: ``(rows, K)`` non-negative integer counts.
        max_total: Largest row sum after scaling.

    Returns:
        ``(rows, K)`` uint16 counts.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 2:
        raise ValueError(f"`counts` must be 2-D, got shape {counts.shape}")
    k = counts.shape[1]
    if max_total < 2 * k:
        raise ValueError(f"`max_total` must be >= {2 * k}, got {max_total}")
    out = counts.copy()
    totals = counts.sum(axis=1)
    big = totals > max_total
    if np.any(big):
        # room for the symbols bumped from 0 to 1, so the row stays <= max_total
        scaled = (counts[big] * (max_total - k)) // totals[big, None]
        scaled[(counts[big] > 0) & (scaled == 0)] = 1
        out[big] = scaled
    return out.astype(np.uint16)


class CountModels:
    """One constriction categorical model per row of an integer count table.

    Args:
        counts: ``(rows, K)`` uint16 counts. A row of zeros becomes a uniform
            model (no symbol was coded with it).
    """

    def __init__(self, counts: np.ndarray):
        counts = np.asarray(counts)
        if counts.ndim != 2 or counts.shape[1] < 1:
            raise ValueError(f"`counts` must have shape (rows, K), got {counts.shape}")
        self.counts = counts
        self.alphabet = int(counts.shape[1])
        self._models: dict[int, object] = {}

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    def model(self, row: int):
        """The model of one row (built on first use)."""
        m = self._models.get(row)
        if m is None:
            c = self.counts[row].astype(np.float64)
            total = c.sum()
            p = c / total if total > 0 else np.full(self.alphabet, 1.0 / self.alphabet)
            m = constriction.stream.model.Categorical(p, perfect=False)
            self._models[row] = m
        return m


def run_bounds(contexts: np.ndarray) -> np.ndarray:
    """Start indices of the runs of equal values in ``contexts``, plus its length."""
    contexts = np.asarray(contexts)
    if len(contexts) == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.nonzero(contexts[1:] != contexts[:-1])[0] + 1
    return np.concatenate([[0], change, [len(contexts)]]).astype(np.int64)


def encode_runs(encoder, symbols: np.ndarray, contexts: np.ndarray, models: CountModels) -> None:
    """Append ``symbols`` to a RangeEncoder, each coded with ``models[contexts[i]]``, run by run."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int32)
    bounds = run_bounds(contexts)
    for a, b in zip(bounds[:-1], bounds[1:]):
        encoder.encode(symbols[a:b], models.model(int(contexts[a])))


def decode_runs(decoder, contexts: np.ndarray, models: CountModels) -> np.ndarray:
    """Decode as many symbols as ``contexts`` has, run by run (mirror of `encode_runs`)."""
    out = np.empty(len(contexts), dtype=np.int32)
    bounds = run_bounds(contexts)
    for a, b in zip(bounds[:-1], bounds[1:]):
        out[a:b] = decoder.decode(models.model(int(contexts[a])), int(b - a))
    return out


@contextlib.contextmanager
def undecodable(hdf5_path: str, what: str) -> Iterator[None]:
    """Turn a `STREAM_ERRORS` failure inside into a `CorruptArchiveError` naming `hdf5_path`.

    Args:
        hdf5_path: The stream (or table) being decoded, e.g. ``"/latents/stream"``.
        what: What was being decoded, for the message (``"the latent stream"``).

    Raises:
        CorruptArchiveError: ``"HDF5_PATH: WHAT cannot be decoded (AssertionError: ...)"``
            (the caller, or the command, adds the file).
    """
    try:
        with np.errstate(all="ignore"):  # a damaged table must not print a RuntimeWarning
            yield
    except ArchiveError:
        raise
    except STREAM_ERRORS as err:
        detail = (str(err).strip().splitlines() or [""])[0][:200]
        raise CorruptArchiveError(f"{what} cannot be decoded ({type(err).__name__}: {detail})",
                                  hdf5_path=hdf5_path) from None


def table_bits(tables: Sequence[np.ndarray]) -> int:
    """Payload bits of count tables as stored (uint16 entries)."""
    return int(sum(np.asarray(t).size for t in tables)) * 16
