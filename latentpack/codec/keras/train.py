"""Train the autoencoder on a staged folder and encode every image (Keras).

Batches are read from the folder's memory-mapped staging file, so memory does
not grow with the number of images. ``dense`` designs train on whole images;
``conv`` designs train on random square patches (edge-padded where an image is
smaller) and encode each whole image, edge-padded to a multiple of the stride.

    x (uint8) -> /255 -> g_a -> y -> g_s -> x_hat,  loss = MSE(x, x_hat)             (``train_autoencoder``)
    x -> g_a -> y + noise -> g_s -> x_hat,  loss = bits + lambda * MSE        (`latentpack.codec.keras.train_rd`)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from latentpack.codec import architectures, quiet_tensorflow
from latentpack.codec.keras.allocator import keep_freed_memory
from latentpack.codec.design import CodecDesign
from latentpack.errors import OptionError
from latentpack.fs.folder import ImageFolder
from latentpack.progress import ProgressFactory, null_progress

quiet_tensorflow()
keep_freed_memory()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from latentpack.codec.keras import checkpoint, distribute  # noqa: E402
from latentpack.codec.keras.data import CodedImages, Patches, WholeImages, pad_to, patch_size  # noqa: E402
from latentpack.codec.keras.model import (build_autoencoder, build_model, compile_built, export_decoder,  # noqa: E402
                                         load_decoder_weights)
from latentpack.formats.schema import DecoderWeights, Latents  # noqa: E402

__all__ = ["TrainResult", "RefineResult", "train_autoencoder",  "train_decoder", "refine_decoder", "encode_folder",
           "default_epochs", "default_refine_steps", "training_data", "seeded"]

MAX_EPOCHS = 300
#: ``default_refine_steps``: decoder refinement gets this fraction of the training steps.
REFINE_FRACTION = 0.1
#: Adam's initial rate for refinement (cosine-decayed to 5%): a quarter of training's.
REFINE_LEARNING_RATE = 5e-4



@dataclass
class TrainResult:
    """A trained autoencoder and what its training did."""

    encoder: keras.Model | None
    decoder: DecoderWeights
    loss: list[float] = field(default_factory=list)
    epochs: int = 0
    steps_per_epoch: int = 0
    seconds: float = 0.0
    #: Rate-distortion training (`latentpack.codec.keras.train_rd`): its record, and the learned density.
    rate_distortion: dict | None = None
    density: keras.layers.Layer | None = None
    #: How many replicas trained it (`latentpack.codec.keras.distribute.record`).
    replication: dict = field(default_factory=lambda: {"replicas": 1})


def _trains_on_patches(design: CodecDesign) -> bool:
    """True when the design's architecture trains on random patches, False for whole images."""
    kind = architectures.get(design.arch).training_data
    if kind not in ("images", "patches"):
        raise RuntimeError(f"architecture {design.arch!r}: unknown training data {kind!r}")
    return kind == "patches"


def _steps_per_epoch(folder: ImageFolder, design: CodecDesign, batch_size: int) -> int:
    if not _trains_on_patches(design):
        return math.ceil(len(folder) / batch_size)
    p = patch_size(folder, design.stride)
    pixels = int(np.sum(folder.images.heights * folder.images.widths))
    return max(1, min(2000, math.ceil(pixels / (p * p * batch_size))))


def default_epochs(folder: ImageFolder, design: CodecDesign, batch_size: int) -> int:
    """Epochs that give about the architecture's ``target_steps`` optimiser steps (at least 2)."""
    steps = _steps_per_epoch(folder, design, batch_size)
    return int(max(2, min(MAX_EPOCHS, round(architectures.get(design.arch).target_steps / steps))))


class _ProgressCallback(keras.callbacks.Callback):
    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)


