"""Rate-distortion training: the autoencoder minimises the bits its latents will cost plus lambda times its error.

::

    x -> g_a -> y -> y~ = y + u,  u ~ U(-1/2, 1/2)      (rounding, as training sees it)
    y~ -> g_s -> x_hat
    loss = bits(y~) / n + lambda * mean((x - x_hat)^2)   (n: the pixels' samples; x in [0, 1])

``bits`` comes from a learned factorised density
(`latentpack.codec.keras.entropy_model`). Latents are trained in units of
the quantisation step, so the archive codes ``round(y)`` at step 1 unless
rate control moves it.

Lambda is either fixed or *steered* toward a target: a bits-per-sample rate
(a size target) or a mean PSNR (a quality target). `LambdaSteering` measures
the running rate or PSNR over short windows of steps and moves log2(lambda)
toward the target, during the first `STEER_FRACTION` of training; lambda is
then held so the last steps settle at it. The final lambda is recorded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from latentpack.codec import quiet_tensorflow

quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from latentpack.codec.keras.entropy_model import FactorizedDensity  # noqa: E402

__all__ = ["RateDistortionModel", "LambdaSteering", "SteeringLog", "STEER_FRACTION", "LAMBDA_RANGE"]

#: Lambda is steered during this fraction of the steps, then held.
STEER_FRACTION = 0.75
#: Lambda stays in this range.
LAMBDA_RANGE = (1.0, 1e7)
#: Steps per steering window (at most; fewer when training is short).
STEER_WINDOW = 200
#: How far one window may move log2(lambda).
STEER_MAX_MOVE = 1.0
#: Initial gain of the latents (`LatentGain`).
INITIAL_GAIN = 4.0
#: Adam's rate for the density's parameters and the latent gain (constant).
DENSITY_LEARNING_RATE = 1e-2
#: Assumed sensitivities for the controller: dB of PSNR, and relative rate, per doubling of lambda.
DB_PER_DOUBLING = 1.5
RATE_PER_DOUBLING = 0.12


class LatentGain(keras.layers.Layer):
    """``y * exp(g_c)``: a trained gain per latent channel, starting at `INITIAL_GAIN`.

    The noise stands for rounding at step 1, so the latents' scale *is* their
    precision. A freshly initialised ``g_a`` puts out latents of about unit
    size, which the noise drowns; a gain that the fast optimiser moves lets
    short trainings reach the precision their lambda asks for. It is part of
    the encoder (`RateDistortionModel.encoder`); nothing of it is stored.
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.log_gain = self.add_weight(shape=(int(channels),), initializer=keras.initializers.Constant(
            math.log(INITIAL_GAIN)), name="log_gain")

    def call(self, y):
        return y * ops.exp(self.log_gain)


