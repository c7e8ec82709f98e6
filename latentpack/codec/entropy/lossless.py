"""Lossless archives: fixed-point prediction + context-coded pixels + digest checks.

Compress::

    q (integer latents) -> FixedPointDecoder -> x_hat (uint8, same on every machine)
    x (working pixels), x_hat -> count table -> blocks of images -> range-coded streams
    images whose original cannot be rebuilt from working pixels -> raw exceptions

Extract::

    streams, x_hat -> x -> original mode (or the raw exception)
        -> sha256 of the pixels == stored digest?  else `DigestMismatchError`

Numpy, Pillow and constriction only (no TensorFlow).
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from latentpack.codec.entropy.range_coding import STREAM_ERRORS, CountModels
from latentpack.codec.runtime.fixedpoint import ACC_BITS, ACT_BITS, FixedPointDecoder, compute_thresholds
from latentpack.codec.entropy.residual import ContextParams, choose_params, count_table, decode_block, encode_block, plan_blocks
from latentpack.formats.decoder_spec import DecoderSpec, validate_architecture
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.schema import DecoderWeights, ImageTable, LosslessResiduals
from latentpack.fs.images import from_working, pixel_sha256
from latentpack.progress import ProgressFactory, null_progress

__all__ = [
    "DigestMismatchError",
    "fixed_point_decoder",
    "predict",
    "encode_residuals",
    "find_exceptions",
    "iter_exact",
    "rebuild_original",
    "check_digest",
    "check_all_digests",
    "AllDigests",
    "CHOICE_SAMPLES",
]

#: Samples (pixels x channels) used to choose the context shape.
CHOICE_SAMPLES = 1 << 20
#: Output samples predicted at once.
_PREDICT_SAMPLES = 1 << 19


class DigestMismatchError(CorruptArchiveError):
    """A decoded image's sha256 differs from the stored one (the image is named)."""


def fixed_point_decoder(decoder: DecoderWeights, step: float, thresholds: np.ndarray | None = None,
                        spec: DecoderSpec | None = None) -> FixedPointDecoder:
    """The fixed-point decoder of stored weights (thresholds computed when not given).

    ``spec`` is the description already validated (by the reader); None validates it here.
    """
    spec = spec or validate_architecture(decoder.architecture)
    if thresholds is None:
        thresholds = compute_thresholds(spec.layers[-1].config.get("activation", "linear"))
    weights = {name: dict(pairs) for name, pairs in decoder.weights.items()}
    return FixedPointDecoder(spec, weights, float(step), thresholds)


