"""A fixed-point run of the stored decoder: the same uint8 prediction on every machine.

Lossless archives code each image as its difference from the decoder's
prediction, so compressing and extracting must compute that prediction bit
for bit alike. Float32 decoding does not: BLAS kernels sum in different
orders on different CPUs. This decoder uses integers only::

    q (int latents) -> [ acc = x @ W_int + b_int            (exact integers)
                         x = relu(round_shift(acc, ACC-ACT)) ]*  -> acc of the last layer
                    -> prediction = #{k : acc >= thresholds[k]}  (uint8)

* Weights are derived from the stored float32 weights by one IEEE multiply
  and ``rint``: ``W_int = rint(W * m * 2**ACC_BITS)``, where ``m`` is the
  real value of one input unit (the latent step for the first layer,
  ``2**-ACT_BITS`` after). No table of integer weights is stored.
* Activations carry ``ACT_BITS`` fractional bits; rescaling is an arithmetic
  shift with rounding (``(a + 2**(n-1)) >> n``).
* The last activation (sigmoid, tanh, linear or relu) is never evaluated: the
  archive stores 255 integer thresholds on the last layer's pre-activation,
  computed once at compress time, and the prediction counts those passed.
* Products are summed in float64 (fast BLAS) only when a bound computed
  from the weights and the input proves every partial sum is an integer
  below 2**53, where float64 addition is exact in any order; otherwise in
  int64. Either way the result is the same integers.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from latentpack import layers
from latentpack.errors import LatentpackError
from latentpack.formats.decoder_spec import DecoderSpec, LayerSpec

__all__ = [
    "ACT_BITS",
    "ACC_BITS",
    "EXACT_FLOAT_LIMIT",
    "FixedPointDecoder",
    "compute_thresholds",
    "round_shift",
    "check_fixed_point",
    "UnsupportedDecoderError",
]

#: Fractional bits of activations.
ACT_BITS = 12
#: Fractional bits of accumulators (weights carry ``ACC_BITS - ACT_BITS``).
ACC_BITS = 24
#: Integers of magnitude below this are exact in float64.
EXACT_FLOAT_LIMIT = 1 << 53
_HIDDEN_ACTIVATIONS = ("linear", "relu")
_INVERSES: dict[str, Callable[[float], float]] = {
    "sigmoid": lambda p: math.log(p / (1.0 - p)),
    "tanh": math.atanh,
    "linear": lambda p: p,
    "relu": lambda p: p,
}


class UnsupportedDecoderError(LatentpackError, ValueError):
    """A decoder description the fixed-point decoder cannot run (a lossless archive's decoder must be runnable)."""


def round_shift(a: np.ndarray, n: int) -> np.ndarray:
    """``round(a / 2**n)`` on int64, halves rounded up, by an arithmetic shift."""
    if n <= 0:
        return a << (-n)
    return (a + (1 << (n - 1))) >> n


def compute_thresholds(activation: str) -> np.ndarray:
    """The 255 accumulator thresholds of the last layer for one activation.

    ``prediction >= k`` exactly when the last pre-activation ``a`` (scaled by
    ``2**ACC_BITS``) is at least ``thresholds[k-1]``, i.e. when
    ``255 * activation(a) >= k - 0.5`` (rounding as `to_uint8` does, up to
    the ties).

    Args:
        activation: The last layer's activation.

    Returns:
        (255,) int64, non-decreasing.
    """
    inverse = _INVERSES.get(activation)
    if inverse is None:
        raise ValueError(f"`activation` must be one of {sorted(_INVERSES)}, got {activation!r}")
    out = np.empty(255, dtype=np.int64)
    for k in range(1, 256):
        out[k - 1] = math.ceil(inverse((k - 0.5) / 255.0) * (1 << ACC_BITS))
    return out


def check_fixed_point(spec: DecoderSpec) -> None:
    """Refuse descriptions the fixed-point decoder cannot run.

    Hidden layers may use ``linear`` or ``relu`` only; the last layer must
    carry weights (its activation is replaced by the thresholds).

    Raises:
        UnsupportedDecoderError: naming the layer.
    """
    weighted = [layer for layer in spec.layers if layer.weight_shapes]
    if not weighted or weighted[-1] is not spec.layers[-1]:
        raise UnsupportedDecoderError("`spec`: the last layer must be Dense or a convolution for fixed-point decoding")
    for layer in weighted[:-1]:
        act = layer.config.get("activation", "linear")
        if act not in _HIDDEN_ACTIVATIONS:
            raise UnsupportedDecoderError(f"`spec`: layer {layer.name} uses {act!r}; fixed-point decoding needs linear or relu")
    if spec.layers[-1].config.get("activation", "linear") not in _INVERSES:
        raise UnsupportedDecoderError(f"`spec`: last activation {spec.layers[-1].config.get('activation')!r} is not supported")


def _matmul(a: np.ndarray, b: np.ndarray, exact_float: bool) -> np.ndarray:
    if exact_float:
        return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


def _abs_sum_per_output(layer: LayerSpec, kernel: np.ndarray) -> int:
    """Largest sum of |weights| feeding one output unit (a bound for any input)."""
    k = np.abs(kernel).astype(np.float64)
    sums = k.sum(axis=layers.get(layer.type).fan_in_axes)
    return int(sums.max()) if sums.size else 0


class FixedPointDecoder:
    """A validated decoder description run in integers.

    Args:
        spec: The validated description (see `check_fixed_point`).
        weights: ``{layer: {weight: float32 array}}`` as stored.
        step: Real value of one latent unit (latent ``q`` means ``q * step``).
        thresholds: (255,) int64 from `compute_thresholds` (as stored).

    Raises:
        UnsupportedDecoderError: the description uses layers or activations it cannot run.
        ValueError: ``step`` or ``thresholds`` are not what the reader checked (a bug).
    """

    def __init__(
        self,
        spec: DecoderSpec,
        weights: Mapping[str, Mapping[str, np.ndarray]],
        step: float,
        thresholds: np.ndarray,
    ):
        check_fixed_point(spec)
        if not (isinstance(step, float) and math.isfinite(step) and step > 0):
            raise ValueError(f"`step` must be a positive finite float, got {step!r}")
        thresholds = np.asarray(thresholds)
        if thresholds.shape != (255,) or thresholds.dtype != np.int64:
            raise ValueError(f"`thresholds` must be (255,) int64, got {thresholds.shape} {thresholds.dtype}")
        self.spec = spec
        self.step = step
        self.thresholds = thresholds
        self._params: dict[str, tuple[np.ndarray, np.ndarray | None, int]] = {}
        unit = np.float64(step)  # real value of one input unit of the next weighted layer
        for layer in spec.layers:
            if not layer.weight_shapes:
                continue
            p = weights[layer.name]
            kernel = np.asarray(p["kernel"], dtype=np.float32).astype(np.float64)
            k_int = np.rint(kernel * unit * np.float64(1 << ACC_BITS)).astype(np.int64)
            b_int = None
            if "bias" in p:
                b_int = np.rint(np.asarray(p["bias"], dtype=np.float32).astype(np.float64) * (1 << ACC_BITS)).astype(np.int64)
            self._params[layer.name] = (k_int, b_int, _abs_sum_per_output(layer, k_int))
            unit = np.float64(1.0) / np.float64(1 << ACT_BITS)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """Predict uint8 working pixels from integer latents.

        Args:
            q: Integer latents of shape ``(B,) + input_shape``.

        Returns:
            (B, H, W, C) uint8 prediction.
        """
        x = np.asarray(q)
        if x.dtype.kind not in "iu":
            raise ValueError(f"`q` must hold integers, got dtype {x.dtype}")
        x = x.astype(np.int64)
        expected = self.spec.input_shape
        if x.ndim != len(expected) + 1 or any(e is not None and e != g for e, g in zip(expected, x.shape[1:])):
            raise ValueError(f"`q` must have shape (B, {list(expected)}), got {x.shape}")
        bound = int(np.abs(x).max()) if x.size else 0
        last = self.spec.layers[-1]
        for layer in self.spec.layers:
            layer_type = layers.get(layer.type)
            if not layer_type.weighted:
                x = layer_type.integer_forward(layer, x)
                continue
            kernel, bias, abs_sum = self._params[layer.name]
            acc_bound = abs_sum * bound + (int(np.abs(bias).max()) if bias is not None and bias.size else 0)
            exact_float = acc_bound < EXACT_FLOAT_LIMIT
            acc = layer_type.accumulate(layer, x, kernel, lambda a, b: _matmul(a, b, exact_float))
            if bias is not None:
                acc += bias
            if layer is last:
                pred = np.searchsorted(self.thresholds, acc, side="right")
                return pred.astype(np.uint8)
            x = round_shift(acc, ACC_BITS - ACT_BITS)
            if layer.config.get("activation") == "relu":
                np.maximum(x, 0, out=x)
            bound = (acc_bound >> (ACC_BITS - ACT_BITS)) + 1
        raise AssertionError("unreachable: the last layer returns")
