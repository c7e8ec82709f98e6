"""The pixel model's network, run in integers: causal features -> MLP -> integer CDFs.

Everything here is integer arithmetic (int64, or float64 where a bound proves
every partial sum is an integer below 2**53, where float64 is exact in any
order), so every machine computes the very same CDFs::

    window of decoded samples (value * 16: 12 fractional bits)
      -> [ acc = x @ W + b ;  x = relu(round_shift(acc, shift)) ]*  -> 3K outputs
      -> pi_k  = PI[(max logit - logit_k) >> 6]            (mixture weights)
         mu_k  = 256 * m_k                                 (mean, pixel units)
         inv_k = INV[round_shift(log_s_k, 6)]               (1 / scale)
      -> F(v) = sum_k pi_k * SIG[round_shift(((v << 12) - 2048 - mu_k) * inv_k, 20)]

``F(v)`` is the mixture's CDF at ``v - 0.5`` (``F(0) = 0``, ``F(256)`` the
total); sample ``v`` gets probability ``F(v + 1) - F(v) + 1`` out of
``F(256) + 256``: every value can be coded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from latentpack.codec.pixel_model import luts

__all__ = [
    "ACT_BITS",
    "EXACT_FLOAT_LIMIT",
    "PixelModelSpec",
    "DenseInt",
    "IntegerMLP",
    "round_shift",
    "clamp",
    "mixture_cdf",
    "feature_count",
]

#: Fractional bits of inputs, activations and outputs.
ACT_BITS = 12
#: Integers of magnitude below this are exact in float64.
EXACT_FLOAT_LIMIT = 1 << 53
#: A sample value v in 0..255 enters the network as v * VALUE_UNIT (v / 256 with ACT_BITS bits).
VALUE_UNIT = 1 << (ACT_BITS - 8)


def clamp(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``a`` limited to ``lo..hi`` (as `np.clip`, without its per-call overhead on small integer arrays)."""
    return np.minimum(np.maximum(a, lo), hi)


def round_shift(a: np.ndarray, n: int) -> np.ndarray:
    """``round(a / 2**n)`` on int64, halves rounded up, by an arithmetic shift."""
    if n <= 0:
        return a << (-n)
    return (a + (1 << (n - 1))) >> n


@dataclass(frozen=True)
class PixelModelSpec:
    """The shape of a pixel model: its causal window, channels, mixture and hidden widths.

    Attributes:
        rows: Rows above the sample in the window.
        cols: Columns on each side of the sample (the row of the sample has ``cols`` to its left).
        channels: Samples per pixel (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
        components: Logistic components of the mixture (K).
        hidden: Widths of the hidden layers.
        position: Whether the sample's row and column (as fractions of the image) are inputs.
    """

    rows: int
    cols: int
    channels: int
    components: int
    hidden: tuple[int, ...]
    position: bool

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "channels", "components"):
            if getattr(self, name) < (0 if name in ("rows", "cols") else 1):
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.rows == 0 and self.cols == 0:
            raise ValueError("the window must hold at least one neighbour (`rows` or `cols` >= 1)")

    @property
    def offsets(self) -> tuple[tuple[int, int], ...]:
        """(row, column) offsets of the window, in the order of the inputs."""
        above = [(dr, dc) for dr in range(-self.rows, 0) for dc in range(-self.cols, self.cols + 1)]
        return tuple(above + [(0, -d) for d in range(self.cols, 0, -1)])

    @property
    def wavefront_stride(self) -> int:
        """Samples at (r, c) with equal ``stride * r + c`` depend on none of each other."""
        return self.cols + 1

    @property
    def inputs(self) -> int:
        return feature_count(self)

    @property
    def outputs(self) -> int:
        return 3 * self.components

    def as_json(self) -> dict:
        return {"rows": self.rows, "cols": self.cols, "channels": self.channels, "components": self.components,
                "hidden": list(self.hidden), "position": self.position}


def feature_count(spec: PixelModelSpec) -> int:
    """Inputs per sample: window x channels, earlier channels, channel one-hot, position."""
    n = len(spec.offsets) * spec.channels
    if spec.channels > 1:
        n += (spec.channels - 1) + spec.channels
    return n + (2 if spec.position else 0)


@dataclass(frozen=True)
class DenseInt:
    """One integer layer: ``relu?(round_shift(x @ kernel + bias, shift))``.

    Attributes:
        kernel: ``(inputs, outputs)`` integers: the float weight times ``2**shift``.
        bias: ``(outputs,)`` integers: the float bias times ``2**(ACT_BITS + shift)``.
        shift: Fractional bits of the kernel.
        relu: Whether a ReLU follows (every layer but the last).
    """

    kernel: np.ndarray
    bias: np.ndarray
    shift: int
    relu: bool


class IntegerMLP:
    """The network of a pixel model in integers.

    Args:
        spec: The model's shape.
        layers: Its layers, first to last.
        refinement: The adaptive refinement the coder puts on top (`refine.REFINEMENT`, format 1.5),
            or None (1.3: the mixture alone).

    Raises:
        ValueError: when the layers do not chain from ``spec.inputs`` to ``spec.outputs``.
    """

    def __init__(self, spec: PixelModelSpec, layers: Sequence[DenseInt], refinement: str | None = None):
        width = spec.inputs
        for i, layer in enumerate(layers):
            if layer.kernel.ndim != 2 or layer.kernel.shape[0] != width or layer.bias.shape != (layer.kernel.shape[1],):
                raise ValueError(f"layer {i}: kernel {layer.kernel.shape} / bias {layer.bias.shape} "
                                 f"do not follow a width of {width}")
            width = layer.kernel.shape[1]
        if width != spec.outputs:
            raise ValueError(f"the last layer has {width} outputs, expected {spec.outputs}")
        if refinement is not None and (spec.rows < 1 or spec.cols < 1):
            raise ValueError(f"a refinement needs `rows` and `cols` >= 1 (its context is W, N, NW, NE), "
                             f"got {spec.rows}, {spec.cols}")
        self.spec = spec
        self.layers = list(layers)
        self.refinement = refinement
        # float64 when every layer's sums are provably exact integers, else int64 throughout
        self._floats = None
        if all(self._exact_float_plan()):
            self._floats = [(layer.kernel.astype(np.float64),
                             layer.bias.astype(np.float64) + (float(1 << (layer.shift - 1)) if layer.shift else 0.0),
                             2.0 ** -layer.shift) for layer in self.layers]

    def _exact_float_plan(self) -> list[bool]:
        """Per layer: whether float64 sums are provably exact (bound on |x| times the column sums)."""
        bound = float(1 << ACT_BITS)  # every input is at most 1.0 (4096)
        plan = []
        for layer in self.layers:
            col = np.abs(layer.kernel.astype(np.float64)).sum(axis=0)
            acc = bound * float(col.max(initial=0.0)) + float(np.abs(layer.bias).max(initial=0))
            plan.append(acc < EXACT_FLOAT_LIMIT / 2)
            bound = acc / float(1 << layer.shift) + 1.0
        return plan

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs (``(n, 3K)`` int64, ACT_BITS fractional bits) for integer inputs ``(n, inputs)``.

        In float64 the shift is a multiply by ``2**-shift`` and ``floor`` of ``acc + 2**(shift-1)``:
        both exact on integers below 2**53, so the result equals `round_shift` on int64.
        """
        if self._floats is not None:
            y = np.asarray(x, dtype=np.float64)
            for (kernel, bias, scale), layer in zip(self._floats, self.layers):
                y = y @ kernel
                y += bias
                y *= scale
                np.floor(y, out=y)
                if layer.relu:
                    np.maximum(y, 0.0, out=y)
            return y.astype(np.int64)
        y = np.asarray(x, dtype=np.int64)
        for layer in self.layers:
            y = round_shift(y @ layer.kernel.astype(np.int64) + layer.bias.astype(np.int64), layer.shift)
            if layer.relu:
                np.maximum(y, 0, out=y)
        return y


def mixture_params(out: np.ndarray, components: int) -> np.ndarray:
    """``(n, 3K)`` int64 rows ``[pi_1..pi_K | mu_1..mu_K | inv_1..inv_K]`` from the network's outputs.

    ``pi``: integer mixture weights; ``mu``: means in pixel units with ACT_BITS fractional
    bits; ``inv``: inverse scales with INV_SCALE_BITS fractional bits.
    """
    k = components
    logits = out[:, :k]
    d = logits.max(axis=1, keepdims=True) - logits
    pi = luts.pi_table()[np.minimum(d >> (ACT_BITS - 6), luts.PI_RANGE - 1)]
    mu = out[:, k:2 * k] << 8
    lo, hi = luts.LOG_SCALE_MIN * luts.LOG_SCALE_STEPS, luts.LOG_SCALE_MAX * luts.LOG_SCALE_STEPS
    j = clamp(round_shift(out[:, 2 * k:], ACT_BITS - 6), lo, hi)
    inv = luts.inv_scale_table()[j - lo]
    return np.concatenate([pi, mu, inv], axis=1)


def mixture_cdf(params: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``F(v)`` for each row's values ``(n, E)`` (ints in 0..256): the integer CDF at ``v - 0.5``.

    ``params`` are `mixture_params` rows. ``F(0)`` is 0 and ``F(256)`` the row's total
    ``sum(pi) * 2**16`` exactly, since the sigmoid table saturates at both ends of its range.
    """
    k = params.shape[1] // 3
    pi, mu, inv = params[:, :k], params[:, k:2 * k], params[:, 2 * k:]
    shift = ACT_BITS + luts.INV_SCALE_BITS - 8
    edge = (values.astype(np.int64) << ACT_BITS) - (1 << (ACT_BITS - 1))
    t = round_shift((edge[:, :, None] - mu[:, None, :]) * inv[:, None, :], shift)
    np.maximum(t, -luts.SIGMOID_RANGE, out=t)
    np.minimum(t, luts.SIGMOID_RANGE, out=t)
    sig = luts.sigmoid_table()[t + luts.SIGMOID_RANGE]
    sig[values == 0] = 0
    sig[values == 256] = 1 << luts.SIGMOID_BITS
    return np.einsum("nek,nk->ne", sig, pi)
