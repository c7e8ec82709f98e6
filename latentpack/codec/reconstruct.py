"""Decode latents back to images in their original modes (numpy only).

Used by ``extract`` and by ``compress`` (to measure the quality of exactly what
``extract`` will write)::

    y -> NumpyDecoder -> x_hat in [0,1] -> crop (H, W) -> round(255 x_hat)
      -> working pixels -> original mode (palette: nearest stored colour)
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from latentpack.codec.numpy_decoder import NumpyDecoder
from latentpack.formats.decoder_spec import validate_architecture
from latentpack.formats.schema import DecoderWeights, ImageTable, Latents
from latentpack.images import from_working

__all__ = ["load_decoder", "to_uint8", "iter_reconstructions", "MAX_BATCH_PIXELS"]

#: Bound on the output pixels decoded at once (keeps memory flat).
MAX_BATCH_PIXELS = 1 << 22


def load_decoder(decoder: DecoderWeights) -> NumpyDecoder:
    """A runnable numpy decoder from stored weights."""
    spec = validate_architecture(decoder.architecture)
    return NumpyDecoder(spec, {name: dict(pairs) for name, pairs in decoder.weights.items()})


def to_uint8(x_hat: np.ndarray) -> np.ndarray:
    """Map x_hat in [0, 1] to uint8 pixels (round half to even, clipped)."""
    return np.clip(np.rint(x_hat * 255.0), 0, 255).astype(np.uint8)


def _batches(latents: Latents, images: ImageTable, indices: Sequence[int]) -> Iterator[list[int]]:
    batch: list[int] = []
    pixels = 0
    shape = None
    for i in indices:
        s = tuple(int(v) for v in latents.shapes[i])
        h, w = int(images.shapes[i][0]), int(images.shapes[i][1])
        if batch and (s != shape or pixels + h * w > MAX_BATCH_PIXELS):
            yield batch
            batch, pixels = [], 0
        batch.append(int(i))
        shape = s
        pixels += h * w
    if batch:
        yield batch


def iter_reconstructions(
    decoder: NumpyDecoder,
    latents: Latents,
    images: ImageTable,
    indices: Sequence[int] | None = None,
) -> Iterator[tuple[int, np.ndarray, Image.Image]]:
    """Decode images one batch at a time.

    Args:
        decoder: The numpy decoder.
        latents: All latents of the archive.
        images: The image table (shapes, modes, palettes).
        indices: Which images, in order (default: all).

    Yields:
        ``(index, working_pixels, image)``: the uint8 working pixels (H, W, C)
        and the image in its original mode.
    """
    if indices is None:
        indices = range(len(images))
    mode = decoder.spec.output_mode
    for batch in _batches(latents, images, indices):
        z = np.stack([latents.get(i) for i in batch])
        x_hat = decoder(z)
        for k, i in enumerate(batch):
            h, w = int(images.shapes[i][0]), int(images.shapes[i][1])
            working = to_uint8(x_hat[k, :h, :w, :])
            p = int(images.palette_index[i])
            palette = images.palettes[p] if p >= 0 else None
            yield i, working, from_working(working, mode, images.modes[i], palette)