def predict(fp: FixedPointDecoder, q: np.ndarray, offsets: np.ndarray, latent_shapes: np.ndarray,
            image_shapes: np.ndarray, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """uint8 working-pixel predictions (H, W, C) of the given images."""
    out: dict[int, np.ndarray] = {}
    groups: dict[tuple, list[int]] = {}
    for i in indices:
        groups.setdefault(tuple(int(v) for v in latent_shapes[i]), []).append(int(i))
    for shape, members in groups.items():
        per_image = max(1, int(np.prod(image_shapes[members[0]][:2])) * 4)
        step = max(1, _PREDICT_SAMPLES // per_image)
        for a in range(0, len(members), step):
            batch = members[a : a + step]
            z = np.stack([q[offsets[i] : offsets[i + 1]].reshape(shape) for i in batch])
            pred = fp(z)
            for k, i in enumerate(batch):
                h, w = int(image_shapes[i][0]), int(image_shapes[i][1])
                out[i] = np.ascontiguousarray(pred[k, :h, :w, :])
    return out


def rebuild_original(working: np.ndarray, working_mode: str, table: ImageTable, i: int,
                     exception: bytes | None = None) -> Image.Image:
    """Image ``i`` in its original mode, from its working pixels or its raw exception bytes."""
    p = int(table.palette_index[i])
    palette = table.palettes[p] if p >= 0 else None
    if exception is None:
        return from_working(working, working_mode, table.modes[i], palette)
    h, w = int(table.shapes[i][0]), int(table.shapes[i][1])
    try:
        img = Image.frombytes(table.modes[i], (w, h), exception)
    except ValueError as err:
        raise CorruptArchiveError(f"image {table.names[i]!r}: exception pixels cannot be read ({err})",
                                  hdf5_path="/lossless/exception_bytes") from None
    if img.mode == "P" and palette is not None:
        img.putpalette(palette[:, :3].tobytes(), "RGB")
        if not (palette[:, 3] == 255).all():
            img.info["transparency"] = palette[:, 3].tobytes()
    return img


def check_digest(image: Image.Image, table: ImageTable, i: int, strict: bool = True) -> tuple[bytes, bool]:
    """The full sha256 of image ``i``'s pixels and whether it matches the stored digest.

    Raises:
        DigestMismatchError: naming the image, when ``strict`` and they differ.
    """
    p = int(table.palette_index[i])
    digest = pixel_sha256(image, table.palettes[p] if p >= 0 else None)
    k = table.sha256.shape[1]
    ok = digest[:k] == bytes(table.sha256[i])
    if strict and not ok:
        raise DigestMismatchError(
            f"image {table.names[i]!r} decodes to pixels whose sha256 {digest[:k].hex()} differs from the stored "
            f"{bytes(table.sha256[i]).hex()}; refusing to write a wrong image", hdf5_path="/images/sha256"
        )
    return digest, ok


class AllDigests:
    """The sha256 of all full digests in archive order, fed one image at a time (memory does not grow).

    In an archive that grew (format 1.5, ``/additions``), ``/images/sha256_all``
    covers the rows before the first batch and each batch has its own
    (``/additions/sha256_all``): `of` follows them.
    """

    def __init__(self, batch_starts: Sequence[int] = (), batch_digests: np.ndarray | None = None) -> None:
        self._starts = [int(v) for v in batch_starts]
        self._batch_digests = batch_digests
        self._shas = [hashlib.sha256()]
        #: Digests added so far.
        self.count = 0

    @classmethod
    def of(cls, contents) -> AllDigests:
        """The running digests of an archive's images, batch by batch when it has ``/additions`` (1.5)."""
        additions = getattr(contents, "additions", None)
        if additions is None:
            return cls()
        return cls(additions.first, additions.sha256_all)

    def add(self, digest: bytes) -> None:
        if self.count in self._starts:
            self._shas.append(hashlib.sha256())
        self._shas[-1].update(digest)
        self.count += 1

    def matches(self, sha256_all: np.ndarray | None) -> bool:
        """Whether every stored digest of digests (those stored) matches what was added."""
        if sha256_all is not None and self._shas[0].digest() != bytes(sha256_all):
            return False
        if self._batch_digests is not None:
            return all(sha.digest() == bytes(self._batch_digests[k]) for k, sha in enumerate(self._shas[1:]))
        return True

    def check(self, sha256_all: np.ndarray | None) -> None:
        """Compare with ``/images/sha256_all`` (when stored) and (1.5) each batch's ``/additions/sha256_all``.

        Raises:
            DigestMismatchError: they differ.
        """
        if not self.matches(sha256_all):
            path = "/images/sha256_all" if self._batch_digests is None else "/images/sha256_all or /additions/sha256_all"
            raise DigestMismatchError(f"the images' full sha256 digests do not match {path}", hdf5_path=path)


def check_all_digests(sha256_all: np.ndarray | None, digests: Iterable[bytes]) -> None:
    """Compare the sha256 of all full digests, in order, with ``/images/sha256_all`` (when stored).

    Raises:
        DigestMismatchError: they differ.
    """
    running = AllDigests()
    for digest in digests:
        running.add(digest)
    running.check(sha256_all)


def find_exceptions(working: Callable[[int], np.ndarray], working_mode: str, table: ImageTable,
                    open_original: Callable[[int], Image.Image]) -> tuple[np.ndarray, list[bytes]]:
    """The images whose original cannot be rebuilt from their working pixels, and their raw bytes.

    Returns:
        ``(w,)`` int32 row of each image in the exceptions (or -1), and the exceptions'
        Pillow ``tobytes`` in row order.
    """
    exception_index = np.full(len(table), -1, dtype=np.int32)
    exceptions: list[bytes] = []
    k = table.sha256.shape[1]
    for i in range(len(table)):
        img = rebuild_original(np.asarray(working(i)), working_mode, table, i)
        p = int(table.palette_index[i])
        if pixel_sha256(img, table.palettes[p] if p >= 0 else None)[:k] != bytes(table.sha256[i]):
            exception_index[i] = len(exceptions)
            exceptions.append(open_original(i).tobytes())
    return exception_index, exceptions


def encode_residuals(
    working: Callable[[int], np.ndarray],
    working_mode: str,
    table: ImageTable,
    fp: FixedPointDecoder,
    q: np.ndarray,
    offsets: np.ndarray,
    latent_shapes: np.ndarray,
    open_original: Callable[[int], Image.Image],
    progress: ProgressFactory | None = None,
) -> LosslessResiduals:
    """Code every image's working pixels given its fixed-point prediction.

    Args:
        working: ``working(i)`` gives image i's (H, W, C) uint8 working pixels.
        working_mode: The folder's working mode.
        table: The image table (modes, palettes, digests).
        fp: The fixed-point decoder.
        q: Flat int32 latents.
        offsets: (w+1,) latent offsets.
        latent_shapes: (w, 3) latent shapes.
        open_original: ``open_original(i)`` opens image i's file (for the rare
            image whose original cannot be rebuilt from working pixels).
        progress: Optional progress factory.

    Returns:
        The lossless residuals to store.
    """
    progress = progress or null_progress
    w = len(table)
    images = [np.asarray(working(i)) for i in range(w)]
    preds: list[np.ndarray] = [None] * w  # type: ignore[list-item]
    with progress("Predicting", w) as bar:
        step = 4096
        for a in range(0, w, step):
            got = predict(fp, q, offsets, latent_shapes, table.shapes, range(a, min(w, a + step)))
            for i, p in got.items():
                preds[i] = p
            bar.update(min(w, a + step) - a)
    total = sum(x.size for x in images)
    sample, seen = [], 0
    for i in np.random.default_rng(0).permutation(w):
        if seen >= CHOICE_SAMPLES:
            break
        sample.append(int(i))
        seen += images[i].size
    params = choose_params([images[i] for i in sample], [preds[i] for i in sample], total)
    counts = count_table(images, preds, params)
    models = CountModels(counts)
    bounds = plan_blocks([x.size for x in images])
    streams = []
    with progress("Coding pixels", w) as bar:
        for a, b in zip(bounds[:-1], bounds[1:]):
            streams.append(encode_block(images[a:b], preds[a:b], params, models))
            bar.update(int(b - a))
    exception_index, exceptions = find_exceptions(lambda i: images[i], working_mode, table, open_original)
    sizes = [len(e) for e in exceptions]
    return LosslessResiduals(
        act_bits=ACT_BITS,
        acc_bits=ACC_BITS,
        thresholds=fp.thresholds,
        pred_levels=params.pred_levels,
        neighbour_levels=params.neighbour_levels,
        counts=counts,
        block_bounds=bounds,
        stream_offsets=np.concatenate([[0], np.cumsum([len(s) for s in streams])]).astype(np.int64),
        stream=np.concatenate(streams).astype(np.uint32) if streams else np.zeros(0, np.uint32),
        exception_index=exception_index,
        exception_offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        exception_bytes=np.frombuffer(b"".join(exceptions), dtype=np.uint8).copy(),
    )


def iter_exact(
    ll: LosslessResiduals,
    fp: FixedPointDecoder,
    q: np.ndarray,
    offsets: np.ndarray,
    latent_shapes: np.ndarray,
    table: ImageTable,
    working_mode: str,
    indices: Sequence[int] | None = None,
    strict: bool = True,
) -> Iterator[tuple[int, np.ndarray, Image.Image, bytes, bool]]:
    """Decode images exactly, block by block, checking every digest.

    Yields:
        ``(index, working_pixels, image, full_sha256, matches)`` in index order.

    Raises:
        DigestMismatchError: an image's pixels do not match its stored digest
            (only when ``strict``; else ``matches`` is False).
        CorruptArchiveError: the fixed-point parameters are not this version's.
    """
    if (ll.act_bits, ll.acc_bits) != (ACT_BITS, ACC_BITS):
        raise CorruptArchiveError(
            f"fixed-point parameters act_bits={ll.act_bits}, acc_bits={ll.acc_bits} are not supported "
            f"(this latentpack uses {ACT_BITS}, {ACC_BITS})", hdf5_path="/lossless")
    w = len(table)
    wanted = np.arange(w, dtype=np.int64) if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
    params = ContextParams(ll.pred_levels, ll.neighbour_levels)
    models = CountModels(ll.counts)
    block_of = np.searchsorted(ll.block_bounds, wanted, side="right") - 1
    for b in (int(v) for v in np.unique(block_of)):
        a, e = int(ll.block_bounds[b]), int(ll.block_bounds[b + 1])
        preds_by = predict(fp, q, offsets, latent_shapes, table.shapes, range(a, e))
        preds = [preds_by[i] for i in range(a, e)]
        stream = ll.stream[int(ll.stream_offsets[b]) : int(ll.stream_offsets[b + 1])]
        try:
            decoded = decode_block(stream, preds, params, models)
        except STREAM_ERRORS as err:  # constriction asserts on invalid data
            names = ", ".join(repr(n) for n in table.names[a : min(e, a + 5)]) + (" ..." if e - a > 5 else "")
            raise DigestMismatchError(f"the pixels of image(s) {names} (block {b}) cannot be decoded: {err}",
                                      hdf5_path="/lossless/stream") from None
        keep = _wanted_in(wanted, a, e)
        for i in range(a, e):
            if i not in keep:
                continue
            r = int(ll.exception_index[i])
            exc = None
            if r >= 0:
                exc = ll.exception_bytes[int(ll.exception_offsets[r]) : int(ll.exception_offsets[r + 1])].tobytes()
            img = rebuild_original(decoded[i - a], working_mode, table, i, exc)
            digest, ok = check_digest(img, table, i, strict)
            yield i, decoded[i - a], img, digest, ok


def _wanted_in(wanted: np.ndarray, a: int, e: int) -> set[int]:
    """The wanted indices in ``[a, e)`` (``wanted`` sorted)."""
    lo, hi = np.searchsorted(wanted, a), np.searchsorted(wanted, e)
    return set(wanted[lo:hi].tolist())
