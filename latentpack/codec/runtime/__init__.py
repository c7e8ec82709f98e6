"""The numpy runtime: run a stored decoder in float32 or in exact integers, and rebuild images.

Numpy (and Pillow) only: ``extract``, ``verify`` and ``inspect`` start fast
and a stored file never runs code. Both decoders are driven by the layer
registry (`latentpack.layers`).
"""
from __future__ import annotations

__all__: list[str] = []
