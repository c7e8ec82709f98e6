"""The Keras stage: build models from descriptions, train, encode (the only code importing TensorFlow).

Importing this package imports nothing heavy; `latentpack.codec.keras.model`
and `latentpack.codec.keras.train` import TensorFlow, and only ``compress``
reaches them.
"""
from __future__ import annotations

__all__: list[str] = []
