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

import os
import tempfile
import unicodedata
from pathlib import Path
from types import TracebackType
from typing import Iterator, Sequence

import numpy as np

from latentpack.fs.names import UnsafeNameError, display_name, safe_target

__all__ = ["OutputFolder", "check_targets", "target", "write_atomic", "clash_key"]


def target(root: Path, name: str) -> Path:
    """Where a name checked by `safe_target` is written under the resolved output folder (the same path)."""
    return root.joinpath(*name.split("/"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Raises:
        OSError: naming ``path`` (a full disk names no file by itself).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
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


def check_targets(source: str, outdir: Path, names: Sequence[str], indices: Sequence[int], force: bool) -> Path:
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

    Returns:
        The output folder, symlinks resolved: the root of every target.

    Raises:
        UnsafeNameError: a name breaks a rule of `safe_target`, two names map
            to the same file (case or Unicode normalisation only differing,
            for case-insensitive disks), or one name is a folder of another.
        FileExistsError: targets exist and ``force`` is False.
    """
    seen: dict[str, str] = {}
    existing = 0
    shown: list[str] = []
    for i in indices:
        name = names[i]
        where = f"{source}: /images/names entry {i}"
        path = safe_target(outdir, name, where=where)
        key = clash_key(name)
        if key in seen:
            raise UnsafeNameError(name, f"maps to the same output file as {seen[key]!r}", where)
        seen[key] = name
        if path.exists() or path.is_symlink():
            if path.is_dir() or path.is_symlink() or not force:
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

    Leaving the block with an exception (a full disk, an interrupt) removes
    the files this block created (not those it overwrote) and the folders it
    made, OUTDIR and its missing parents included.
    """

    def __init__(self, outdir: Path, root: Path, names: Sequence[str]):
        self.root = root
        self._outdir = outdir
        self._names = names
        self._made_outdirs = [p for p in [outdir, *outdir.parents] if not p.exists()]
        self._made_dirs: list[Path] = []
        self._created = np.zeros(len(names), dtype=bool)

    def __enter__(self) -> "OutputFolder":
        try:
            self._outdir.mkdir(parents=True, exist_ok=True)
        except BaseException:
            self.rollback()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.rollback()

    def write(self, i: int, data: bytes) -> None:
        """Write the file of name ``i`` (its folders made as needed), atomically."""
        path = target(self.root, self._names[i])
        missing = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        self._made_dirs.extend(reversed(missing))
        is_new = not path.exists()
        write_atomic(path, data)
        self._created[i] = is_new

    def rollback(self) -> None:
        """Remove the files created and the folders made (deepest first)."""
        for i in np.flatnonzero(self._created):
            target(self.root, self._names[i]).unlink(missing_ok=True)
        for d in reversed(self._made_outdirs[::-1] + self._made_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
