"""Write an `ArchiveContents` as a format 1.0, 1.1 or 1.2 HDF5 archive, atomically.

The file has the oldest version that holds the contents: 1.2 when the
decoder weights are stored as float16; else 1.1 when a 1.1 feature is used
(coded or generated latents, lossless residuals, short digests, stored-bits
header); else 1.0.

::

    contents -> normalise dtypes -> check_contents -> .NAME.tmp-XXXX (h5py)
             -> read back with the reader -> fsync -> os.replace -> NAME

The archive appears at its final path only once it has been written in full
and read back successfully; on any failure (KeyboardInterrupt included) the
temporary file is removed and whatever was at the path before is untouched.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import h5py
import numpy as np

from latentpack.formats.errors import ArchiveError, CorruptArchiveError
from latentpack.formats.reader import open_archive
from latentpack.formats.schema import (
    ENCODING_TYPE,
    INDEX_CODE_GENERATOR,
    ArchiveContents,
    DecoderWeights,
    Header,
    ImageTable,
    Latents,
    LosslessResiduals,
    Quality,
    QuantizedLatents,
)
from latentpack.formats.validate import check_contents

__all__ = ["write_archive", "to_json", "disk_full_errno", "stale_temp_files", "TEMP_PREFIX", "TEMP_INFIX"]

#: HDF5 file-format features of HDF5 1.10 (compact chunk indexes and object
#: headers: about 15 KiB of structure instead of about 45 KiB); HDF5 >= 1.10 reads it.
LIBVER = ("v110", "v110")
#: A write goes to ``TEMP_PREFIX + NAME + TEMP_INFIX + random`` beside its target (hidden).
TEMP_PREFIX, TEMP_INFIX = ".", ".tmp-"
#: Latent values are written (and `progress` called) this many images at a time.
PROGRESS_IMAGES = 4096
#: A JSON scalar up to this many bytes is stored compact, inside its object
#: header, which HDF5 1.10 checksums (HDF5 caps compact data just under 64 KiB).
COMPACT_MAX = 60 * 1024
#: Numeric datasets: chunked with a Fletcher-32 checksum so damage is detected on read.
_CHECKED: dict[str, Any] = {"fletcher32": True}
#: Per-image metadata: also shuffled and deflated.
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


def _ints(name: str, value: Any, dtype: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 0:
        return arr.astype(dtype)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"`{name}` must hold integers, got dtype {arr.dtype}")
    info = np.iinfo(dtype)
    if int(arr.min()) < info.min or int(arr.max()) > info.max:
        raise ValueError(f"`{name}` must fit {np.dtype(dtype).name}, got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(dtype)


def _floats(name: str, value: Any, dtype: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size and arr.dtype.kind not in "fiu":
        raise ValueError(f"`{name}` must hold numbers, got dtype {arr.dtype}")
    return arr.astype(dtype)


def _digests(value: Any) -> np.ndarray:
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (bytes, bytearray)):
        value = [np.frombuffer(bytes(d), dtype=np.uint8) for d in value]
    arr = _ints("contents.images.sha256", value, np.uint8)
    return arr.reshape(0, 32) if arr.size == 0 else arr


def _strings(name: str, value: Any) -> list[str]:
    out = list(value)
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise ValueError(f"`{name}` entry {i} must be a str, got {type(s).__name__}")
    return out


def _normalise(contents: ArchiveContents) -> ArchiveContents:
    """A copy of `contents` with every array in its on-disk dtype."""
    if not isinstance(contents, ArchiveContents):
        raise ValueError(f"`contents` must be an ArchiveContents, got {type(contents).__name__}")
    if not isinstance(contents.header, Header):
        raise ValueError(f"`contents.header` must be a Header, got {type(contents.header).__name__}")
    weights: dict[str, list[tuple[str, np.ndarray]]] = {}
    for layer, ws in contents.decoder.weights.items():
        pairs = []
        for item in ws:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise ValueError(f"`contents.decoder.weights[{layer!r}]` must hold (name, array) pairs, got {item!r:.80}")
            pairs.append((item[0], _floats(f"contents.decoder.weights[{layer!r}]", item[1], np.float32)))
        weights[str(layer)] = pairs
    img = contents.images
    palettes = _ints("contents.images.palettes", img.palettes, np.uint8)
    if palettes.size == 0:
        palettes = palettes.reshape(0, 256, 4)
    training = contents.training if contents.training is not None else {}
    if not isinstance(training, dict):
        raise ValueError(f"`contents.training` must be a dict, got {type(training).__name__}")
    return ArchiveContents(
        header=contents.header,
        decoder=DecoderWeights(contents.decoder.architecture, weights, contents.decoder.weight_dtype),
        latents=Latents(
            values=_floats("contents.latents.values", contents.latents.values, np.float32).reshape(-1),
            offsets=_ints("contents.latents.offsets", contents.latents.offsets, np.int64),
            shapes=_ints("contents.latents.shapes", contents.latents.shapes, np.int32).reshape(-1, 3),
            quantized=_quantized(contents.latents.quantized),
            index_codes=contents.latents.index_codes,
        ),
        images=ImageTable(
            names=_strings("contents.images.names", img.names),
            shapes=_ints("contents.images.shapes", img.shapes, np.int32).reshape(-1, 3),
            modes=_strings("contents.images.modes", img.modes),
            formats=_strings("contents.images.formats", img.formats),
            sha256=_digests(img.sha256),
            palette_index=_ints("contents.images.palette_index", img.palette_index, np.int32),
            palettes=palettes,
            file_bytes=_ints("contents.images.file_bytes", img.file_bytes, np.int64),
            sha256_all=None if img.sha256_all is None else _ints("contents.images.sha256_all", img.sha256_all, np.uint8),
        ),
        quality=Quality(psnr=_floats("contents.quality.psnr", contents.quality.psnr, np.float64)),
        training=training,
        writer=contents.writer or _default_writer(),
        created=contents.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        lossless=_lossless(contents.lossless),
    )


def _quantized(q: QuantizedLatents | None) -> QuantizedLatents | None:
    if q is None:
        return None
    return QuantizedLatents(
        step=float(q.step),
        qmin=int(q.qmin),
        table_of_channel=_ints("contents.latents.quantized.table_of_channel", q.table_of_channel, np.int32).reshape(-1),
        counts=_ints("contents.latents.quantized.counts", q.counts, np.uint16),
        stream=_ints("contents.latents.quantized.stream", q.stream, np.uint32).reshape(-1),
    )


def _lossless(ll: LosslessResiduals | None) -> LosslessResiduals | None:
    if ll is None:
        return None
    n = "contents.lossless."
    return LosslessResiduals(
        act_bits=int(ll.act_bits),
        acc_bits=int(ll.acc_bits),
        thresholds=_ints(n + "thresholds", ll.thresholds, np.int64).reshape(-1),
        pred_levels=int(ll.pred_levels),
        neighbour_levels=int(ll.neighbour_levels),
        counts=_ints(n + "counts", ll.counts, np.uint16),
        block_bounds=_ints(n + "block_bounds", ll.block_bounds, np.int64).reshape(-1),
        stream_offsets=_ints(n + "stream_offsets", ll.stream_offsets, np.int64).reshape(-1),
        stream=_ints(n + "stream", ll.stream, np.uint32).reshape(-1),
        exception_index=_ints(n + "exception_index", ll.exception_index, np.int32).reshape(-1),
        exception_offsets=_ints(n + "exception_offsets", ll.exception_offsets, np.int64).reshape(-1),
        exception_bytes=_ints(n + "exception_bytes", ll.exception_bytes, np.uint8).reshape(-1),
    )


def _default_writer() -> str:
    from latentpack import __version__  # the package root imports nothing heavy

    return f"latentpack {__version__}"


def _fixed(strings: list[str]) -> tuple[np.ndarray, Any]:
    """Strings as fixed-length UTF-8 (NUL-padded): no HDF5 global heap, so
    they are checksummed with their dataset and compress with it."""
    encoded = [s.encode("utf-8") for s in strings]
    dtype = h5py.string_dtype("utf-8", max([len(b) for b in encoded] + [1]))
    return np.array(encoded, dtype=dtype), dtype


def _attr(obj: h5py.HLObject, name: str, value: str | list[str]) -> None:
    data, _ = _fixed([value] if isinstance(value, str) else list(value))
    obj.attrs.create(name, data=data.reshape(()) if isinstance(value, str) else data)


def _text(group: h5py.Group, name: str, value: str) -> None:
    """A scalar string dataset, compact when it fits so that a checksum covers it.

    A scalar cannot be chunked, so it cannot carry Fletcher-32; h5py's
    ``create_dataset`` would make it contiguous and unchecked, hence the
    low-level calls.
    """
    data, dtype = _fixed([value])
    tid = h5py.h5t.py_create(dtype, logical=True)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)  # as h5py does: no timestamps, same bytes for the same contents
    if data.nbytes <= COMPACT_MAX:
        dcpl.set_layout(h5py.h5d.COMPACT)
    dsid = h5py.h5d.create(group.id, name.encode("utf-8"), tid, h5py.h5s.create(h5py.h5s.SCALAR), dcpl=dcpl)
    dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, data.reshape(()), mtype=tid)


def _tag(group: h5py.Group, encoding_type: str, version: str) -> None:
    _attr(group, "encoding-type", encoding_type)
    _attr(group, "encoding-version", version)


def _data(group: h5py.Group, name: str, data: np.ndarray) -> None:
    """A numeric dataset: checksummed; shuffled and deflated unless empty or scalar."""
    opts = _PACKED if data.ndim and data.size else {}
    group.create_dataset(name, data=data, **opts)


def _stream(group: h5py.Group, data: np.ndarray) -> None:
    """Range-coder words: checksummed, not deflated (they do not compress)."""
    group.create_dataset("stream", data=data, **(_CHECKED if data.size else {}))


def _write(f: h5py.File, c: ArchiveContents, progress: Optional[Callable[[int], Any]]) -> None:
    version = "{}.{}".format(*c.format_version)
    _attr(f, "encoding-type", ENCODING_TYPE)
    _attr(f, "encoding-version", version)
    _attr(f, "writer", c.writer)
    _attr(f, "created", c.created)

    g = f.create_group("header")
    _tag(g, "header", version)
    for name, value in c.header.as_dict().items():
        g.attrs[name] = np.bool_(value) if name in ("beats_raw", "beats_raw_stored") else np.int64(value)

    g = f.create_group("decoder")
    _tag(g, "decoder", version)
    _attr(g, "layer_names", list(c.decoder.weights))
    _text(g, "architecture", to_json(c.decoder.architecture))
    layers = g.create_group("layers")
    for layer, ws in c.decoder.weights.items():
        lg = layers.create_group(layer)
        _attr(lg, "weight_names", [n for n, _ in ws])
        for wname, arr in ws:
            # float16: exact, check_weights has seen that the values are float16 values
            lg.create_dataset(wname, data=arr.astype(c.decoder.weight_dtype), **_CHECKED)

    g = f.create_group("latents")
    _tag(g, "latents", version)
    lat = c.latents
    total = len(lat.values)
    if lat.quantized is not None:
        q = lat.quantized
        _attr(g, "coding", "range-categorical")
        g.attrs["step"] = np.float64(q.step)
        g.attrs["qmin"] = np.int64(q.qmin)
        _data(g, "table_of_channel", q.table_of_channel)
        _data(g, "counts", q.counts)
        _stream(g, q.stream)
    elif lat.index_codes is not None:
        _attr(g, "coding", "index")
        _attr(g, "generator", INDEX_CODE_GENERATOR)
        g.attrs["seed"] = np.int64(lat.index_codes.seed)
        g.attrs["step"] = np.float64(lat.index_codes.step)
    elif total:
        values = g.create_dataset("values", shape=(total,), dtype=np.float32, chunks=(min(total, 1 << 16),), **_CHECKED)
    else:  # h5py picks a chunk shape (and an extendable layout) for an empty dataset
        values = g.create_dataset("values", data=lat.values, **_CHECKED)
    w = len(lat)
    for start in range(0, w if lat.coding == "float32" else 0, PROGRESS_IMAGES):
        stop = min(start + PROGRESS_IMAGES, w)
        lo, hi = int(lat.offsets[start]), int(lat.offsets[stop])
        if hi > lo:
            values[lo:hi] = lat.values[lo:hi]
        if progress is not None:
            progress(stop)
    g.create_dataset("offsets", data=lat.offsets, **_PACKED)
    g.create_dataset("shapes", data=lat.shapes, **_PACKED)

    g = f.create_group("images")
    _tag(g, "images", version)
    img = c.images
    for name in ("names", "modes", "formats"):
        g.create_dataset(name, data=_fixed(getattr(img, name))[0], **_PACKED)
    for name in ("shapes", "sha256", "palette_index", "palettes", "file_bytes"):
        g.create_dataset(name, data=getattr(img, name), **_PACKED)
    if img.sha256_all is not None:
        g.create_dataset("sha256_all", data=img.sha256_all, **_CHECKED)

    g = f.create_group("quality")
    _tag(g, "quality", version)
    g.attrs["mean_psnr"] = np.float64(c.quality.mean_psnr)
    g.attrs["min_psnr"] = np.float64(c.quality.min_psnr)
    g.create_dataset("psnr", data=c.quality.psnr, **_PACKED)

    g = f.create_group("training")
    _tag(g, "training", version)
    _text(g, "config", to_json(c.training))

    if c.lossless is not None:
        ll = c.lossless
        g = f.create_group("lossless")
        _tag(g, "lossless", version)
        _attr(g, "predictor", "fixed-point")
        for name in ("act_bits", "acc_bits", "pred_levels", "neighbour_levels"):
            g.attrs[name] = np.int64(getattr(ll, name))
        for name in ("thresholds", "counts", "block_bounds", "stream_offsets", "exception_index",
                     "exception_offsets", "exception_bytes"):
            _data(g, name, getattr(ll, name))
        _stream(g, ll.stream)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_archive(
    path: str | os.PathLike[str],
    contents: ArchiveContents,
    *,
    force: bool = False,
    progress: Optional[Callable[[int], Any]] = None,
) -> Path:
    """Write `contents` to `path` in the oldest format version that holds them (1.0, 1.1 or 1.2).

    The archive is written to ``.NAME.tmp-XXXX`` next to `path`, read back
    and checked with `latentpack.formats.read_archive`, then moved into
    place with `os.replace`.

    Args:
        path: Where the archive goes.
        contents: What it holds. Arrays are cast to their on-disk dtypes
            (``float32`` weights and latents, ``int32`` shapes, ...); integer
            arrays must fit. Empty ``writer``/``created`` are filled in.
            Weights marked ``float16`` must already hold float16 values
            (`DecoderWeights.as_stored`); they are written as HDF5 float16.
        force: Replace an existing file at `path`.
        progress: Called with the number of images whose latents are written,
            after each chunk of images; None for no reports.

    Returns:
        The archive's path.

    Raises:
        ValueError: `contents` breaks a rule of the format (the message names
            the field and the HDF5 path it would have gone to).
        FileExistsError: `path` exists and `force` is False.
        IsADirectoryError: `path` is a directory.
        CorruptArchiveError: the written file failed its read-back check.
        OSError: the file could not be written; a full disk or quota is
            ``OSError(ENOSPC/EDQUOT/EFBIG, ..., path)`` (see `disk_full_errno`).
    """
    path = Path(path)
    if progress is not None and not callable(progress):
        raise ValueError(f"`progress` must be callable or None, got {type(progress).__name__}")
    stored = _normalise(contents)
    try:
        check_contents(stored)
    except CorruptArchiveError as err:
        raise ValueError(f"`contents` cannot be written: {err}") from None
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if path.exists() and not force:
        raise FileExistsError(errno.EEXIST, "archive exists (use force to replace it)", str(path))
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}{TEMP_INFIX}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            # No chunk cache: a failed write (disk full) is raised by the call
            # that made it. With the cache, h5py 3 meets it while freeing the
            # dataset, swallows it, and the next call can crash the process.
            with h5py.File(tmp, "w", libver=LIBVER, rdcc_nbytes=0) as f:
                _write(f, stored, progress)
        except Exception as err:
            code = disk_full_errno(err)
            if code is None:
                raise
            raise OSError(code, f"{os.strerror(code)} while writing the archive", str(path)) from err
        _read_back(tmp, path)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def disk_full_errno(err: BaseException) -> int | None:
    """``ENOSPC``, ``EDQUOT`` or ``EFBIG`` when `err` says the disk (or quota) is full, else None.

    libhdf5 reports a failed write as an ``OSError`` or ``RuntimeError``
    whose message holds ``errno = N``; plain OS errors carry ``errno``.
    """
    codes = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if isinstance(err, OSError) and err.errno in codes:
        return err.errno
    match = re.search(r"errno = (\d+)", str(err))
    if match and int(match.group(1)) in codes:
        return int(match.group(1))
    return None


def stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Hidden temporary files that an interrupted `write_archive` to `path` left behind.

    A write killed outright (SIGKILL, power loss) cannot remove its
    ``.NAME.tmp-XXXXXXXX``; the archive at `path` is then either the previous
    one or absent, never partial. These files are not removed automatically:
    another writer may be using one right now.
    """
    path = Path(path)
    prefix = f"{TEMP_PREFIX}{path.name}{TEMP_INFIX}"
    with contextlib.suppress(OSError):
        return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefix))
    return []


def _read_back(tmp: Path, path: Path) -> None:
    try:
        with open_archive(tmp) as archive:
            archive.validate()
    except ArchiveError as err:
        raise CorruptArchiveError(f"the archive just written failed its read-back check: {err}", file=path) from err
