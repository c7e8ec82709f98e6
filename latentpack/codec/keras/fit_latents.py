"""Fit an image's latents to a frozen decoder by gradient steps (``latentpack add``).

An archive stores a decoder, not an encoder, so an image it never saw gets
its latents by descent on the decoder's error alone::

    z0 (a start: the nearest decoded old image's latents, or their mean)
      -> Adam on z, g_s frozen:   loss = mean((g_s(z)[:, :H, :W] - x)^2) + bits(z) / (n * lambda)
      -> last quarter of the steps through the rounding (straight-through):
         g_s(z + stop_gradient(rint(z / step) * step - z))
      -> z  (the caller rounds it to q = rint(z / step) with the archive's step)

``bits(z)`` is what a Laplace density of each channel's old latents (scale
``b_c``: their mean absolute value) charges, ``sum |z| / (b_c ln 2)``, and
``lambda`` the archive's rate-distortion trade-off (`FitSettings.lmbda`;
None for an archive trained on the pixel error alone: no rate term), so
the fitted latents cost about what the encoder's did.

The decoder is rebuilt in Keras from the stored description and weights
(`latentpack.codec.keras.model`), so it is the very function readers run.
TensorFlow is imported here; only ``add`` reaches this module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from latentpack.codec import quiet_tensorflow
from latentpack.formats.schema import DecoderWeights

quiet_tensorflow()
import tensorflow as tf  # noqa: E402

from latentpack.codec.keras.model import build_model, load_decoder_weights  # noqa: E402

__all__ = ["FitSettings", "LatentFitter", "DEFAULT_FIT_STEPS", "FIT_BATCH"]

#: Gradient steps per image by default (each image's latents are fitted on their own).
DEFAULT_FIT_STEPS = 200
#: Images fitted at once (their losses are summed: each image's latents get their own gradient).
FIT_BATCH = 512
#: Fraction of the steps taken through the rounding (straight-through) when a step is given.
ROUNDED_FRACTION = 0.25


@dataclass(frozen=True)
class FitSettings:
    """How latents are fitted.

    Attributes:
        steps: Adam steps per batch of images.
        learning_rate: Adam's first rate, in latent units (cosine-decayed to a twentieth).
        step: The archive's latent step (the rounding the last steps see), or None (float32 latents).
        lmbda: The archive's rate-distortion lambda (the rate term's weight is ``1 / lmbda``), or None.
        scales: ``(c,)`` Laplace scale of each latent channel (the rate term's density).
    """

    steps: int = DEFAULT_FIT_STEPS
    learning_rate: float = 0.05
    step: float | None = None
    lmbda: float | None = None
    scales: tuple[float, ...] | None = None


class LatentFitter:
    """The archive's decoder in Keras, frozen, fitting latents for batches of images.

    Args:
        decoder: The stored decoder (weights as stored, float16 ones as their float32 values).
    """

    def __init__(self, decoder: DecoderWeights):
        self.model = build_model(decoder.architecture, "g_s")
        load_decoder_weights(self.model, decoder)
        self.model.trainable = False
        # one traced step for every batch (shapes generalised after the first retrace)
        self._adam = tf.function(self._adam_step, reduce_retracing=True)

    def _adam_step(self, z, m, v, x, rate, t, rounded, step, bit_weight):
        """One Adam step on the latents ``z`` (moments ``m``, ``v``); returns the three updated.

        ``bit_weight``: ``(c,)``, each channel's ``1 / (b_c ln 2 n lambda)`` (zeros: no rate term).
        """
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        with tf.GradientTape() as tape:
            tape.watch(z)
            seen = tf.cond(rounded, lambda: z + tf.stop_gradient(tf.round(z / step) * step - z), lambda: z + 0.0)
            x_hat = self.model(seen, training=False)[:, :h, :w, :]
            # summed over images, mean over each image's samples: every image's latents move at one rate
            loss = tf.reduce_sum(tf.reduce_mean(tf.square(x_hat - x), axis=[1, 2, 3]))
            loss += tf.reduce_sum(tf.abs(z) * bit_weight)
        g = tape.gradient(loss, z)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * tf.square(g)
        m_hat = m / (1.0 - tf.pow(0.9, t))
        v_hat = v / (1.0 - tf.pow(0.999, t))
        return z - rate * m_hat / (tf.sqrt(v_hat) + 1e-8), m, v

    def fit(self, images: np.ndarray, start: np.ndarray, settings: FitSettings,
            on_step: Callable[[int], None] | None = None) -> np.ndarray:
        """Latents whose decoding approaches each image, starting from ``start``.

        Args:
            images: ``(n, H, W, C)`` uint8 working pixels of equal-sized images.
            start: ``(n, gh, gw, c)`` float32 starting latents.
            settings: Steps, rate and the latent step.
            on_step: Called with the number of images of each batch after each of its steps.

        Returns:
            ``(n, gh, gw, c)`` float32 fitted latents (not rounded).
        """
        out = np.empty(start.shape, dtype=np.float32)
        for a in range(0, len(images), FIT_BATCH):
            out[a : a + FIT_BATCH] = self._fit_batch(images[a : a + FIT_BATCH], start[a : a + FIT_BATCH], settings,
                                                      on_step)
        return out

    def _fit_batch(self, images: np.ndarray, start: np.ndarray, settings: FitSettings,
                   on_step: Callable[[int], None] | None) -> np.ndarray:
        x = tf.constant(images.astype(np.float32) / 255.0)
        z = tf.constant(start.astype(np.float32))
        m, v = tf.zeros_like(z), tf.zeros_like(z)
        step = tf.constant(float(settings.step or 1.0))
        c = start.shape[-1]
        if settings.lmbda and settings.scales is not None:
            per_bit = 1.0 / (math.log(2) * images[0].size * settings.lmbda)
            weight = np.asarray([per_bit / max(b, 1e-6) for b in settings.scales], dtype=np.float32)
        else:
            weight = np.zeros(c, np.float32)
        bit_weight = tf.constant(weight)
        total = max(int(settings.steps), 1)
        rounded_from = total - int(total * ROUNDED_FRACTION) if settings.step else total + 1
        for k in range(total):
            rate = settings.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * k / total)))
            z, m, v = self._adam(z, m, v, x, tf.constant(rate, tf.float32), tf.constant(k + 1, tf.float32),
                                 tf.constant(k >= rounded_from), step, bit_weight)
            if on_step is not None:
                on_step(len(images))
        return z.numpy()