def seeded(epochs: int, batch_size: int, seed: int) -> None:
    """Check the loop's arguments and make the run repeatable."""
    if epochs < 1:
        raise OptionError(f"`epochs` must be >= 1, got {epochs}")
    if batch_size < 1:
        raise OptionError(f"`batch_size` must be >= 1, got {batch_size}")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _fit(model: keras.Model, data, *, epochs: int, steps: int, learning_rate: float,
         progress: ProgressFactory | None, replication: distribute.Replication | None = None
         ) -> tuple[list[float], float]:
    """Adam with cosine decay on MSE; returns the loss per epoch and the seconds taken.

    Under a strategy (``replication``) the model must have been built in its
    scope; training then runs `distribute.fit_replicated` (no checkpoints).
    """
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps, alpha=0.05)
    start = time.perf_counter()
    if replication is not None:
        with distribute.replicated(replication):
            optimizer = keras.optimizers.Adam(schedule)
            optimizer.build(model.trainable_variables)
        with (progress or null_progress)("Training", epochs * steps) as bar:
            history = distribute.fit_replicated(replication, model, distribute.mse_step(model, optimizer), data,
                                                epochs=epochs, callbacks=[_ProgressCallback(bar)])
        return [h["loss"] for h in history], time.perf_counter() - start
    compile_built(model, keras.optimizers.Adam(schedule), "mse")
    with (progress or null_progress)("Training", epochs * steps) as bar:
        resumable = checkpoint.callback_for(model, data, epochs, steps, bar)  # None unless compress --resume/--work-dir
        history = model.fit(data, epochs=epochs, verbose=0, shuffle=False,
                            callbacks=[_ProgressCallback(bar)] + ([resumable] if resumable else []))
    losses = resumable.losses if resumable else [float(v) for v in history.history.get("loss", [])]
    return losses, time.perf_counter() - start


def train_autoencoder(
    folder: ImageFolder,
    design: CodecDesign,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    learning_rate: float = 2e-3,
    progress: ProgressFactory | None = None,
) -> TrainResult:
    """Train an autoencoder of the given design on the folder.

    Args:
        folder: The staged images.
        design: The architecture (see `latentpack.codec.design`).
        epochs: Passes over the data (``conv``: over as many patches as pixels).
        batch_size: Images (or patches) per step.
        seed: Seeds weights, shuffling and patch sampling; with op determinism
            on, the same folder and seed give the same weights on one machine.
        learning_rate: Adam's initial rate (cosine-decayed to 5%).
        progress: Optional ``progress(label, total)`` factory.

    Returns:
        The encoder and the exported decoder weights.
    """
    replication = distribute.replication_for(folder)  # None: one device (TF_CONFIG, several GPUs: a strategy)
    seeded(epochs, batch_size, seed)
    with distribute.replicated(replication):
        ae = build_autoencoder(design.encoder, design.decoder)
    data, steps = training_data(folder, design, batch_size, seed)
    loss, seconds = _fit(ae.model, data, epochs=epochs, steps=steps, learning_rate=learning_rate, progress=progress,
                         replication=replication)
    if replication is not None:  # the stages after training (the chief alone) run on a plain copy
        trained, ae = ae, build_autoencoder(design.encoder, design.decoder)
        ae.model.set_weights(trained.model.get_weights())
    return TrainResult(
        encoder=ae.encoder,
        decoder=export_decoder(ae.decoder, design.decoder),
        loss=loss,
        epochs=epochs,
        steps_per_epoch=steps,
        seconds=seconds,
        replication=distribute.record(replication),
    )


def training_data(folder: ImageFolder, design: CodecDesign, batch_size: int, seed: int):
    """The design's training batches (whole images or patches) and the steps of one epoch."""
    steps = _steps_per_epoch(folder, design, batch_size)
    if _trains_on_patches(design):
        return Patches(folder, batch_size, seed, patch_size(folder, design.stride), steps), steps
    return WholeImages(folder, batch_size, seed), steps


