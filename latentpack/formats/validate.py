"""Content rules of formats 1.0 to 1.3 shared by several elements, and `check_contents`.

The reader runs the element checks on what it has read (after it has
checked every dataset's dtype and shape in the file), and the writer runs
them on what it is asked to write, so both sides enforce one set of rules.
Each element's own rules live in its module (`latentpack.formats.elements`);
here are the limits, the rules several elements share (block indexes and
raw exceptions of ``/lossless`` and ``/pixels``) and the rules between
elements (which elements come together, the latents' index against the
decoder, the images against the decoder's output). Every
failure is a `CorruptArchiveError` naming the HDF5 path the value lives at;
the writer turns it into a ``ValueError``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from latentpack.formats import layout
from latentpack.formats.decoder_spec import DecoderSpec, SpecError, layer_shapes
from latentpack.formats.errors import CorruptArchiveError

__all__ = [
    "MAX_IMAGES",
    "MAX_SIDE",
    "MAX_CHANNELS",
    "MAX_LATENT_SCALARS",
    "MAX_NAME_BYTES",
    "DIGEST_BYTES",
    "MAX_LATENT_SYMBOLS",
    "check_latent_index",
    "check_image_fits_decoder",
    "distinct_rows",
    "check_offsets",
    "check_blocks",
    "check_exceptions",
    "check_together",
    "check_step",
    "decoder_input",
    "check_contents",
]

#: Lengths a stored per-image digest may have (1.1; 1.0 stores 32 only; 2 from 1.4 on).
DIGEST_BYTES = (2, 4, 8, 16, 32)
#: Largest alphabet of a coded-latent table.
MAX_LATENT_SYMBOLS = 1 << 12
#: Most images one archive may hold.
MAX_IMAGES = 1 << 28
#: Largest image height or width (PNG allows more; nobody packs those here).
MAX_SIDE = 65535
#: Channels of an original image: 1 (L, P, I;16, ...) to 4 (RGBA, CMYK).
MAX_CHANNELS = 4
#: Most latent scalars of a single image.
MAX_LATENT_SCALARS = 1 << 24
#: Longest image name, in UTF-8 bytes.
MAX_NAME_BYTES = 4096


def _fail(path: str, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


def check_latent_index(offsets: np.ndarray, shapes: np.ndarray, n_values: int, w: int, spec: DecoderSpec) -> None:
    """Offsets and shapes of the latents agree with each other, `n_values` and the decoder.

    Args:
        offsets: ``(w+1,)`` int64, from 0, non-decreasing, ending at `n_values`.
        shapes: ``(w, 3)`` int32; each row's product is that image's count and
            fits the decoder's input shape.
        n_values: Number of latent scalars stored or declared.
        w: Number of images.
        spec: The validated decoder.
    """
    if offsets[0] != 0:
        raise _fail("/latents/offsets", f"must start at 0, got {int(offsets[0])}")
    counts = np.diff(offsets)
    if np.any(counts < 0):
        i = int(np.argmax(counts < 0))
        raise _fail("/latents/offsets", f"must be non-decreasing; entry {i + 1} is smaller than entry {i}")
    if offsets[-1] != n_values:
        raise _fail("/latents/offsets", f"must end at len(/latents/values) = {n_values}, got {int(offsets[-1])}")
    if np.any(shapes < 1) or np.any(shapes > MAX_LATENT_SCALARS):
        i = int(np.argmax(np.any((shapes < 1) | (shapes > MAX_LATENT_SCALARS), axis=1)))
        raise _fail("/latents/shapes", f"row {i}: dimensions must be in [1, {MAX_LATENT_SCALARS}], got {shapes[i].tolist()}")
    sizes = np.prod(shapes.astype(np.int64), axis=1) if w else np.zeros(0, np.int64)
    bad = np.nonzero(sizes != counts)[0]
    if len(bad):
        i = int(bad[0])
        raise _fail(
            "/latents/shapes", f"row {i}: shape {shapes[i].tolist()} holds {int(sizes[i])} values, offsets give {int(counts[i])}"
        )
    want = (1,) * (3 - len(spec.input_shape)) + tuple(spec.input_shape)
    for axis, dim in enumerate(want):
        if dim is not None and w and np.any(shapes[:, axis] != dim):
            i = int(np.argmax(shapes[:, axis] != dim))
            raise _fail(
                "/latents/shapes",
                f"row {i}: shape {shapes[i].tolist()} does not fit the decoder's input shape {list(spec.input_shape)}",
            )


def decoder_input(spec: DecoderSpec, latent_shape: Sequence[int]) -> tuple[int, ...]:
    """A stored ``(a, b, c)`` latent shape as the decoder's input shape (leading 1s dropped)."""
    return tuple(int(d) for d in latent_shape)[3 - len(spec.input_shape):]


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True)``, at once when every row is the same (one image size)."""
    rows = np.asarray(rows)
    if len(rows) and (rows == rows[0]).all():
        return rows[:1].copy(), np.zeros(len(rows), dtype=np.intp)
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    return unique, np.asarray(inverse).reshape(-1)


def check_image_fits_decoder(spec: DecoderSpec | None, latent_shapes: np.ndarray | None, image_shapes: np.ndarray,
                             x_bits: int) -> None:
    """Every image fits the decoder's output for its latent, and ``x_bits`` is the images' raw size.

    A decoder output smaller than its image cannot be cropped to it; and
    ``x_bits`` (the ``x`` of the formula) must be ``sum(height*width*channels*8)``
    of ``/images/shapes``, so a forged header cannot claim pixels the table
    does not hold. Without a decoder (`spec` None: a 1.3 pixel model) only
    ``x_bits`` is checked.
    """
    w = len(image_shapes)
    want_x = int(np.sum(image_shapes.astype(np.int64).prod(axis=1))) * 8 if w else 0
    if want_x != x_bits:
        raise _fail("/header", f"attribute x_bits: expected {want_x} (from /images/shapes), got {x_bits}")
    if not w or spec is None:
        return
    unique, inverse = distinct_rows(latent_shapes)
    outputs = []
    for row in unique:
        try:
            out = layer_shapes(spec, decoder_input(spec, row))[-1]
        except SpecError as err:
            raise _fail("/latents/shapes", f"latent shape {row.tolist()} does not fit the decoder: {err}") from None
        outputs.append(out[:2])
    out_hw = np.array(outputs, dtype=np.int64)[np.asarray(inverse).reshape(-1)]
    too_big = np.any(image_shapes[:, :2].astype(np.int64) > out_hw, axis=1)
    if np.any(too_big):
        i = int(np.argmax(too_big))
        raise _fail(
            "/images/shapes",
            f"row {i}: image {int(image_shapes[i, 0])}x{int(image_shapes[i, 1])} is larger than the decoder's output "
            f"{int(out_hw[i, 0])}x{int(out_hw[i, 1])} for its latent shape {latent_shapes[i].tolist()}",
        )


def check_step(path: str, value: Any) -> None:
    """A quantisation step: a positive finite float."""
    if not isinstance(value, float) or not np.isfinite(value) or value <= 0:
        raise _fail(path, f"attribute step: expected a positive finite float64, got {value!r}")


def check_offsets(path: str, offsets: np.ndarray, n: int, end: int, strict: bool = False) -> None:
    """``n`` int64 offsets from 0 to `end`, non-decreasing (`strict`: increasing)."""
    layout.expect(path, offsets, np.int64, (n,))
    if n and offsets[0] != 0:
        raise _fail(path, f"must start at 0, got {int(offsets[0])}")
    d = np.diff(offsets)
    if np.any(d <= 0 if strict else d < 0):
        i = int(np.argmax(d <= 0 if strict else d < 0))
        raise _fail(path, f"must be {'increasing' if strict else 'non-decreasing'}; entry {i + 1} breaks it")
    if n and offsets[-1] != end:
        raise _fail(path, f"must end at {end}, got {int(offsets[-1])}")


def check_blocks(base: str, block_bounds: np.ndarray, stream_offsets: np.ndarray, n_words: int, w: int) -> None:
    """A block index: ``base/block_bounds`` from 0, increasing, to `w` (2 entries at least when ``w > 0``),
    ``base/stream_offsets`` as many, from 0, non-decreasing, to `n_words` (the stream's length)."""
    nb = len(block_bounds)
    check_offsets(f"{base}/block_bounds", block_bounds, nb, w, strict=True)
    if nb < 1 or (w and nb < 2):
        raise _fail(f"{base}/block_bounds", f"expected at least {2 if w else 1} entries, got {nb}")
    check_offsets(f"{base}/stream_offsets", stream_offsets, nb, n_words)


def check_exceptions(base: str, exception_index: np.ndarray, exception_offsets: np.ndarray,
                     exception_bytes: np.ndarray) -> None:
    """Raw exceptions: ``e+1`` byte offsets from 0, non-decreasing, to ``len(exception_bytes)``;
    each ``exception_index`` entry -1 or a row ``0..e-1``."""
    ne = len(exception_offsets) - 1
    check_offsets(f"{base}/exception_offsets", exception_offsets, ne + 1, len(exception_bytes))
    if ne < 0:
        raise _fail(f"{base}/exception_offsets", "expected at least 1 entry, got 0")
    bad = (exception_index < -1) | (exception_index >= ne)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise _fail(f"{base}/exception_index", f"entry {i}: expected -1 or 0..{ne - 1}, got {int(exception_index[i])}")


def check_together(present: Any) -> None:
    """Which elements an archive holds: each REQUIRED one unless replaced, none with what replaces or excludes it.

    Args:
        present: The encoding types the archive holds.

    Raises:
        CorruptArchiveError: naming the missing element, or the one that
            must not be present (``/decoder`` beside ``/pixels``).
    """
    from latentpack.formats.registry import elements

    held = [el for el in elements() if el.encoding_type in present]
    for el in held:
        for other in (*el.replaces, *el.excludes):
            if other in present:
                how = "replaces" if other in el.replaces else "excludes"
                raise _fail(f"/{other}", f"must not be present together with {el.path} (which {how} it)")
    replaced = {t for el in held for t in el.replaces}
    for el in elements():
        if not el.optional and el.encoding_type not in present and el.encoding_type not in replaced:
            raise _fail(el.path, "required element is missing")


def check_contents(contents: Any) -> DecoderSpec | None:
    """Run every element's rules on a whole in-memory archive (dtypes as stored).

    Args:
        contents: An `ArchiveContents` whose arrays have their on-disk dtypes.

    Returns:
        The validated decoder description (None for a pixel model, 1.3).

    Raises:
        CorruptArchiveError: naming the HDF5 path of the first value at fault.
    """
    from latentpack.formats.registry import Context, elements, version_tuple

    w = len(contents.images.names)
    if not 0 <= w <= MAX_IMAGES:
        raise _fail("/images/names", f"expected at most {MAX_IMAGES} images, got {w}")
    held = [el for el in elements() if el.holds(contents)]
    check_together({el.encoding_type for el in held})
    ctx = Context(w=w, sizes={"w": w}, header=contents.header)
    ctx.versions = {el.encoding_type: version_tuple(el.version(el.value(contents))) for el in held}
    for el in sorted(held, key=lambda el: el.summary):  # the header, which sums up the others, last
        value = el.value(contents)
        if el.header_bits:
            ctx.bits[el.header_bits] = el.bits_of(value)
        el.validate(value, ctx)
    return ctx.spec
