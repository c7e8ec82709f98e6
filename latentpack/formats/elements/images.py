"""``/images``: one row of metadata per image (name, shape, mode, format, digest, palette, file size).

Layouts: 1.0 stores 32-byte sha256 digests; 1.1 may store their first 4, 8
or 16 bytes, with ``sha256_all`` (the digest of all full digests) then
required. This module reads them (1.0 to 1.3) and writes them when
``ArchiveContents.compact_metadata`` is False; 1.4's compact layout is
`latentpack.formats.elements.images_compact`, and both hand out the same
`ImageTable` and share its rules (`check_image_table`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from latentpack.formats import h5write, layout
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.registry import STR, Context, Element, Field, register
from latentpack.formats.schema import ImageTable
from latentpack.formats.validate import DIGEST_BYTES, MAX_CHANNELS, MAX_NAME_BYTES, MAX_SIDE, check_image_fits_decoder

__all__ = ["Images", "check_image_table", "UNKNOWN_FILE_BYTES"]

#: (1.4) The file size of an image whose size was not recorded.
UNKNOWN_FILE_BYTES = -1


def _fail(path: str, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


def _digest_shape(sizes: dict[str, Any]) -> tuple:
    return (sizes["w"], 32 if sizes["version"] < (1, 1) else None)


def _check_name(i: int, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise _fail("/images/names", f"entry {i}: must be a non-empty string, got {name!r}")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise _fail("/images/names", f"entry {i}: longer than {MAX_NAME_BYTES} bytes")
    if "\x00" in name or "\\" in name or name.startswith("/"):
        raise _fail("/images/names", f"entry {i}: must be a relative POSIX path without NUL or backslash, got {name!r}")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise _fail("/images/names", f"entry {i}: must not contain empty, '.' or '..' components, got {name!r}")


def _names_pass(names: Sequence[Any]) -> bool:
    """Whether every name surely passes `_check_name` and none repeats, from whole-list operations.

    Each name is wrapped as ``/name/`` and all are joined with NUL: an empty,
    ``.`` or ``..`` component (or a leading or trailing slash) shows as
    ``//``, ``/./`` or ``/../``; a NUL in a name as one NUL too many. False
    means "look name by name" (which names the first at fault).
    """
    try:
        joined = "/\x00/".join(names)
    except TypeError:  # not all strings
        return False
    wrapped = f"/{joined}/"
    if any(bad in wrapped for bad in ("//", "/./", "/../", "\\")) or wrapped.count("\x00") != max(len(names) - 1, 0):
        return False
    longest = max(map(len, names), default=0)
    if longest * 4 > MAX_NAME_BYTES and any(len(n.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for n in names):
        return False
    return len(set(names)) == len(names)


def _check_labels(path: str, labels: Sequence[Any], w: int, lo: int, hi: int) -> None:
    if len(labels) != w:
        raise _fail(path, f"expected {w} entries, got {len(labels)}")
    try:
        distinct = set(labels)  # a mode or format repeats for every image: each one checked once
    except TypeError:  # unhashable: not a string
        distinct = None
    if distinct is not None and all(_label_ok(label, lo, hi) for label in distinct):
        return
    for i, label in enumerate(labels):
        if not _label_ok(label, lo, hi):
            raise _fail(path, f"entry {i}: expected {lo} to {hi} printable ASCII characters, got {label!r}")


def _label_ok(label: Any, lo: int, hi: int) -> bool:
    return isinstance(label, str) and lo <= len(label) <= hi and label.isascii() and label.isprintable()


def _check_shapes(shapes: np.ndarray, w: int) -> None:
    if not w:
        return
    ok = (shapes[:, :2] >= 1).all(axis=1) & (shapes[:, :2] <= MAX_SIDE).all(axis=1)
    ok &= (shapes[:, 2] >= 1) & (shapes[:, 2] <= MAX_CHANNELS)
    if not ok.all():
        i = int(np.argmin(ok))
        raise _fail("/images/shapes", f"row {i}: expected 1 <= height, width <= {MAX_SIDE} and 1 <= channels "
                                      f"<= {MAX_CHANNELS}, got {shapes[i].tolist()}")


def check_image_table(table: ImageTable, w: int, version: tuple[int, int]) -> None:
    """Names unique and safe, labels short ASCII, digests as the version allows, palette rows in range, sizes >= 0."""
    names = table.names
    if len(names) != w:
        raise _fail("/images/names", f"expected {w} entries, got {len(names)}")
    if not _names_pass(names):
        seen: set[str] = set()  # the names themselves, no index object per name
        for i, name in enumerate(names):
            _check_name(i, name)
            if name in seen:
                raise _fail("/images/names", f"entries {list(names).index(name)} and {i}: duplicate name {name!r}")
            seen.add(name)
    _check_labels("/images/modes", table.modes, w, 1, 16)
    _check_labels("/images/formats", table.formats, w, 0, 32)
    k = table.sha256.shape[1]
    if k not in DIGEST_BYTES:
        raise _fail("/images/sha256", f"expected {list(DIGEST_BYTES)} bytes per digest, got {k}")
    if version < (1, 1) and k != 32:
        raise _fail("/images/sha256", f"format 1.0 stores 32-byte digests, got {k}")
    if version < (1, 4) and k < 4:
        raise _fail("/images/sha256", f"{k}-byte digests need the 1.4 layout of /images")
    if k < 32 and table.sha256_all is None:
        raise _fail("/images/sha256_all", "required element is missing (digests are shorter than 32 bytes)")
    n = len(table.palettes)
    bad = np.nonzero((table.palette_index < -1) | (table.palette_index >= n))[0]
    if len(bad):
        i = int(bad[0])
        raise _fail("/images/palette_index", f"entry {i}: expected -1 or a row of /images/palettes (0..{n - 1}), "
                                             f"got {int(table.palette_index[i])}")
    low = UNKNOWN_FILE_BYTES if version >= (1, 4) else 0  # 1.4: -1, a size not recorded
    if np.any(table.file_bytes < low):
        raise _fail("/images/file_bytes", f"entry {int(np.argmax(table.file_bytes < low))}: must be >= {low}"
                                          f"{'' if low else ' (-1, not recorded, needs the 1.4 layout)'}")


class _InMemory:
    """An element seen through its in-memory fields (`Images.table_fields`), for `layout`'s walks."""

    def __init__(self, element: Images) -> None:
        self.fields, self.part = element.table_fields, element.part


