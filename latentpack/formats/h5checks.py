"""Checked access to HDF5 elements, before any of their data is read.

The reader reaches every group, dataset and attribute through these helpers,
so the storage rules of docs/FORMAT.md hold everywhere::

    path -> hard links only -> group / dataset -> not virtual, no external
         storage, filters gzip/shuffle/fletcher32 only -> dtype -> shape
         -> declared size <= MAX_EXPANSION * stored size + 1 MiB, and
            <= DENSE_EXPANSION * stored + DENSE_SLACK + DENSE_PER_IMAGE * w
         -> Fletcher-32 where FORMAT.md makes it a MUST (weights, values, streams)

Attributes get the same treatment: their dtype (int64, float64 and bool
exactly, as FORMAT.md gives them) and shape are checked before their value
is read. Strings MUST be fixed-length (NUL-padded) UTF-8; a
variable-length string is refused from its type alone, so the reader never
reads HDF5's global heap (which has no checksum, and on which libhdf5 1.14
can loop forever when it is damaged).

Failures are `CorruptArchiveError` naming the HDF5 path; `reading` turns
whatever h5py, numpy or the OS raise into one as well, and fills in the
file name.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Iterator

import h5py
import numpy as np

from latentpack.formats.errors import ArchiveError, CorruptArchiveError, UnsupportedVersionError
from latentpack.formats.schema import FORMAT_VERSION, SUPPORTED_VERSIONS

__all__ = [
    "ALLOWED_FILTERS",
    "MAX_EXPANSION",
    "DENSE_EXPANSION",
    "DENSE_SLACK",
    "DENSE_PER_IMAGE",
    "MAX_ATTR_BYTES",
    "STR",
    "reading",
    "string_type_problem",
    "decode_utf8",
    "get_node",
    "get_attr",
    "attr_str",
    "attr_strs",
    "version_syntax",
    "parse_version",
    "checked_dataset",
    "check_declared_size",
    "must_checksum",
    "read_data",
]

#: HDF5 filters a dataset may use, by filter id.
ALLOWED_FILTERS = {h5py.h5z.FILTER_DEFLATE: "gzip", h5py.h5z.FILTER_SHUFFLE: "shuffle", h5py.h5z.FILTER_FLETCHER32: "fletcher32"}
#: A dataset may declare at most this many times the bytes it occupies (plus 1 MiB):
#: deflate tops out near 1032:1, so honest files pass and a forged shape cannot
#: make the reader allocate more than about a thousand times the file's size.
MAX_EXPANSION = 1100
_SLACK = 1 << 20
#: And an absolute cap (issue 13: a 3 MB gzip bomb in an element no image uses made every
#: command take 3 GB): past `DENSE_SLACK` plus `DENSE_PER_IMAGE` bytes an image, a dataset
#: may declare at most `DENSE_EXPANSION` times what it stores. Honest data past that size
#: (coded streams, latents, digests, per-image tables) compresses far less.
DENSE_EXPANSION = 32
DENSE_SLACK = 1 << 24
DENSE_PER_IMAGE = 64
#: Largest attribute value read, in bytes (an object header holds about 64 KiB;
#: an attribute in dense storage could declare far more).
MAX_ATTR_BYTES = 1 << 16
#: The dtype argument meaning "a fixed-length, NUL-padded UTF-8 (or ASCII) string".
STR = "str"
_NUL_PADDINGS = (h5py.h5t.STR_NULLPAD, h5py.h5t.STR_NULLTERM)
_VERSION = re.compile(r"([0-9]{1,4})\.([0-9]{1,4})")


def _fail(path: str | None, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


@contextlib.contextmanager
def reading(hdf5_path: str | None, file: str | os.PathLike[str]) -> Iterator[None]:
    """Turn any error inside into an `ArchiveError` naming `file` and `hdf5_path`."""
    try:
        yield
    except ArchiveError as err:
        if err.file is None:
            err.file = file
        raise
    except Exception as err:  # h5py, numpy, OS, JSON, Unicode: all mean a damaged file here
        raise CorruptArchiveError(f"cannot be read ({type(err).__name__}: {err})", hdf5_path=hdf5_path, file=file) from err


def get_node(root: h5py.Group, path: str, kind: type) -> Any:
    """The group or dataset at `path`, reached through hard links only."""
    node: Any = root
    for part in path.strip("/").split("/"):
        if not isinstance(node, h5py.Group):
            raise _fail(path, "expected a group on the way, found a dataset")
        link = node.get(part, getlink=True)
        if link is None:
            raise _fail(path, "required element is missing")
        if not isinstance(link, h5py.HardLink):
            raise _fail(path, f"is a {type(link).__name__}; soft and external links are not allowed")
        node = node[part]
    if not isinstance(node, kind):
        raise _fail(path, f"expected a {kind.__name__.lower()}, got a {type(node).__name__.lower()}")
    return node


def string_type_problem(dtype: np.dtype, tid: Any) -> str | None:
    """Why an HDF5 type is not a fixed-length NUL-padded UTF-8 string, or None if it is.

    Args:
        dtype: The numpy dtype h5py maps the type to.
        tid: The HDF5 type (``dataset.id.get_type()``, ``attr_id.get_type()``).
    """
    info = h5py.check_string_dtype(dtype)
    if info is None or info.encoding not in ("utf-8", "ascii"):
        return f"expected a fixed-length UTF-8 string, got dtype {dtype}"
    if info.length is None:
        return "variable-length strings are not allowed (format 1.0 stores fixed-length UTF-8 strings)"
    if not isinstance(tid, h5py.h5t.TypeStringID) or tid.get_strpad() not in _NUL_PADDINGS:
        return "expected a NUL-padded fixed-length string, got another padding"
    return None


def decode_utf8(raw: bytes, path: str, what: str) -> str:
    """A fixed-length string's bytes as ``str``: trailing NULs stripped, UTF-8 checked."""
    try:
        return bytes(raw).rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError as err:
        raise _fail(path, f"{what}: invalid UTF-8 ({err.reason} at byte {err.start})") from None


