"""The codec, as named stages (`latentpack.ops.compress` composes them)::

    architectures/  the architecture registry: one module per design (mlp, dense, conv)
    design.py       the shared planning: latent size and decoder capacity for a folder
    keras/          build, train, encode with Keras (the only code importing TensorFlow)
    runtime/        run the stored decoder with numpy: float32 and fixed point; rebuild images
    entropy/        range coding, coded latents, lossless pixel residuals (numpy + constriction)
    rate.py         the latent step: grid, bisection, quality and size targets
    index_codes.py  codes generated from an image's index

Importing this package does not import TensorFlow: `latentpack.codec.keras.model`
and `latentpack.codec.keras.train` do, and only ``compress`` reaches them.
"""
from __future__ import annotations

import logging
import os
import warnings

__all__ = ["quiet_tensorflow"]


def quiet_tensorflow() -> None:
    """Hide TensorFlow's and absl's start-up log lines (call before importing it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tensorflow")
