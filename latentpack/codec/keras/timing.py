"""Time a handful of training steps of a design on this machine (``compress --dry-run``'s estimate).

The model is built and trained exactly as training builds and trains it
(Keras ``fit`` over the same data pipeline, op determinism on), on images of
the folder's shapes holding random pixels (a step's cost does not depend on
them), so nothing needs staging. The first steps build the graph and are not
counted.

    design -> build g_a, g_s (or g_s alone) -> compile (Adam; MSE, or rate + lambda x MSE) -> fit:
              warm-up steps (their time beyond a step's: the set-up), timed steps
    after training (`time_after_training`): g_a over a sample of images, g_s in Keras (refinement's
              error before and after) and in numpy with each image's PSNR (measuring quality), per image
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from latentpack.codec import quiet_tensorflow
from latentpack.codec.keras.allocator import keep_freed_memory

quiet_tensorflow()
keep_freed_memory()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from latentpack.codec.design import CodecDesign  # noqa: E402
from latentpack.codec.keras.data import CodedImages, Patches, WholeImages, patch_size  # noqa: E402
from latentpack.codec.keras.device import training_device  # noqa: E402
from latentpack.codec.keras.model import build_autoencoder, build_model, compile_built  # noqa: E402
from latentpack.fs.folder import ImageFolder  # noqa: E402
from latentpack.fs.images import NATURAL_CHANNELS  # noqa: E402

__all__ = ["StepTiming", "AfterTraining", "time_training_steps", "time_after_training", "time_pixel_model_steps",
           "WARMUP_STEPS", "TIMED_STEPS", "AFTER_SAMPLE"]

#: Steps run before timing (graph tracing, allocator warm-up), and steps timed.
WARMUP_STEPS = 3
TIMED_STEPS = 10
#: The random images timing trains on hold at most this many bytes (at least one image).
SYNTHETIC_BYTES = 64 << 20
#: Images `time_after_training` encodes and decodes (at most `SYNTHETIC_BYTES` of them).
AFTER_SAMPLE = 512
#: Refit steps `time_density_refit` times after the traced one.
REFIT_TIMED_STEPS = 3


@dataclass(frozen=True)
class StepTiming:
    """Seconds per optimiser step, measured over ``steps`` steps on ``device``."""

    seconds_per_step: float
    steps: int
    device: str
    setup_seconds: float = 0.0


@dataclass(frozen=True)
class AfterTraining:
    """Seconds per image of the stages after training, measured on ``images`` images.

    Attributes:
        encode: g_a in Keras (encoding every image to its latents).
        decode_keras: g_s in Keras (refinement measures the folder's error before and after).
        measure: g_s in numpy and the PSNR (measuring quality: once per archive assembled).
        images: The sample's size.
    """

    encode: float
    decode_keras: float
    measure: float
    images: int


class _StepClock(keras.callbacks.Callback):
    """The time at the end of every training step."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.ends.append(time.perf_counter())


def _per_step(ends: list[float], warmup: int) -> tuple[float, int]:
    timed = ends[warmup - 1:]
    return (timed[-1] - timed[0]) / max(len(timed) - 1, 1), len(timed) - 1


def _setup(start: float, ends: list[float], per_step: float) -> float:
    """What the first step took beyond a step's time: building the graph, starting the data (fit's set-up)."""
    return max(0.0, ends[0] - start - per_step) if ends else 0.0


def _synthetic_folder(folder: ImageFolder, count: int, seed: int) -> ImageFolder:
    """``count`` images of the folder's shapes (cycled, at most `SYNTHETIC_BYTES`), with random pixels."""
    c = NATURAL_CHANNELS[folder.working_mode]
    metas, total = [], 0
    for k in range(count):
        im = folder.images[k % len(folder.images)]
        if metas and total + im.height * im.width * c > SYNTHETIC_BYTES:
            break
        metas.append(im)
        total += im.height * im.width * c
    sizes = np.array([im.height * im.width * c for im in metas], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    pixels = np.random.default_rng(seed).integers(0, 256, int(offsets[-1]), dtype=np.uint8)
    return ImageFolder(metas, folder.working_mode, offsets, pixels, 0)


def time_training_steps(folder: ImageFolder, design: CodecDesign, *, batch_size: int, steps_per_epoch: int,
                        codes: bool = False, rate_distortion: bool = False, seed: int = 0) -> StepTiming:
    """Seconds per step of the training `latentpack.codec.keras.train` runs, over a few steps of it.

    The same model, optimiser, data pipeline (`latentpack.codec.keras.data`)
    and op determinism as training, on images of the folder's shapes holding
    random pixels (a step's cost does not depend on them).

    Args:
        folder: The checked folder (its shapes and working mode; no pixels needed).
        design: The design to time.
        batch_size: Images (or patches) per step.
        steps_per_epoch: Training's. Epochs of at most 2 x `TIMED_STEPS` steps are timed whole (after one
            not timed), so the cost of an epoch's end (reshuffling, restarting the data's worker) is
            counted; longer ones, `TIMED_STEPS` steps after `WARMUP_STEPS` within one epoch.
        codes: ``--codes index``: the decoder alone, fed fixed codes (also what refinement trains).
        rate_distortion: Rate-distortion training (`latentpack.codec.keras.rate_distortion`), whose step
            also trains the latents' density.
        seed: Seeds the weights and the random pixels.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    if steps_per_epoch <= 2 * TIMED_STEPS:  # short epochs: whole ones, after one that warms up
        per_epoch = max(1, steps_per_epoch)
        epochs = 1 + -(-TIMED_STEPS // per_epoch)
    else:  # long epochs: an epoch's end costs little per step; steps within one epoch
        per_epoch, epochs = WARMUP_STEPS + TIMED_STEPS, 1
    if not design.one_vector:
        synthetic = _synthetic_folder(folder, 64, seed)
        data = Patches(synthetic, batch_size, seed, patch_size(folder, design.stride), per_epoch)
    else:
        synthetic = _synthetic_folder(folder, batch_size * per_epoch, seed)
        if codes:
            values = np.random.default_rng(seed).standard_normal((len(synthetic), 1, 1, design.latent_dims))
            data = CodedImages(synthetic, values.astype(np.float32), batch_size, seed)
        else:
            data = WholeImages(synthetic, batch_size, seed)
    model = _model(design, codes, rate_distortion, seed)
    clock = _StepClock()
    start = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0, callbacks=[clock], shuffle=False)
    warmup = WARMUP_STEPS if epochs == 1 else len(clock.ends) - (epochs - 1) * len(data)
    seconds, timed = _per_step(clock.ends, warmup)
    return StepTiming(seconds, timed, training_device(), _setup(start, clock.ends, seconds))


def _model(design: CodecDesign, codes: bool, rate_distortion: bool, seed: int) -> keras.Model:
    """The model training compiles: g_s alone, the autoencoder for MSE, or the rate-distortion model."""
    if codes:
        model = build_model(design.decoder, "g_s")
    elif rate_distortion:
        from latentpack.codec import rd
        from latentpack.codec.keras.rate_distortion import RateDistortionModel

        encoder = build_model(design.encoder, "g_a", image_output=False)
        model = RateDistortionModel(encoder, build_model(design.decoder, "g_s"), rd.DEFAULT_LAMBDA, seed=seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.build_optimizers()  # as training does
        return model
    else:
        model = build_autoencoder(design.encoder, design.decoder).model
    return compile_built(model, keras.optimizers.Adam(1e-3), "mse")


def time_after_training(folder: ImageFolder, design: CodecDesign, *, seed: int = 0,
                        sample: int = AFTER_SAMPLE) -> AfterTraining:
    """Seconds per image of encoding, of g_s in Keras and of measuring quality (numpy decode and PSNR).

    An untrained model of the design runs the very code compress runs
    (`latentpack.codec.keras.train.encode_folder`,
    `latentpack.codec.assemble.measure_quality`) on up to ``sample`` images
    of the folder's shapes holding random pixels, once to warm up and once
    timed.
    """
    from latentpack.codec.assemble import image_table, measure_quality
    from latentpack.codec.keras.model import export_decoder
    from latentpack.codec.keras.train import encode_folder
    from latentpack.codec.runtime.reconstruct import load_decoder
    from latentpack.progress import null_progress

    keras.utils.set_random_seed(seed)
    synthetic = _synthetic_folder(folder, sample, seed)
    encoder = build_model(design.encoder, "g_a", image_output=False)
    g_s = build_model(design.decoder, "g_s")
    n = len(synthetic)
    latents = encode_folder(encoder, synthetic, design)  # warm-up: traces the graph
    t = time.perf_counter()
    latents = encode_folder(encoder, synthetic, design)
    encode = (time.perf_counter() - t) / n
    decode_keras = 0.0
    if design.one_vector:
        z = latents.values.reshape(n, 1, 1, -1)
        np.asarray(g_s(z[:1], training=False))
        t = time.perf_counter()
        np.asarray(g_s(z, training=False))
        decode_keras = (time.perf_counter() - t) / n
    runtime = load_decoder(export_decoder(g_s, design.decoder))
    table = image_table(synthetic, 2, file_sizes=False)
    t = time.perf_counter()
    measure_quality(synthetic, runtime, latents, table, null_progress)
    return AfterTraining(encode, decode_keras, (time.perf_counter() - t) / n, n)


def time_pixel_model_steps(spec, *, batch_samples: int, seed: int = 0) -> StepTiming:
    """Seconds per training step of the pixel model (`latentpack.codec.pixel_model.train`)."""
    from latentpack.codec.pixel_model import train

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = train.build_network(spec)
    compile_built(model, keras.optimizers.Adam(1e-3), train._nll_bits(spec.components))  # as training does
    x = rng.random((batch_samples, spec.inputs), dtype=np.float32)
    y = rng.integers(0, 256, batch_samples).astype(np.float32)
    ends = []
    for _ in range(WARMUP_STEPS + TIMED_STEPS):  # training's own loop: one train_on_batch a step
        model.train_on_batch(x, y)
        ends.append(time.perf_counter())
    seconds, timed = _per_step(ends, WARMUP_STEPS)
    return StepTiming(seconds, timed, training_device())


def time_density_refit(design: CodecDesign, vectors: int, *, seed: int = 0) -> float:
    """Seconds `latentpack.codec.keras.train_rd.predicted_bits` takes on ``vectors`` latent vectors.

    An untrained density of the design's channels is refitted on random
    latents: one traced step, then a few timed ones scaled to
    `REFIT_STEPS`, and its count of the bits of one sample scaled to all the
    vectors.
    """
    from latentpack.codec import rd
    from latentpack.codec.keras.rate_distortion import RateDistortionModel
    from latentpack.codec.keras.train_rd import PREDICT_SAMPLE, REFIT_STEPS, DensityRefit

    keras.utils.set_random_seed(seed)
    encoder = build_model(design.encoder, "g_a", image_output=False)
    density = RateDistortionModel(encoder, build_model(design.decoder, "g_s"), rd.DEFAULT_LAMBDA, seed=seed).density
    n = max(1, min(vectors, PREDICT_SAMPLE))
    values = np.random.default_rng(seed).normal(0, 4, (n, design.latent_dims)).astype(np.float32)
    t = time.perf_counter()
    refit = DensityRefit(density, values)
    refit.step()  # traces the step
    setup = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(REFIT_TIMED_STEPS):
        refit.step()
    per_step = (time.perf_counter() - t) / REFIT_TIMED_STEPS
    t = time.perf_counter()
    refit.bits(values)
    per_vector = (time.perf_counter() - t) / n
    return setup + (REFIT_STEPS - 1) * per_step + per_vector * vectors