def _shared(labels: list[str]) -> list[str]:
    """The labels with equal ones as one object: a mode or format repeats for every image."""
    one: dict[str, str] = {}
    return [one.setdefault(label, label) for label in labels]


@register
class Images(Element, encoding_type="images", label="image metadata", reads=("1.0", "1.1", "1.2", "1.3"), display=3):
    fields = (
        Field("names", STR, ("w",)),
        Field("modes", STR, ("w",)),
        Field("formats", STR, ("w",)),
        Field("shapes", np.int32, ("w", 3), reshape=(-1, 3)),
        Field("sha256", np.uint8, _digest_shape, empty=(0, 32)),
        Field("palette_index", np.int32, ("w",)),
        Field("palettes", np.uint8, (None, 256, 4), empty=(0, 256, 4)),
        Field("file_bytes", np.int64, ("w",)),
        Field("sha256_all", np.uint8, (32,), since="1.1", required=False, storage=h5write.CHECKED),
    )

    #: The `ImageTable` arrays' dtypes and shapes in memory (the 1.4 layout stores them otherwise).
    table_fields = fields
    #: Whether this is the layout `ArchiveContents.compact_metadata` selects.
    compact = False

    def holds(self, contents: Any) -> bool:
        return contents.images is not None and contents.compact_metadata == self.compact

    def version(self, obj: ImageTable) -> str:
        digests = np.asarray(obj.sha256)
        short = digests.ndim == 2 and digests.shape[1] != 32
        return "1.1" if short or obj.sha256_all is not None else "1.0"

    def normalise(self, obj: ImageTable) -> ImageTable:
        digests = obj.sha256
        if isinstance(digests, (list, tuple)) and digests and isinstance(digests[0], (bytes, bytearray)):
            obj = ImageTable(**{**vars(obj), "sha256": [np.frombuffer(bytes(d), dtype=np.uint8) for d in digests]})
        return layout.normalise(_InMemory(self), obj)

    def validate(self, obj: ImageTable, ctx: Context) -> None:
        """The in-memory table's dtypes and shapes (as `table_fields` declare), then its rules."""
        sizes = {**ctx.sizes, "version": ctx.versions.get(self.encoding_type)}
        layout.expect_arrays(_InMemory(self), obj, sizes, self.path)
        self.check(obj, ctx)

    def check(self, obj: ImageTable, ctx: Context) -> None:
        _check_shapes(obj.shapes, ctx.w)
        check_image_table(obj, ctx.w, ctx.versions["images"])
        ctx.image_shapes = obj.shapes
        check_image_fits_decoder(ctx.spec, ctx.latent_shapes, obj.shapes, ctx.header.x_bits)

    def image_shapes(self, archive: Any) -> np.ndarray:
        """``(w, 3)`` int32 image shapes of an open archive, read before the rest of the table (``/pixels``)."""
        return archive._read("/images/shapes", np.int32)

    def build(self, values: dict[str, Any], archive: Any) -> ImageTable:
        values = {**values, "modes": _shared(values["modes"]), "formats": _shared(values["formats"])}
        return ImageTable(**{f.name: values.get(f.name) for f in self.table_fields})
