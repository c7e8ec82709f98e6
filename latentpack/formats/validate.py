"""Content rules of formats 1.0 to 1.2, checked on in-memory arrays.

The reader runs these on what it has read (after it has checked every
dataset's dtype and shape in the file), and the writer runs them on what it
is asked to write, so both sides enforce one set of rules. Every failure is a
`CorruptArchiveError` naming the HDF5 path the value lives at; the writer
turns it into a ``ValueError``.

The checks follow the order a reader needs: the small index arrays
(`check_latent_index`, `check_image_shapes`) come before the data they
describe (`check_latent_values`, `check_weights`), so nothing is allocated
from an unchecked size.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from latentpack.formats.decoder_spec import DecoderSpec, SpecError, layer_shapes, validate_architecture
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.schema import (
    WEIGHT_DTYPES,
    ArchiveContents,
    DecoderWeights,
    Header,
    IndexCodes,
    LosslessResiduals,
    QuantizedLatents,
    compute_header,
)

__all__ = [
    "MAX_IMAGES",
    "MAX_SIDE",
    "MAX_CHANNELS",
    "MAX_LATENT_SCALARS",
    "MAX_NAME_BYTES",
    "check_architecture",
    "check_weights",
    "check_latent_index",
    "check_latent_values",
    "check_image_shapes",
    "check_image_table",
    "check_image_fits_decoder",
    "decoder_input",
    "check_psnr",
    "check_header",
    "check_quantized_latents",
    "check_index_codes",
    "check_lossless",
    "check_digests",
    "check_contents",
    "DIGEST_BYTES",
    "MAX_LATENT_SYMBOLS",
]

#: Lengths a stored per-image digest may have (1.1; 1.0 stores 32 only).
DIGEST_BYTES = (4, 8, 16, 32)
#: Largest alphabet of a coded-latent table.
MAX_LATENT_SYMBOLS = 1 << 12
#: Largest context count of a lossless table.
MAX_CONTEXTS = 1 << 16

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


def _expect(path: str, arr: np.ndarray, dtype: Any, shape: tuple) -> None:
    """Check dtype and shape; ``None`` in `shape` matches any length."""
    if arr.dtype != np.dtype(dtype):
        raise _fail(path, f"expected dtype {np.dtype(dtype).name}, got {arr.dtype.name}")
    if arr.ndim != len(shape) or any(e is not None and e != g for e, g in zip(shape, arr.shape)):
        want = "(" + ", ".join("n" if e is None else str(e) for e in shape) + ("," if len(shape) == 1 else "") + ")"
        raise _fail(path, f"expected shape {want}, got {tuple(arr.shape)}")


def check_architecture(architecture: Any) -> DecoderSpec:
    """Validate the decoder description (see `validate_architecture`)."""
    try:
        return validate_architecture(architecture)
    except SpecError as err:
        raise _fail("/decoder/architecture", f"invalid decoder description: {err}") from None


def check_weights(decoder: DecoderWeights, spec: DecoderSpec) -> None:
    """Every layer with weights has exactly the inferred float32 finite weights, in order.

    Weights stored as float16 (1.2) are float32 arrays in memory that hold
    float16 values exactly, so what is written is what was measured.
    """
    if decoder.weight_dtype not in WEIGHT_DTYPES:
        raise _fail("/decoder", f"weight dtype must be one of {list(WEIGHT_DTYPES)}, got {decoder.weight_dtype!r}")
    expected = [layer for layer in spec.layers if layer.weight_shapes]
    names = list(decoder.weights)
    if names != [layer.name for layer in expected]:
        raise _fail("/decoder", f"expected layer_names {[layer.name for layer in expected]}, got {names}")
    for layer in expected:
        base = f"/decoder/layers/{layer.name}"
        got = decoder.weights[layer.name]
        want_names = [n for n, _ in layer.weight_shapes]
        got_names = [n for n, _ in got]
        if got_names != want_names:
            raise _fail(base, f"expected weight_names {want_names}, got {got_names}")
        for (wname, shape), (_, arr) in zip(layer.weight_shapes, got):
            path = f"{base}/{wname}"
            _expect(path, np.asarray(arr), np.float32, shape)
            if not np.all(np.isfinite(arr)):
                raise _fail(path, "weights must be finite (found NaN or infinity)")
            if decoder.weight_dtype == "float16":
                with np.errstate(over="ignore"):
                    exact = np.asarray(arr).astype(np.float16).astype(np.float32) == arr
                if not np.all(exact):
                    raise _fail(path, "weights to be stored as float16 must hold float16 values "
                                      "(round them first with DecoderWeights.as_stored)")


def check_latent_index(offsets: np.ndarray, shapes: np.ndarray, n_values: int, w: int, spec: DecoderSpec) -> None:
    """Offsets and shapes of the latents agree with each other, `w` and the decoder.

    Args:
        offsets: ``(w+1,)`` int64, from 0, non-decreasing, ending at `n_values`.
        shapes: ``(w, 3)`` int32; each row's product is that image's count and
            fits the decoder's input shape.
        n_values: Length of ``/latents/values``.
        w: Number of images.
        spec: The validated decoder.
    """
    _expect("/latents/offsets", offsets, np.int64, (w + 1,))
    _expect("/latents/shapes", shapes, np.int32, (w, 3))
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


def check_latent_values(values: np.ndarray, n_values: int) -> None:
    """The flat latent values are float32, `n_values` long and finite."""
    _expect("/latents/values", values, np.float32, (n_values,))
    if not np.all(np.isfinite(values)):
        raise _fail("/latents/values", "latents must be finite (found NaN or infinity)")


def check_image_shapes(shapes: np.ndarray, w: int) -> None:
    """``(w, 3)`` int32 height, width, channels within the format's bounds."""
    _expect("/images/shapes", shapes, np.int32, (w, 3))
    if not w:
        return
    ok = (shapes[:, :2] >= 1).all(axis=1) & (shapes[:, :2] <= MAX_SIDE).all(axis=1)
    ok &= (shapes[:, 2] >= 1) & (shapes[:, 2] <= MAX_CHANNELS)
    if not ok.all():
        i = int(np.argmin(ok))
        raise _fail(
            "/images/shapes",
            f"row {i}: expected 1 <= height, width <= {MAX_SIDE} and 1 <= channels <= {MAX_CHANNELS}, "
            f"got {shapes[i].tolist()}",
        )