def _attr_id(obj: Any, path: str, name: str) -> Any:
    """The attribute's HDF5 handle, its declared size checked; no value read."""
    if name not in obj.attrs:
        raise _fail(path, f"attribute {name} is missing")
    aid = obj.attrs.get_id(name)
    declared = aid.get_space().get_select_npoints() * aid.get_type().get_size()
    if declared > MAX_ATTR_BYTES:
        raise _fail(path, f"attribute {name}: declares {declared} bytes, more than {MAX_ATTR_BYTES}")
    return aid


def get_attr(obj: Any, path: str, name: str, dtype: Any = None) -> Any:
    """A scalar numeric (or bool) attribute, its type checked before it is read.

    Args:
        dtype: The exact type FORMAT.md gives it (``np.int64``, ``np.float64``,
            ``np.bool_``: h5py's enum over int8), either byte order; None
            accepts any integer, float or bool type.
    """
    aid = _attr_id(obj, path, name)
    if aid.dtype.kind not in "biuf" or aid.shape != ():
        raise _fail(path, f"attribute {name}: expected a scalar number, got dtype {aid.dtype} shape {aid.shape}")
    if dtype is not None and not _same_type(aid.dtype, np.dtype(dtype)):
        raise _fail(path, f"attribute {name}: expected {np.dtype(dtype).name}, got {aid.dtype}")
    return obj.attrs[name]


def _same_type(got: np.dtype, want: np.dtype) -> bool:
    """Same kind and size, either byte order."""
    return got.kind == want.kind and got.itemsize == want.itemsize


def _str_attr_id(obj: Any, path: str, name: str, ndim: int) -> Any:
    aid = _attr_id(obj, path, name)
    problem = string_type_problem(aid.dtype, aid.get_type())
    if problem:
        raise _fail(path, f"attribute {name}: {problem}")
    if aid.shape is None or len(aid.shape) != ndim:
        want = "a string" if ndim == 0 else "a list of strings"
        raise _fail(path, f"attribute {name}: expected {want}, got shape {aid.shape}")
    return aid


def attr_str(obj: Any, path: str, name: str) -> str:
    """A scalar fixed-length UTF-8 string attribute."""
    _str_attr_id(obj, path, name, 0)
    return decode_utf8(obj.attrs[name], path, f"attribute {name}")


def attr_strs(obj: Any, path: str, name: str) -> list[str]:
    """A one-dimensional fixed-length UTF-8 string array attribute."""
    _str_attr_id(obj, path, name, 1)
    return [decode_utf8(v, path, f"attribute {name} entry {i}") for i, v in enumerate(obj.attrs[name].tolist())]


def version_syntax(value: str, path: str) -> tuple[int, int]:
    """``"MAJOR.MINOR"`` -> ``(major, minor)``, whatever the version."""
    match = _VERSION.fullmatch(value)
    if not match:
        raise _fail(path, f"attribute encoding-version: expected 'MAJOR.MINOR', got {value!r}")
    return int(match.group(1)), int(match.group(2))


