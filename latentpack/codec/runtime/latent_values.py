"""Float32 latent values for decoding, made only as far as the images asked for need them.

    float32 (1.0):        the stored values (a lazy archive reads image i's slice)
    index (1.1):          generated per slice: image i's codes alone, from its index
    range-categorical:    the one stream codes every image (symbols ordered by table,
                          then position): decoded whole, once, then sliced

Each result is a `Latents` whose ``values`` support ``values[a:b]`` and
``len``, which is all `Latents.get` and the decoders use.
"""
from __future__ import annotations

import numpy as np

from latentpack.codec.entropy.latent_coding import dequantize
from latentpack.codec.index_codes import index_codes
from latentpack.codec.runtime.reconstruct import float_latents
from latentpack.formats.schema import Latents

__all__ = ["GeneratedValues", "latent_values"]


class GeneratedValues:
    """The float32 values of generated latents (``--codes index``), made slice by slice.

    Args:
        n: How many latent scalars the archive declares.
        seed: The generator's seed (``/latents`` attribute ``seed``).
        step: The value of one unit (``/latents`` attribute ``step``).
    """

    dtype = np.dtype(np.float32)

    def __init__(self, n: int, seed: int, step: float):
        self.n, self.seed, self.step = int(n), int(seed), float(step)
        self.shape = (self.n,)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, step = key.indices(self.n)
        if step != 1:
            raise ValueError("generated latents are read by contiguous slices")
        return dequantize(index_codes(np.arange(start, max(start, stop)), self.seed), self.step)


def latent_values(latents: Latents) -> Latents:
    """`latents` with float32 ``values`` to slice: stored, generated per slice, or decoded once (coded)."""
    if latents.index_codes is not None:
        n = int(latents.offsets[-1]) if len(latents.offsets) else 0
        values = GeneratedValues(n, latents.index_codes.seed, latents.index_codes.step)
        return Latents(values=values, offsets=latents.offsets, shapes=latents.shapes)  # type: ignore[arg-type]
    if latents.quantized is not None:
        return float_latents(latents)
    return latents
