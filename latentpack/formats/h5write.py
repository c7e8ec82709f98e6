"""How values go into HDF5: fixed-length strings, checksummed datasets, compact JSON text.

The writer reaches the file only through these helpers, so every archive
follows the storage rules of docs/FORMAT.md: strings are fixed-length UTF-8
(no global heap), numeric datasets carry a Fletcher-32 checksum, and JSON
text is a scalar dataset stored compact (inside its checksummed object
header) when it fits.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__all__ = [
    "LIBVER",
    "COMPACT_MAX",
    "PACKED",
    "PACKED_IF_ANY",
    "CHECKED",
    "CHECKED_IF_ANY",
    "TEXT",
    "PACKED_WHOLE",
    "CHECKED_WHOLE",
    "WHOLE_CHUNK_BYTES",
    "to_json",
    "fixed_strings",
    "write_attr",
    "write_text",
    "write_dataset",
    "tag",
    "create_chunked",
]

#: HDF5 file-format features of HDF5 1.10 (compact chunk indexes and object
#: headers: about 15 KiB of structure instead of about 45 KiB); HDF5 >= 1.10 reads it.
LIBVER = ("v110", "v110")
#: A JSON scalar up to this many bytes is stored compact, inside its object
#: header, which HDF5 1.10 checksums (HDF5 caps compact data just under 64 KiB).
COMPACT_MAX = 60 * 1024

#: Storage of a dataset: checksummed, shuffled and deflated (per-image metadata).
PACKED = "packed"
#: As `PACKED` unless the dataset is empty or scalar (then plain).
PACKED_IF_ANY = "packed-if-any"
#: Checksummed, not deflated.
CHECKED = "checked"
#: As `CHECKED` unless empty: range-coder words (they do not compress).
CHECKED_IF_ANY = "checked-if-any"
#: A scalar string (JSON), compact when it fits so that a checksum covers it.
TEXT = "text"
#: (1.4 metadata) As `PACKED` at deflate level 9, in one chunk up to `WHOLE_CHUNK_BYTES`:
#: one chunk needs no chunk index, and deflate sees the whole column.
PACKED_WHOLE = "packed-whole"
#: (1.4 metadata) As `CHECKED`, in one chunk up to `WHOLE_CHUNK_BYTES` (digests, deflated blobs).
CHECKED_WHOLE = "checked-whole"
#: Largest single chunk of the ``*_WHOLE`` kinds; a larger dataset gets chunks of about this size.
WHOLE_CHUNK_BYTES = 1 << 20

_CHECKED: dict[str, Any] = {"fletcher32": True}
_PACKED: dict[str, Any] = {"fletcher32": True, "shuffle": True, "compression": "gzip", "compression_opts": 4}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def to_json(value: Any) -> str:
    """Serialise `value` as the archive's JSON (numpy scalars and arrays become numbers and lists)."""
    return json.dumps(value, sort_keys=True, default=_json_default)


def fixed_strings(strings: list[str]) -> tuple[np.ndarray, Any]:
    """Strings as fixed-length UTF-8 (NUL-padded): no HDF5 global heap, so
    they are checksummed with their dataset and compress with it."""
    encoded = [s.encode("utf-8") for s in strings]
    dtype = h5py.string_dtype("utf-8", max([len(b) for b in encoded] + [1]))
    return np.array(encoded, dtype=dtype), dtype


def write_attr(obj: h5py.HLObject, name: str, value: Any, dtype: Any) -> None:
    """An attribute of the declared kind: a string (or list of strings), int64, float64 or bool."""
    if dtype == "str":
        data, _ = fixed_strings([value] if isinstance(value, str) else list(value))
        obj.attrs.create(name, data=data.reshape(()) if isinstance(value, str) else data)
    elif dtype == "bool":
        obj.attrs[name] = np.bool_(value)
    else:
        obj.attrs[name] = np.dtype(dtype).type(value)


def tag(group: h5py.Group, encoding_type: str, version: str) -> None:
    """The ``encoding-type`` and ``encoding-version`` attributes every group carries."""
    write_attr(group, "encoding-type", encoding_type, "str")
    write_attr(group, "encoding-version", version, "str")


def write_text(group: h5py.Group, name: str, value: str) -> None:
    """A scalar string dataset, compact when it fits so that a checksum covers it.

    A scalar cannot be chunked, so it cannot carry Fletcher-32; h5py's
    ``create_dataset`` would make it contiguous and unchecked, hence the
    low-level calls.
    """
    data, dtype = fixed_strings([value])
    tid = h5py.h5t.py_create(dtype, logical=True)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)  # as h5py does: no timestamps, same bytes for the same contents
    if data.nbytes <= COMPACT_MAX:
        dcpl.set_layout(h5py.h5d.COMPACT)
    dsid = h5py.h5d.create(group.id, name.encode("utf-8"), tid, h5py.h5s.create(h5py.h5s.SCALAR), dcpl=dcpl)
    dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, data.reshape(()), mtype=tid)


def write_dataset(group: h5py.Group, name: str, data: Any, storage: str) -> h5py.Dataset | None:
    """A dataset stored the declared way (`PACKED`, `PACKED_IF_ANY`, `CHECKED`, `CHECKED_IF_ANY`, `TEXT`).

    A list of strings becomes fixed-length UTF-8; `TEXT` takes one string.
    """
    if storage == TEXT:
        write_text(group, name, data)
        return None
    if isinstance(data, list):
        data = fixed_strings(data)[0]
    data = np.asarray(data)
    if storage == PACKED:
        opts = _PACKED
    elif storage == PACKED_IF_ANY:
        opts = _PACKED if data.ndim and data.size else {}
    elif storage == CHECKED:
        opts = _CHECKED
    elif storage == CHECKED_IF_ANY:
        opts = _CHECKED if data.size else {}
    elif storage in (PACKED_WHOLE, CHECKED_WHOLE):
        opts = {**(_CHECKED if storage == CHECKED_WHOLE else _PACKED), **_whole_chunks(data)}
        if storage == PACKED_WHOLE:
            opts["compression_opts"] = 9
    else:
        raise ValueError(f"`storage` must be a storage kind of h5write, got {storage!r}")
    return group.create_dataset(name, data=data, **opts)


def _whole_chunks(data: np.ndarray) -> dict[str, Any]:
    """``chunks=``: the whole dataset, or rows of about `WHOLE_CHUNK_BYTES` (h5py's choice when empty)."""
    if not data.size or data.ndim == 0:
        return {}
    row = max(1, data[0].nbytes)
    return {"chunks": (max(1, min(len(data), WHOLE_CHUNK_BYTES // row)), *data.shape[1:])}


def create_chunked(group: h5py.Group, name: str, total: int, dtype: Any, chunk: int) -> h5py.Dataset:
    """An empty checksummed dataset of `total` values, chunked by `chunk`, to be filled in pieces."""
    return group.create_dataset(name, shape=(total,), dtype=dtype, chunks=(min(total, chunk),), **_CHECKED)
