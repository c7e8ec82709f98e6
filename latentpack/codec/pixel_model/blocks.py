"""A folder's working pixels as blocks of equal-shaped images, each its own range-coded stream.

Images are grouped by shape (in index order within a shape) and cut into
blocks of at most `MAX_BLOCK_SAMPLES` samples; each block is one stream, so
one image is decoded by decoding its block only, and blocks decode in any
order::

    images -> order (by shape, then index) -> blocks -> encode_block each -> streams
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from latentpack.codec.pixel_model.coder import decode_block, encode_block
from latentpack.codec.pixel_model.network import DenseInt, IntegerMLP, PixelModelSpec
from latentpack.formats.schema import PixelModelCoding

__all__ = ["MAX_BLOCK_SAMPLES", "CodedBlocks", "plan_blocks", "encode_images", "iter_decoded", "block_of", "decode_block_images", "to_coding", "mlp_of",
           "coded_blocks"]

#: Samples per block: larger blocks mean fewer, larger network calls (faster); one image is decoded
#: by decoding its whole block (for 28x28 greyscale digits: 21,400 of them).
MAX_BLOCK_SAMPLES = 1 << 24


@dataclass
class CodedBlocks:
    """Every image's pixels, coded.

    Attributes:
        order: ``(w,)`` image indices in coding order (grouped by shape).
        block_bounds: ``(blocks + 1,)`` positions in ``order`` where each block starts.
        stream_offsets: ``(blocks + 1,)`` where each block's words start in ``stream``.
        stream: All blocks' uint32 words.
        bits: The model's ideal code length of all blocks (bits).
    """

    order: np.ndarray
    block_bounds: np.ndarray
    stream_offsets: np.ndarray
    stream: np.ndarray
    bits: float


def plan_blocks(shapes: Sequence[tuple[int, int, int]], max_samples: int = MAX_BLOCK_SAMPLES
                ) -> tuple[np.ndarray, np.ndarray]:
    """The coding order (by shape, then index) and the block bounds into it."""
    keys = np.array([(h, w, c) for h, w, c in shapes], dtype=np.int64).reshape(-1, 3)
    order = np.lexsort((np.arange(len(keys)), keys[:, 2], keys[:, 1], keys[:, 0])) if len(keys) else np.zeros(0, int)
    bounds, acc = [0], 0
    for pos, i in enumerate(order):
        size = int(np.prod(keys[i]))
        if pos and (acc + size > max_samples or not np.array_equal(keys[i], keys[order[pos - 1]])):
            bounds.append(pos)
            acc = 0
        acc += size
    if len(order):
        bounds.append(len(order))
    return order.astype(np.int64), np.asarray(bounds, dtype=np.int64)


def encode_images(images: Callable[[int], np.ndarray], shapes: Sequence[tuple[int, int, int]], mlp: IntegerMLP,
                  on_block: Callable[[int], None] | None = None, max_samples: int = MAX_BLOCK_SAMPLES) -> CodedBlocks:
    """Code every image (``images(i)``: (H, W, C) uint8 working pixels) block by block."""
    order, bounds = plan_blocks(shapes, max_samples)
    streams, bits = [], 0.0
    for a, b in zip(bounds[:-1], bounds[1:]):
        block = np.stack([np.asarray(images(int(i)), dtype=np.uint8) for i in order[a:b]])
        words, block_bits = encode_block(block, mlp)
        streams.append(words)
        bits += block_bits
        if on_block is not None:
            on_block(int(b - a))
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in streams])]).astype(np.int64)
    stream = np.concatenate(streams).astype(np.uint32) if streams else np.zeros(0, np.uint32)
    return CodedBlocks(order=order, block_bounds=bounds, stream_offsets=offsets, stream=stream, bits=bits)


def block_of(coded: CodedBlocks) -> np.ndarray:
    """``(w,)`` the block holding each image."""
    out = np.empty(len(coded.order), dtype=np.int64)
    for b, (a, e) in enumerate(zip(coded.block_bounds[:-1], coded.block_bounds[1:])):
        out[coded.order[a:e]] = b
    return out


def decode_block_images(coded: CodedBlocks, shapes: Sequence[tuple[int, int, int]], mlp: IntegerMLP, block: int
                        ) -> list[tuple[int, np.ndarray]]:
    """``[(image index, (H, W, C) uint8), ...]`` of one block, in coding order.

    Raises:
        ValueError, RuntimeError, AssertionError: from the range decoder on a damaged stream
            (the caller names the block's images).
    """
    a, e = int(coded.block_bounds[block]), int(coded.block_bounds[block + 1])
    members = coded.order[a:e]
    h, w, _ = shapes[int(members[0])]
    words = coded.stream[int(coded.stream_offsets[block]):int(coded.stream_offsets[block + 1])]
    pixels = decode_block(words, mlp, e - a, (h, w))
    return [(int(i), pixels[k]) for k, i in enumerate(members)]


def iter_decoded(coded: CodedBlocks, shapes: Sequence[tuple[int, int, int]], mlp: IntegerMLP,
                 wanted: Sequence[int] | None = None, block_order: Sequence[int] | None = None
                 ) -> Iterator[tuple[int, list[tuple[int, np.ndarray]]]]:
    """Decode the blocks holding ``wanted`` images (all by default).

    Yields:
        ``(block, [(image index, (H, W, C) uint8), ...])`` for each block decoded, in
        ``block_order`` if given, else in stream order.
    """
    n_blocks = len(coded.block_bounds) - 1
    needed = set(range(n_blocks)) if wanted is None else set(block_of(coded)[np.asarray(list(wanted), int)].tolist())
    for b in (range(n_blocks) if block_order is None else block_order):
        if b in needed:
            yield b, decode_block_images(coded, shapes, mlp, b)


def to_coding(mlp: IntegerMLP, coded: CodedBlocks, working_mode: str, exception_index: np.ndarray,
              exceptions: Sequence[bytes]) -> PixelModelCoding:
    """The archive element of a trained model and its coded blocks."""
    spec = mlp.spec
    sizes = [len(e) for e in exceptions]
    return PixelModelCoding(
        working_mode=working_mode, rows=spec.rows, cols=spec.cols, channels=spec.channels,
        components=spec.components, position=spec.position,
        hidden=np.asarray(spec.hidden, dtype=np.int32),
        shifts=np.asarray([layer.shift for layer in mlp.layers], dtype=np.int32),
        kernels=np.concatenate([layer.kernel.astype(np.int16).ravel() for layer in mlp.layers]),
        biases=np.concatenate([layer.bias.astype(np.int32).ravel() for layer in mlp.layers]),
        order=coded.order, block_bounds=coded.block_bounds, stream_offsets=coded.stream_offsets,
        stream=coded.stream, exception_index=np.asarray(exception_index, dtype=np.int32),
        exception_offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        exception_bytes=np.frombuffer(b"".join(exceptions), dtype=np.uint8).copy(),
        refinement=mlp.refinement,
    )


def mlp_of(coding: PixelModelCoding) -> IntegerMLP:
    """The integer network an archive's ``/pixels`` element describes (sizes checked by the reader)."""
    spec = PixelModelSpec(rows=int(coding.rows), cols=int(coding.cols), channels=int(coding.channels),
                          components=int(coding.components), hidden=tuple(int(h) for h in coding.hidden),
                          position=bool(coding.position))
    dims = [spec.inputs, *spec.hidden, spec.outputs]
    layers, k, b = [], 0, 0
    for i, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:])):
        kernel = np.asarray(coding.kernels[k:k + n_in * n_out]).reshape(n_in, n_out)
        bias = np.asarray(coding.biases[b:b + n_out])
        layers.append(DenseInt(kernel=kernel, bias=bias, shift=int(coding.shifts[i]), relu=i < len(dims) - 2))
        k, b = k + n_in * n_out, b + n_out
    return IntegerMLP(spec, layers, refinement=coding.refinement)


def coded_blocks(coding: PixelModelCoding) -> CodedBlocks:
    """The block index and streams of an archive's ``/pixels`` element."""
    return CodedBlocks(order=coding.order, block_bounds=coding.block_bounds, stream_offsets=coding.stream_offsets,
                       stream=coding.stream, bits=float("nan"))
