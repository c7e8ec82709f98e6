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

__all__ = ["train_rd_autoencoder", "predicted_bits", "PREDICT_SAMPLE"]

#: Latent vectors `predicted_bits` refits the density on (and evaluates at once).
PREDICT_SAMPLE = 1 << 14


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


def predicted_bits(density: keras.layers.Layer, latents: Latents, step: float = 1.0, *, fit_steps: int = 300) -> float:
    """The bits the learned density gives the latents rounded at ``step`` (what it predicts they cost).

    Training fitted the density to noisy latents; it is first refitted for
    ``fit_steps`` Adam steps to (a sample of) the rounded ones it predicts.
    """
    channels = density.channels
    q_all = latents.values.reshape(-1, channels)
    sample = q_all[np.random.default_rng(0).permutation(len(q_all))[:PREDICT_SAMPLE]]
    q = tf.constant(np.rint(sample / step), tf.float32)
    optimizer = keras.optimizers.Adam(1e-2)
    variables = density.trainable_variables
    optimizer.build(variables)

    @tf.function
    def fit_step():
        with tf.GradientTape() as tape:
            nll = tf.reduce_mean(density.bits(q))
        optimizer.apply(tape.gradient(nll, variables), variables)

    for _ in range(fit_steps):
        fit_step()
    total = 0.0
    for a in range(0, len(q_all), PREDICT_SAMPLE):
        chunk = np.rint(q_all[a : a + PREDICT_SAMPLE] / step).astype(np.float32)
        total += float(np.sum(np.asarray(density.bits(chunk), dtype=np.float64)))
    return total
