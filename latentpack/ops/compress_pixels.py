"""Lossless compression under the pixel model alone: no autoencoder, no latents.

    staged folder -> plan (width from what its weights cost, steps)        codec.pixel_model.train
                  -> train the network on the folder's samples (Keras), round it to integers
                  -> code every image's working pixels, block by block       codec.pixel_model.exact
                  -> decode everything once and check every digest (never write a wrong archive)
                  -> header: z = the model's weights at 32 bits, y = 0; the bits as stored

`latentpack.ops.compress` calls `pixel_contents` for ``--lossless`` unless an
autoencoder was asked for (see `uses_pixel_model`).
"""
from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np

import latentpack
from latentpack.codec.assemble import image_table, open_original
from latentpack.codec.entropy.lossless import check_all_digests
from latentpack.codec.pixel_model.exact import encode_pixels, iter_exact_pixels
from latentpack.errors import OptionError
from latentpack.formats.schema import ArchiveContents, Quality, compute_header
from latentpack.fs.folder import ImageFolder
from latentpack.fs.images import NATURAL_CHANNELS
from latentpack.progress import ProgressFactory

__all__ = ["LOSSLESS_CODERS", "uses_pixel_model", "pixel_contents"]

#: ``auto``: the pixel model, unless an autoencoder option was given; ``pixel``; ``residual``
#: (the autoencoder's fixed-point prediction plus context-count residuals, format 1.1).
LOSSLESS_CODERS = ("auto", "pixel", "residual")
#: Options that only an autoencoder uses: given with ``auto``, they choose the residual coder.
AUTOENCODER_OPTIONS = ("latent_dims", "filters", "latent_step")


def uses_pixel_model(options: Any) -> bool:
    """Whether a lossless compression with these options runs the pixel model alone.

    Raises:
        OptionError: ``pixel`` with an option only an autoencoder has.
    """
    if not options.lossless:
        return False
    asked = [name for name in AUTOENCODER_OPTIONS if getattr(options, name) is not None]
    if options.arch != "auto":
        asked.append("arch")
    if options.codes != "encoder":
        asked.append("codes")
    if options.lossless_coder == "pixel" and asked:
        raise OptionError(f"the pixel coder trains no autoencoder: `{'`, `'.join(asked)}` cannot apply "
                          "(use --lossless-coder residual)")
    return options.lossless_coder == "pixel" or (options.lossless_coder == "auto" and not asked)


def pixel_contents(staged: ImageFolder, options: Any, progress: ProgressFactory,
                   timings: dict[str, float]) -> ArchiveContents:
    """Train the pixel model on the folder, code every image with it, check, and build the contents."""
    from latentpack.codec.pixel_model import train  # TensorFlow loads here

    from latentpack.codec.keras.device import training_device
    from latentpack.ops.plan import pixel_plan, report, report_plan

    w = len(staged)
    shapes = [(im.height, im.width, NATURAL_CHANNELS[staged.working_mode]) for im in staged.images]
    samples = sum(int(np.prod(s)) for s in shapes)
    plan, spec = pixel_plan(staged, options)
    steps, device = plan.steps, training_device()
    report_plan(plan)
    report.info(f"Training on {device}")
    t = time.perf_counter()
    x, y = train.training_set(staged.working, shapes, spec, options.seed)
    with progress("Training the pixel model", steps) as bar:
        model, fit = train.train_pixel_model(x, y, spec, steps, seed=options.seed, on_step=lambda n: bar.update(1))
    del x, y
    mlp = train.to_integer(model, spec)
    timings["train"] = time.perf_counter() - t
    table = image_table(staged, options.stored_digest_bytes)
    t = time.perf_counter()
    with progress("Coding pixels", w) as bar:
        coding, ideal_bits = encode_pixels(staged.working, staged.working_mode, table, mlp,
                                           lambda i: open_original(staged, i), on_block=bar.update)
    timings["code_pixels"] = time.perf_counter() - t
    t = time.perf_counter()
    digests = []
    with progress("Checking", w) as bar:  # decode everything once: never write a wrong archive
        for _, _, _, digest, _ in iter_exact_pixels(coding, table):
            digests.append(digest)
            bar.update(1)
    check_all_digests(table.sha256_all, digests)
    timings["check"] = time.perf_counter() - t
    header = compute_header(
        w=w, latent_counts=np.zeros(w, dtype=np.int64), x_bits=staged.x_bits, decoder_scalars=coding.model_scalars,
        folder_bytes=staged.folder_bytes, stored_latent_bits=0, residual_bits=coding.residual_bits,
        stored_decoder_bits=coding.model_bits,
    )
    training = {
        "coder": "pixel-model", "working_mode": staged.working_mode, "lossless": True,
        "pixel_model": {**spec.as_json(), "refinement": mlp.refinement}, "steps": fit.steps, "batch_samples": train.BATCH_SAMPLES,
        "training_samples": int(min(samples, train.MAX_TRAINING_SAMPLES)), "seed": options.seed,
        "float_bits_per_sample": fit.float_bits_per_sample, "ideal_bits_per_sample": ideal_bits / max(samples, 1),
        "timings": timings, "platform": platform.platform(), "device": device,
    }
    if staged.skipped:
        training["skipped"] = [{"name": name, "reason": reason} for name, reason in staged.skipped]
    return ArchiveContents(header=header, decoder=None, latents=None, images=table,
                           quality=Quality(psnr=np.full(w, np.inf)), training=training,
                           writer=f"latentpack {latentpack.__version__}", pixels=coding)
