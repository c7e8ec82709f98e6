"""Rate-distortion training of an autoencoder, and the rate its learned density predicts (Keras).

    x -> g_a -> gain -> y + u -> g_s -> x_hat,   loss = bits(y + u) / n + lambda * MSE(x, x_hat)

The model, the noise, the gain and lambda's steering are in
`latentpack.codec.keras.rate_distortion`; the planning (lambda, targets, the
step grid) in `latentpack.codec.rd`.
"""
from __future__ import annotations

import time

import numpy as np

from latentpack.codec import quiet_tensorflow
from latentpack.codec.design import CodecDesign
from latentpack.fs.folder import ImageFolder
from latentpack.progress import ProgressFactory, null_progress

quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from latentpack.codec.keras import checkpoint, distribute  # noqa: E402
from latentpack.codec.keras.model import build_model, export_decoder  # noqa: E402
from latentpack.codec.keras.rate_distortion import LambdaSteering, RateDistortionModel  # noqa: E402
from latentpack.codec.keras.train import TrainResult, seeded, training_data  # noqa: E402
from latentpack.formats.schema import Latents  # noqa: E402

__all__ = ["train_rd_autoencoder", "predicted_bits", "DensityRefit", "PREDICT_SAMPLE", "REFIT_STEPS"]

#: Latent vectors `predicted_bits` refits the density on (4,096 per channel: its few dozen parameters need no
#: more; 16,384 took 4 times as long, 74 s on 70,000 digits, and predicted the same bits within 0.1%).
PREDICT_SAMPLE = 1 << 12
#: Latent vectors the density evaluates at once when it counts the bits of all of them (its temporaries take
#: about 100 bytes a latent: 16,384 vectors of 98 took 136 MB at the peak of compress, 65,536 500 MB).
EVAL_CHUNK = 1 << 12
#: Adam steps of the refit.
REFIT_STEPS = 300


def train_rd_autoencoder(
    folder: ImageFolder,
    design: CodecDesign,
    *,
    lmbda: float,
    target: tuple[str, float] | None,
    epochs: int,
    batch_size: int,
    seed: int,
    learning_rate: float = 2e-3,
    progress: ProgressFactory | None = None,
) -> TrainResult:
    """Train an autoencoder of the given design for rate plus ``lmbda`` times distortion.

    Args:
        folder, design, epochs, batch_size, seed, learning_rate, progress: as `train_autoencoder`.
        lmbda: Lambda (the initial one when ``target`` steers it).
        target: ``("bits_per_sample", b)`` or ``("psnr", db)`` to steer lambda toward, or None.

    Returns:
        The encoder, the exported decoder and, in ``rate_distortion``, the
        final lambda and what training measured per epoch.
    """
    replication = distribute.replication_for(folder)  # None: one device (TF_CONFIG, several GPUs: a strategy)
    seeded(epochs, batch_size, seed)
    data, steps = training_data(folder, design, batch_size, seed)
    with distribute.replicated(replication):
        encoder = build_model(design.encoder, "g_a", image_output=False)
        decoder = build_model(design.decoder, "g_s")
        model = RateDistortionModel(encoder, decoder, lmbda, seed=seed)
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps, alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule))
        # before fit: an optimizer that made its variables inside the first traced step makes TensorFlow trace
        # the step twice (seconds on every run); under a strategy, in its scope as it must be
        model.build_optimizers()
    start = time.perf_counter()
    with (progress or null_progress)("Training", epochs * steps) as bar:
        steering = LambdaSteering(model.lmbda, epochs * steps, target, bar)
        if replication is not None:  # its own loop (Keras' fit does not run multi-worker), no checkpoints
            distribute.fit_replicated(replication, model, model.train_step, data, epochs=epochs, callbacks=[steering])
        else:
            resumable = checkpoint.callback_for(model, data, epochs, steps, bar, extra=steering)  # compress --resume
            model.fit(data, epochs=epochs, verbose=0, callbacks=[steering] + ([resumable] if resumable else []),
                      shuffle=False)
    log = steering.log
    record = {"lambda": float(model.lmbda.numpy()), "target": None if target is None else list(target),
              "lambda_steps": [round(v, 3) for v in log.lmbda], "bits_per_sample": log.bits_per_sample,
              "psnr": log.psnr}
    record["gain"] = [round(float(g), 4) for g in np.exp(model.gain.log_gain.numpy())]
    if replication is not None:  # the stages after training (the chief alone) run on plain copies
        model = model.plain_copy(build_model(design.encoder, "g_a", image_output=False),
                                 build_model(design.decoder, "g_s"))
        decoder = model.g_s
    return TrainResult(encoder=model.encoder, decoder=export_decoder(decoder, design.decoder), loss=log.loss,
                       epochs=epochs, steps_per_epoch=steps, seconds=time.perf_counter() - start, rate_distortion=record,
                       density=model.density, replication=distribute.record(replication))


class DensityRefit:
    """Adam steps fitting the learned density to (a sample of) the rounded latents (`predicted_bits`).

    Args:
        density: The trained density layer (its variables are updated).
        values: ``(n, channels)`` latent values.
        step: The quantisation step they are rounded at.
    """

    def __init__(self, density: keras.layers.Layer, values: np.ndarray, step: float = 1.0):
        self.density, self.step_size = density, step
        sample = values[np.random.default_rng(0).permutation(len(values))[:PREDICT_SAMPLE]]
        q = tf.constant(np.rint(sample / step), tf.float32)
        optimizer = keras.optimizers.Adam(1e-2)
        variables = density.trainable_variables
        optimizer.build(variables)

        @tf.function
        def fit_step():
            with tf.GradientTape() as tape:
                nll = tf.reduce_mean(density.bits(q))
            optimizer.apply(tape.gradient(nll, variables), variables)

        self.step = fit_step

    def bits(self, values: np.ndarray) -> float:
        """The bits the density gives ``values`` (``(n, channels)``) rounded at the step."""
        total = 0.0
        for a in range(0, len(values), EVAL_CHUNK):
            chunk = np.rint(values[a : a + EVAL_CHUNK] / self.step_size).astype(np.float32)
            total += float(np.sum(np.asarray(self.density.bits(chunk), dtype=np.float64)))
        return total


def predicted_bits(density: keras.layers.Layer, latents: Latents, step: float = 1.0, *,
                   fit_steps: int = REFIT_STEPS) -> float:
    """The bits the learned density gives the latents rounded at ``step`` (what it predicts they cost).

    Training fitted the density to noisy latents; it is first refitted for
    ``fit_steps`` Adam steps to (a sample of) the rounded ones it predicts.
    """
    values = latents.values.reshape(-1, density.channels)
    refit = DensityRefit(density, values, step)
    for _ in range(fit_steps):
        refit.step()
    return refit.bits(values)
