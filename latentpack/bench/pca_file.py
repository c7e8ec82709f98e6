"""The PCA baseline's one file, ``pca.bin``: what `latentpack.bench.pca` writes and reads back.

::

    header (40 bytes) | names | mean (float16) | basis (float16, k x d) | count tables | stream

- **names**: NUL-separated entries, deflated. An entry is ``=NAME``, or
  ``+DELTA`` when the name only differs from the one before by its last
  number (same text around it, same digit count): sorted numbered files
  cost about nothing.
- **count tables**: per component, its smallest symbol (zig-zag) and table
  length, then every table's uint16 counts; all as LEB128 varints, deflated.
- **stream**: one range-coded stream of uint32 words (latentpack's
  `CountModels`), component by component, each over all images.

The quantised coefficients are integers and the tables integer counts, so
the stream decodes the same everywhere.
"""
from __future__ import annotations

import re
import struct
import zlib

import constriction
import numpy as np

from latentpack.codec.entropy.range_coding import CountModels, quantize_counts
from latentpack.fs.images import MODE_OF_CHANNELS

__all__ = ["HEADER", "component_counts", "table_bytes", "pack_names", "unpack_names", "write_pca", "read_pca",
           "reconstruct"]

_MAGIC = b"LPCA"
#: magic, version, channels, height, width, images, components, step, names bytes, tables bytes, stream words
HEADER = struct.Struct("<4sBBIIIHdIII")
_ROWS = 4096  # images reconstructed at once
_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$", re.DOTALL)


