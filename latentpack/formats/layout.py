"""Reading, writing and checking an element's fields, derived from its declaration.

Every function here walks an element's `registry.Field` declarations, so a
field's name, dtype, shape rule and version are written once::

    write:  normalise (cast to the declared dtypes) -> expect_arrays -> write_fields
    read:   open_fields (attributes read, datasets' dtype and shape checked,
            nothing large read) -> read_values -> element.build -> expect_arrays
"""
from __future__ import annotations

import copy
import functools
import json
from typing import Any, Mapping

import numpy as np

from latentpack.formats import h5write
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.h5checks import STR, attr_str, attr_strs, get_attr
from latentpack.formats.lazy import LazyArray

__all__ = [
    "STR",
    "expect",
    "normalise",
    "write_fields",
    "expect_arrays",
    "open_fields",
    "read_values",
    "int_attr",
    "float_attr",
    "ints",
    "floats",
    "parse_json",
]


def _fail(path: str, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


def _want(shape: tuple) -> str:
    return "(" + ", ".join("n" if e is None else str(e) for e in shape) + ("," if len(shape) == 1 else "") + ")"


def expect(path: str, arr: np.ndarray, dtype: Any, shape: tuple) -> None:
    """Check an in-memory array's dtype and shape; ``None`` in `shape` matches any length."""
    if arr.dtype != np.dtype(dtype):
        raise _fail(path, f"expected dtype {np.dtype(dtype).name}, got {arr.dtype.name}")
    if arr.ndim != len(shape) or any(e is not None and e != g for e, g in zip(shape, arr.shape)):
        raise _fail(path, f"expected shape {_want(shape)}, got {tuple(arr.shape)}")


# -- writing ------------------------------------------------------------------


def ints(name: str, value: Any, dtype: Any) -> np.ndarray:
    """`value` as an array of integer `dtype`, refusing non-integers and values that do not fit."""
    arr = np.asarray(value)
    if arr.size == 0:
        return arr.astype(dtype)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"`{name}` must hold integers, got dtype {arr.dtype}")
    info = np.iinfo(dtype)
    if int(arr.min()) < info.min or int(arr.max()) > info.max:
        raise ValueError(f"`{name}` must fit {np.dtype(dtype).name}, got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(dtype)


def floats(name: str, value: Any, dtype: Any) -> np.ndarray:
    """`value` as an array of float `dtype`, refusing non-numbers."""
    arr = np.asarray(value)
    if arr.size and arr.dtype.kind not in "fiu":
        raise ValueError(f"`{name}` must hold numbers, got dtype {arr.dtype}")
    return arr.astype(dtype)


def _strings(name: str, value: Any) -> list[str]:
    out = list(value)
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise ValueError(f"`{name}` entry {i} must be a str, got {type(s).__name__}")
    return out


def _cast(name: str, field: Any, value: Any) -> Any:
    if field.dtype == STR:
        return _strings(name, value)
    dtype = np.dtype(field.dtype)
    arr = ints(name, value, dtype) if dtype.kind in "iub" else floats(name, value, dtype)
    if field.empty is not None and arr.size == 0:
        return arr.reshape(field.empty)
    return arr if field.reshape is None else arr.reshape(field.reshape)


def _set(obj: Any, dotted: str, value: Any, copied: set[str]) -> None:
    *parents, last = dotted.split(".")
    for i, name in enumerate(parents):
        key = ".".join(parents[: i + 1])
        child = getattr(obj, name)
        if key not in copied:
            child = copy.copy(child)
            setattr(obj, name, child)
            copied.add(key)
        obj = child
    setattr(obj, last, value)


def normalise(element: Any, obj: Any) -> Any:
    """A copy of `obj` with each declared dataset cast to its dtype (and shape, where declared).

    Raises:
        ValueError: a value that does not fit its dtype, naming
            ``contents.PART.MEMBER``.
    """
    out = copy.copy(obj)
    copied: set[str] = set()
    for field in element.fields:
        value = field.get(out)
        if field.attr or field.const is not None or field.derived or value is None or field.storage == h5write.TEXT:
            continue
        _set(out, field.key, _cast(f"contents.{element.part}.{field.key}", field, value), copied)
    return out


def write_fields(group: Any, element: Any, obj: Any) -> None:
    """Write every field `obj` has, in declaration order, stored as declared."""
    for field in element.fields:
        value = field.get(obj)
        if value is None:
            continue
        if field.attr:
            h5write.write_attr(group, field.name, value, field.dtype)
        else:
            h5write.write_dataset(group, field.name, value, field.storage)


def expect_arrays(element: Any, obj: Any, sizes: Mapping[str, Any], base: str) -> None:
    """Every numeric dataset `obj` holds has its declared dtype and shape."""
    for field in element.fields:
        value = field.get(obj)
        if field.attr or field.dtype == STR or value is None:
            continue
        arr = value if isinstance(value, LazyArray) else np.asarray(value)  # a lazy one: its declared dtype and shape
        expect(f"{base}/{field.name}", arr, field.dtype, field.shape_for(sizes))


# -- reading ------------------------------------------------------------------


def int_attr(obj: Any, path: str, name: str) -> int:
    """A scalar int64 attribute (not a bool, nor another integer type)."""
    value = get_attr(obj, path, name, np.int64)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise _fail(path, f"attribute {name}: expected an int64, got {value!r}")
    return int(value)


def float_attr(obj: Any, path: str, name: str) -> float:
    """A scalar float64 attribute (not float32 or float16)."""
    value = get_attr(obj, path, name, np.float64)
    if not isinstance(value, (float, np.floating)):
        raise _fail(path, f"attribute {name}: expected a float64, got {value!r}")
    return float(value)


def _bool_attr(obj: Any, path: str, name: str) -> bool:
    value = get_attr(obj, path, name, np.bool_)
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(path, f"attribute {name}: expected a bool, got {value!r}")
    return bool(value)


def _read_attr(group: Any, path: str, field: Any) -> Any:
    if field.dtype == STR:
        value = attr_str(group, path, field.name) if field.shape == () else attr_strs(group, path, field.name)
        if field.const is not None and value != field.const:
            raise _fail(path, f"attribute {field.name}: expected {field.const!r}, got {value!r}")
        return value
    if field.dtype == "bool":
        return _bool_attr(group, path, field.name)
    if np.dtype(field.dtype).kind == "f":
        return float_attr(group, path, field.name)
    return int_attr(group, path, field.name)


def _applies(field: Any, version: tuple[int, int], present: bool, path: str) -> bool:
    """Whether a field is read in a layout of `version`; refuses one too new where declared so."""
    major, minor = field.since.split(".")
    if version < (int(major), int(minor)):
        if present and field.too_new == "error":
            raise _fail(path, f"attribute {field.name}: not part of format {'{}.{}'.format(*version)}")
        return False
    return present or field.required


def open_fields(archive: Any, element: Any, version: tuple[int, int], sizes: Mapping[str, Any]) -> dict[str, Any]:
    """Read an element's attributes and check its datasets' storage, dtype and shape (no data read).

    Args:
        archive: The open `Archive` (its ``_at`` and ``_dataset`` do the checked access).
        element: The element the group was dispatched to.
        version: The group's layout version.
        sizes: Named sizes for the shape rules (``"w"``).

    Returns:
        The attributes' values by name; the element's ``opened_attrs`` has seen them.
    """
    path = element.path
    attrs: dict[str, Any] = {}
    with archive._at(path):
        group = archive._file[element.encoding_type]
        for field in element.fields:
            if field.attr and _applies(field, version, field.name in group.attrs, path):
                attrs[field.name] = _read_attr(group, path, field)
        element.opened_attrs(attrs, version)
    rules = {**sizes, **attrs, "version": version}
    for field in element.fields:
        if field.attr:
            continue
        with archive._at(path):  # a damaged link index fails the membership test itself
            present = field.name in group
        if _applies(field, version, present, path):
            archive._dataset(f"{path}/{field.name}", field.dtype, field.shape_for(rules))
    return attrs


def read_values(archive: Any, element: Any, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes and every dataset `open_fields` checked, read, by field name.

    In an archive opened ``lazy``, a ``bulk`` field is not read: its value is
    a `LazyArray` whose slices `element.check_slice` checks.
    """
    values = dict(attrs)
    for field in element.fields:
        path = f"{element.path}/{field.name}"
        if field.attr or path not in archive._ds:
            continue
        if field.bulk and getattr(archive, "lazy", False):
            check = functools.partial(element.check_slice, field.name)
            values[field.name] = LazyArray(archive._ds[path], field.dtype, path, archive.path, check)
        else:
            values[field.name] = archive._read(path, field.dtype)
    return values


def parse_json(text: str, path: str) -> Any:
    """Stored JSON text as Python values; never eval, never a custom hook."""
    try:
        return json.loads(text)
    except ValueError as err:  # JSONDecodeError
        raise _fail(path, f"invalid JSON: {err}") from None
