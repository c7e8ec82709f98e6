"""Quality metrics on uint8 pixels."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["mse", "psnr"]


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error between two uint8 arrays of one shape."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: expected {a.shape}, got {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` when the arrays are equal."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(peak * peak / m)
