"""Code the new images of ``latentpack add`` under what the archive stores, and append them.

    lossy, coded latents:   old q + new q -> count tables re-derived from all of them -> one stream re-coded
                            (the old integers do not change, so neither do the old images)
    lossy, float32 latents: old values + new values
    /lossless:              new images' pixels given their fixed-point prediction, coded under the stored
                            count tables (a zero count stays codable) as new blocks after the old ones
    /pixels:                new images coded under the stored network as new blocks after the old ones

Old blocks, streams and raw exceptions are kept word for word; every new
image of an exact archive is decoded back and checked against its digest
before anything is written.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image

from latentpack.codec.entropy.latent_coding import encode_latents
from latentpack.codec.entropy.lossless import find_exceptions, fixed_point_decoder, predict
from latentpack.codec.entropy.range_coding import CountModels
from latentpack.codec.entropy.residual import ContextParams, encode_block, plan_blocks
from latentpack.formats.schema import ImageTable, Latents, LosslessResiduals, PixelModelCoding

__all__ = ["append_latents", "append_residuals", "append_pixels", "check_new_exact", "concat"]


def concat(*arrays: np.ndarray) -> np.ndarray:
    """Arrays joined along the first axis, keeping the first one's dtype."""
    return np.concatenate([np.asarray(a) for a in arrays]).astype(np.asarray(arrays[0]).dtype)


def _shifted(bounds: np.ndarray, old: np.ndarray, by: int) -> np.ndarray:
    """An index that ends where ``old`` ends, continued by ``bounds`` (from 0) shifted by ``by``."""
    return concat(old, np.asarray(bounds[1:], dtype=np.int64) + by)


def append_latents(old: Latents, old_q: np.ndarray | None, new: Latents, new_q: np.ndarray | None) -> Latents:
    """The archive's latents with the new images' after them (coded ones re-coded with re-derived tables)."""
    offsets = _shifted(new.offsets, old.offsets, int(old.offsets[-1]))
    shapes = concat(old.shapes.reshape(-1, 3), new.shapes.reshape(-1, 3))
    if old.quantized is None:
        return Latents(values=concat(old.values, new.values), offsets=offsets, shapes=shapes)
    quantized = encode_latents(concat(old_q, new_q), offsets, shapes, old.quantized.step)
    return Latents(values=np.zeros(0, np.float32), offsets=offsets, shapes=shapes, quantized=quantized)


def _exceptions(old_index: np.ndarray, old_offsets: np.ndarray, old_bytes: np.ndarray, new_index: np.ndarray,
                new_raw: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The raw exceptions with the new images' after the old ones."""
    e = len(old_offsets) - 1
    index = concat(old_index, np.where(new_index >= 0, new_index + e, -1))
    sizes = np.cumsum([len(r) for r in new_raw], dtype=np.int64)
    offsets = concat(old_offsets, int(old_offsets[-1]) + sizes)
    raw = concat(old_bytes, np.frombuffer(b"".join(new_raw), dtype=np.uint8))
    return index.astype(np.int32), offsets.astype(np.int64), raw.astype(np.uint8)


def append_residuals(ll: LosslessResiduals, decoder, step: float, new_q: np.ndarray, new_latents: Latents,
                     working: Callable[[int], np.ndarray], working_mode: str, table: ImageTable,
                     open_original: Callable[[int], Image.Image]) -> LosslessResiduals:
    """``/lossless`` with the new images (``table``: theirs alone) coded under the stored tables as new blocks."""
    fp = fixed_point_decoder(decoder, step, ll.thresholds)
    n = len(table)
    preds = predict(fp, new_q, new_latents.offsets, new_latents.shapes, table.shapes, range(n))
    images = [np.asarray(working(i)) for i in range(n)]
    bounds = plan_blocks([x.size for x in images])
    params, models = ContextParams(ll.pred_levels, ll.neighbour_levels), CountModels(ll.counts)
    streams = [encode_block(images[a:b], [preds[i] for i in range(a, b)], params, models)
               for a, b in zip(bounds[:-1], bounds[1:])]
    words = np.cumsum([len(s) for s in streams], dtype=np.int64)
    index, raw = find_exceptions(lambda i: images[i], working_mode, table, open_original)
    w0 = int(ll.block_bounds[-1])
    exc = _exceptions(ll.exception_index, ll.exception_offsets, ll.exception_bytes, index, raw)
    return LosslessResiduals(
        act_bits=ll.act_bits, acc_bits=ll.acc_bits, thresholds=ll.thresholds, pred_levels=ll.pred_levels,
        neighbour_levels=ll.neighbour_levels, counts=ll.counts,
        block_bounds=_shifted(bounds, ll.block_bounds, w0),
        stream_offsets=concat(ll.stream_offsets, len(ll.stream) + words),
        stream=concat(ll.stream, *streams) if streams else ll.stream,
        exception_index=exc[0], exception_offsets=exc[1], exception_bytes=exc[2],
    )


def append_pixels(coding: PixelModelCoding, working: Callable[[int], np.ndarray], table: ImageTable,
                  open_original: Callable[[int], Image.Image]) -> PixelModelCoding:
    """``/pixels`` with the new images (``table``: theirs alone) coded under the stored network as new blocks."""
    from latentpack.codec.pixel_model.blocks import encode_images, mlp_of

    n = len(table)
    shapes = [tuple(int(v) for v in working(i).shape) for i in range(n)]
    coded = encode_images(working, shapes, mlp_of(coding))
    index, raw = find_exceptions(working, coding.working_mode, table, open_original)
    w0 = len(coding.order)
    exc = _exceptions(coding.exception_index, coding.exception_offsets, coding.exception_bytes, index, raw)
    return PixelModelCoding(
        working_mode=coding.working_mode, rows=coding.rows, cols=coding.cols, channels=coding.channels,
        components=coding.components, position=coding.position, hidden=coding.hidden, shifts=coding.shifts,
        kernels=coding.kernels, biases=coding.biases,
        order=concat(coding.order, coded.order + w0),
        block_bounds=_shifted(coded.block_bounds, coding.block_bounds, w0),
        stream_offsets=concat(coding.stream_offsets, len(coding.stream) + coded.stream_offsets[1:]),
        stream=concat(coding.stream, coded.stream),
        exception_index=exc[0], exception_offsets=exc[1], exception_bytes=exc[2],
        refinement=coding.refinement,  # the new blocks were coded with it (`mlp_of`)
    )


def check_new_exact(contents, rows: range) -> list[bytes]:
    """Decode the new rows of an exact archive (every digest checked); their full digests, in order.

    Raises:
        DigestMismatchError: a new image does not decode to its pixels (a bug: nothing is written).
    """
    from latentpack.codec.decode import iter_images

    return [digest for _, _, digest, _ in iter_images(contents, list(rows))]

