"""The codec: design, train and encode with Keras; decode with numpy.

Importing this package does not import TensorFlow. `latentpack.codec.model`
and `latentpack.codec.train` do, and only ``compress`` reaches them.
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