def component_counts(q: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per column of (n, k) integer symbols: its smallest value and its uint16 counts over min..max."""
    qmin = q.min(axis=0) if q.size else np.zeros(q.shape[1], np.int64)
    return qmin, [quantize_counts(np.bincount(q[:, j] - qmin[j])[None, :])[0] for j in range(q.shape[1])]


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(v: int) -> int:
    return v // 2 if v % 2 == 0 else -(v + 1) // 2


def table_bytes(qmin: int, counts: np.ndarray) -> int:
    """Varint bytes of one component's table, before deflate (an estimate from above)."""
    v = np.concatenate([[_zigzag(int(qmin)), len(counts)], np.asarray(counts, np.int64)])
    return int((1 + (v >= 1 << 7) + (v >= 1 << 14) + (v >= 1 << 21)).sum())


def _to_varints(values: list[int]) -> bytes:
    out = bytearray()
    for v in values:
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def _from_varints(data: bytes) -> np.ndarray:
    b = np.frombuffer(data, np.uint8).astype(np.int64)
    if not len(b):
        return np.zeros(0, np.int64)
    ends = np.flatnonzero(b < 0x80)
    if not len(ends) or ends[-1] != len(b) - 1:
        raise ValueError("count tables cut short")
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    position = np.arange(len(b)) - np.repeat(starts, ends - starts + 1)
    return np.add.reduceat((b & 0x7F) << (7 * position), starts)


def pack_names(names: list[str]) -> bytes:
    """Image names, deflated; a name that only steps the last number of the one before is stored as the step."""
    entries, before = [], None
    for name in names:
        m = _NUMBERED.match(name)
        if m and before and (m[1], len(m[2]), m[3]) == before[0]:
            entries.append(f"+{int(m[2]) - before[1]}")
        else:
            entries.append("=" + name)
        before = ((m[1], len(m[2]), m[3]), int(m[2])) if m else None
    return zlib.compress("\0".join(entries).encode("utf-8"), 9)


def unpack_names(data: bytes) -> list[str]:
    """Mirror of `pack_names`."""
    names: list[str] = []
    for entry in zlib.decompress(data).decode("utf-8").split("\0"):
        if entry.startswith("="):
            names.append(entry[1:])
            continue
        m = _NUMBERED.match(names[-1]) if names else None
        if not m or not entry.startswith("+"):
            raise ValueError(f"name entry {entry!r} follows no numbered name")
        names.append(f"{m[1]}{int(m[2]) + int(entry[1:]):0{len(m[2])}d}{m[3]}")
    return names


def write_pca(names: list[str], shape: tuple[int, int, int], mean: np.ndarray, basis: np.ndarray, step: float,
              q: np.ndarray) -> tuple[bytes, dict[str, int]]:
    """The file of (n, k) quantised coefficients ``q`` on a float16 ``basis``, and its bytes by part."""
    k = len(basis)
    qmin, tables = component_counts(q)
    encoder = constriction.stream.queue.RangeEncoder()
    meta: list[int] = []
    for j, counts in enumerate(tables):
        encoder.encode(np.ascontiguousarray(q[:, j] - qmin[j], np.int32), CountModels(counts[None, :]).model(0))
        meta += [_zigzag(int(qmin[j])), len(counts)]
    stream = np.asarray(encoder.get_compressed(), dtype="<u4").tobytes()
    table_blob = zlib.compress(_to_varints(meta + [int(c) for t in tables for c in t]), 9)
    name_blob = pack_names(names)
    h, w, ch = shape
    header = HEADER.pack(_MAGIC, 1, ch, h, w, len(names), k, float(step), len(name_blob), len(table_blob),
                         len(stream) // 4)
    parts = {"header": header, "names": name_blob, "mean": np.asarray(mean).astype("<f2").tobytes(),
             "basis": np.asarray(basis).astype("<f2").tobytes(), "tables": table_blob, "stream": stream}
    return b"".join(parts.values()), {part: len(b) for part, b in parts.items()}


def read_pca(data: bytes) -> tuple[list[str], tuple[int, int, int], np.ndarray, np.ndarray, float, np.ndarray]:
    """Names, (height, width, channels), mean, basis, step and (n, k) quantised coefficients from a file.

    Raises:
        ValueError: not such a file, or its parts do not match its header.
    """
    if len(data) < HEADER.size or data[:4] != _MAGIC:
        raise ValueError("not a PCA baseline file")
    _, version, ch, h, w, n, k, step, n_names, n_tables, words = HEADER.unpack_from(data)
    d = h * w * ch
    sizes = [n_names, 2 * d, 2 * k * d, n_tables, 4 * words]
    if version != 1 or ch not in MODE_OF_CHANNELS or len(data) != HEADER.size + sum(sizes):
        raise ValueError(f"PCA baseline file of version {version}, {len(data):,} bytes, does not match its header")
    bounds = np.cumsum([HEADER.size, *sizes])
    part = [data[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    names = unpack_names(part[0])
    mean = np.frombuffer(part[1], "<f2").astype(np.float64)
    basis = np.frombuffer(part[2], "<f2").astype(np.float64).reshape(k, d)
    meta = _from_varints(zlib.decompress(part[3]))
    if len(names) != n or len(meta) < 2 * k:
        raise ValueError(f"PCA baseline file holds {len(names)} names for {n} images, or too few tables")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(part[4], "<u4").astype(np.uint32))
    q = np.empty((n, k), np.int64)
    at = 2 * k
    for j in range(k):
        qmin, size = _unzigzag(int(meta[2 * j])), int(meta[2 * j + 1])
        counts = meta[at : at + size].astype(np.uint16)
        at += size
        q[:, j] = np.asarray(decoder.decode(CountModels(counts[None, :]).model(0), n), np.int64) + qmin
    return names, (h, w, ch), mean, basis, float(step), q


def reconstruct(q: np.ndarray, step: float, basis: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(n, d) uint8 images ``clip(rint(q * step @ basis + mean), 0, 255)``, a block of images at a time."""
    out = np.empty((len(q), len(mean)), np.uint8)
    for a in range(0, len(q), _ROWS):
        out[a : a + _ROWS] = np.clip(np.rint((q[a : a + _ROWS] * step) @ basis + mean), 0, 255)
    return out