def parse_version(value: str, path: str) -> tuple[int, int]:
    """A file's ``"MAJOR.MINOR"`` -> ``(major, minor)``, refusing versions not in `SUPPORTED_VERSIONS`."""
    version = version_syntax(value, path)
    if version not in SUPPORTED_VERSIONS:
        newer = version > max(SUPPORTED_VERSIONS)
        raise UnsupportedVersionError(value, FORMAT_VERSION, hdf5_path=path, newer=newer)
    return version


def _want_shape(shape: tuple) -> str:
    return "(" + ", ".join("n" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def checked_dataset(root: h5py.Group, path: str, dtype: Any, shape: tuple, w: int = 0) -> h5py.Dataset:
    """A dataset whose storage, dtype and shape are checked, none of its data read.

    Args:
        root: The file.
        path: Absolute HDF5 path.
        dtype: A numpy dtype (either byte order accepted) or `STR`.
        shape: Expected shape; ``None`` matches any length.
        w: The number of images (the header's), for the absolute size cap.
    """
    ds = get_node(root, path, h5py.Dataset)
    plist = ds.id.get_create_plist()
    if ds.is_virtual:
        raise _fail(path, "virtual datasets are not allowed")
    if plist.get_external_count():
        raise _fail(path, "external storage is not allowed")
    for i in range(plist.get_nfilters()):
        code, _, _, name = plist.get_filter(i)
        if code not in ALLOWED_FILTERS:
            label = name.decode("ascii", "replace") if isinstance(name, bytes) else name
            raise _fail(path, f"filter {label!r} (id {code}) is not allowed; only gzip, shuffle and fletcher32")
    if dtype == STR:
        problem = string_type_problem(ds.dtype, ds.id.get_type())
        if problem:
            raise _fail(path, problem)
    else:
        want = np.dtype(dtype)
        if ds.dtype.kind != want.kind or ds.dtype.itemsize != want.itemsize:
            raise _fail(path, f"expected dtype {want.name}, got {ds.dtype}")
    got = tuple(ds.shape) if ds.shape is not None else None
    if got is None or len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got)):
        if len(shape) == 1 and got is not None and len(got) == 1:
            raise _fail(path, f"expected {shape[0]} entries, got {got[0]}")
        raise _fail(path, f"expected shape {_want_shape(shape)}, got {got}")
    check_declared_size(path, ds.size * ds.dtype.itemsize, ds.id.get_storage_size(), w)
    if ds.size and must_checksum(path) and not ds.fletcher32:
        raise _fail(path, "stored without the Fletcher-32 checksum that FORMAT.md requires of decoder weights, "
                          "/latents/values and coded streams")
    return ds


def must_checksum(path: str) -> bool:
    """Whether FORMAT.md ("Storage rules") says writers MUST store this dataset with Fletcher-32."""
    return path.startswith("/decoder/layers/") or path == "/latents/values" or path.endswith("/stream")


def check_declared_size(path: str, declared: int, stored: int, w: int = 0) -> None:
    """Refuse a dataset that declares more bytes than its storage can honestly hold (a forged shape, a bomb).

    Two bounds (docs/FORMAT.md, "Storage rules"): at most `MAX_EXPANSION`
    times the stored bytes plus 1 MiB, and at most `DENSE_EXPANSION` times
    them plus `DENSE_SLACK` plus `DENSE_PER_IMAGE` bytes an image.
    """
    if declared > MAX_EXPANSION * stored + _SLACK:
        raise _fail(path, f"declares {declared} bytes but stores only {stored}")
    allowance = DENSE_SLACK + DENSE_PER_IMAGE * max(int(w), 0)
    if declared > DENSE_EXPANSION * stored + allowance:
        raise _fail(path, f"declares {declared:,} bytes from {stored:,} stored: more than {DENSE_EXPANSION} times "
                          f"them plus {allowance:,} (a decompression bomb?)")


def read_data(ds: h5py.Dataset, dtype: Any, path: str) -> Any:
    """Numeric data as a native-order array of `dtype`; `STR` data as ``str`` or ``list[str]``.

    Args:
        ds: A dataset that passed `checked_dataset` with the same `dtype`.
        dtype: A numpy dtype or `STR`.
        path: The dataset's HDF5 path, for errors.
    """
    if dtype == STR:
        data = ds[()]
        if isinstance(data, bytes):
            return decode_utf8(data, path, "value")
        return [decode_utf8(v, path, f"entry {i}") for i, v in enumerate(data)]  # no list of all the raw bytes
    return np.asarray(ds[()], dtype=dtype)
