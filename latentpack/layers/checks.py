"""The checks a layer module applies to its config, and the limits they enforce.

Every layer type (`latentpack.layers.registry`) validates its part of a
decoder description with these helpers, so a fault is always reported the
same way: a `SpecError` whose ``where`` names the JSON location
(``layers/3/config/filters``). Pure Python: no numpy, no TensorFlow.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "SpecError",
    "Shape",
    "MAX_UNITS",
    "MAX_FILTERS",
    "MAX_KERNEL",
    "MAX_STRIDE",
    "integer",
    "pair",
    "choice",
    "boolean",
    "dims",
    "config_keys",
    "size",
]

#: Upper bounds that keep a hostile description from asking for huge tensors.
MAX_UNITS = 1 << 24
MAX_FILTERS = 4096
MAX_KERNEL = 15
MAX_STRIDE = 8

Shape = tuple  # of int | None


class SpecError(ValueError):
    """The decoder description is not what FORMAT.md allows.

    Attributes:
        where: JSON-pointer-like location of the fault (``layers/3/config``).
    """

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where


def integer(value: Any, where: str, lo: int, hi: int) -> int:
    """``value`` as an integer in ``[lo, hi]`` (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(where, f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise SpecError(where, f"must be in [{lo}, {hi}], got {value}")
    return value


def pair(value: Any, where: str, lo: int, hi: int) -> tuple[int, int]:
    """An integer or a pair of integers, each in ``[lo, hi]``, as a pair."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SpecError(where, f"must be an integer or a pair of integers, got {value!r}")
    return (integer(value[0], where, lo, hi), integer(value[1], where, lo, hi))


def choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise SpecError(where, f"must be one of {list(allowed)}, got {value!r}")
    return value


def boolean(value: Any, where: str) -> bool:
    """``value`` if it is a boolean."""
    if not isinstance(value, bool):
        raise SpecError(where, "must be a boolean")
    return value


def dims(value: Any, where: str) -> Shape:
    """A shape of 1 to 3 dimensions, each a positive integer or None."""
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 3:
        raise SpecError(where, f"must be a list of 1 to 3 dimensions, got {value!r}")
    out = []
    for i, d in enumerate(value):
        out.append(None if d is None else integer(d, f"{where}/{i}", 1, MAX_UNITS))
    return tuple(out)


def config_keys(config: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    """``config`` if it is an object with no key outside ``allowed``."""
    if not isinstance(config, dict):
        raise SpecError(where, f"must be an object, got {type(config).__name__}")
    unknown = set(config) - allowed
    if unknown:
        raise SpecError(where, f"unknown keys {sorted(unknown)}; allowed {sorted(allowed)}")
    return config


def size(shape: Shape) -> int | None:
    """The number of scalars of ``shape``, or None when a dimension is unknown."""
    n = 1
    for d in shape:
        if d is None:
            return None
        n *= d
    return n
