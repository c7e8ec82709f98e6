"""The activations a layer's config may name, applied with numpy.

A layer with an ``activation`` key (Dense, Conv2D, Conv2DTranspose) holds the
name as data; this table is the allowlist and the numpy implementation.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["ACTIVATIONS", "activate"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 0.5*(1+tanh(x/2)) == 1/(1+exp(-x)) without overflow warnings.
    np.multiply(x, 0.5, out=x)
    np.tanh(x, out=x)
    x += 1
    x *= 0.5
    return x


_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0, out=x),
    "sigmoid": _sigmoid,
    "tanh": lambda x: np.tanh(x, out=x),
}
#: The allowlisted activation names, in the order error messages list them.
ACTIVATIONS = tuple(_FUNCTIONS)


def activate(x: np.ndarray, name: str) -> np.ndarray:
    """Apply an allowlisted activation in place where possible.

    Raises:
        ValueError: ``name`` is not allowlisted (the description was validated, so a bug).
    """
    function = _FUNCTIONS.get(name)
    if function is None:
        raise ValueError(f"`name` must be an allowlisted activation, got {name!r}")
    return function(x)
