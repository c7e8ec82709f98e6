"""Read and check a latentpack archive with h5py and numpy only.

Opening an archive checks, in this order (docs/FORMAT.md, "Reading")::

    HDF5 signature -> root encoding-type -> encoding-version (dispatch)
      -> every group: hard link, encoding-type, encoding-version
      -> every dataset, no data read yet: hard link, no external/virtual
         storage, allowed filters, dtype (strings: fixed-length UTF-8),
         shape, declared size
      -> header attributes, decoder description, latent offsets and shapes
         (small; checked against each other and the decoder)

Decoder weights stored as float16 (format 1.2 only) are handed out as
float32 arrays (the conversion is exact), with ``weight_dtype = "float16"``.

The bulk data (weights, latent values, the image table, PSNRs, the training
record) is read and checked the first time a property asks for it, and kept.
Every failure is an `ArchiveError` naming the file and the HDF5 path; h5py,
numpy and OS errors met while reading (truncation, checksum mismatch) become
`CorruptArchiveError`. Nothing in a file is ever executed, and nothing is
read from HDF5's global heap (variable-length strings are refused by type).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from latentpack.formats.decoder_spec import DecoderSpec
from latentpack.formats.errors import CorruptArchiveError, NotAnArchiveError
from latentpack.formats.h5checks import (
    STR,
    attr_str,
    attr_strs,
    checked_dataset,
    checked_group,
    get_attr,
    get_node,
    parse_version,
    read_data,
    reading,
)
from latentpack.formats.h5checks import MAX_EXPANSION
from latentpack.formats.schema import (
    ENCODING_TYPE,
    INDEX_CODE_GENERATOR,
    WEIGHT_BITS,
    ArchiveContents,
    DecoderWeights,
    Header,
    ImageTable,
    IndexCodes,
    Latents,
    LosslessResiduals,
    Quality,
    QuantizedLatents,
)
from latentpack.formats.validate import (
    MAX_IMAGES,
    MAX_LATENT_SYMBOLS,
    check_architecture,
    check_digests,
    check_header,
    check_image_fits_decoder,
    check_index_codes,
    check_lossless,
    check_quantized_latents,
    check_image_shapes,
    check_image_table,
    check_latent_index,
    check_latent_values,
    check_psnr,
    check_weights,
)

__all__ = ["Archive", "open_archive", "read_archive", "read_header"]

_GROUPS = ("header", "decoder", "latents", "images", "quality", "training")
#: 1.1 header attributes: all present or all absent.
_STORED_ATTRS = ("stored_latent_bits", "residual_bits", "stored_bits", "beats_raw_stored")
#: 1.2 header attribute: present exactly when the weights are float16 (then with the 1.1 ones).
_STORED_DECODER = "stored_decoder_bits"
_LATENT_CODINGS = ("float32", "range-categorical", "index")
_LOSSLESS_INTS = ("act_bits", "acc_bits", "pred_levels", "neighbour_levels")
_LOSSLESS_DATA = {
    "thresholds": np.int64, "counts": np.uint16, "block_bounds": np.int64, "stream_offsets": np.int64,
    "stream": np.uint32, "exception_index": np.int32, "exception_offsets": np.int64, "exception_bytes": np.uint8,
}


def _fail(path: str | None, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


def _json(text: str, path: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:  # JSONDecodeError; never eval, never a custom hook
        raise _fail(path, f"invalid JSON: {err}") from None


class Archive:
    """An open latentpack archive: checked when opened, read on demand.

    Use as a context manager (``with open_archive(path) as archive:``); the
    properties read from the file the first time and are cached, so read
    what you need before the ``with`` block ends.

    Args:
        path: The archive's path.

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: `path` cannot
            be opened at all.
        NotAnArchiveError: not HDF5, or not latentpack's.
        UnsupportedVersionError: a format version this latentpack cannot read.
        CorruptArchiveError: any rule of the format broken, or damaged bytes.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._cache: dict[str, Any] = {}
        self._ds: dict[str, h5py.Dataset] = {}
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- plumbing ---------------------------------------------------------

    def _at(self, hdf5_path: str | None) -> Any:
        """Context: any error inside becomes an `ArchiveError` naming this file and `hdf5_path`."""
        return reading(hdf5_path, self.path)

    def _group(self, path: str, encoding_type: str) -> h5py.Group:
        with self._at(path):
            return checked_group(self._file, path, encoding_type)

    def _dataset(self, path: str, dtype: Any, shape: tuple) -> h5py.Dataset:
        with self._at(path):
            self._ds[path] = checked_dataset(self._file, path, dtype, shape)
            return self._ds[path]

    def _read(self, path: str, dtype: Any) -> Any:
        with self._at(path):
            return read_data(self._ds[path], dtype, path)

    def _cached(self, key: str, load: Callable[[], Any]) -> Any:
        if key not in self._cache:
            if self._file is None:
                raise ValueError(f"the archive is closed; read `{key}` inside the with block")
            self._cache[key] = load()
        return self._cache[key]

    # -- opening ------------------------------------------------------------

    def _open(self) -> None:
        with open(self.path, "rb"):  # FileNotFoundError / IsADirectoryError / PermissionError as such
            pass
        with self._at("/"):
            if not h5py.is_hdf5(self.path):
                raise NotAnArchiveError("not a latentpack archive (not an HDF5 file)")
            self._file = h5py.File(self.path, "r")
            root = self._file
            # attr_str checks type, shape and size before it reads a value, so a
            # variable-length string (bytes in the unchecked global heap) is never read
            try:
                magic = attr_str(root, "/", "encoding-type")
            except CorruptArchiveError:
                magic = None
            if magic != ENCODING_TYPE:
                raise NotAnArchiveError(
                    f"not a latentpack archive (root attribute encoding-type is not the fixed-length string "
                    f"{ENCODING_TYPE!r})",
                    hdf5_path="/",
                )
            self.format_version = attr_str(root, "/", "encoding-version")
            major, minor = parse_version(self.format_version, "/")
            self._version = (major, minor)
        {1: self._open_v1}[major]()

    def _open_v1(self) -> None:
        root = self._file
        with self._at("/"):
            self.writer = attr_str(root, "/", "writer")
            self.created = attr_str(root, "/", "created")
        for name in _GROUPS:
            self._group(f"/{name}", name)
        v11 = self._version >= (1, 1)
        self._has_lossless = v11 and "lossless" in root
        #: Whether the archive stores lossless residuals (1.1).
        self.is_lossless = self._has_lossless
        if self._has_lossless:
            self._group("/lossless", "lossless")
        self._header = self._read_header()
        with self._at("/quality"):
            quality = self._file["quality"]
            for name in ("mean_psnr", "min_psnr"):
                if not isinstance(get_attr(quality, "/quality", name), np.floating):
                    raise _fail("/quality", f"attribute {name}: expected a float64")
        w = self._header.w
        with self._at("/latents"):
            g = self._file["latents"]
            self.latent_coding = attr_str(g, "/latents", "coding") if v11 and "coding" in g.attrs else "float32"
            if self.latent_coding not in _LATENT_CODINGS:
                raise _fail("/latents", f"attribute coding: expected one of {list(_LATENT_CODINGS)}, got {self.latent_coding!r}")
        for path, (dtype, shape) in self._layout_v1(w).items():
            self._dataset(path, dtype, shape)
        if v11 and "sha256_all" in self._file["images"]:
            self._dataset("/images/sha256_all", np.uint8, (32,))
        if self._has_lossless:
            with self._at("/lossless"):
                g = self._file["lossless"]
                levels = {name: _int_attr(g, "/lossless", name) for name in ("pred_levels", "neighbour_levels")}
                for name, value in levels.items():
                    if not 1 <= value <= (256 if name == "pred_levels" else 16):
                        raise _fail("/lossless", f"attribute {name}: out of range, got {value}")
            n_ctx = levels["pred_levels"] * levels["neighbour_levels"] ** 2
            shapes = {"thresholds": (255,), "counts": (n_ctx, 256), "exception_index": (w,)}
            for name, dtype in _LOSSLESS_DATA.items():
                self._dataset(f"/lossless/{name}", dtype, shapes.get(name, (None,)))
            if self._ds["/lossless/stream_offsets"].shape != self._ds["/lossless/block_bounds"].shape:
                raise _fail("/lossless/stream_offsets", "expected as many entries as /lossless/block_bounds")
        with self._at("/decoder/architecture"):
            self._architecture = _json(self._read("/decoder/architecture", STR), "/decoder/architecture")
            self._spec = check_architecture(self._architecture)
        self._check_weight_layout()
        if self.latent_coding == "range-categorical":
            c = int(self._spec.input_shape[-1])
            rows, k = self._ds["/latents/counts"].shape
            if not 1 <= rows <= c or not 1 <= k <= MAX_LATENT_SYMBOLS:
                raise _fail("/latents/counts", f"expected 1..{c} rows of 1..{MAX_LATENT_SYMBOLS} counts, got {(rows, k)}")
            if self._ds["/latents/table_of_channel"].shape != (c,):
                raise _fail("/latents/table_of_channel", f"expected {c} entries, got {self._ds['/latents/table_of_channel'].shape[0]}")
        with self._at("/latents"):
            self._offsets = self._read("/latents/offsets", np.int64)
            self._latent_shapes = self._read("/latents/shapes", np.int32)
            if self.latent_coding == "float32":
                n_values = self._ds["/latents/values"].shape[0]
            else:
                n_values = int(self._offsets[-1]) if len(self._offsets) == w + 1 else 0
                limit = MAX_EXPANSION * os.path.getsize(self.path) + (1 << 20)
                if n_values > limit:
                    raise _fail("/latents/offsets", f"declares {n_values} latents, more than this file can code ({limit})")
            check_latent_index(self._offsets, self._latent_shapes, n_values, w, self._spec)
        stored_latent_bits = residual_bits = None
        if self.latent_coding == "range-categorical":
            size = lambda name: int(np.prod(self._ds[f"/latents/{name}"].shape))  # noqa: E731
            stored_latent_bits = 32 * (size("stream") + size("table_of_channel")) + 16 * size("counts") + 128
        elif self.latent_coding == "index":
            stored_latent_bits = 0
        if self._has_lossless:
            size = lambda name: int(np.prod(self._ds[f"/lossless/{name}"].shape))  # noqa: E731
            residual_bits = (
                32 * (size("stream") + size("exception_index")) + 16 * size("counts")
                + 64 * (size("thresholds") + size("block_bounds") + size("stream_offsets") + size("exception_offsets"))
                + 8 * size("exception_bytes")
            )
        stored_decoder_bits = None
        if self.weight_dtype != "float32":
            stored_decoder_bits = self._spec.num_scalars * WEIGHT_BITS[self.weight_dtype]
        with self._at("/header"):
            check_header(self._header, w=w, latent_counts=np.diff(self._offsets), decoder_scalars=self._spec.num_scalars,
                         stored_latent_bits=stored_latent_bits, residual_bits=residual_bits,
                         stored_decoder_bits=stored_decoder_bits)

    def _read_header(self) -> Header:
        with self._at("/header"):
            attrs = self._file["header"]
            values: dict[str, Any] = {}
            names = [n for n in Header.__dataclass_fields__ if n not in (*_STORED_ATTRS, _STORED_DECODER)]
            present = [n for n in _STORED_ATTRS if n in attrs.attrs]
            if present and self._version < (1, 1):
                raise _fail("/header", f"attribute {present[0]}: not part of format 1.0")
            has_decoder_bits = _STORED_DECODER in attrs.attrs
            if has_decoder_bits and self._version < (1, 2):
                raise _fail("/header", f"attribute {_STORED_DECODER}: not part of format {self.format_version}")
            if (present or has_decoder_bits) and len(present) != len(_STORED_ATTRS):
                missing = [n for n in _STORED_ATTRS if n not in present]
                raise _fail("/header", f"attribute {missing[0]} is missing (the stored-bits attributes come together)")
            present += [_STORED_DECODER] if has_decoder_bits else []
            for name in names + present:
                value = get_attr(attrs, "/header", name)
                if name in ("beats_raw", "beats_raw_stored"):
                    if not isinstance(value, (bool, np.bool_)):
                        raise _fail("/header", f"attribute {name}: expected a bool, got {value!r}")
                    values[name] = bool(value)
                else:
                    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                        raise _fail("/header", f"attribute {name}: expected an int64, got {value!r}")
                    values[name] = int(value)
            if not 0 <= values["w"] <= MAX_IMAGES:
                raise _fail("/header", f"attribute w: expected 0 to {MAX_IMAGES} images, got {values['w']}")
            return Header(**values)

    def _layout_v1(self, w: int) -> dict[str, tuple[Any, tuple]]:
        latents: dict[str, tuple[Any, tuple]] = {}
        if self.latent_coding == "float32":
            latents["/latents/values"] = (np.float32, (None,))
        elif self.latent_coding == "range-categorical":
            latents["/latents/table_of_channel"] = (np.int32, (None,))
            latents["/latents/counts"] = (np.uint16, (None, None))
            latents["/latents/stream"] = (np.uint32, (None,))
        return {
            "/decoder/architecture": (STR, ()),
            **latents,
            "/latents/offsets": (np.int64, (w + 1,)),
            "/latents/shapes": (np.int32, (w, 3)),
            "/images/names": (STR, (w,)),
            "/images/shapes": (np.int32, (w, 3)),
            "/images/modes": (STR, (w,)),
            "/images/formats": (STR, (w,)),
            "/images/sha256": (np.uint8, (w, None if self._version >= (1, 1) else 32)),
            "/images/palette_index": (np.int32, (w,)),
            "/images/palettes": (np.uint8, (None, 256, 4)),
            "/images/file_bytes": (np.int64, (w,)),
            "/quality/psnr": (np.float64, (w,)),
            "/training/config": (STR, ()),
        }

    def _check_weight_layout(self) -> None:
        layers = [layer for layer in self._spec.layers if layer.weight_shapes]
        dtypes: list[np.dtype] = []
        with self._at("/decoder"):
            got = attr_strs(self._file["decoder"], "/decoder", "layer_names")
            want = [layer.name for layer in layers]
            if got != want:
                raise _fail("/decoder", f"attribute layer_names: expected {want}, got {got}")
        for layer in layers:
            base = f"/decoder/layers/{layer.name}"
            with self._at(base):
                group = get_node(self._file, base, h5py.Group)
                got = attr_strs(group, base, "weight_names")
                want = [name for name, _ in layer.weight_shapes]
                if got != want:
                    raise _fail(base, f"attribute weight_names: expected {want}, got {got}")
            for name, shape in layer.weight_shapes:
                path = f"{base}/{name}"
                dtype = self._weight_dtype_of(path)
                if dtypes and dtype not in dtypes:
                    raise _fail(path, f"expected dtype {dtypes[0].name} like the decoder's other weights, got {dtype.name}")
                dtypes.append(dtype)
                self._dataset(path, dtype, shape)
        #: How the decoder weights are stored: ``"float32"``, or ``"float16"`` (1.2).
        self.weight_dtype = dtypes[0].name if dtypes else "float32"

    def _weight_dtype_of(self, path: str) -> np.dtype:
        """The dtype a weight dataset is read as: float32, or float16 in a 1.2 file."""
        with self._at(path):
            got = get_node(self._file, path, h5py.Dataset).dtype
            if got.kind != "f" or got.itemsize != 2:
                return np.dtype(np.float32)  # `checked_dataset` refuses any other dtype, expected versus got
            if self._version < (1, 2):
                raise _fail(path, f"float16 weights need format 1.2, the file says {self.format_version}")
            return np.dtype(np.float16)

    # -- the archive's parts --------------------------------------------------

    @property
    def header(self) -> Header:
        """The accounting of ``z + w*y*32 < x`` (checked against the data)."""
        return self._header

    @property
    def spec(self) -> DecoderSpec:
        """The validated decoder description."""
        return self._spec

    @property
    def decoder(self) -> DecoderWeights:
        """The decoder description and its weights, as float32 (float16 ones converted exactly)."""

        def load() -> DecoderWeights:
            weights = {}
            for layer in self._spec.layers:
                if layer.weight_shapes:
                    base = f"/decoder/layers/{layer.name}"
                    weights[layer.name] = [(n, self._read(f"{base}/{n}", np.float32)) for n, _ in layer.weight_shapes]
            decoder = DecoderWeights(self._architecture, weights, self.weight_dtype)
            with self._at("/decoder"):
                check_weights(decoder, self._spec)
            return decoder

        return self._cached("decoder", load)

    @property
    def latents(self) -> Latents:
        """One latent tensor per image."""

        def load() -> Latents:
            empty = np.zeros(0, np.float32)
            g = self._file["latents"]
            if self.latent_coding == "range-categorical":
                with self._at("/latents"):
                    q = QuantizedLatents(
                        step=_float_attr(g, "/latents", "step"),
                        qmin=_int_attr(g, "/latents", "qmin"),
                        table_of_channel=self._read("/latents/table_of_channel", np.int32),
                        counts=self._read("/latents/counts", np.uint16),
                        stream=self._read("/latents/stream", np.uint32),
                    )
                    check_quantized_latents(q, int(self._spec.input_shape[-1]))
                return Latents(values=empty, offsets=self._offsets, shapes=self._latent_shapes, quantized=q)
            if self.latent_coding == "index":
                with self._at("/latents"):
                    generator = attr_str(g, "/latents", "generator")
                    if generator != INDEX_CODE_GENERATOR:
                        raise _fail("/latents", f"attribute generator: expected {INDEX_CODE_GENERATOR!r}, got {generator!r}")
                    codes = IndexCodes(seed=_int_attr(g, "/latents", "seed"), step=_float_attr(g, "/latents", "step"))
                    check_index_codes(codes)
                return Latents(values=empty, offsets=self._offsets, shapes=self._latent_shapes, index_codes=codes)
            values = self._read("/latents/values", np.float32)
            with self._at("/latents/values"):
                check_latent_values(values, int(self._offsets[-1]))
            return Latents(values=values, offsets=self._offsets, shapes=self._latent_shapes)

        return self._cached("latents", load)

    @property
    def images(self) -> ImageTable:
        """Per-image metadata."""

        def load() -> ImageTable:
            r = self._read
            table = ImageTable(
                names=r("/images/names", STR),
                shapes=r("/images/shapes", np.int32),
                modes=_shared(r("/images/modes", STR)),
                formats=_shared(r("/images/formats", STR)),
                sha256=r("/images/sha256", np.uint8),
                palette_index=r("/images/palette_index", np.int32),
                palettes=r("/images/palettes", np.uint8),
                file_bytes=r("/images/file_bytes", np.int64),
                sha256_all=r("/images/sha256_all", np.uint8) if "/images/sha256_all" in self._ds else None,
            )
            w = self._header.w
            with self._at("/images"):
                check_image_shapes(table.shapes, w)
                check_image_fits_decoder(self._spec, self._latent_shapes, table.shapes, self._header.x_bits)
                check_image_table(
                    table.names, table.modes, table.formats, table.sha256,
                    table.palette_index, table.palettes, table.file_bytes, w,
                )  # fmt: skip
                check_digests(table.sha256, table.sha256_all, self._version)
            return table

        return self._cached("images", load)

    @property
    def quality(self) -> Quality:
        """PSNR of every reconstruction measured at compress time."""

        def load() -> Quality:
            psnr = self._read("/quality/psnr", np.float64)
            with self._at("/quality/psnr"):
                check_psnr(psnr, self._header.w)
            return Quality(psnr=psnr)

        return self._cached("quality", load)

    @property
    def training(self) -> dict[str, Any]:
        """The training record (architecture choice, epochs, seed, losses, timings)."""

        def load() -> dict[str, Any]:
            with self._at("/training/config"):
                config = _json(self._read("/training/config", STR), "/training/config")
                if not isinstance(config, dict):
                    raise _fail("/training/config", f"expected a JSON object, got {type(config).__name__}")
            return config

        return self._cached("training", load)

    @property
    def lossless(self) -> LosslessResiduals | None:
        """(1.1) The lossless residuals, or None for a lossy archive."""

        def load() -> LosslessResiduals | None:
            if not self._has_lossless:
                return None
            g = self._file["lossless"]
            with self._at("/lossless"):
                predictor = attr_str(g, "/lossless", "predictor")
                if predictor != "fixed-point":
                    raise _fail("/lossless", f"attribute predictor: expected 'fixed-point', got {predictor!r}")
                ints = {name: _int_attr(g, "/lossless", name) for name in _LOSSLESS_INTS}
            data = {name: self._read(f"/lossless/{name}", dtype) for name, dtype in _LOSSLESS_DATA.items()}
            ll = LosslessResiduals(**ints, **data)
            with self._at("/lossless"):
                check_lossless(ll, self._header.w)
            return ll

        return self._cached("lossless", load)

    def validate(self) -> None:
        """Read and check every part (opening checked only the index)."""
        for part in ("decoder", "latents", "images", "quality", "training", "lossless"):
            getattr(self, part)

    def contents(self) -> ArchiveContents:
        """Everything, read and checked."""
        return ArchiveContents(
            header=self.header,
            decoder=self.decoder,
            latents=self.latents,
            images=self.images,
            quality=self.quality,
            training=self.training,
            writer=self.writer,
            created=self.created,
            lossless=self.lossless,
        )

    def storage_breakdown(self) -> dict[str, int]:
        """Bytes the archive spends on each part.

        Each part is the bytes its datasets occupy in the file (after
        compression, checksums included); ``overhead`` is the rest: HDF5
        structure (superblock, object headers, B-trees) and attributes.

        Returns:
            ``{"decoder", "latents", "images", "quality", "training",
            "overhead", "file"}`` in bytes; all but ``file`` add up to ``file``.
        """

        def load() -> dict[str, int]:
            parts = dict.fromkeys(_GROUPS[1:], 0)
            if self._has_lossless:
                parts["lossless"] = 0
            for path, ds in self._ds.items():
                part = path.split("/")[1]
                if part in parts:
                    with self._at(path):
                        parts[part] += int(ds.id.get_storage_size())
            total = os.path.getsize(self.path)
            parts["overhead"] = total - sum(parts.values())
            parts["file"] = total
            return parts

        return dict(self._cached("storage_breakdown", load))

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Close the file (cached parts stay readable)."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
            self._ds = {}

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._file is not None else "closed"
        return f"<latentpack Archive {os.fspath(self.path)!r} format {self.format_version} w={self._header.w} ({state})>"


