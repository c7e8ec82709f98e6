"""Which device trains: the first visible GPU when TensorFlow sees one, else the CPU.

Keras places every op on ``GPU:0`` when a GPU is visible (``pip install
'latentpack[gpu]'``), so nothing needs choosing; this module only names what
was used, for the log line and the archive's training record. Decoding never
depends on it: extraction runs numpy on the stored weights.
"""
from __future__ import annotations

import platform

from latentpack.codec import quiet_tensorflow

quiet_tensorflow()
import tensorflow as tf  # noqa: E402

__all__ = ["training_device"]


def training_device() -> str:
    """``"GPU:0 (NVIDIA H200)"`` when a GPU is visible, else ``"CPU (x86_64)"``; never raises."""
    try:
        gpus = tf.config.list_physical_devices("GPU")
    except Exception:  # a broken CUDA install: TensorFlow then trains on the CPU
        gpus = []
    if gpus:
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        except Exception:
            name = ""
        return f"GPU:0 ({name})" if name else "GPU:0"
    return f"CPU ({platform.machine() or 'unknown'})"
