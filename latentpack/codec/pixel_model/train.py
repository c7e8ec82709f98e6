"""Fitting the pixel model to a folder (Keras): minimise the code length in bits per sample.

The float network trained here is the integer one `network.IntegerMLP` runs,
before rounding: the same inputs (`coder.training_features`, integer inputs
divided by 2**12), the same mixture (mean ``256 * m``, scale
``8 * exp(clip(log_s, -6, 4))``, the end bins taking the tails). `to_integer`
rounds its weights into the integer layers that the archive stores.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from latentpack.codec import quiet_tensorflow
from latentpack.codec.keras.allocator import keep_freed_memory

quiet_tensorflow()
keep_freed_memory()

import keras  # noqa: E402  (after the quieting above)
import tensorflow as tf  # noqa: E402

from latentpack.codec.keras import checkpoint  # noqa: E402
from latentpack.codec.keras.model import compile_built  # noqa: E402
from latentpack.codec.pixel_model import luts  # noqa: E402
from latentpack.codec.pixel_model.coder import training_features  # noqa: E402
from latentpack.codec.pixel_model.network import ACT_BITS, DenseInt, IntegerMLP, PixelModelSpec  # noqa: E402
from latentpack.codec.pixel_model.refine import REFINEMENT  # noqa: E402

__all__ = ["PixelModelTraining", "train_pixel_model", "to_integer", "training_set", "plan_pixel_model", "KERNEL_LIMIT"]

#: Stored kernels are int16: each layer's shift is the largest that keeps |kernel| below this.
KERNEL_LIMIT = (1 << 15) - 1
#: Most fractional bits a kernel gets.
MAX_SHIFT = 16


@dataclass
class PixelModelTraining:
    """What training measured: steps, time and the float model's bits per sample at the end."""

    steps: int
    seconds: float
    float_bits_per_sample: float


def _nll_bits(components: int):
    k = components

    def loss(y, o):
        y = tf.reshape(y, (-1, 1))
        mu = 256.0 * o[:, k:2 * k]
        log_s = tf.clip_by_value(o[:, 2 * k:], float(luts.LOG_SCALE_MIN), float(luts.LOG_SCALE_MAX))
        inv = tf.exp(-log_s) / float(luts.SCALE_UNIT)
        plus, minus = (y + 0.5 - mu) * inv, (y - 0.5 - mu) * inv
        log_cdf_plus = plus - tf.nn.softplus(plus)
        log_sf_minus = -tf.nn.softplus(minus)
        log_mid = tf.math.log(tf.maximum(tf.sigmoid(plus) - tf.sigmoid(minus), 1e-12))
        lp = tf.where(y < 0.5, log_cdf_plus, tf.where(y > 254.5, log_sf_minus, log_mid))
        return -tf.reduce_logsumexp(lp + tf.nn.log_softmax(o[:, :k]), axis=1) / math.log(2.0)

    return loss


def build_network(spec: PixelModelSpec):
    """The float Keras network of a spec (Dense + ReLU layers, linear outputs)."""
    inp = keras.Input((spec.inputs,))
    x = inp
    for width in spec.hidden:
        x = keras.layers.Dense(width, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(spec.outputs)(x))


def train_pixel_model(x: np.ndarray, y: np.ndarray, spec: PixelModelSpec, steps: int, seed: int = 0,
                      batch_samples: int = 8192, learning_rate: float = 3e-3,
                      on_step: Callable[[int], None] | None = None):
    """Train a pixel model on samples' inputs ``x`` and values ``y`` (`training_set`).

    Returns:
        (the Keras network, PixelModelTraining).
    """
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_network(spec)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, steps))
    compile_built(model, keras.optimizers.Adam(schedule), _nll_bits(spec.components))
    batch = max(1, min(batch_samples, len(x)))  # a folder of fewer samples: every step sees all of them
    resumable = checkpoint.steps_for([x, y], {"spec": repr(spec), "steps": steps, "seed": seed, "batch": batch,
                                              "learning_rate": learning_rate})  # compress --resume
    start = time.perf_counter()
    done, order, first = 0, None, 0
    if resumable is not None:
        saved = resumable.restore(_variables(model))
        if saved is not None:
            done, order, first = int(saved["done"]), np.array(saved["order"]), int(saved["next"])
            rng.bit_generator.state = json.loads(str(saved["rng"]))
    while done < steps:
        if order is None:
            order, first = rng.permutation(len(x)), 0
        for a in range(first, len(order) - batch + 1, batch):
            idx = order[a:a + batch]
            model.train_on_batch(x[idx], y[idx])
            done += 1
            if on_step is not None:
                on_step(done)
            if resumable is not None and (done >= steps or resumable.due()):
                resumable.save(_variables(model), done=done, order=order, next=a + batch,
                               rng=json.dumps(rng.bit_generator.state))
            if done >= steps:
                break
        order = None
    seconds = time.perf_counter() - start
    sample = rng.permutation(len(x))[:1 << 18]
    bits = float(model.evaluate(x[sample], y[sample], batch_size=1 << 15, verbose=0))
    return model, PixelModelTraining(steps=done, seconds=seconds, float_bits_per_sample=bits)


