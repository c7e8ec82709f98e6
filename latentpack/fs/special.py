"""Files that are not regular files: name their kind and refuse them before anything can block on them.

Opening a FIFO for reading blocks until a writer appears, and opening a
device can have side effects (a tape rewinds, a serial line hangs up), so a
path is checked with ``stat`` before it is opened, and opened with
``O_NONBLOCK`` and checked again with ``fstat`` (it may have been swapped in
between) before a byte is read::

    path -> stat: regular? -> open(O_RDONLY | O_NONBLOCK | O_NOCTTY) -> fstat: regular?
         -> blocking mode back on -> a binary file object

Anything else (a FIFO, a socket, a character or block device, a folder) is a
`NotRegularFileError` naming the path and what it is.
"""
from __future__ import annotations

import fcntl
import os
import stat
from typing import BinaryIO

from latentpack.errors import LatentpackError

__all__ = ["NotRegularFileError", "file_kind", "require_regular", "open_regular"]

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class NotRegularFileError(LatentpackError, ValueError):
    """A path that must be a regular file is something else; ``kind`` says what (``"a FIFO (named pipe)"``)."""

    def __init__(self, path: str | os.PathLike, kind: str, what: str = "file", message: str | None = None):
        self.path = os.fspath(path)
        self.kind = kind
        super().__init__(message or f"{self.path}: the {what} is {kind}, not a regular file (not read)")


def file_kind(mode: int) -> str | None:
    """What a ``st_mode`` is (``"a socket"``), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a special file"


def require_regular(path: str | os.PathLike, what: str = "file") -> os.stat_result:
    """``os.stat(path)`` (symlinks followed) when it is a regular file.

    Raises:
        NotRegularFileError: it is a FIFO, socket, device or folder.
        OSError: it cannot be stat'ed (missing, a dangling symlink, no permission).
    """
    st = os.stat(path)
    kind = file_kind(st.st_mode)
    if kind is not None:
        raise NotRegularFileError(path, kind, what)
    return st


def open_regular(path: str | os.PathLike, what: str = "file") -> BinaryIO:
    """Open a regular file for reading without ever blocking in ``open`` on something else.

    Raises:
        NotRegularFileError: it is (or was swapped for) a FIFO, socket, device or folder.
        OSError: it cannot be opened.
    """
    require_regular(path, what)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFileError(path, kind, what)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
