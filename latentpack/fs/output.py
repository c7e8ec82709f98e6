"""Safe output writing: check every target first, write each file atomically, roll back on failure.

    names -> check_targets (inside OUTDIR, no clash, no existing file unless
             ``force``) -> OutputFolder: write(i, bytes) per file
             (temp file + rename) -> any failure: remove what was created

Nothing is written, not even OUTDIR created, until every requested name has
been checked. A failed write (a full disk included) removes the files and the
folders it created.

Memory grows with the number of names only by a few bytes a name: the checks
keep one dict entry per name (keyed by the name itself when it is its own
clash key), and targets are rebuilt from the names while writing (`target`)
instead of being held as one `Path` per image.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
import unicodedata
from pathlib import Path
from types import TracebackType
from typing import Iterator, Sequence

import numpy as np

from latentpack.fs.atomic import current_umask
from latentpack.fs.held import HeldTree, OutputChangedError
from latentpack.fs.names import UnsafeNameError, display_name, safe_target

__all__ = ["OutputFolder", "OutputChangedError", "check_targets", "target", "write_atomic", "clash_key"]


def target(root: Path, name: str) -> Path:
    """Where a name checked by `safe_target` is written under the resolved output folder (the same path)."""
    return root.joinpath(*name.split("/"))


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Args:
        path: The target.
        data: Its bytes.
        mode: Its permission bits; None: ``0o666 & ~umask``, as ``open`` would make it.

    Raises:
        OSError: naming ``path`` (a full disk names no file by itself).
    """
    mode = 0o666 & ~current_umask() if mode is None else mode
    # The name is chosen before the file is made (not by mkstemp), so that an interrupt (a signal) at any
    # point after the file exists finds its name here and removes it.
    tmp = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, mode)  # extracted files follow the umask, like tar's and unzip's
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.lexists(tmp) and not isinstance(err, FileExistsError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # a full disk names no file
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise


def clash_key(name: str) -> str:
    """Names with the same key would be the same file on a case-insensitive or normalising disk.

    The key of a target is that of its name: the output folder is the same for
    all, and nothing composes with the ``/`` between folder and name.
    """
    key = unicodedata.normalize("NFC", name).casefold()
    return name if key == name else key


def _parents(key: str) -> Iterator[str]:
    """The proper parent folders of a key, shortest first (``a``, ``a/b`` of ``a/b/c``)."""
    end = key.find("/")
    while end != -1:
        yield key[:end]
        end = key.find("/", end + 1)


def _identities(paths: Sequence[str | os.PathLike]) -> set[tuple[int, int]]:
    """(device, inode) of each existing path: what no target may be, whatever its name."""
    found = set()
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def _existing(path: Path) -> os.stat_result | None:
    """``os.lstat`` of a target, or None when there is nothing there (what `Path.exists` says no to)."""
    try:
        return os.lstat(path)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF):
            return None
        raise


def check_targets(source: str, outdir: Path, names: Sequence[str], indices: Sequence[int], force: bool,
                  inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Check the target of every name to write, before anything is written.

    Targets are not kept (`target` rebuilds each from its name while
    writing); what is kept is one clash key per name, which is the name
    object itself when normalising and case-folding leave it unchanged.

    Args:
        source: Where the names come from, for messages (the archive's path).
        outdir: The output folder (it need not exist yet).
        names: All stored names.
        indices: The names to write.
        force: Whether existing files may be overwritten.
        inputs: Files the command reads (the archive): a target that is one
            of them (the same file, by device and inode, whatever the path:
            a hard link, another letter case) is refused, even with ``force``.

    Returns:
        The output folder, symlinks resolved: the root of every target.

    Raises:
        UnsafeNameError: a name breaks a rule of `safe_target`, two names map
            to the same file (case or Unicode normalisation only differing,
            for case-insensitive disks), one name is a folder of another, or
            a target is one of ``inputs``.
        FileExistsError: targets exist and ``force`` is False.
    """
    seen: dict[str, str] = {}
    existing = 0
    shown: list[str] = []
    protected = _identities(inputs)
    for i in indices:
        name = names[i]
        where = f"{source}: /images/names entry {i}"
        path = safe_target(outdir, name, where=where)
        key = clash_key(name)
        if key in seen:
            raise UnsafeNameError(name, f"maps to the same output file as {seen[key]!r}", where)
        seen[key] = name
        st = _existing(path)
        if st is not None:
            if (st.st_dev, st.st_ino) in protected:
                raise UnsafeNameError(name, "is the archive being read (extracting would destroy it)", where)
            if not stat.S_ISREG(st.st_mode) or not force:
                existing += 1
                if len(shown) < 5:
                    shown.append(display_name(name))
    # a key that is a parent folder of another key: found from the children, without a set of all folders
    folders = {parent for key in seen for parent in _parents(key) if parent in seen}
    for key, name in seen.items():
        if key in folders:
            raise UnsafeNameError(name, "is both a file and the folder of another name", f"{source}: /images/names")
    if existing:
        more = f" and {existing - len(shown)} more" if existing > len(shown) else ""
        raise FileExistsError(f"{existing} file(s) exist in {outdir} (use --force to overwrite): {', '.join(shown)}{more}")
    return Path(os.path.realpath(outdir))


class OutputFolder:
    """Files written under checked names; on any failure, what was created is removed.

    Use as a context manager around the writes, after `check_targets`::

        root = check_targets(source, outdir, names, indices, force)
        with OutputFolder(outdir, root, names) as out:
            out.write(i, data)

    Leaving the block with an exception (a full disk, an interrupt, a folder
    swapped for a symlink: `OutputChangedError`) removes the files this block
    created (not those it overwrote) and the folders it made, OUTDIR and its
    missing parents included. Folders are walked and written through held
    descriptors (`latentpack.fs.held`), so no swap redirects a write.
    """

    def __init__(self, outdir: Path, root: Path, names: Sequence[str]):
        self.root = root
        self._outdir = outdir
        self._names = names
        self._made_outdirs = [p for p in [outdir, *outdir.parents] if not p.exists()]
        self._tree: HeldTree | None = None
        self._created = np.zeros(len(names), dtype=bool)
        self._mode = 0o666 & ~current_umask()  # read once: reading it sets it for a moment

    def __enter__(self) -> "OutputFolder":
        try:
            self._outdir.mkdir(parents=True, exist_ok=True)
            self._tree = HeldTree(self.root)
        except BaseException:
            self.rollback()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.rollback()
        elif self._tree is not None:
            self._tree.close()

    def write(self, i: int, data: bytes) -> None:
        """Write the file of name ``i`` (its folders made as needed) atomically, through held folders.

        Raises:
            OutputChangedError: a folder of the output tree was swapped (for a symlink) during the run.
        """
        assert self._tree is not None, "write inside the with block"
        name = self._names[i]
        # Recorded before the file is made, so that an interrupt (a signal) between the two cannot leave it behind.
        self._created[i] = not self._tree.exists(name)
        self._tree.write(name, data, self._mode)

    def rollback(self) -> None:
        """Remove the files created and the folders made (deepest first), never through a symlink."""
        if self._tree is not None:
            for i in np.flatnonzero(self._created):
                self._tree.remove(self._names[i])
            self._tree.remove_made()
            self._tree.close()
            self._tree = None
        for d in self._made_outdirs:
            try:
                d.rmdir()
            except OSError:
                pass