def _variables(model) -> list:
    """What decides the next step's arithmetic: the weights and Adam's state (its step count drives the rate)."""
    return list(model.weights) + list(model.optimizer.variables)


def to_integer(model, spec: PixelModelSpec, refinement: str | None = REFINEMENT) -> IntegerMLP:
    """Round a trained network's weights into integer layers (int16 kernels, int32 biases).

    ``refinement`` (default: the adaptive counts of format 1.5) is what the coder puts on top;
    None codes with the mixture alone (1.3).
    """
    layers = []
    dense = [layer for layer in model.layers if layer.weights]
    for i, layer in enumerate(dense):
        kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
        top = float(np.abs(kernel).max(initial=0.0))
        shift = MAX_SHIFT if top == 0 else max(0, min(MAX_SHIFT, int(math.floor(math.log2(KERNEL_LIMIT / top)))))
        k_int = np.rint(kernel * (1 << shift)).astype(np.int16)
        b_int = np.clip(np.rint(bias * float(1 << (ACT_BITS + shift))), -(1 << 31), (1 << 31) - 1).astype(np.int32)
        layers.append(DenseInt(kernel=k_int, bias=b_int, shift=shift, relu=i < len(dense) - 1))
    return IntegerMLP(spec, layers, refinement=refinement)


#: Hidden widths tried, narrowest first; a folder gets the widest whose weights it can pay for.
WIDTHS = (16, 32, 64)
#: The weights (16 bits each) may cost at most this fraction of a bit per sample.
WEIGHT_BITS_PER_SAMPLE = 1 / 32
#: Training passes over the samples, and the bounds on the optimiser steps.
DEFAULT_EPOCHS = 30
MIN_STEPS, MAX_STEPS = 12000, 40000
#: `MIN_STEPS` never makes more passes than this (a tiny folder does not need 12,000 steps).
MAX_PASSES = 300
BATCH_SAMPLES = 8192


def plan_pixel_model(channels: int, samples: int, position: bool = True, epochs: int | None = None
                     ) -> tuple[PixelModelSpec, int]:
    """The pixel model a folder gets and its training steps.

    The window is two rows above and two columns each side; the mixture has
    four components; the hidden width is the widest of `WIDTHS` whose weights
    cost at most `WEIGHT_BITS_PER_SAMPLE` (the decoder of this model is shared
    by every sample, so a large folder pays for a wider one).

    Args:
        channels: Samples per pixel of the working mode.
        samples: Samples (pixels x channels) in the folder.
        position: Whether the position in the image is an input.
        epochs: Passes over the samples (default `DEFAULT_EPOCHS`, steps bounded).
    """
    chosen = None
    for width in WIDTHS:
        spec = PixelModelSpec(rows=2, cols=2, channels=channels, components=4, hidden=(width, width),
                              position=position)
        if chosen is None or _param_count(spec) * 16 <= WEIGHT_BITS_PER_SAMPLE * samples:
            chosen = spec
    passes = DEFAULT_EPOCHS if epochs is None else epochs
    steps = int(passes * samples / BATCH_SAMPLES)
    if epochs is None:
        floor = min(MIN_STEPS, max(1, int(MAX_PASSES * samples / BATCH_SAMPLES)))
        steps = min(MAX_STEPS, max(floor, steps))
    return chosen, max(1, steps)


def _param_count(spec: PixelModelSpec) -> int:
    dims = [spec.inputs, *spec.hidden, spec.outputs]
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))


#: Samples at most that training sees (a random subset of the images beyond it: bounds its memory).
MAX_TRAINING_SAMPLES = 1 << 24


def training_set(working: Callable[[int], np.ndarray], shapes: list[tuple[int, int, int]], spec: PixelModelSpec,
                 seed: int, max_samples: int = MAX_TRAINING_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and values of the samples training sees: all, or a random ``max_samples`` of them.

    Features are made a few images at a time (grouped by shape) and subsampled as they
    come, so memory stays near ``max_samples`` rows whatever the folder's size.
    """
    rng = np.random.default_rng(seed)
    total = sum(int(np.prod(s)) for s in shapes)
    keep = min(1.0, max_samples / max(total, 1))
    by_shape: dict[tuple[int, int, int], list[int]] = {}
    for i, shape in enumerate(shapes):
        by_shape.setdefault(tuple(shape), []).append(i)
    xs, ys = [], []
    for shape, members in by_shape.items():
        per = max(1, (1 << 20) // int(np.prod(shape)))
        for a in range(0, len(members), per):
            block = np.stack([np.asarray(working(i), dtype=np.uint8) for i in members[a:a + per]])
            x, y = training_features(block, spec)
            if keep < 1.0:
                rows = rng.random(len(y)) < keep
                x, y = x[rows], y[rows]
            xs.append(x)
            ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)
