"""Run a stored decoder with numpy alone (no TensorFlow).

The archive describes its decoder declaratively (see
`latentpack.formats.decoder_spec`); this module executes that description
layer by layer with numpy, following Keras' semantics for every layer in the
allowlist. `extract`, `inspect` and `list` use it, so they start fast and a
stored file can never run code.

    latents (B, gh, gw, c) -> [Dense | Reshape | Conv2D | Conv2DTranspose
                               | UpSampling2D]* -> x_hat in [0, 1]
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from latentpack.formats.decoder_spec import DecoderSpec, LayerSpec

__all__ = ["NumpyDecoder", "activate", "conv2d", "conv2d_transpose"]


def activate(x: np.ndarray, name: str) -> np.ndarray:
    """Apply an allowlisted activation in place where possible."""
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0, out=x)
    if name == "sigmoid":
        # 0.5*(1+tanh(x/2)) == 1/(1+exp(-x)) without overflow warnings.
        np.multiply(x, 0.5, out=x)
        np.tanh(x, out=x)
        x += 1
        x *= 0.5
        return x
    if name == "tanh":
        return np.tanh(x, out=x)
    raise ValueError(f"`name` must be an allowlisted activation, got {name!r}")


def _same_padding(n: int, k: int, s: int) -> tuple[int, int]:
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


MatMul = Callable[[np.ndarray, np.ndarray], np.ndarray]


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

    The fixed-point decoder reuses it with an exact integer ``matmul`` and an
    int64 accumulator.

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


class NumpyDecoder:
    """A validated decoder description plus its weights, runnable with numpy.

    Args:
        spec: The validated description.
        weights: ``{layer_name: {weight_name: array}}``; shapes must match the
            spec (the archive reader has checked them).
    """

    def __init__(self, spec: DecoderSpec, weights: Mapping[str, Mapping[str, np.ndarray]]):
        self.spec = spec
        self._weights: dict[str, dict[str, np.ndarray]] = {}
        for layer in spec.layers:
            got = weights.get(layer.name, {})
            params = {}
            for wname, shape in layer.weight_shapes:
                if wname not in got:
                    raise ValueError(f"`weights` lacks {layer.name}/{wname}")
                arr = np.asarray(got[wname], dtype=np.float32)
                if arr.shape != shape:
                    raise ValueError(f"`weights` {layer.name}/{wname}: expected shape {shape}, got {arr.shape}")
                params[wname] = arr
            self._weights[layer.name] = params

    @property
    def input_shape(self) -> tuple:
        return self.spec.input_shape

    def _run_layer(self, layer: LayerSpec, x: np.ndarray) -> np.ndarray:
        cfg = layer.config
        p = self._weights[layer.name]
        if layer.type == "Flatten":
            return x.reshape(x.shape[0], -1)
        if layer.type == "Reshape":
            return x.reshape((x.shape[0],) + tuple(cfg["target_shape"]))
        if layer.type == "Dense":
            out = x @ p["kernel"]
            if "bias" in p:
                out += p["bias"]
            return activate(out.astype(np.float32, copy=False), cfg["activation"])
        if layer.type == "Conv2D":
            out = conv2d(x, p["kernel"], p.get("bias"), cfg["strides"], cfg["padding"])
            return activate(out, cfg["activation"])
        if layer.type == "Conv2DTranspose":
            out = conv2d_transpose(x, p["kernel"], p.get("bias"), cfg["strides"])
            return activate(out, cfg["activation"])
        if layer.type == "UpSampling2D":
            sh, sw = cfg["size"]
            return np.repeat(np.repeat(x, sh, axis=1), sw, axis=2)
        raise ValueError(f"layer type {layer.type!r} is not in the allowlist")

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        """Decode a batch of latents to x_hat in [0, 1].

        Args:
            latents: Shape ``(B,) + input_shape`` (spatial dims may vary where
                the description leaves them ``None``).

        Returns:
            x_hat of shape (B, H, W, C), float32.
        """
        x = np.asarray(latents, dtype=np.float32)
        expected = self.spec.input_shape
        if x.ndim != len(expected) + 1 or any(e is not None and e != g for e, g in zip(expected, x.shape[1:])):
            raise ValueError(f"`latents` must have shape (B, {list(expected)}), got {x.shape}")
        for layer in self.spec.layers:
            x = self._run_layer(layer, x)
        return x
