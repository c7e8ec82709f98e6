"""Image names as one front-coded, deflated byte string (``/images/names`` in the 1.4 layout).

Each name, in archive order, becomes one record: the number of leading
bytes it shares with the name before it (one byte, at most 255; 0 for the
first), then the rest of its UTF-8 bytes, then a NUL. The records, joined,
are one zlib stream (RFC 1950, deflate level 9)::

    ["train/00000.png", "train/00001.png"] -> b"\\x00train/00000.png\\x00" b"\\x0a1.png\\x00" -> zlib

Names never hold a NUL, so every record ends at the first NUL after its
prefix byte. On 70,000 MNIST-style names (``train/00000.png``...) the
stream takes about 0.05 bytes per name (``examples/metadata_size.py``).

Reading never allocates from a size it has not checked: the stream may
inflate to at most `MAX_EXPANSION` times its stored bytes plus 1 MiB (as
any dataset's declared size, docs/FORMAT.md "Storage rules"), and the
names it spells to at most as much again; a stream whose front coding
would spell more is written with no shared prefixes instead (every prefix
byte 0), which deflate alone still compresses.
"""
from __future__ import annotations

import zlib
from array import array
from typing import Sequence

import numpy as np

from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.h5checks import MAX_EXPANSION

__all__ = ["encode_names", "decode_names", "names_cap"]

_PATH = "/images/names"
_SLACK = 1 << 20
#: Longest prefix one record can share with the name before it.
MAX_SHARED = 255


def names_cap(stored_bytes: int) -> int:
    """Most bytes a stream of `stored_bytes` may inflate to, and its names may spell."""
    return MAX_EXPANSION * int(stored_bytes) + _SLACK


def _records(encoded: Sequence[bytes], front: bool) -> bytes:
    out = bytearray()
    prev = b""
    for name in encoded:
        k = 0
        if front:
            limit = min(len(prev), len(name), MAX_SHARED)
            while k < limit and name[k] == prev[k]:
                k += 1
        out.append(k)
        out += name[k:]
        out.append(0)
        prev = name
    return bytes(out)


def encode_names(names: Sequence[str]) -> np.ndarray:
    """The ``/images/names`` bytes of `names` (archive order kept).

    Args:
        names: The image names (no NUL in any; UTF-8 encodable).

    Returns:
        A ``(n,)`` uint8 array: the zlib stream of the records.
    """
    encoded = [name.encode("utf-8") for name in names]
    total = sum(len(b) for b in encoded)
    for front in (True, False):
        raw = _records(encoded, front)
        stream = zlib.compress(raw, 9)
        if max(len(raw), total) <= names_cap(len(stream)):
            break
    return np.frombuffer(stream, dtype=np.uint8).copy()


def _fail(reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=_PATH)


def _inflate(blob: np.ndarray) -> bytes:
    cap = names_cap(blob.size)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(blob.tobytes(), cap)
    except zlib.error as err:
        raise _fail(f"not a valid zlib stream ({err})") from None
    if inflater.unconsumed_tail:
        raise _fail(f"inflates to more than {cap} bytes (the limit for {blob.size} stored bytes)")
    if not inflater.eof:
        raise _fail("the zlib stream is truncated")
    if inflater.unused_data:
        raise _fail("bytes follow the end of the zlib stream")
    return raw


def decode_names(blob: np.ndarray, w: int) -> list[str]:
    """The `w` names a ``/images/names`` stream holds.

    Args:
        blob: The dataset's ``(n,)`` uint8 bytes.
        w: The number of images (from the header).

    Returns:
        The names in archive order (not yet checked against the name rules).

    Raises:
        CorruptArchiveError: naming ``/images/names``: a damaged stream, a
            record count other than `w`, a prefix longer than the name
            before it, names spelling more than the limit, invalid UTF-8.
    """
    raw = _inflate(blob)
    records = _split(raw, w)
    cap, spelled, prev_len = names_cap(blob.size), 0, 0
    for i, (start, end) in enumerate(zip(*records)):  # lengths first: nothing is spelled out unchecked
        if raw[start] > prev_len:
            raise _fail(f"entry {i}: shares {raw[start]} bytes with the name before it, which has {prev_len}")
        prev_len = raw[start] + end - start - 1
        spelled += prev_len
        if spelled > cap:
            raise _fail(f"the names spell more than {cap} bytes (the limit for {blob.size} stored bytes)")
    names, prev = [], b""
    for i, (start, end) in enumerate(zip(*records)):
        name = prev[: raw[start]] + raw[start + 1 : end]
        try:
            names.append(name.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise _fail(f"entry {i}: invalid UTF-8 ({err.reason} at byte {err.start})") from None
        prev = name
    return names


def _split(raw: bytes, w: int) -> tuple[array, array]:
    """``(starts, ends)`` of the records: each one's prefix byte at ``start``, its closing NUL at ``end``.

    Two int64 arrays: a tuple per record would cost about 120 bytes a name
    while the names are read.
    """
    starts, ends = array("q"), array("q")
    pos = 0
    nuls = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 0)
    for a in range(0, len(nuls), 1 << 16):
        for end in nuls[a : a + (1 << 16)].tolist():
            if end == pos:  # the record's prefix byte is 0: its closing NUL comes later
                continue
            if len(starts) == w:
                raise _fail(f"expected {w} names, got more")
            starts.append(pos)
            ends.append(end)
            pos = end + 1
    if pos != len(raw):
        raise _fail("the last record has no closing NUL")
    if len(starts) != w:
        raise _fail(f"expected {w} names, got {len(starts)}")
    return starts, ends
