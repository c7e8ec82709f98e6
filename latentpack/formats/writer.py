"""Write an `ArchiveContents` as an HDF5 archive, atomically.

Each group gets its element's own layout version: the oldest that holds
what it stores (``/decoder`` is 1.2 with float16 weights, ``/latents`` 1.1
when coded or generated, ``/images`` 1.1 with short digests, ``/header``
1.1 with stored-bits attributes (1.2 with ``stored_decoder_bits``),
``/lossless`` 1.1, ``/pixels`` 1.3, else 1.0). The root's
``encoding-version`` is the highest of them: the file's format version.

::

    contents -> each element: normalise (dtypes) -> check_contents
             -> .NAME.tmp-XXXX (h5py; one group per element, as declared)
             -> read back with the reader -> fsync -> os.replace -> NAME

The temporary file, read-back and rename are `latentpack.fs.atomic`'s: the
archive appears at its final path only once it has been written in full and
read back successfully; on any failure the temporary file is removed and
whatever was at the path before is untouched.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import h5py

from latentpack.formats import registry
from latentpack.formats.errors import ArchiveError, CorruptArchiveError
from latentpack.formats.h5write import LIBVER, tag, write_attr
from latentpack.formats.reader import open_archive
from latentpack.formats.registry import version_text, version_tuple
from latentpack.formats.schema import ENCODING_TYPE, ArchiveContents
from latentpack.formats.validate import check_contents
from latentpack.fs.atomic import write_atomically

__all__ = ["write_archive", "PROGRESS_IMAGES"]

#: Latent values are written (and `progress` called) this many images at a time.
PROGRESS_IMAGES = 4096


def _normalise(contents: ArchiveContents) -> ArchiveContents:
    """A copy of `contents` with every array in its on-disk dtype."""
    if not isinstance(contents, ArchiveContents):
        raise ValueError(f"`contents` must be an ArchiveContents, got {type(contents).__name__}")
    parts = {el.part: el.normalise(el.value(contents)) for el in registry.elements() if el.holds(contents)}
    return dataclasses.replace(
        contents,
        **parts,
        writer=contents.writer or _default_writer(),
        created=contents.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def _default_writer() -> str:
    from latentpack import __version__  # the package root imports nothing heavy

    return f"latentpack {__version__}"


def _write(f: h5py.File, c: ArchiveContents, progress: Optional[Callable[[int], Any]]) -> None:
    held = [(el, el.value(c)) for el in registry.elements() if el.holds(c)]
    versions = [el.version(value) for el, value in held]
    write_attr(f, "encoding-type", ENCODING_TYPE, registry.STR)
    write_attr(f, "encoding-version", version_text(max(version_tuple(v) for v in versions)), registry.STR)
    write_attr(f, "writer", c.writer, registry.STR)
    write_attr(f, "created", c.created, registry.STR)
    options = {"progress": progress, "progress_images": PROGRESS_IMAGES}
    for (el, value), version in zip(held, versions):
        group = f.create_group(el.encoding_type)
        tag(group, el.encoding_type, version)
        el.write(group, value, options)


def write_archive(
    path: str | os.PathLike[str],
    contents: ArchiveContents,
    *,
    force: bool = False,
    progress: Optional[Callable[[int], Any]] = None,
) -> Path:
    """Write `contents` to `path`, each element in the oldest layout version that holds it.

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
            ``OSError(ENOSPC/EDQUOT/EFBIG, ..., path)`` (see
            `latentpack.fs.atomic.disk_full_errno`).
    """
    path = Path(path)
    if progress is not None and not callable(progress):
        raise ValueError(f"`progress` must be callable or None, got {type(progress).__name__}")
    stored = _normalise(contents)
    try:
        check_contents(stored)
    except CorruptArchiveError as err:
        raise ValueError(f"`contents` cannot be written: {err}") from None

    def write(tmp: Path) -> None:
        # No chunk cache: a failed write (disk full) is raised by the call
        # that made it. With the cache, h5py 3 meets it while freeing the
        # dataset, swallows it, and the next call can crash the process.
        with h5py.File(tmp, "w", libver=LIBVER, rdcc_nbytes=0) as f:
            _write(f, stored, progress)

    return write_atomically(path, write, check=lambda tmp: _read_back(tmp, path), force=force, what="archive")


def _read_back(tmp: Path, path: Path) -> None:
    try:
        with open_archive(tmp) as archive:
            archive.validate()
    except ArchiveError as err:
        raise CorruptArchiveError(f"the archive just written failed its read-back check: {err}", file=path) from err
