"""``Conv2DTranspose``: transposed 2-D convolution with Keras' 'same' padding, then an activation."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from latentpack.layers.conv2d import Convolution
from latentpack.layers.registry import MatMul, register

__all__ = ["Conv2DTranspose", "conv2d_transpose"]


def conv2d_transpose(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None,
    strides: Sequence[int],
    *,
    matmul: MatMul = np.matmul,
    dtype: type = np.float32,
) -> np.ndarray:
    """Transposed 2-D convolution with Keras' 'same' padding (output = input * stride).

    It is the gradient of `conv2d` with 'same' padding: every input pixel
    scatters ``x[b, i, j] @ kernel[di, dj].T`` to ``(i*s + di, j*s + dj)`` of a
    full canvas, which is then cropped by the forward convolution's padding.

    Args:
        x: Input of shape (B, H, W, Cin).
        kernel: Shape (kh, kw, Cout, Cin) (Keras' layout).
        bias: Shape (Cout,) or None.
        strides: (sh, sw).
        matmul: How two blocks are multiplied.
        dtype: Accumulator dtype.

    Returns:
        Output of shape (B, H*sh, W*sw, Cout) in ``dtype``.
    """
    kh, kw, cout, _ = kernel.shape
    sh, sw = strides
    b, h, w, _ = x.shape
    full = np.zeros((b, (h - 1) * sh + kh, (w - 1) * sw + kw, cout), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            full[:, i : i + (h - 1) * sh + 1 : sh, j : j + (w - 1) * sw + 1 : sw, :] += matmul(x, kernel[i, j].T)
    ho, wo = h * sh, w * sw
    pt = max(kh - sh, 0) // 2
    pl = max(kw - sw, 0) // 2
    out = full[:, pt : pt + ho, pl : pl + wo, :]
    if bias is not None:
        out = out + bias
    return np.ascontiguousarray(out, dtype=dtype)


class Conv2DTranspose(Convolution):
    """``(h, w, cin) -> (h * sh, w * sw, filters)``; kernel (kh, kw, filters, cin); 'same' padding only."""

    name = "Conv2DTranspose"
    keras_class = "Conv2DTranspose"
    transpose = True
    fan_in_axes = (0, 1, 3)

    def convolve(self, layer: Any, x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, *,
                 matmul: MatMul = np.matmul, dtype: type = np.float32) -> np.ndarray:
        return conv2d_transpose(x, kernel, bias, layer.config["strides"], matmul=matmul, dtype=dtype)


register(Conv2DTranspose())