def _shared(labels: list[str]) -> list[str]:
    """The labels with equal ones as one object: a mode or format repeats for every image."""
    one: dict[str, str] = {}
    return [one.setdefault(label, label) for label in labels]


def _int_attr(obj: Any, path: str, name: str) -> int:
    value = get_attr(obj, path, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise _fail(path, f"attribute {name}: expected an int64, got {value!r}")
    return int(value)


def _float_attr(obj: Any, path: str, name: str) -> float:
    value = get_attr(obj, path, name)
    if not isinstance(value, (float, np.floating)):
        raise _fail(path, f"attribute {name}: expected a float64, got {value!r}")
    return float(value)


def open_archive(path: str | os.PathLike[str]) -> Archive:
    """Open and check an archive; use as ``with open_archive(path) as archive:``.

    Args:
        path: The archive's path.

    Returns:
        The open `Archive`.

    Raises:
        ArchiveError: see `Archive`.
    """
    return Archive(path)


def read_archive(path: str | os.PathLike[str]) -> ArchiveContents:
    """Read and check a whole archive.

    Args:
        path: The archive's path.

    Returns:
        Everything the archive holds.

    Raises:
        ArchiveError: see `Archive`.
    """
    with open_archive(path) as archive:
        return archive.contents()


def read_header(path: str | os.PathLike[str]) -> Header:
    """Read an archive's header (after the checks opening does).

    Args:
        path: The archive's path.

    Returns:
        The header.

    Raises:
        ArchiveError: see `Archive`.
    """
    with open_archive(path) as archive:
        return archive.header
