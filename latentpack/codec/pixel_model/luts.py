"""The lookup tables of the integer pixel model, computed the same way on every machine.

The tables hold rounded values of exp and the logistic sigmoid. They are made
with Python's `decimal` module (software arithmetic, correctly rounded at the
working precision), never with the platform's libm, so a table is the same
integers on every CPU and operating system. docs/FORMAT.md gives each table's
definition and its sha256, and a test checks them.
"""
from __future__ import annotations

import functools
import hashlib
from decimal import ROUND_HALF_EVEN, Context, Decimal

import numpy as np

__all__ = [
    "SIGMOID_BITS",
    "SIGMOID_STEPS",
    "SIGMOID_RANGE",
    "PI_BITS",
    "PI_STEPS",
    "PI_RANGE",
    "INV_SCALE_BITS",
    "LOG_SCALE_STEPS",
    "LOG_SCALE_MIN",
    "LOG_SCALE_MAX",
    "SCALE_UNIT",
    "sigmoid_table",
    "pi_table",
    "inv_scale_table",
    "table_digest",
]

#: sigmoid(t) for t = i / SIGMOID_STEPS, |i| <= SIGMOID_RANGE, times 2**SIGMOID_BITS.
SIGMOID_BITS = 16
SIGMOID_STEPS = 256
SIGMOID_RANGE = 16 * SIGMOID_STEPS
#: Mixture weights: exp(-d) for d = i / PI_STEPS, 0 <= i < PI_RANGE, times 2**PI_BITS.
PI_BITS = 15
PI_STEPS = 64
PI_RANGE = 16 * PI_STEPS
#: 1/s for log-scale j / LOG_SCALE_STEPS in [LOG_SCALE_MIN, LOG_SCALE_MAX], times 2**INV_SCALE_BITS.
INV_SCALE_BITS = 16
LOG_SCALE_STEPS = 64
LOG_SCALE_MIN = -6
LOG_SCALE_MAX = 4
#: A component's scale in pixel units is SCALE_UNIT * exp(log_s).
SCALE_UNIT = 8

_CTX = Context(prec=40, rounding=ROUND_HALF_EVEN)


def _round(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN, context=_CTX))


def _exp(x: Decimal) -> Decimal:
    return _CTX.exp(x)


@functools.lru_cache(maxsize=None)
def sigmoid_table() -> np.ndarray:
    """``round(2**16 / (1 + exp(-i/256)))`` for ``i`` in ``-4096..4096`` (int64, 8,193 entries)."""
    one = Decimal(1)
    scale = Decimal(1 << SIGMOID_BITS)
    steps = Decimal(SIGMOID_STEPS)
    out = [_round(_CTX.divide(scale, one + _exp(_CTX.divide(Decimal(-i), steps))))
           for i in range(-SIGMOID_RANGE, SIGMOID_RANGE + 1)]
    table = np.array(out, dtype=np.int64)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=None)
def pi_table() -> np.ndarray:
    """``round(2**15 * exp(-i/64))`` for ``i`` in ``0..1023`` (int64)."""
    scale = Decimal(1 << PI_BITS)
    out = [_round(scale * _exp(_CTX.divide(Decimal(-i), Decimal(PI_STEPS)))) for i in range(PI_RANGE)]
    table = np.array(out, dtype=np.int64)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=None)
def inv_scale_table() -> np.ndarray:
    """``round(2**16 * exp(-j/64) / 8)`` for ``j`` in ``-384..256`` (int64, 641 entries)."""
    scale = Decimal(1 << INV_SCALE_BITS)
    lo, hi = LOG_SCALE_MIN * LOG_SCALE_STEPS, LOG_SCALE_MAX * LOG_SCALE_STEPS
    out = [_round(_CTX.divide(scale * _exp(_CTX.divide(Decimal(-j), Decimal(LOG_SCALE_STEPS))), Decimal(SCALE_UNIT)))
           for j in range(lo, hi + 1)]
    table = np.array(out, dtype=np.int64)
    table.setflags(write=False)
    return table


def table_digest() -> str:
    """sha256 of the three tables (little-endian int64, in the order sigmoid, pi, inv_scale)."""
    h = hashlib.sha256()
    for table in (sigmoid_table(), pi_table(), inv_scale_table()):
        h.update(table.astype("<i8").tobytes())
    return h.hexdigest()