def default_refine_steps(epochs: int, steps_per_epoch: int) -> int:
    """Refinement steps after a training of ``epochs * steps_per_epoch`` steps (`REFINE_FRACTION` of them)."""
    return max(1, round(REFINE_FRACTION * epochs * steps_per_epoch))


def refine_epochs(steps: int, steps_per_epoch: int) -> int:
    """Whole passes refinement makes to take at least ``steps`` steps (it runs every step of each)."""
    return max(1, math.ceil(steps / steps_per_epoch))


@dataclass
class RefineResult:
    """A decoder fine-tuned on the latents it will actually be given.

    Attributes:
        decoder: The refined weights, rounded as they will be stored.
        mse_before: Mean squared error (pixels in [0, 1]) over the folder of
            the decoder given, on those latents.
        mse_after: The same for ``decoder`` (after rounding).
        steps: Optimiser steps taken.
        seconds: Wall time.
    """

    decoder: DecoderWeights
    mse_before: float
    mse_after: float
    steps: int
    seconds: float

    def as_json(self, kept: bool) -> dict[str, object]:
        return {"steps": self.steps, "mse_before": self.mse_before, "mse_after": self.mse_after, "kept": kept,
                "seconds": round(self.seconds, 3)}


def refine_decoder(
    folder: ImageFolder,
    design: CodecDesign,
    decoder: DecoderWeights,
    latents: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    progress: ProgressFactory | None = None,
) -> RefineResult:
    """Fine-tune a trained decoder on the quantised latents it will decode.

    The autoencoder was trained on float latents; the archive stores them
    rounded to a step. With the encoder and the latents fixed, a few more
    steps of the decoder alone recover part of what rounding cost (the folder
    is both the training set and what is stored, so nothing needs to
    generalise)::

        y_hat_i = q_i * step (fixed) -> g_s -> x_hat_i,   loss = MSE(x_i, x_hat_i)

    Args:
        folder: The staged images (equal-sized: ``mlp`` or ``dense`` designs).
        design: The design the decoder was built from.
        decoder: Its trained weights (already rounded as stored).
        latents: ``(w, 1, 1, y)`` float32 dequantised latents, image ``i``'s at row ``i``.
        steps: Optimiser steps (Adam from `REFINE_LEARNING_RATE`, cosine-decayed).
        batch_size, seed, progress: as `train_autoencoder`.

    Returns:
        The refined weights, rounded to ``decoder.weight_dtype``, and the
        folder's MSE before and after (the caller keeps whichever is lower).
    """
    if not design.one_vector:
        raise OptionError(f"`design` must be mlp or dense to refine its decoder, got {design.arch!r}")
    if steps < 1:
        raise OptionError(f"`steps` must be >= 1, got {steps}")

    keras.utils.set_random_seed(seed)
    model = build_model(design.decoder, "g_s")
    load_decoder_weights(model, decoder)
    data = CodedImages(folder, latents, batch_size, seed)
    epochs = refine_epochs(steps, len(data))
    before = _folder_mse(model, data.array, latents, pages_read=folder.pages_read)
    schedule = keras.optimizers.schedules.CosineDecay(REFINE_LEARNING_RATE, decay_steps=epochs * len(data), alpha=0.05)
    compile_built(model, keras.optimizers.Adam(schedule), "mse")
    start = time.perf_counter()
    with (progress or null_progress)("Refining", epochs * len(data)) as bar:
        resumable = checkpoint.callback_for(model, data, epochs, len(data), bar)  # compress --resume: refinement too
        model.fit(data, epochs=epochs, verbose=0, shuffle=False,
                  callbacks=[_ProgressCallback(bar)] + ([resumable] if resumable else []))
    seconds = time.perf_counter() - start
    refined = export_decoder(model, design.decoder).as_stored(decoder.weight_dtype)
    load_decoder_weights(model, refined)
    after = _folder_mse(model, data.array, latents, pages_read=folder.pages_read)
    return RefineResult(decoder=refined, mse_before=before, mse_after=after, steps=epochs * len(data), seconds=seconds)


