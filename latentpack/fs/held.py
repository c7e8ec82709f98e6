"""Write files under a folder through held directory descriptors, so that no swap can redirect a write.

    root fd (O_DIRECTORY | O_NOFOLLOW) -> each folder component: mkdirat, then
    openat(O_DIRECTORY | O_NOFOLLOW) -> before every file: each held folder
    still the one at its name (lstat-at vs fstat) -> temp file created at the
    held folder (O_EXCL | O_NOFOLLOW) -> renameat within it

A folder of the tree swapped for a symlink (or for another folder) while
files are written is never followed: the open of a symlink fails (ELOOP),
a held folder that no longer sits at its name is found before the next file,
and either stops the run with `OutputChangedError`; the caller rolls back
(`HeldTree.remove_created`). Writes made before the swap went into the
folder that was held, wherever it was moved, and rolling back removes them
through the same descriptors while they are held.

POSIX only (``dir_fd`` and ``O_DIRECTORY``).
"""
from __future__ import annotations

import errno
import os
import secrets
import stat

from latentpack.errors import LatentpackError

__all__ = ["HeldTree", "OutputChangedError"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: Folder descriptors kept open beyond the chain in use (the rest are reopened when needed).
_MAX_HELD = 64


class OutputChangedError(LatentpackError):
    """A folder of the output tree was swapped (for a symlink, a file or another folder) during the run."""


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class HeldTree:
    """Folders under ``root`` held open by descriptor while files are written into them.

    Args:
        root: The output folder (it must exist; symlinks in it already resolved).
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = os.fspath(root)
        fd = self._open_root()
        self._held: dict[str, tuple[int, tuple[int, int]]] = {"": (fd, _identity(os.fstat(fd)))}
        #: Folders this tree made, relative to root, in the order made.
        self.made: list[str] = []

    def _open_root(self) -> int:
        try:
            return os.open(self.root, _DIR_FLAGS)
        except OSError as err:
            raise OutputChangedError(f"{self.root}: not a folder any more ({err.strerror})") from None

    # -- folders --------------------------------------------------------------

    def folder(self, rel: str, create: bool = True) -> int:
        """The descriptor of folder ``rel`` (``"a/b"``; ``""`` is root), checked and held; made if missing.

        Raises:
            OutputChangedError: a component is a symlink or not a folder, or a held one was swapped.
        """
        self._check("")
        if not rel:
            return self._held[""][0]
        parts = rel.split("/")
        self._release(rel)
        for k in range(1, len(parts) + 1):
            sub = "/".join(parts[:k])
            if sub in self._held:
                self._check(sub)
                continue
            self._open(sub, "/".join(parts[: k - 1]), parts[k - 1], create)
        return self._held[rel][0]

    def _open(self, sub: str, parent: str, name: str, create: bool) -> None:
        """Make (when asked) and open folder ``name`` in held folder ``parent``, never following a symlink."""
        parent_fd = self._held[parent][0]
        if create:
            try:
                self.made.append(sub)  # recorded first: an interrupt between the two cannot leave it behind
                os.mkdir(name, 0o777, dir_fd=parent_fd)
            except FileExistsError:
                self.made.pop()
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                raise OutputChangedError(f"{self._show(sub)}: is not a plain folder any more "
                                                    f"({err.strerror}); nothing is written through it") from None
            raise
        self._held[sub] = (fd, _identity(os.fstat(fd)))

    def _check(self, sub: str) -> None:
        """The held folder ``sub`` must still be what its name in its parent is (not a symlink, not moved)."""
        fd, ident = self._held[sub]
        try:
            if not sub:
                st = os.stat(self.root, follow_symlinks=False)
            else:
                parent, _, name = sub.rpartition("/")
                st = os.stat(name, dir_fd=self._held[parent][0], follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISDIR(st.st_mode) or _identity(st) != ident:
            now = "gone" if st is None else "a symlink" if stat.S_ISLNK(st.st_mode) else \
                "another folder" if stat.S_ISDIR(st.st_mode) else "not a folder"
            raise OutputChangedError(f"{self._show(sub)}: was swapped while extracting (now {now}); "
                                                   "stopped, nothing is written through it")

    def _release(self, keep: str) -> None:
        """Close held folders that are not on the way to ``keep`` once more than `_MAX_HELD` are open."""
        if len(self._held) <= _MAX_HELD:
            return
        for sub in [s for s in self._held if s and not (keep == s or keep.startswith(s + "/"))]:
            os.close(self._held.pop(sub)[0])

    def _show(self, sub: str) -> str:
        return os.path.join(self.root, sub) if sub else self.root

    # -- files ------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        """Whether ``root/name`` exists (as anything, a symlink included), its folders made and held on the way."""
        rel, _, base = name.rpartition("/")
        try:
            os.stat(base, dir_fd=self.folder(rel), follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def write(self, name: str, data: bytes, mode: int) -> None:
        """Write ``root/name`` through a temp file in its held folder and a rename there.

        Raises:
            OutputChangedError: a folder on the way was swapped; nothing was written.
            OSError: naming the file (a full disk included).
        """
        rel, _, base = name.rpartition("/")
        fd = self.folder(rel)
        tmp = f".{base}.{secrets.token_hex(4)}.tmp"  # chosen first, so an interrupt after creation finds it
        try:
            out = os.open(tmp, _FILE_FLAGS, 0o600, dir_fd=fd)
            os.fchmod(out, mode)  # extracted files follow the umask, like tar's and unzip's
            with os.fdopen(out, "wb") as fh:
                fh.write(data)
            os.replace(tmp, base, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException as err:
            if not isinstance(err, FileExistsError):
                _unlink_at(tmp, fd)
            if isinstance(err, OSError):  # a full disk names no file
                raise OSError(err.errno, err.strerror or str(err), os.path.join(self.root, name)) from err
            raise

    def remove(self, name: str) -> None:
        """Remove file ``root/name`` (rolling back) through its held folder, or by a walk that follows no symlink."""
        rel, _, base = name.rpartition("/")
        fd = self._reach(rel)
        if fd is not None:
            _unlink_at(base, fd)

    def remove_made(self) -> None:
        """Remove the folders this tree made, deepest first, if empty (never through a symlink)."""
        for sub in reversed(self.made):
            parent, _, base = sub.rpartition("/")
            fd = self._reach(parent)
            if fd is not None:
                try:
                    os.rmdir(base, dir_fd=fd)
                except OSError:
                    pass

    def _reach(self, rel: str) -> int | None:
        """A held descriptor of ``rel``, else one opened by a walk without symlinks (None: not reachable)."""
        if rel in self._held:
            return self._held[rel][0]
        try:
            return self.folder(rel, create=False)
        except (OSError, OutputChangedError):
            return None

    def close(self) -> None:
        """Close every held descriptor."""
        for fd, _ in self._held.values():
            os.close(fd)
        self._held = {}


def _unlink_at(name: str, fd: int) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass
