"""``Conv2D``: 2-D cross-correlation, NHWC, Keras' 'same'/'valid' padding, then an activation.

Its config check is shared with ``Conv2DTranspose`` (`check_conv`), and its
numpy kernel `conv2d` serves both the float decoder and, with an exact
integer ``matmul`` and an int64 accumulator, the fixed-point one.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from latentpack.layers.activations import ACTIVATIONS, activate
from latentpack.layers.checks import MAX_FILTERS, MAX_KERNEL, MAX_STRIDE, Shape, SpecError, boolean, choice, integer, pair
from latentpack.layers.registry import Checked, LayerType, MatMul, register

__all__ = ["Conv2D", "Convolution", "CONV_KEYS", "check_conv", "conv2d"]

#: Config keys of both convolutions.
CONV_KEYS = frozenset({"filters", "kernel_size", "strides", "padding", "activation", "use_bias"})


def _conv_out(n: int | None, k: int, s: int, padding: str, transpose: bool) -> int | None:
    if n is None:
        return None
    if transpose:
        return n * s if padding == "same" else n * s + max(k - s, 0)
    if padding == "same":
        return -(-n // s)
    return (n - k) // s + 1


def check_conv(ltype: str, config: dict[str, Any], input_shape: Shape, where: str, *, transpose: bool) -> Checked:
    """The check of ``Conv2D`` (``transpose`` False) and ``Conv2DTranspose`` (True, 'same' padding only)."""
    cw = f"{where}/config"
    if len(input_shape) != 3:
        raise SpecError(where, f"{ltype} needs a (height, width, channels) input, got {list(input_shape)}")
    cin = input_shape[2]
    if cin is None:
        raise SpecError(where, f"{ltype} needs a known channel count")
    filters = integer(config.get("filters"), f"{cw}/filters", 1, MAX_FILTERS)
    kh, kw = pair(config.get("kernel_size"), f"{cw}/kernel_size", 1, MAX_KERNEL)
    sh, sw = pair(config.get("strides", 1), f"{cw}/strides", 1, MAX_STRIDE)
    padding = choice(config.get("padding", "same"), f"{cw}/padding", ("same", "valid"))
    act = choice(config.get("activation", "linear"), f"{cw}/activation", ACTIVATIONS)
    use_bias = boolean(config.get("use_bias", True), f"{cw}/use_bias")
    if transpose and padding != "same":
        raise SpecError(f"{cw}/padding", "Conv2DTranspose supports only 'same'")
    weights = [("kernel", (kh, kw, filters, cin) if transpose else (kh, kw, cin, filters))]
    if use_bias:
        weights.append(("bias", (filters,)))
    h = _conv_out(input_shape[0], kh, sh, padding, transpose)
    w = _conv_out(input_shape[1], kw, sw, padding, transpose)
    if (h is not None and h < 1) or (w is not None and w < 1):
        raise SpecError(where, f"input {list(input_shape)} is too small for the kernel")
    normal = {"filters": filters, "kernel_size": [kh, kw], "strides": [sh, sw], "padding": padding,
              "activation": act, "use_bias": use_bias}
    return Checked(normal, (h, w, filters), tuple(weights))


def _same_padding(n: int, k: int, s: int) -> tuple[int, int]:
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None,
    strides: Sequence[int],
    padding: str,
    *,
    matmul: MatMul = np.matmul,
    dtype: type = np.float32,
) -> np.ndarray:
    """2-D cross-correlation, NHWC, with Keras' 'same'/'valid' padding.

    Args:
        x: Input of shape (B, H, W, Cin).
        kernel: Shape (kh, kw, Cin, Cout).
        bias: Shape (Cout,) or None.
        strides: (sh, sw).
        padding: "same" or "valid".
        matmul: How two blocks are multiplied.
        dtype: Accumulator dtype.

    Returns:
        Output of shape (B, Ho, Wo, Cout) in ``dtype``.
    """
    kh, kw, cin, cout = kernel.shape
    sh, sw = strides
    b, h, w, _ = x.shape
    if padding == "same":
        (pt, pb), (pl, pr) = _same_padding(h, kh, sh), _same_padding(w, kw, sw)
        if pt or pb or pl or pr:
            x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    hp, wp = x.shape[1], x.shape[2]
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    out = np.zeros((b, ho, wo, cout), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw, :]
            out += matmul(patch, kernel[i, j])
    if bias is not None:
        out += bias
    return out


class Convolution(LayerType):
    """What ``Conv2D`` and ``Conv2DTranspose`` share: config, check, passes and Keras builder.

    A subclass names its Keras class (``keras_class``), says whether it is
    transposed, and runs its numpy kernel in `convolve`.
    """

    config_keys = CONV_KEYS
    transpose: ClassVar[bool] = False
    keras_class: ClassVar[str]

    def convolve(self, layer: Any, x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, *,
                 matmul: MatMul = np.matmul, dtype: type = np.float32) -> np.ndarray:
        """The layer's convolution (Keras' semantics) with ``matmul`` and a ``dtype`` accumulator."""
        raise NotImplementedError

    def check(self, config: dict[str, Any], input_shape: Shape, where: str) -> Checked:
        return check_conv(self.name, config, input_shape, where, transpose=self.transpose)

    def forward(self, layer: Any, params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        return activate(self.convolve(layer, x, params["kernel"], params.get("bias")), layer.config["activation"])

    def accumulate(self, layer: Any, x: np.ndarray, kernel: np.ndarray, matmul: MatMul) -> np.ndarray:
        return self.convolve(layer, x, kernel, None, matmul=matmul, dtype=np.int64)

    def keras_layer(self, layer: Any) -> Any:
        import keras

        cfg = layer.config
        return getattr(keras.layers, self.keras_class)(
            cfg["filters"], tuple(cfg["kernel_size"]), strides=tuple(cfg["strides"]), padding=cfg["padding"],
            activation=cfg["activation"], use_bias=cfg["use_bias"], name=layer.name)


class Conv2D(Convolution):
    """``(h, w, cin) -> (h', w', filters)``; kernel (kh, kw, cin, filters)."""

    name = "Conv2D"
    keras_class = "Conv2D"
    fan_in_axes = (0, 1, 2)

    def convolve(self, layer: Any, x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, *,
                 matmul: MatMul = np.matmul, dtype: type = np.float32) -> np.ndarray:
        cfg = layer.config
        return conv2d(x, kernel, bias, cfg["strides"], cfg["padding"], matmul=matmul, dtype=dtype)


register(Conv2D())
