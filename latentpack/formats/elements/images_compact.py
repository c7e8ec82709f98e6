"""``/images`` in its compact 1.4 layout: the same `ImageTable`, in a few bytes per image.

::

    names            -> front-coded records, one zlib stream   /images/names (uint8)
    modes, formats   -> one attribute when every image shares it, else a column
    shapes           -> height, width, channels attributes when shared, else uint16 (w, 3)
    file_bytes       -> one attribute when shared, else an int64 column (shuffled, deflated);
                        -1: not recorded (a producer's choice: saves about 1.2 B/image of PNG sizes)
    palettes         -> absent when no image has one
    sha256           -> (w, k), k = 2, 4, 8, 16 or 32 (2: new in 1.4)

The table's rules are those of every layout (`images.check_image_table`);
this module adds which attribute or dataset stands for which column
(docs/FORMAT.md, "/images (1.4)"). Written when
``ArchiveContents.compact_metadata`` is True (the default).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from latentpack.formats import h5write
from latentpack.formats.elements.images import UNKNOWN_FILE_BYTES, Images
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.names_blob import decode_names, encode_names
from latentpack.formats.registry import STR, Field, register
from latentpack.formats.schema import ImageTable
from latentpack.formats.validate import MAX_CHANNELS, MAX_SIDE

__all__ = ["CompactImages", "SHARED"]

_PACKED, _CHECKED = h5write.PACKED_WHOLE, h5write.CHECKED_WHOLE

#: Each column that may be stored once: the attribute(s) then, and the dataset otherwise.
SHARED = {
    "modes": (("mode",), "modes"),
    "formats": (("format",), "formats"),
    "shapes": (("height", "width", "channels"), "shapes"),
    "file_bytes": (("file_bytes_each",), "file_bytes"),
}


def _fail(path: str, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


def _attr(name: str, dtype: Any) -> Field:
    return Field(name, dtype, attr=True, since="1.4", required=False)


def _one(values: Sequence[Any]) -> Any:
    """The value every entry has, or None (also when there are none)."""
    if not len(values):
        return None
    first = values[0]
    return first if all(v == first for v in values) else None


def _one_row(rows: np.ndarray) -> np.ndarray | None:
    """The row every row of a 2-D array equals, or None."""
    if not len(rows) or not (rows == rows[0]).all():
        return None
    return rows[0]


def _tiled_shape(attrs: Mapping[str, Any], w: int) -> np.ndarray:
    """The shared shape's attributes as ``(w, 3)`` int32 rows."""
    return np.tile(np.array([attrs[name] for name in SHARED["shapes"][0]], dtype=np.int32), (w, 1))


