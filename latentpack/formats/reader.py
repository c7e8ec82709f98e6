"""Read and check a latentpack archive with h5py and numpy only.

Opening an archive checks, in this order (docs/FORMAT.md, "Reading")::

    HDF5 signature -> root encoding-type -> root encoding-version
      -> every group: hard link, encoding-type, encoding-version, dispatched
         on (encoding-type, encoding-version) to its element in the registry
      -> every element, in reading order: its attributes, then its datasets
         with no data read yet (hard link, no external/virtual storage,
         allowed filters, dtype, shape, declared size), then what it reads
         to index the rest (decoder description, latent offsets and shapes)
      -> which elements are there together (1.3: /pixels in place of
         /decoder and /latents, never with /lossless)
      -> the header against the stored bits every element reports

What is checked comes from each element's declaration
(`latentpack.formats.registry`); this module only walks them. Decoder
weights stored as float16 (1.2 layout) are handed out as float32 arrays (the
conversion is exact), with ``weight_dtype = "float16"``. An archive with a
pixel model (1.3, ``/pixels``) has no decoder and no latents: `Archive.spec`,
``decoder``, ``latents``, ``latent_coding`` and ``weight_dtype`` are None.

The bulk data (weights, latent values, the image table, PSNRs, the training
record) is read and checked the first time a property asks for it, and kept.
Every failure is an `ArchiveError` naming the file and the HDF5 path; h5py,
numpy and OS errors met while reading (truncation, checksum mismatch) become
`CorruptArchiveError`. Nothing in a file is ever executed, and nothing is
read from HDF5's global heap (variable-length strings are refused by type).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Collection

import h5py

from latentpack.formats import layout, registry
from latentpack.formats.decoder_spec import DecoderSpec
from latentpack.formats.errors import CorruptArchiveError, NotAnArchiveError, UnsupportedVersionError
from latentpack.formats.h5checks import attr_str, checked_dataset, get_node, parse_version, read_data, reading, version_syntax
from latentpack.formats.registry import Context, Element, version_text, version_tuple
from latentpack.formats.schema import (
    ENCODING_TYPE,
    ArchiveContents,
    DecoderWeights,
    Header,
    ImageTable,
    Latents,
    LosslessResiduals,
    PixelModelCoding,
    Quality,
)
from latentpack.formats.validate import check_together
from latentpack.fs.special import open_regular

__all__ = ["Archive", "open_archive", "read_archive", "read_header"]


def _fail(path: str | None, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


class Archive:
    """An open latentpack archive: checked when opened, read on demand.

    Use as a context manager (``with open_archive(path) as archive:``); the
    properties read from the file the first time and are cached, so read
    what you need before the ``with`` block ends.

    Args:
        path: The archive's path.
        lazy: Hand out bulk datasets (latent values, coded streams) unread, as
            `latentpack.formats.lazy.LazyArray` checked slice by slice; the
            file stays open until `close`.

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: `path` cannot
            be opened at all.
        NotAnArchiveError: not HDF5, or not latentpack's.
        UnsupportedVersionError: a format version, or an element's version,
            this latentpack cannot read (naming the element's HDF5 path).
        CorruptArchiveError: any rule of the format broken, or damaged bytes.
    """

    def __init__(self, path: str | os.PathLike[str], lazy: bool = False):
        self.path, self.lazy = Path(path), lazy
        self._file: h5py.File | None = None
        self._cache: dict[str, Any] = {}
        self._ds: dict[str, h5py.Dataset] = {}
        #: The element each group was dispatched to, by encoding type, in reading order.
        self._elements: dict[str, Element] = {}
        self._versions: dict[str, tuple[int, int]] = {}
        self._attrs: dict[str, dict[str, Any]] = {}
        self._ctx = Context(w=0, versions=self._versions)
        self._spec: DecoderSpec | None = None
        #: How the decoder weights are stored (``"float32"`` or, 1.2, ``"float16"``); None without a decoder (1.3).
        self.weight_dtype: str | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- plumbing ---------------------------------------------------------

    def _at(self, hdf5_path: str | None) -> Any:
        """Context: any error inside becomes an `ArchiveError` naming this file and `hdf5_path`."""
        return reading(hdf5_path, self.path)

    def _dataset(self, path: str, dtype: Any, shape: tuple) -> h5py.Dataset:
        with self._at(path):
            self._ds[path] = checked_dataset(self._file, path, dtype, shape, self._ctx.w)
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
        if os.path.isdir(self.path):
            open(self.path, "rb").close()  # IsADirectoryError as such
        # opened once, never blocking, checked after the open; HDF5 reads that file through /proc/self/fd
        self._handle = open_regular(self.path, "archive")  # FileNotFoundError / PermissionError as such
        target = f"/proc/self/fd/{self._handle.fileno()}"
        target = target if os.path.exists(target) else self.path
        with self._at("/"):
            if not h5py.is_hdf5(target):
                raise NotAnArchiveError("not a latentpack archive (not an HDF5 file)")
            self._file = h5py.File(target, "r")
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
            self._version = parse_version(self.format_version, "/")
            self.writer = attr_str(root, "/", "writer")
            self.created = attr_str(root, "/", "created")
        for encoding_type in registry.types():
            with self._at("/" + encoding_type):  # even the test for a group's presence reads metadata
                self._dispatch(encoding_type)
        with self._at("/"):
            check_together(set(self._elements))
        for encoding_type, element in self._elements.items():
            attrs = layout.open_fields(self, element, self._versions[encoding_type], self._ctx.sizes)
            self._attrs[encoding_type] = attrs
            with self._at(element.path):
                element.opened(self, attrs)
        for element in self._elements.values():
            if element.header_bits:
                with self._at(element.path):
                    self._ctx.bits[element.header_bits] = element.archive_bits(self)
        for element in self._elements.values():
            if element.summary:
                with self._at(element.path):
                    element.validate(self._cache[element.part], self._ctx)
        #: How the latents are stored: ``"float32"``, ``"range-categorical"`` or ``"index"`` (1.1); None
        #: without latents (a pixel model, 1.3).
        self.latent_coding = self._elements["latents"].variant if "latents" in self._elements else None
        #: Whether the archive stores lossless residuals (1.1).
        self.is_lossless = self._has_lossless = "lossless" in self._elements

    def _dispatch(self, encoding_type: str) -> None:
        """Find the element that reads the group `encoding_type` from its tags.

        An optional group that is absent, or newer than the file's version
        (ignored then), is skipped; so is an absent required one that a
        group of the file replaces (`Element.replaces`: ``/pixels``).
        """
        path = "/" + encoding_type
        kinds = [el for el in registry.elements() if el.encoding_type == encoding_type]
        if all(el.optional for el in kinds):
            since = min(version_tuple(el.since) for el in kinds)
            if self._version < since or encoding_type not in self._file:
                return
        elif encoding_type not in self._file and self._replaced(encoding_type):
            return
        with self._at(path):
            group = get_node(self._file, path, h5py.Group)
            got = attr_str(group, path, "encoding-type")
            if got != encoding_type:
                raise _fail(path, f"attribute encoding-type: expected {encoding_type!r}, got {got!r}")
            text = attr_str(group, path, "encoding-version")
            version = version_syntax(text, path)
            found = registry.lookup(encoding_type, version_text(version))
            if not found:
                newest = registry.newest_version(encoding_type)
                raise UnsupportedVersionError(text, newest, hdf5_path=path, newer=version > version_tuple(newest))
            if version > self._version:
                raise _fail(path, f"attribute encoding-version: {text} is newer than the file's {self.format_version}")
            self._elements[encoding_type] = _variant(found, group, path)
            self._versions[encoding_type] = version

    def _replaced(self, encoding_type: str) -> bool:
        """Whether a group this file's version knows replaces `encoding_type` (absence then allowed)."""
        return any(encoding_type in el.replaces and el.encoding_type in self._file
                   and version_tuple(el.since) <= self._version for el in registry.elements())

    # -- the archive's parts --------------------------------------------------

    def part(self, part: str) -> Any:
        """An element's value by its `ArchiveContents` field name, read and checked the first time.

        Args:
            part: The element's ``part`` (``"images"``, ``"lossless"``, ...).

        Returns:
            Its in-memory value, or None when the archive has no such element.
        """

        def load() -> Any:
            element = next((el for el in self._elements.values() if el.part == part), None)
            if element is None:
                return None
            values = layout.read_values(self, element, self._attrs[element.encoding_type])
            with self._at(element.path):
                value = element.build(values, self)
                element.validate(value, self._ctx)
            return value

        return self._cached(part, load)

    @property
    def header(self) -> Header:
        """The accounting of ``z + w*y*32 < x`` (checked against the data)."""
        return self._header

    @property
    def spec(self) -> DecoderSpec | None:
        """The validated decoder description (None for a pixel model, 1.3)."""
        return self._spec

    @property
    def decoder(self) -> DecoderWeights | None:
        """The decoder description and its weights, as float32 (float16 ones converted exactly); None for a
        pixel model (1.3)."""
        return self.part("decoder")

    @property
    def latents(self) -> Latents | None:
        """One latent tensor per image (None for a pixel model, 1.3)."""
        return self.part("latents")

    @property
    def images(self) -> ImageTable:
        """Per-image metadata."""
        return self.part("images")

    @property
    def quality(self) -> Quality:
        """PSNR of every reconstruction measured at compress time."""
        return self.part("quality")

    @property
    def training(self) -> dict[str, Any]:
        """The training record (architecture choice, epochs, seed, losses, timings)."""
        return self.part("training")

    @property
    def lossless(self) -> LosslessResiduals | None:
        """(1.1) The lossless residuals, or None for a lossy archive."""
        return self.part("lossless")

    @property
    def pixels(self) -> PixelModelCoding | None:
        """(1.3) The pixel model and the coded pixels, or None for an archive with a decoder."""
        return self.part("pixels")

    def validate(self) -> None:
        """Read and check every part (opening checked only the index)."""
        for element in registry.elements():
            self.part(element.part)

    def contents(self, parts: Collection[str] | None = None) -> ArchiveContents:
        """Everything, read and checked (every element's value under its `ArchiveContents` field).

        Args:
            parts: Read only these parts (``"images"``, ...); the others are never read: None (training ``{}``).
        """
        values = {el.part: self.part(el.part) if parts is None or el.part in {*parts, "header"} else None
                  for el in registry.elements()}
        values["training"] = values.get("training") or {}
        return ArchiveContents(**values, writer=self.writer, created=self.created)

    def storage_breakdown(self) -> dict[str, int]:
        """Bytes the archive spends on each element that holds datasets.

        Each part is the bytes its datasets occupy in the file (after
        compression, checksums included); ``overhead`` is the rest: HDF5
        structure (superblock, object headers, B-trees) and attributes. The
        parts' labels are `latentpack.formats.registry.breakdown_parts`.

        Returns:
            ``{"decoder", "latents", "images", "quality", "training",
            ["lossless",] "overhead", "file"}`` in bytes, or with a pixel
            model (1.3) ``{"pixels", "images", ...}`` (no ``decoder`` or
            ``latents``); all but ``file`` add up to ``file``.
        """

        def load() -> dict[str, int]:
            stored = {key for key, _ in registry.breakdown_parts()}
            parts = {el.part: 0 for el in self._elements.values() if el.part in stored}
            for path, ds in self._ds.items():
                element = self._elements.get(path.split("/")[1])
                if element is not None and element.part in parts:
                    with self._at(path):
                        parts[element.part] += int(ds.id.get_storage_size())
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
        if getattr(self, "_handle", None) is not None:
            self._handle.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._file is not None else "closed"
        return f"<latentpack Archive {os.fspath(self.path)!r} format {self.format_version} w={self._header.w} ({state})>"


def _variant(found: list[Element], group: h5py.Group, path: str) -> Element:
    """Of the layouts sharing a group's tags, the one its ``coding`` attribute names (absent: float32)."""
    if len(found) == 1:
        return found[0]
    coding = attr_str(group, path, "coding") if "coding" in group.attrs else "float32"
    for element in found:
        if element.variant == coding:
            return element
    raise _fail(path, f"attribute coding: expected one of {[el.variant for el in found]}, got {coding!r}")


def open_archive(path: str | os.PathLike[str], lazy: bool = False) -> Archive:
    """Open and check an archive (``lazy``: see `Archive`); use as ``with open_archive(path) as archive:``.

    Raises:
        ArchiveError: see `Archive`.
    """
    return Archive(path, lazy)


def read_archive(path: str | os.PathLike[str], parts: Collection[str] | None = None) -> ArchiveContents:
    """Read and check a whole archive, or only the parts a command needs.

    Args:
        path: The archive's path.
        parts: Only these parts (see `Archive.contents`); default all.

    Returns:
        Everything the archive holds.

    Raises:
        ArchiveError: see `Archive`.
    """
    with open_archive(path) as archive:
        return archive.contents(parts)


def read_header(path: str | os.PathLike[str]) -> Header:
    """Read an archive's header (after the checks opening does); raises `ArchiveError` (see `Archive`)."""
    with open_archive(path) as archive:
        return archive.header