class RateDistortionModel(keras.Model):
    """``g_a``, ``g_s`` and the density, trained on ``rate + lambda * distortion`` (a custom `train_step`).

    Args:
        encoder: ``g_a`` (its output: the latent tensor, channels last).
        decoder: ``g_s``.
        lmbda: Initial lambda.
        seed: Seeds the training noise and the density's initial means.
    """

    def __init__(self, encoder: keras.Model, decoder: keras.Model, lmbda: float, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.g_a, self.g_s = encoder, decoder
        channels = int(encoder.output_shape[-1])
        self.gain = LatentGain(channels)
        self.density = FactorizedDensity(channels, seed=seed)
        self.lmbda = keras.Variable(float(lmbda), trainable=False, name="lmbda", dtype="float32")
        self.noise = keras.random.SeedGenerator(seed)
        # The density follows the latents faster than the transforms move them (its own, livelier Adam).
        self.density_optimizer = keras.optimizers.Adam(DENSITY_LEARNING_RATE)

    def call(self, x, training: bool = False):
        return self.g_s(self.gain(self.g_a(x, training=training)), training=training)

    def plain_copy(self, encoder: keras.Model, decoder: keras.Model) -> "RateDistortionModel":
        """This model's trained state in fresh ``encoder`` and ``decoder`` built outside any strategy.

        What runs after a replicated training (encoding, the density's refit:
        the chief alone) then never touches mirrored variables.
        """
        copy = RateDistortionModel(encoder, decoder, float(self.lmbda.numpy()))
        for mine, theirs in ((self.g_a, copy.g_a), (self.g_s, copy.g_s), (self.gain, copy.gain),
                             (self.density, copy.density)):
            theirs.set_weights(mine.get_weights())
        return copy

    def variable_groups(self) -> tuple[list, list]:
        """The variables of the transforms (the main optimizer's) and of the density and gain (its own)."""
        return (self.g_a.trainable_variables + self.g_s.trainable_variables,
                self.density.trainable_variables + self.gain.trainable_variables)

    def build_optimizers(self) -> None:
        """Create both optimizers' variables now (under a strategy: in its scope, not inside a replica's step)."""
        transforms, density = self.variable_groups()
        if not self.optimizer.built:
            self.optimizer.build(transforms)
        if not self.density_optimizer.built:
            self.density_optimizer.build(density)

    def checkpoint_variables(self) -> list:
        """What a checkpoint saves besides the weights and the main optimizer: the density's Adam, the noise."""
        density = self.variable_groups()[1]
        if not self.density_optimizer.built:
            self.density_optimizer.build(density)
        return list(self.density_optimizer.variables) + [self.noise.state]

    @property
    def encoder(self) -> keras.Model:
        """``x -> g_a -> gain -> y``: the latents the archive codes (at step 1)."""
        x = keras.Input(shape=self.g_a.input_shape[1:], name="x")
        return keras.Model(x, self.gain(self.g_a(x)), name="g_a_with_gain")

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        samples = ops.cast(ops.prod(ops.shape(x)[1:]), "float32")
        with tf.GradientTape() as tape:
            y = self.gain(self.g_a(x, training=True))
            y_tilde = y + keras.random.uniform(ops.shape(y), -0.5, 0.5, seed=self.noise)
            x_hat = self.g_s(y_tilde, training=True)
            bits = ops.sum(ops.reshape(self.density.bits(y_tilde), (ops.shape(x)[0], -1)), axis=1)
            mse = ops.mean(ops.reshape(ops.square(x - x_hat), (ops.shape(x)[0], -1)), axis=1)
            rate = ops.mean(bits) / samples
            loss = rate + self.lmbda * ops.mean(mse)
            # Under a tf.distribute strategy the optimizers sum the replicas' gradients: each takes 1/R of its own.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = loss / replicas if replicas > 1 else loss
        transforms, density = self.variable_groups()
        grads = tape.gradient(scaled, transforms + density)
        self.optimizer.apply(grads[: len(transforms)], transforms)
        self.density_optimizer.apply(grads[len(transforms):], density)
        psnr = ops.mean(-10.0 * ops.log(ops.maximum(mse, 1e-10)) / math.log(10.0))
        return {"loss": loss, "bits_per_sample": rate, "psnr": psnr}


@dataclass
class SteeringLog:
    """What training saw: per-epoch means of the loss, rate and PSNR, and lambda at each window."""

    loss: list[float] = field(default_factory=list)
    bits_per_sample: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    lmbda: list[float] = field(default_factory=list)


class LambdaSteering(keras.callbacks.Callback):
    """Records the training, and moves lambda toward a rate or PSNR target (or holds it: ``target=None``).

    Args:
        model_lmbda: The model's lambda variable.
        total_steps: Steps the whole training takes.
        target: ``("bits_per_sample", value)``, ``("psnr", value)`` or None (fixed lambda).
        bar: Progress bar (``update(1)`` per step) or None.
    """

    def __init__(self, model_lmbda, total_steps: int, target: tuple[str, float] | None, bar=None):
        super().__init__()
        self.var, self.total, self.target, self.bar = model_lmbda, int(total_steps), target, bar
        self.window = max(1, min(STEER_WINDOW, self.total // 20))
        self.log = SteeringLog(lmbda=[float(model_lmbda.numpy())])
        self.step = 0
        self._epoch: list[tuple[float, float, float]] = []
        self._window: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        values = (float(logs.get("loss", np.nan)), float(logs.get("bits_per_sample", np.nan)),
                  float(logs.get("psnr", np.nan)))
        self._epoch.append(values)
        self.step += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.target is None or self.step > STEER_FRACTION * self.total:
            return
        self._window.append(values[1] if self.target[0] == "bits_per_sample" else values[2])
        if len(self._window) >= self.window:
            self._steer(float(np.mean(self._window)))
            self._window = []

    def state(self) -> dict:
        """What a checkpoint keeps of the steering (JSON): the step, the open window and the log."""
        return {"step": self.step, "window": self._window, "epoch": self._epoch, "log": vars(self.log)}

    def restore(self, state: dict) -> None:
        """Continue from `state` (a resumed training)."""
        self.step, self._window = int(state["step"]), [float(v) for v in state["window"]]
        self._epoch = [tuple(v) for v in state["epoch"]]
        self.log = SteeringLog(**{k: [float(v) for v in vs] for k, vs in state["log"].items()})

    def _steer(self, measured: float) -> None:
        kind, want = self.target
        if not math.isfinite(measured):
            return
        if kind == "bits_per_sample":
            move = math.log(max(want, 1e-9) / max(measured, 1e-9)) / math.log1p(RATE_PER_DOUBLING)
        else:
            move = (want - measured) / DB_PER_DOUBLING
        move = max(-STEER_MAX_MOVE, min(STEER_MAX_MOVE, 0.5 * move))
        lmbda = float(self.var.numpy()) * 2.0**move
        lmbda = min(LAMBDA_RANGE[1], max(LAMBDA_RANGE[0], lmbda))
        self.var.assign(lmbda)
        self.log.lmbda.append(lmbda)

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch:
            means = np.nanmean(np.array(self._epoch), axis=0)
            self.log.loss.append(float(means[0]))
            self.log.bits_per_sample.append(float(means[1]))
            self.log.psnr.append(float(means[2]))
        self._epoch = []
