"""latentpack's own errors: what a user, a folder or an archive can cause.

The command line turns exactly these into one ``Error: ...`` line (and the
operating system's errors about a named file, such as a missing folder or a
full disk); any other exception is a bug and keeps its traceback::

    LatentpackError
      +-- OptionError          a bad argument or option value (also a ValueError)
      +-- ArchiveError         (latentpack.formats.errors) a file that is not a good archive
      +-- BadImagesError       (the folder reader) input files that cannot be compressed
      +-- UnsafeNameError      (the stored-name rules) a name extraction must refuse
      +-- NotRegularFileError  (latentpack.fs.special) a FIFO, socket or device where a file must be
"""
from __future__ import annotations

__all__ = ["LatentpackError", "OptionError"]


class LatentpackError(Exception):
    """Base of every error that a user, an input folder or an archive can cause."""


class OptionError(LatentpackError, ValueError):
    """An argument or option value that cannot work, e.g. ``--max-size`` below what the decoder needs."""