@register
class CompactImages(Images, encoding_type="images", label="image metadata", reads=("1.4", "1.5"), display=3):
    fields = (
        _attr("mode", STR),
        _attr("format", STR),
        _attr("height", np.int64),
        _attr("width", np.int64),
        _attr("channels", np.int64),
        _attr("file_bytes_each", np.int64),
        Field("names", np.uint8, (None,), since="1.4", storage=_CHECKED),
        Field("sha256", np.uint8, ("w", None), since="1.4", storage=_CHECKED),
        Field("sha256_all", np.uint8, (32,), since="1.4", required=False, storage=h5write.CHECKED),
        Field("modes", STR, ("w",), since="1.4", required=False, storage=_PACKED),
        Field("formats", STR, ("w",), since="1.4", required=False, storage=_PACKED),
        Field("shapes", np.uint16, ("w", 3), since="1.4", required=False, storage=_PACKED),
        Field("file_bytes", np.int64, ("w",), since="1.4", required=False, storage=_PACKED),
        Field("palette_index", np.int32, ("w",), since="1.4", required=False, storage=_PACKED),
        Field("palettes", np.uint8, (None, 256, 4), since="1.4", required=False, storage=_PACKED),
    )
    compact = True

    def version(self, obj: ImageTable) -> str:
        return "1.4"

    # -- writing ----------------------------------------------------------------

    def write(self, group: h5py.Group, obj: ImageTable, options: Mapping[str, Any]) -> None:
        h5write.write_dataset(group, "names", encode_names(obj.names), _CHECKED)
        h5write.write_dataset(group, "sha256", obj.sha256, _CHECKED)
        if obj.sha256_all is not None:
            h5write.write_dataset(group, "sha256_all", obj.sha256_all, h5write.CHECKED)
        for column, value in (("modes", _one(obj.modes)), ("formats", _one(obj.formats)),
                              ("shapes", _one_row(obj.shapes)), ("file_bytes", _one(obj.file_bytes.tolist()))):
            attrs, dataset = SHARED[column]
            if value is None:
                data = getattr(obj, column)
                h5write.write_dataset(group, dataset, data.astype(np.uint16) if column == "shapes" else data, _PACKED)
                continue
            for name, part in zip(attrs, value.tolist() if column == "shapes" else [value]):
                h5write.write_attr(group, name, part, STR if isinstance(part, str) else np.int64)
        if len(obj.palettes) or (obj.palette_index >= 0).any():
            h5write.write_dataset(group, "palette_index", obj.palette_index, _PACKED)
            h5write.write_dataset(group, "palettes", obj.palettes, _PACKED)

    # -- reading ----------------------------------------------------------------

    def opened_attrs(self, attrs: dict[str, Any], version: tuple[int, int]) -> None:
        shape = [name for name in SHARED["shapes"][0] if name in attrs]
        if shape and len(shape) != 3:
            missing = sorted(set(SHARED["shapes"][0]) - set(shape))
            raise _fail(self.path, f"attributes height, width and channels come together; missing {', '.join(missing)}")
        if shape:
            h, w, c = (attrs[name] for name in SHARED["shapes"][0])
            if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and 1 <= c <= MAX_CHANNELS):
                raise _fail(self.path, f"attributes height, width, channels: expected 1 to {MAX_SIDE}, 1 to "
                                       f"{MAX_SIDE} and 1 to {MAX_CHANNELS}, got {h}, {w}, {c}")
        if attrs.get("file_bytes_each", 0) < UNKNOWN_FILE_BYTES:
            raise _fail(self.path, f"attribute file_bytes_each: must be >= {UNKNOWN_FILE_BYTES}, "
                                   f"got {attrs['file_bytes_each']}")

    def opened(self, archive: Any, attrs: dict[str, Any]) -> None:
        """Each shared column as its attribute(s) or its dataset, exactly one; palettes with their index."""
        for column, (names, dataset) in SHARED.items():
            stored = f"{self.path}/{dataset}" in archive._ds
            shared = names[0] in attrs
            if stored == shared:
                which = "both" if stored else "neither"
                raise _fail(f"{self.path}/{dataset}", f"expected the dataset or the attribute {names[0]}, found {which}")
        held = {name for name in ("palette_index", "palettes") if f"{self.path}/{name}" in archive._ds}
        if len(held) == 1:
            missing = ({"palette_index", "palettes"} - held).pop()
            raise _fail(f"{self.path}/{missing}", "required element is missing (palette_index and palettes come together)")

    def image_shapes(self, archive: Any) -> np.ndarray:
        if f"{self.path}/shapes" in archive._ds:
            return archive._read(f"{self.path}/shapes", np.uint16).astype(np.int32)
        return _tiled_shape(archive._attrs[self.encoding_type], archive._ctx.w)

    def build(self, values: dict[str, Any], archive: Any) -> ImageTable:
        w = archive._ctx.w
        names = decode_names(values["names"], w)
        shapes = values["shapes"].astype(np.int32) if "shapes" in values else _tiled_shape(values, w)
        if "palettes" in values:
            palette_index, palettes = values["palette_index"], values["palettes"]
        else:
            palette_index, palettes = np.full(w, -1, dtype=np.int32), np.zeros((0, 256, 4), dtype=np.uint8)
        file_bytes = values["file_bytes"] if "file_bytes" in values else np.full(w, values["file_bytes_each"], np.int64)
        table = {
            "names": names, "shapes": shapes, "sha256": values["sha256"], "sha256_all": values.get("sha256_all"),
            "modes": values["modes"] if "modes" in values else [values["mode"]] * w,
            "formats": values["formats"] if "formats" in values else [values["format"]] * w,
            "palette_index": palette_index, "palettes": palettes, "file_bytes": file_bytes,
        }
        return super().build(table, archive)
