"""Lossless archives under the pixel model: code a folder's working pixels, decode them back exactly.

    working pixels -> blocks.encode_images -> /pixels (+ raw originals of the few images
                      that working pixels cannot rebuild: CMYK, palettes repeating a colour)
    /pixels -> blocks.iter_decoded -> rebuild each original -> its sha256 checked -> image

The digest check is what names an image whose stream was damaged: nothing
wrong is ever handed on.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from latentpack.codec.entropy.lossless import DigestMismatchError, check_digest, find_exceptions, rebuild_original
from latentpack.codec.entropy.range_coding import STREAM_ERRORS
from latentpack.codec.pixel_model.blocks import (
    block_of,
    coded_blocks,
    decode_block_images,
    encode_images,
    mlp_of,
    to_coding,
)
from latentpack.codec.pixel_model.network import IntegerMLP
from latentpack.formats.errors import ArchiveError
from latentpack.formats.schema import ImageTable, PixelModelCoding

__all__ = ["encode_pixels", "iter_exact_pixels", "check_block_sizes", "MAX_BLOCK_DECODE_SAMPLES"]

#: Samples one block may hold for this reader to decode it (its pixels and their features are in memory).
MAX_BLOCK_DECODE_SAMPLES = 1 << 26


def encode_pixels(working: Callable[[int], np.ndarray], working_mode: str, table: ImageTable, mlp: IntegerMLP,
                  open_original: Callable[[int], Image.Image],
                  on_block: Callable[[int], None] | None = None) -> tuple[PixelModelCoding, float]:
    """Code every image's working pixels; returns the ``/pixels`` element and the model's ideal bits."""
    shapes = [tuple(int(v) for v in working(i).shape) for i in range(len(table))]
    coded = encode_images(working, shapes, mlp, on_block=on_block)
    exception_index, exceptions = find_exceptions(working, working_mode, table, open_original)
    return to_coding(mlp, coded, working_mode, exception_index, exceptions), coded.bits


def check_block_sizes(coding: PixelModelCoding, table: ImageTable, indices: Sequence[int]) -> None:
    """Refuse a block holding a wanted image when it is larger than `MAX_BLOCK_DECODE_SAMPLES`.

    Raises:
        ArchiveError: naming the image and ``/pixels/block_bounds``.
    """
    samples = table.shapes.astype(np.int64).prod(axis=1)
    coded = coded_blocks(coding)
    where = block_of(coded)
    sizes = np.zeros(len(coded.block_bounds) - 1, dtype=np.int64)
    np.add.at(sizes, where, samples)
    for i in indices:
        if sizes[where[i]] > MAX_BLOCK_DECODE_SAMPLES:
            raise ArchiveError(f"row {i} ({table.names[i]!r}): its block holds {int(sizes[where[i]]):,} samples, "
                               f"more than this reader's limit of {MAX_BLOCK_DECODE_SAMPLES:,}",
                               hdf5_path="/pixels/block_bounds")


def iter_exact_pixels(coding: PixelModelCoding, table: ImageTable, indices: Sequence[int] | None = None,
                      strict: bool = True) -> Iterator[tuple[int, np.ndarray, Image.Image, bytes, bool]]:
    """Decode images exactly, block by block, checking every digest.

    Yields:
        ``(index, working_pixels, image, full_sha256, matches)`` in index order (a block of
        another shape that is decoded early is held until its images' turn).

    Raises:
        DigestMismatchError: a block's stream cannot be decoded, or (``strict``) an image's
            pixels do not match its stored digest; either names the images.
    """
    mlp = mlp_of(coding)
    coded = coded_blocks(coding)
    shapes = [tuple(int(v) for v in s) for s in table.shapes]
    where = block_of(coded)
    wanted = range(len(table)) if indices is None else sorted(set(int(i) for i in indices))
    ready: dict[int, np.ndarray] = {}  # decoded, not yet yielded (blocks of another shape come between)
    for i in wanted:
        if i not in ready:
            b = int(where[i])
            try:
                pairs = decode_block_images(coded, shapes, mlp, b)
            except STREAM_ERRORS as err:  # constriction, damaged stream
                first = coded.order[int(coded.block_bounds[b]):int(coded.block_bounds[b + 1])][:5]
                members = [table.names[int(j)] for j in first]
                raise DigestMismatchError(f"the pixels of image(s) {', '.join(map(repr, members))} (block {b}) "
                                          f"cannot be decoded: {err}", hdf5_path="/pixels/stream") from None
            keep = set(wanted) if indices is not None else None
            ready.update((j, px) for j, px in pairs if j >= i and (keep is None or j in keep))
        pixels = ready.pop(i)
        r = int(coding.exception_index[i])
        exc = None
        if r >= 0:
            exc = coding.exception_bytes[int(coding.exception_offsets[r]):int(coding.exception_offsets[r + 1])].tobytes()
        img = rebuild_original(pixels, coding.working_mode, table, i, exc)
        digest, ok = check_digest(img, table, i, strict)
        yield i, pixels, img, digest, ok

