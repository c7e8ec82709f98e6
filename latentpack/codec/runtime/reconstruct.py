"""Decode latents back to images in their original modes (numpy only).

Used by ``extract`` and by ``compress`` (to measure the quality of exactly what
``extract`` will write)::

    y -> NumpyDecoder -> x_hat in [0,1] -> crop (H, W) -> round(255 x_hat)
      -> working pixels -> original mode (palette: nearest stored colour)

Coded (1.1) latents are decoded to integers first (`resolve_latents`); the
float decoder then sees ``q * step``.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from dataclasses import dataclass

from latentpack.codec.index_codes import index_codes
from latentpack.codec.entropy.latent_coding import CHUNK, decode_latents, dequantize
from latentpack.codec.runtime.numpy_decoder import NumpyDecoder
from latentpack.formats.decoder_spec import DecoderSpec, layer_shapes, validate_architecture
from latentpack.formats.errors import ArchiveError, CorruptArchiveError
from latentpack.formats.validate import decoder_input, distinct_rows
from latentpack.formats.schema import DecoderWeights, ImageTable, Latents
from latentpack.fs.images import from_working

__all__ = [
    "load_decoder",
    "to_uint8",
    "iter_reconstructions",
    "decode_batch",
    "decode_costs",
    "decode_cost",
    "check_decodable",
    "MAX_BATCH_PIXELS",
    "MAX_BATCH_SCALARS",
    "MAX_DECODE_SCALARS",
    "resolve_latents",
    "integer_latents",
    "float_latents",
    "ResolvedLatents",
]

#: Bound on the output pixels decoded at once (keeps memory flat).
MAX_BATCH_PIXELS = 1 << 22
#: Bound on the scalars of the largest decoder tensor of one batch.
MAX_BATCH_SCALARS = 1 << 26
#: Largest decoder tensor one image may need (1 GiB of float32): an archive
#: asking for more is refused before anything is decoded or written.
MAX_DECODE_SCALARS = 1 << 28


@dataclass
class ResolvedLatents:
    """Latents ready to decode.

    Attributes:
        latents: With float32 ``values`` filled in.
        q: Flat int32 integer latents (coded or generated archives), else None.
        step: Real value of one unit of ``q`` (None with ``q``).
    """

    latents: Latents
    q: np.ndarray | None
    step: float | None


def integer_latents(latents: Latents) -> tuple[np.ndarray, float] | None:
    """The flat int32 latents and their step: decoded (coded latents) or generated (index codes).

    Returns:
        ``(q, step)``, or None for float32 latents. Nothing but ``q`` grows
        with the number of latents (generated codes are made in chunks).
    """
    if latents.quantized is not None:
        return decode_latents(latents.quantized, latents.offsets, latents.shapes), latents.quantized.step
    if latents.index_codes is not None:
        n = int(latents.offsets[-1])
        q = np.empty(n, dtype=np.int32)
        for a in range(0, n, CHUNK):
            q[a : a + CHUNK] = index_codes(np.arange(a, min(a + CHUNK, n)), latents.index_codes.seed)
        return q, latents.index_codes.step
    return None


def resolve_latents(latents: Latents) -> ResolvedLatents:
    """Decode coded latents or generate index codes; float32 latents pass through."""
    ints = integer_latents(latents)
    if ints is None:
        return ResolvedLatents(latents, None, None)
    q, step = ints
    values = dequantize(q, step)
    return ResolvedLatents(Latents(values=values, offsets=latents.offsets, shapes=latents.shapes), q, step)


def float_latents(latents: Latents) -> Latents:
    """``latents`` with float32 ``values``, as `resolve_latents` makes them, without keeping the integers.

    The values are written over the integers' buffer (both 4 bytes a latent),
    so decoding coded latents needs one array as long as the latents, not two.
    """
    ints = integer_latents(latents)
    if ints is None:
        return latents
    q, step = ints
    values = q.view(np.float32)
    for a in range(0, len(q), CHUNK):
        values[a : a + CHUNK] = dequantize(q[a : a + CHUNK], step)  # reads the integers before writing over them
    return Latents(values=values, offsets=latents.offsets, shapes=latents.shapes)


def load_decoder(decoder: DecoderWeights, spec: DecoderSpec | None = None) -> NumpyDecoder:
    """A runnable numpy decoder from stored weights.

    Args:
        decoder: The stored weights and description.
        spec: The description as the reader (or `check_contents`) already
            validated it; None validates ``decoder.architecture`` here.
    """
    spec = spec or validate_architecture(decoder.architecture)
    return NumpyDecoder(spec, {name: dict(pairs) for name, pairs in decoder.weights.items()})


def to_uint8(x_hat: np.ndarray) -> np.ndarray:
    """Map x_hat in [0, 1] to uint8 pixels (round half to even, clipped)."""
    return np.clip(np.rint(x_hat * 255.0), 0, 255).astype(np.uint8)


def decode_costs(spec: DecoderSpec, latent_shapes: np.ndarray) -> np.ndarray:
    """Scalars in the largest tensor the decoder makes for each latent shape, (w,) int64.

    Raises:
        SpecError: a latent shape does not fit the decoder.
    """
    latent_shapes = np.asarray(latent_shapes).reshape(-1, 3)
    if not len(latent_shapes):
        return np.zeros(0, dtype=np.int64)
    distinct, which = distinct_rows(latent_shapes)
    costs = np.array([decode_cost(spec, tuple(int(d) for d in row)) for row in distinct], dtype=np.int64)
    return costs[which]


def decode_cost(spec: DecoderSpec, latent_shape: tuple[int, ...]) -> int:
    """Scalars in the largest tensor the decoder makes for one latent shape (`decode_costs`)."""
    shapes = [decoder_input(spec, latent_shape)] + layer_shapes(spec, decoder_input(spec, latent_shape))
    return max(int(np.prod(np.array(s, dtype=np.int64))) for s in shapes)


def check_decodable(spec: DecoderSpec, latent_shapes: np.ndarray, names: Sequence[str], indices: Sequence[int]) -> np.ndarray:
    """Refuse, before any work, an image whose decoding would need a tensor over `MAX_DECODE_SCALARS`.

    Returns:
        `decode_costs` of all images.

    Raises:
        ArchiveError: naming the image and ``/latents/shapes``.
    """
    costs = decode_costs(spec, latent_shapes)
    rows = np.asarray(indices, dtype=np.int64)
    over = rows[costs[rows] > MAX_DECODE_SCALARS] if len(rows) else rows
    for i in over[:1].tolist():
        if costs[i] > MAX_DECODE_SCALARS:
            raise ArchiveError(
                f"row {i} ({names[i]!r}): decoding needs a tensor of {int(costs[i]):,} float32 values, "
                f"more than this reader's limit of {MAX_DECODE_SCALARS:,}",
                hdf5_path="/latents/shapes",
            )
    return costs


def _batches(latents: Latents, images: ImageTable, indices: Sequence[int], spec: DecoderSpec) -> Iterator[list[int]]:
    batch: list[int] = []
    pixels = 0
    scalars = 0
    shape = None
    costs: dict[tuple[int, ...], int] = {}  # by latent shape: only the requested images' shapes are costed
    for i in indices:
        s = tuple(int(v) for v in latents.shapes[i])
        h, w = int(images.shapes[i][0]), int(images.shapes[i][1])
        cost = costs[s] if s in costs else costs.setdefault(s, decode_cost(spec, s))
        if batch and (s != shape or pixels + h * w > MAX_BATCH_PIXELS or scalars + cost > MAX_BATCH_SCALARS):
            yield batch
            batch, pixels, scalars = [], 0, 0
        batch.append(int(i))
        shape = s
        pixels += h * w
        scalars += cost
    if batch:
        yield batch


def _check_finite(values: np.ndarray, batch: list[int], images: ImageTable, hdf5_path: str, reason: str) -> None:
    """Refuse a batch whose latents or reconstructions hold inf or NaN, naming the first such image."""
    bad = ~np.isfinite(values.reshape(len(batch), -1)).all(axis=1)
    if np.any(bad):
        i = batch[int(np.argmax(bad))]
        raise CorruptArchiveError(f"image {i} ({images.names[i]!r}): {reason}; refusing to write garbage",
                           hdf5_path=hdf5_path)


def decode_batch(decoder: NumpyDecoder, latents: Latents, images: ImageTable, batch: list[int]) -> np.ndarray:
    """``x_hat`` in [0, 1] of images sharing one latent shape, one decoder call (uncropped).

    Raises:
        CorruptArchiveError: a latent or an output that is not finite, naming the image.
    """
    z = np.stack([latents.get(i) for i in batch])
    _check_finite(z, batch, images, "/latents", "its latents (value or step) are not finite float32")
    with np.errstate(all="ignore"):  # overflow shows up as inf below, never as a RuntimeWarning
        x_hat = decoder(z)
    _check_finite(x_hat, batch, images, "/decoder", "the decoder's output is not finite")
    return x_hat


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
    if latents.coding != "float32":
        latents = float_latents(latents)
    mode = decoder.spec.output_mode
    for batch in _batches(latents, images, indices, decoder.spec):
        x_hat = decode_batch(decoder, latents, images, batch)
        for k, i in enumerate(batch):
            h, w = int(images.shapes[i][0]), int(images.shapes[i][1])
            working = to_uint8(x_hat[k, :h, :w, :])
            p = int(images.palette_index[i])
            palette = images.palettes[p] if p >= 0 else None
            yield i, working, from_working(working, mode, images.modes[i], palette)