def _folder_mse(model: keras.Model, images: np.ndarray, latents: np.ndarray, chunk: int = 2048,
                pages_read: Callable[[int], None] = lambda n: None) -> float:
    """Mean squared error over all ``(w, H, W, C)`` uint8 images (pixels in [0, 1]), summed in float64.

    ``pages_read`` is told the bytes of each chunk read (`ImageFolder.pages_read`)."""
    total, count = 0.0, 0
    for a in range(0, len(images), chunk):
        x = images[a : a + chunk].astype(np.float32) / 255.0
        pages_read(x.size)
        x_hat = np.asarray(model(latents[a : a + chunk], training=False), dtype=np.float64)
        total += float(np.sum((x_hat[:, : x.shape[1], : x.shape[2]] - x) ** 2))
        count += x.size
    return total / max(count, 1)


def train_decoder(
    folder: ImageFolder,
    design: CodecDesign,
    codes: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    learning_rate: float = 2e-3,
    progress: ProgressFactory | None = None,
) -> TrainResult:
    """Train a decoder alone to map fixed codes to their images (``--codes index``).

        code_i (generated from i) -> g_s -> x_hat_i,   loss = MSE(x_i, x_hat_i)

    Args:
        folder: The staged images (all of one size: ``dense`` designs only).
        design: The architecture; its encoder is not used.
        codes: ``(w, 1, 1, y)`` float32 codes, image ``i``'s at row ``i``.
        epochs, batch_size, seed, learning_rate, progress: as `train_autoencoder`.

    Returns:
        The exported decoder (``encoder`` is None).
    """
    if not design.one_vector:
        raise OptionError(f"`design` must be mlp or dense (equal-sized images) for generated codes, got {design.arch!r}")
    replication = distribute.replication_for(folder)
    seeded(epochs, batch_size, seed)

    with distribute.replicated(replication):
        decoder = build_model(design.decoder, "g_s")
    data = CodedImages(folder, codes, batch_size, seed)
    steps = len(data)
    loss, seconds = _fit(decoder, data, epochs=epochs, steps=steps, learning_rate=learning_rate, progress=progress,
                         replication=replication)
    return TrainResult(
        encoder=None,
        decoder=export_decoder(decoder, design.decoder),
        loss=loss,
        epochs=epochs,
        steps_per_epoch=steps,
        seconds=seconds,
        replication=distribute.record(replication),
    )


def encode_folder(
    encoder: keras.Model,
    folder: ImageFolder,
    design: CodecDesign,
    *,
    batch_size: int = 256,
    progress: ProgressFactory | None = None,
) -> Latents:
    """Encode every image to its latent tensor.

    Returns:
        The float latents: flat float32 ``values``, (w+1,) int64 ``offsets``
        and (w, 3) int32 ``shapes``.
    """
    w = len(folder)
    shapes = np.array([design.latent_shape(*size) for size in folder.images.sizes()], dtype=np.int32)
    counts = shapes.prod(axis=1).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    values = np.empty(int(offsets[-1]), dtype=np.float32)
    with (progress or null_progress)("Encoding", w) as bar:
        if design.one_vector:
            for start in range(0, w, batch_size):
                idx = range(start, min(w, start + batch_size))
                x = folder.batch(idx).astype(np.float32) / 255.0
                y = np.asarray(encoder(x, training=False), dtype=np.float32)
                values[offsets[start] : offsets[idx[-1] + 1]] = y.reshape(-1)
                bar.update(len(idx))
        else:
            s = design.stride
            for i, im in enumerate(folder.images):
                x = pad_to(folder.working(i), -(-im.height // s) * s, -(-im.width // s) * s)
                y = np.asarray(encoder(x[None].astype(np.float32) / 255.0, training=False), dtype=np.float32)
                values[offsets[i] : offsets[i + 1]] = y.reshape(-1)
                bar.update(1)
    return Latents(values=values, offsets=offsets, shapes=shapes)