def decoder_input(spec: DecoderSpec, latent_shape: Sequence[int]) -> tuple[int, ...]:
    """A stored ``(a, b, c)`` latent shape as the decoder's input shape (leading 1s dropped)."""
    return tuple(int(d) for d in latent_shape)[3 - len(spec.input_shape):]


def check_image_fits_decoder(spec: DecoderSpec, latent_shapes: np.ndarray, image_shapes: np.ndarray, x_bits: int) -> None:
    """Every image fits the decoder's output for its latent, and ``x_bits`` is the images' raw size.

    A decoder output smaller than its image cannot be cropped to it; and
    ``x_bits`` (the ``x`` of the formula) must be ``sum(height*width*channels*8)``
    of ``/images/shapes``, so a forged header cannot claim pixels the table
    does not hold.
    """
    w = len(image_shapes)
    want_x = int(np.sum(image_shapes.astype(np.int64).prod(axis=1))) * 8 if w else 0
    if want_x != x_bits:
        raise _fail("/header", f"attribute x_bits: expected {want_x} (from /images/shapes), got {x_bits}")
    if not w:
        return
    unique, inverse = np.unique(latent_shapes, axis=0, return_inverse=True)
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


def _check_name(i: int, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise _fail("/images/names", f"entry {i}: must be a non-empty string, got {name!r}")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise _fail("/images/names", f"entry {i}: longer than {MAX_NAME_BYTES} bytes")
    if "\x00" in name or "\\" in name or name.startswith("/"):
        raise _fail("/images/names", f"entry {i}: must be a relative POSIX path without NUL or backslash, got {name!r}")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise _fail("/images/names", f"entry {i}: must not contain empty, '.' or '..' components, got {name!r}")


def _check_labels(path: str, labels: Sequence[Any], w: int, lo: int, hi: int) -> None:
    if len(labels) != w:
        raise _fail(path, f"expected {w} entries, got {len(labels)}")
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not lo <= len(label) <= hi or not (label.isascii() and label.isprintable()):
            raise _fail(path, f"entry {i}: expected {lo} to {hi} printable ASCII characters, got {label!r}")


def check_image_table(
    names: Sequence[Any],
    modes: Sequence[Any],
    formats: Sequence[Any],
    sha256: np.ndarray,
    palette_index: np.ndarray,
    palettes: np.ndarray,
    file_bytes: np.ndarray,
    w: int,
) -> None:
    """Names unique and safe, labels short ASCII, palette rows in range, sizes >= 0."""
    if len(names) != w:
        raise _fail("/images/names", f"expected {w} entries, got {len(names)}")
    seen: set[str] = set()  # the names themselves, no index object per name
    for i, name in enumerate(names):
        _check_name(i, name)
        if name in seen:
            raise _fail("/images/names", f"entries {list(names).index(name)} and {i}: duplicate name {name!r}")
        seen.add(name)
    _check_labels("/images/modes", modes, w, 1, 16)
    _check_labels("/images/formats", formats, w, 0, 32)
    _expect("/images/sha256", sha256, np.uint8, (w, None))
    if sha256.shape[1] not in DIGEST_BYTES:
        raise _fail("/images/sha256", f"expected {list(DIGEST_BYTES)} bytes per digest, got {sha256.shape[1]}")
    _expect("/images/palettes", palettes, np.uint8, (None, 256, 4))
    _expect("/images/palette_index", palette_index, np.int32, (w,))
    n = len(palettes)
    bad = np.nonzero((palette_index < -1) | (palette_index >= n))[0]
    if len(bad):
        i = int(bad[0])
        raise _fail("/images/palette_index", f"entry {i}: expected -1 or a row of /images/palettes (0..{n - 1}), got {int(palette_index[i])}")
    _expect("/images/file_bytes", file_bytes, np.int64, (w,))
    if np.any(file_bytes < 0):
        raise _fail("/images/file_bytes", f"entry {int(np.argmax(file_bytes < 0))}: must be >= 0")


def check_psnr(psnr: np.ndarray, w: int) -> None:
    """``(w,)`` float64, not NaN, not -inf (+inf means exact)."""
    _expect("/quality/psnr", psnr, np.float64, (w,))
    bad = np.isnan(psnr) | (psnr == -np.inf)
    if np.any(bad):
        raise _fail("/quality/psnr", f"entry {int(np.argmax(bad))}: must be a number or +inf, got {psnr[bad][0]}")


def check_digests(sha256: np.ndarray, sha256_all: np.ndarray | None, version: tuple[int, int]) -> None:
    """Digest length allowed by the version; ``sha256_all`` present exactly when digests are cut."""
    k = sha256.shape[1]
    if version < (1, 1) and k != 32:
        raise _fail("/images/sha256", f"format 1.0 stores 32-byte digests, got {k}")
    if k < 32 and sha256_all is None:
        raise _fail("/images/sha256_all", "required element is missing (digests are shorter than 32 bytes)")
    if sha256_all is not None:
        _expect("/images/sha256_all", sha256_all, np.uint8, (32,))


def _finite_positive(path: str, value: Any) -> None:
    if not isinstance(value, float) or not np.isfinite(value) or value <= 0:
        raise _fail(path, f"attribute step: expected a positive finite float64, got {value!r}")


def _offsets(path: str, offsets: np.ndarray, n: int, end: int, strict: bool = False) -> None:
    _expect(path, offsets, np.int64, (n,))
    if n and offsets[0] != 0:
        raise _fail(path, f"must start at 0, got {int(offsets[0])}")
    d = np.diff(offsets)
    if np.any(d <= 0 if strict else d < 0):
        i = int(np.argmax(d <= 0 if strict else d < 0))
        raise _fail(path, f"must be {'increasing' if strict else 'non-decreasing'}; entry {i + 1} breaks it")
    if n and offsets[-1] != end:
        raise _fail(path, f"must end at {end}, got {int(offsets[-1])}")


def check_quantized_latents(q: QuantizedLatents, channels: int) -> None:
    """(1.1) The coded-latent tables and stream are well formed for ``channels`` channels."""
    base = "/latents"
    _finite_positive(base, q.step)
    if not isinstance(q.qmin, int) or abs(q.qmin) > MAX_LATENT_SYMBOLS:
        raise _fail(base, f"attribute qmin: expected an integer in [-{MAX_LATENT_SYMBOLS}, {MAX_LATENT_SYMBOLS}], got {q.qmin!r}")
    _expect(f"{base}/table_of_channel", q.table_of_channel, np.int32, (channels,))
    _expect(f"{base}/counts", q.counts, np.uint16, (None, None))
    rows, k = q.counts.shape
    if not 1 <= rows <= max(channels, 1) or not 1 <= k <= MAX_LATENT_SYMBOLS:
        raise _fail(f"{base}/counts", f"expected 1..{max(channels, 1)} rows of 1..{MAX_LATENT_SYMBOLS} counts, got {q.counts.shape}")
    if channels and (q.table_of_channel.min() < 0 or q.table_of_channel.max() >= rows):
        raise _fail(f"{base}/table_of_channel", f"entries must be rows of /latents/counts (0..{rows - 1})")
    _expect(f"{base}/stream", q.stream, np.uint32, (None,))


def check_index_codes(codes: IndexCodes) -> None:
    """(1.1) Generated codes: a seed in [0, 2**63) and a positive step."""
    if not isinstance(codes.seed, int) or not 0 <= codes.seed < 1 << 63:
        raise _fail("/latents", f"attribute seed: expected an integer in [0, 2**63), got {codes.seed!r}")
    _finite_positive("/latents", codes.step)


def check_lossless(ll: LosslessResiduals, w: int) -> None:
    """(1.1) The lossless group: tables, block index, streams and exceptions agree."""
    base = "/lossless"
    for name, value, hi in (("pred_levels", ll.pred_levels, 256), ("neighbour_levels", ll.neighbour_levels, 16)):
        if not isinstance(value, int) or not 1 <= value <= hi or value & (value - 1):
            raise _fail(base, f"attribute {name}: expected a power of two in [1, {hi}], got {value!r}")
    for name, value in (("act_bits", ll.act_bits), ("acc_bits", ll.acc_bits)):
        if not isinstance(value, int) or not 0 <= value <= 48:
            raise _fail(base, f"attribute {name}: expected an integer in [0, 48], got {value!r}")
    _expect(f"{base}/thresholds", ll.thresholds, np.int64, (255,))
    if np.any(np.diff(ll.thresholds) < 0):
        raise _fail(f"{base}/thresholds", "must be non-decreasing")
    n_ctx = ll.pred_levels * ll.neighbour_levels**2
    _expect(f"{base}/counts", ll.counts, np.uint16, (n_ctx, 256))
    _expect(f"{base}/stream", ll.stream, np.uint32, (None,))
    nb = len(ll.block_bounds)
    _offsets(f"{base}/block_bounds", ll.block_bounds, nb, w, strict=True)
    if nb < 1 or (w and nb < 2):
        raise _fail(f"{base}/block_bounds", f"expected at least {2 if w else 1} entries, got {nb}")
    _offsets(f"{base}/stream_offsets", ll.stream_offsets, nb, len(ll.stream))
    _expect(f"{base}/exception_index", ll.exception_index, np.int32, (w,))
    _expect(f"{base}/exception_bytes", ll.exception_bytes, np.uint8, (None,))
    ne = len(ll.exception_offsets) - 1
    _offsets(f"{base}/exception_offsets", ll.exception_offsets, ne + 1, len(ll.exception_bytes))
    if ne < 0:
        raise _fail(f"{base}/exception_offsets", "expected at least 1 entry, got 0")
    bad = (ll.exception_index < -1) | (ll.exception_index >= ne)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise _fail(f"{base}/exception_index", f"entry {i}: expected -1 or 0..{ne - 1}, got {int(ll.exception_index[i])}")


def check_header(
    header: Header,
    *,
    w: int,
    latent_counts: np.ndarray,
    decoder_scalars: int,
    stored_latent_bits: int | None = None,
    residual_bits: int | None = None,
    stored_decoder_bits: int | None = None,
) -> None:
    """The header's counts and arithmetic agree with the data they summarise.

    ``x_bits`` and ``folder_bytes`` describe the source folder and cannot be
    recomputed from the archive; they must be non-negative and ``beats_raw``
    must be ``lhs_bits < x_bits``. The stored-bits attributes (1.1, and
    ``stored_decoder_bits`` in 1.2), present exactly when something is stored
    in fewer bits than the seed's float32 accounting, must match
    ``stored_latent_bits``, ``residual_bits`` and ``stored_decoder_bits`` as
    computed from the stored datasets' sizes and dtypes.
    """
    for name, value in header.as_dict().items():
        want_bool = name in ("beats_raw", "beats_raw_stored")
        if isinstance(value, (bool, np.bool_)) != want_bool or not isinstance(value, (int, np.integer, np.bool_)):
            raise _fail("/header", f"attribute {name}: expected {'a bool' if want_bool else 'an integer'}, got {value!r}")
    if header.x_bits < 0 or header.folder_bytes < 0:
        raise _fail("/header", f"x_bits and folder_bytes must be >= 0, got {header.x_bits} and {header.folder_bytes}")
    want = compute_header(
        w=w, latent_counts=latent_counts, x_bits=header.x_bits, decoder_scalars=decoder_scalars,
        folder_bytes=header.folder_bytes,
        stored_latent_bits=stored_latent_bits,
        residual_bits=residual_bits,
        stored_decoder_bits=stored_decoder_bits,
    )
    if (header.stored_bits is None) != (want.stored_bits is None):
        raise _fail("/header", "attribute stored_bits: present exactly when the latents are coded, residuals stored "
                               "or the weights float16")
    if (header.stored_decoder_bits is None) != (want.stored_decoder_bits is None):
        raise _fail("/header", "attribute stored_decoder_bits: present exactly when the weights are float16")
    for name, value in dataclasses.asdict(want).items():
        got = getattr(header, name)
        if bool(got != value):
            raise _fail("/header", f"attribute {name}: expected {value!r} (recomputed from the data), got {got!r}")


def check_contents(contents: ArchiveContents) -> DecoderSpec:
    """Run every rule on a whole in-memory archive (dtypes as stored).

    Returns:
        The validated decoder description.

    Raises:
        CorruptArchiveError: naming the HDF5 path of the first value at fault.
    """
    img = contents.images
    w = len(img.names)
    if not 0 <= w <= MAX_IMAGES:
        raise _fail("/images/names", f"expected at most {MAX_IMAGES} images, got {w}")
    spec = check_architecture(contents.decoder.architecture)
    check_weights(contents.decoder, spec)
    lat = contents.latents
    version = contents.format_version
    n_values = int(lat.offsets[-1]) if len(lat.offsets) else 0
    stored_latent_bits = None
    if lat.coding == "float32":
        n_values = len(lat.values)
    check_latent_index(lat.offsets, lat.shapes, n_values, w, spec)
    if lat.coding == "float32":
        check_latent_values(lat.values, n_values)
    elif lat.quantized is not None:
        check_quantized_latents(lat.quantized, int(spec.input_shape[-1]))
        stored_latent_bits = lat.quantized.stored_bits
    else:
        check_index_codes(lat.index_codes)
        stored_latent_bits = 0
    check_image_shapes(img.shapes, w)
    check_image_table(img.names, img.modes, img.formats, img.sha256, img.palette_index, img.palettes, img.file_bytes, w)
    check_image_fits_decoder(spec, lat.shapes, img.shapes, contents.header.x_bits)
    check_digests(img.sha256, img.sha256_all, version)
    check_psnr(contents.quality.psnr, w)
    residual_bits = None
    if contents.lossless is not None:
        check_lossless(contents.lossless, w)
        residual_bits = contents.lossless.stored_bits
    stored_decoder_bits = contents.decoder.stored_bits if contents.decoder.weight_dtype != "float32" else None
    check_header(contents.header, w=w, latent_counts=lat.counts, decoder_scalars=spec.num_scalars,
                 stored_latent_bits=stored_latent_bits, residual_bits=residual_bits,
                 stored_decoder_bits=stored_decoder_bits)
    return spec
