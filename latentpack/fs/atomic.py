"""Atomic file writes: a temporary file beside the target, checked, then renamed into place.

::

    target -> .NAME.tmp-XXXX (O_EXCL, same folder) -> write(tmp) -> check(tmp)
           -> chmod (umask) -> fsync -> os.replace -> NAME

The target appears only once it has been written in full and checked; on any
failure (KeyboardInterrupt included) the temporary file is removed and
whatever was at the target before is untouched. A write killed outright
(SIGKILL, power loss) cannot remove its temporary file: `stale_temp_files`
finds those. A full disk or quota becomes ``OSError(ENOSPC/EDQUOT/EFBIG)``
naming the target (`disk_full_errno` recognises it, also inside libhdf5's
messages).

This module knows nothing of archives, models or TensorFlow.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from pathlib import Path
from typing import Callable, Optional

from latentpack.fs.special import NotRegularFileError, file_kind

__all__ = ["TEMP_PREFIX", "TEMP_INFIX", "write_atomically", "disk_full_errno", "stale_temp_files", "temp_prefix",
           "current_umask"]

#: A write goes to ``TEMP_PREFIX + NAME + TEMP_INFIX + random`` beside its target (hidden).
TEMP_PREFIX, TEMP_INFIX = ".", ".tmp-"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def temp_prefix(path: str | os.PathLike[str]) -> str:
    """The name prefix of the temporary files of a write to `path` (``.NAME.tmp-``)."""
    return f"{TEMP_PREFIX}{Path(path).name}{TEMP_INFIX}"


def disk_full_errno(err: BaseException) -> int | None:
    """``ENOSPC``, ``EDQUOT`` or ``EFBIG`` when `err` says the disk (or quota) is full, else None.

    libhdf5 reports a failed write as an ``OSError`` or ``RuntimeError``
    whose message holds ``errno = N``; plain OS errors carry ``errno``.
    """
    if isinstance(err, OSError) and err.errno in _DISK_FULL:
        return err.errno
    match = re.search(r"errno = (\d+)", str(err))
    if match and int(match.group(1)) in _DISK_FULL:
        return int(match.group(1))
    return None


def stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Hidden temporary files that an interrupted write to `path` left behind.

    A write killed outright (SIGKILL, power loss) cannot remove its
    ``.NAME.tmp-XXXXXXXX``; the file at `path` is then either the previous
    one or absent, never partial. These files are not removed automatically:
    another writer may be using one right now.
    """
    path = Path(path)
    prefix = temp_prefix(path)
    with contextlib.suppress(OSError):
        return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefix))
    return []


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(
    path: str | os.PathLike[str],
    write: Callable[[Path], None],
    *,
    check: Optional[Callable[[Path], None]] = None,
    force: bool = False,
    what: str = "file",
) -> Path:
    """Write a file through a temporary file beside `path`, then rename it into place.

    Args:
        path: The target.
        write: Writes the whole file at the temporary path it is given.
        check: Reads the temporary file back and raises if it is wrong; None
            for no check.
        force: Replace an existing file at `path`.
        what: What the file is, for messages (``"archive"``).

    Returns:
        The target's path.

    Raises:
        FileExistsError: `path` exists and `force` is False.
        IsADirectoryError: `path` is a directory.
        NotRegularFileError: `path` is a FIFO, socket or device.
        OSError: a full disk or quota is ``OSError(ENOSPC/EDQUOT/EFBIG, ..., path)``.
        Exception: whatever `write` or `check` raise otherwise.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    kind = file_kind(path.stat().st_mode) if path.exists() else None
    if kind is not None:  # a FIFO or a device is never replaced by a regular file, even with force
        raise NotRegularFileError(path, kind, message=f"refusing to write the {what} to {path}: it is {kind}, "
                                  "not a regular file (even with force)")
    if path.exists() and not force:
        raise FileExistsError(errno.EEXIST, f"{what} exists (use force to replace it)", str(path))
    # The name is chosen before the file is made (not inside mkstemp), so that a signal at any moment
    # after the file exists finds it here and removes it.
    tmp = path.parent / f"{temp_prefix(path)}{secrets.token_hex(4)}"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        try:
            write(tmp)
        except Exception as err:
            code = disk_full_errno(err)
            if code is None:
                raise
            raise OSError(code, f"{os.strerror(code)} while writing the {what}", str(path)) from err
        if check is not None:
            check(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if not isinstance(err, FileExistsError):  # (that would be another writer's file of the same name)
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    return path
