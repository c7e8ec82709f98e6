"""Images named on the command line (folders and files) for ``latentpack add``, read as compress reads a folder.

    FOLDER -> its files, named relative to it (as compress names them)
    FILE   -> its file name
    [--prefix P] -> "P/<name>"
    -> every file opened and checked (`latentpack.fs.folder`'s first pass: every bad file listed)
    -> the modes must widen into the archive's working mode -> staged in that mode (its second pass)
"""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Sequence

from latentpack.errors import OptionError
from latentpack.fs.folder import BadImagesError, ImageFolder, _check_files, _stage, _working_mode, scan_folder
from latentpack.fs.names import display_name
from latentpack.progress import ProgressFactory, null_progress

__all__ = ["input_files", "read_inputs", "check_prefix"]


def check_prefix(prefix: str) -> str:
    """A ``--prefix`` as a relative POSIX folder (``"batch2"``), or ``""``.

    Raises:
        OptionError: an absolute prefix, or one with ``..``, ``.``, a backslash or a NUL.
    """
    if not prefix:
        return ""
    parts = PurePosixPath(prefix).parts
    bad = (prefix.startswith("/") or "\\" in prefix or "\0" in prefix
           or any(p in (".", "..") for p in prefix.strip("/").split("/")))
    if bad or not parts:
        raise OptionError(f"--prefix must be a relative folder name such as 'batch2', got {prefix!r}")
    return unicodedata.normalize("NFC", "/".join(p for p in prefix.split("/") if p))


def input_files(sources: Sequence[Path], exclude: Sequence[Path] = (), prefix: str = "") -> list[tuple[str, Path]]:
    """``(stored name, path)`` of every candidate file: a folder's files relative to it, a file by its name.

    Folders are scanned as compress scans them (recursively, hidden files and
    folders skipped, sorted); the sources keep their order.

    Raises:
        FileNotFoundError: a source does not exist.
        OptionError: two sources give one stored name, or nothing is left to add.
    """
    prefix = check_prefix(prefix)
    found: list[tuple[str, Path]] = []
    skip = {os.path.realpath(p) for p in exclude}
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found.extend(scan_folder(source, exclude))
        elif os.path.lexists(source):
            if os.path.realpath(source) not in skip:
                found.append((unicodedata.normalize("NFC", source.name), source))
        else:
            raise FileNotFoundError(f"{source} does not exist")
    if prefix:
        found = [(f"{prefix}/{name}", path) for name, path in found]
    seen: dict[str, Path] = {}
    for name, path in found:
        if name in seen:
            raise OptionError(f"{path} and {seen[name]} would both be stored as {display_name(name)!r} "
                              "(add them separately with --prefix)")
        seen[name] = path
    if not found:
        raise OptionError("no images to add (the folders are empty)")
    return found


def read_inputs(sources: Sequence[Path], working_mode: str, *, exclude: Sequence[Path] = (), prefix: str = "",
                progress: ProgressFactory | None = None, skip_bad: bool = False) -> ImageFolder:
    """Open every image of the sources and stage its pixels in the archive's working mode.

    Args:
        sources: Folders and files.
        working_mode: The archive's working mode (its decoder's output mode).
        exclude: Paths to leave out (the archive, the output).
        prefix: Folder the stored names go under.
        progress: A progress factory.
        skip_bad: Leave bad files out (``ImageFolder.skipped``) instead of failing.

    Raises:
        BadImagesError: files that cannot be used (all listed).
        OptionError: an image whose colours or alpha the archive's working mode cannot hold.
    """
    progress = progress or null_progress
    files = input_files(sources, exclude, prefix)
    # each file by its own path (an absolute path joined to the folder is itself): the sources are many
    on_disk = {name: os.path.abspath(path) for name, path in files}
    images, bad = _check_files(Path(os.sep), [name for name, _ in files], on_disk, progress)
    if bad and (not skip_bad or not len(images)):
        raise BadImagesError(bad)
    if not len(images):
        raise OptionError("no images to add (only latentpack archives)")
    for m in images:
        if _working_mode([working_mode, m.natural_mode]) != working_mode:
            raise OptionError(f"image {display_name(m.name)!r} is {m.natural_mode} ({m.mode}); this archive holds "
                              f"{working_mode} images (its model's output mode): convert it first")
    offsets, pixels, mapped, tmpdir = _stage(images, working_mode, None, progress)
    skipped = [(display_name(name), reason) for name, reason in bad]
    return ImageFolder(images, working_mode, offsets, pixels, int(images.file_bytes.sum()), skipped, tmpdir, mapped)
