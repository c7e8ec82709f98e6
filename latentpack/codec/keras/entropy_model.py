"""The learned entropy model that rate-distortion training minimises the rate under (Keras, training only).

A factorised density: every latent channel ``c`` (the last axis of the latent
tensor) has its own mixture of ``K`` logistics, convolved with the unit
uniform noise that stands in for rounding during training::

    p_c(v) = sum_k pi_ck * [sigmoid((v + 1/2 - mu_ck) / s_ck) - sigmoid((v - 1/2 - mu_ck) / s_ck)]
    rate   = sum over latents of -log2 p_c(v)            (bits)

At ``v = round(y)`` this is the probability the coder gives the integer
``v`` under the same density, so the rate trained on is the rate the latents
would take under it. The archive does not store this model: the coder stores
integer count tables of the rounded latents themselves
(`latentpack.codec.entropy.latent_coding`), which code the folder in no more
bits than any density fitted to it, plus the tables. Decoding therefore
never runs this model, and stays integer-exact.
"""
from __future__ import annotations

import math

from latentpack.codec import quiet_tensorflow

quiet_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402

__all__ = ["FactorizedDensity", "LIKELIHOOD_FLOOR", "COMPONENTS"]

#: Mixture components per channel.
COMPONENTS = 3
#: Smallest likelihood the rate sees (bounds the gradient of a latent far in a tail).
LIKELIHOOD_FLOOR = 1e-9


class FactorizedDensity(keras.layers.Layer):
    """Per-channel logistic mixtures; `bits` gives each latent's rate under them.

    Args:
        channels: Latent channels (the size of the last axis).
        components: Logistics per channel.
        seed: Seeds the initial means (spread so the components start apart).
    """

    def __init__(self, channels: int, components: int = COMPONENTS, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.components = int(channels), int(components)
        init = keras.initializers.RandomNormal(stddev=1.0, seed=seed)
        self.means = self.add_weight(shape=(self.channels, self.components), initializer=init, name="means")
        self.log_scales = self.add_weight(shape=(self.channels, self.components),
                                          initializer=keras.initializers.Constant(1.0), name="log_scales")
        self.logits = self.add_weight(shape=(self.channels, self.components), initializer="zeros", name="logits")

    def likelihood(self, v):
        """``p_c(v)`` for every latent of ``v`` (shape ``(..., channels)``), floored at `LIKELIHOOD_FLOOR`."""
        v = ops.expand_dims(v, -1)
        inv_s = ops.exp(-self.log_scales)
        centred = v - self.means
        upper, lower = (centred + 0.5) * inv_s, (centred - 0.5) * inv_s
        # Above the mean, difference the upper tails instead: no cancellation far out.
        flip = ops.where(centred > 0, -1.0, 1.0)
        mass = ops.abs(ops.sigmoid(flip * upper) - ops.sigmoid(flip * lower))
        weights = ops.softmax(self.logits, axis=-1)
        return ops.maximum(ops.sum(weights * mass, axis=-1), LIKELIHOOD_FLOOR)

    def bits(self, v):
        """``-log2 p_c(v)`` for every latent of ``v``."""
        return -ops.log(self.likelihood(v)) / math.log(2.0)

    def call(self, v):
        return self.bits(v)
