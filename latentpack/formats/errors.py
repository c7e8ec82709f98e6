"""The archive error hierarchy: every failure names the file and the HDF5 path.

::

    LatentpackError (latentpack.errors)
     +-- ArchiveError
          +-- NotAnArchiveError        not HDF5, or HDF5 without our root attributes
          +-- UnsupportedVersionError  a format or element version this latentpack cannot read
          +-- CorruptArchiveError      anything else: a missing element, a wrong
                                       dtype or shape, inconsistent counts, damaged
                                       bytes (checksum, truncation)

The reader raises nothing else: h5py, numpy and OS errors met while reading
are turned into `CorruptArchiveError` with the path being read. The CLI turns
an `ArchiveError` into one ``Error: ...`` line.
"""
from __future__ import annotations

import os
from typing import Union

from latentpack.errors import LatentpackError

__all__ = ["ArchiveError", "NotAnArchiveError", "UnsupportedVersionError", "CorruptArchiveError"]

PathLike = Union[str, "os.PathLike[str]"]


class ArchiveError(LatentpackError):
    """An archive cannot be read (or a just-written one failed its check).

    ``str(error)`` is ``"FILE: HDF5_PATH: reason"``, leaving out the parts
    that are unknown, e.g. ``"a.lpk: /latents/offsets: expected 11 entries,
    got 10"``.

    Attributes:
        reason: The bare message, without file or HDF5 path.
        hdf5_path: Path of the HDF5 element at fault (``"/latents/offsets"``),
            or None when the fault is the file as a whole.
        file: The archive's file-system path, or None when not known (yet);
            the reader fills it in before the error leaves it.
    """

    def __init__(self, reason: str, *, hdf5_path: str | None = None, file: PathLike | None = None):
        super().__init__(reason)
        self.reason = reason
        self.hdf5_path = hdf5_path
        self.file = file

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(os.fspath(self.file))
        if self.hdf5_path:
            parts.append(self.hdf5_path)
        parts.append(self.reason)
        return ": ".join(parts)

    def __reduce__(self):  # keep the keyword attributes through pickling
        return (_rebuild, (type(self), self.reason, self.hdf5_path, self.file, dict(self.__dict__)))


def _rebuild(cls, reason, hdf5_path, file, state):
    err = cls.__new__(cls)
    ArchiveError.__init__(err, reason, hdf5_path=hdf5_path, file=file)
    err.__dict__.update(state)
    return err


class NotAnArchiveError(ArchiveError):
    """The file is not HDF5, or is HDF5 without latentpack's root attributes."""


class UnsupportedVersionError(ArchiveError):
    """The archive declares a format version this latentpack does not read.

    Attributes:
        version: The declared version string (``"2.0"``).
        supported: The version this latentpack reads (``"1.0"``).
    """

    def __init__(
        self,
        version: str,
        supported: str,
        *,
        hdf5_path: str | None = "/",
        file: PathLike | None = None,
        newer: bool = True,
    ):
        if newer:
            reason = (
                f"archive format {version} was written by a newer latentpack; upgrade (this one reads {supported})"
            )
        else:
            reason = f"archive format {version} is not supported (this latentpack reads {supported})"
        super().__init__(reason, hdf5_path=hdf5_path, file=file)
        self.version = version
        self.supported = supported


class CorruptArchiveError(ArchiveError):
    """The archive claims to be latentpack's but breaks the format's rules."""
