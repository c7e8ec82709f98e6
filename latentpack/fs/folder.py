"""An input folder of images: scan, check every file, stage the pixels.

`scan_folder` lists candidate files (recursively, hidden files and folders
skipped, sorted by relative POSIX path). `read_folder` opens every one of them
before anything is trained or written, collects *every* bad file with its
reason, and stages the working pixels of the good ones in a temporary
memory-mapped file, so training and encoding read batches from disk instead of
holding the folder in memory.

Memory per image is its name and a few dozen bytes of columns
(`latentpack.fs.records`); the staging file's pages are given back as they
are read (`ImageFolder.pages_read`). ``examples/memory_curve.py`` measures it.
"""
from __future__ import annotations

import mmap
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from latentpack.errors import LatentpackError, OptionError
from latentpack.fs.check_pool import checked_paths
from latentpack.fs.images import NATURAL_CHANNELS, ImageReadError, OpenedImage, open_image, to_working
from latentpack.fs.names import UnsafeNameError, check_name, display_name
from latentpack.fs.records import FolderImage, FolderImages
from latentpack.fs.scan import scan_folder, scan_names
from latentpack.fs.special import NotRegularFileError, file_kind, open_regular
from latentpack.progress import ProgressFactory, null_progress

__all__ = ["BadImagesError", "FolderImage", "ImageFolder", "scan_folder", "read_folder", "check_folder",
           "is_latentpack_archive", "check_output_path"]


class BadImagesError(LatentpackError, ValueError):
    """One or more input files cannot be used; ``bad`` lists (name, reason)."""

    def __init__(self, bad: Sequence[tuple[str, str]]):
        self.bad = list(bad)
        lines = "\n".join(f"  {display_name(name)}: {reason}" for name, reason in self.bad)
        super().__init__(
            f"{len(self.bad)} file(s) in the folder cannot be used as images "
            f"(fix or remove them, or use --skip-bad to leave them out):\n{lines}"
        )


#: Staged pixels read since the last release before the mapping's pages are given back (`ImageFolder.release_pages`).
RELEASE_BYTES = 16 << 20


@dataclass
class ImageFolder:
    """The good images of a folder, their metadata and staged working pixels.

    Attributes:
        images: Metadata, in archive order (`FolderImages`: columns; a list
            of `FolderImage` given here is turned into them).
        working_mode: The mode every image was widened to.
        offsets: (w+1,) int64 offsets of each image in ``pixels``.
        pixels: Flat uint8 working pixels of all images: a read-only map of
            the staging file (or any array).
        folder_bytes: Total size of the files on disk.
        skipped: (display name, reason) of the bad files left out with
            ``skip_bad``.

    Memory: the staging file's pages that a reader touches count in the
    process's resident memory while they stay mapped (784 bytes a digit, the
    whole folder after one pass). `working`, `batch` and `pages_read` count
    what is read and give the pages back to the kernel's cache every
    `RELEASE_BYTES` (``madvise(MADV_DONTNEED)``: the next read maps them
    again from the cache), so passes over the folder do not grow it.
    """

    images: FolderImages
    working_mode: str
    offsets: np.ndarray
    pixels: np.ndarray
    folder_bytes: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _tmpdir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    _map: mmap.mmap | None = field(default=None, repr=False)
    _unreleased: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, FolderImages):
            self.images = FolderImages.of(self.images)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return NATURAL_CHANNELS[self.working_mode]

    def working(self, i: int) -> np.ndarray:
        """The working pixels of image ``i``, (H, W, C) uint8, a view of the staging file."""
        h, w = self.images.size(i)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        self.pages_read(b - a)
        return self.pixels[a:b].reshape(h, w, self.channels)

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        """Working pixels of equal-sized images stacked to (B, H, W, C) uint8."""
        return np.stack([self.working(int(i)) for i in indices])

    def pages_read(self, nbytes: int) -> None:
        """Count ``nbytes`` of staged pixels read (through a view); release the pages every `RELEASE_BYTES`."""
        self._unreleased += int(nbytes)
        if self._unreleased >= RELEASE_BYTES:
            self.release_pages()

    def release_pages(self) -> None:
        """Unmap the staging file's resident pages (they stay in the kernel's cache); views stay valid."""
        self._unreleased = 0
        if self._map is not None and not self._map.closed and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    @property
    def x_bits(self) -> int:
        """Raw size: height*width*channels*8 of every original, summed."""
        im = self.images
        return int(np.sum(im.heights * im.widths * im.channels)) * 8

    def close(self) -> None:
        """Drop the staging file."""
        self.pixels = np.zeros(0, np.uint8)
        self._map = None  # closed once no view holds it
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def _working_mode(opened: Iterator[OpenedImage] | Sequence[str]) -> str:
    modes = list(opened)
    color = any(m.startswith("RGB") for m in modes)
    alpha = any(m.endswith("A") for m in modes)
    return ("RGB" if color else "L") + ("A" if alpha else "")


def _name_problem(name: str) -> str | None:
    """Why a file's relative name cannot be stored (extraction would refuse it), or None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the file name is not valid UTF-8 (rename it)"
    try:
        check_name(name)
    except UnsafeNameError as err:
        return f"the file name would not extract safely on every system: {err.reason}"
    return None


def is_latentpack_archive(path: Path) -> bool:
    """Whether `path` is an HDF5 file tagged as a latentpack archive (an earlier output, not an input)."""
    try:
        with open_regular(path) as fh:  # a FIFO or device is not an archive, and is never opened blocking
            if fh.read(8) != b"\x89HDF\r\n\x1a\n":
                return False
        from latentpack.formats import open_archive  # h5py: only for HDF5 files met in a folder

        with open_archive(path):
            return True
    except Exception:  # not ours, or damaged: then it is a bad input like any other
        return False


def read_folder(
    folder: Path,
    *,
    exclude: Sequence[Path] = (),
    progress: ProgressFactory | None = None,
    staging_dir: Path | None = None,
    skip_bad: bool = False,
) -> ImageFolder:
    """Open every image under ``folder`` and stage its working pixels.

    Two passes: the first opens and checks every file (so every bad file is
    reported at once, before any work); the second stages the pixels of the
    good ones, widened to the common working mode, in a memory-mapped file.
    latentpack archives met in the folder (earlier outputs) are not inputs
    and are left out silently.

    Args:
        folder: The input folder.
        exclude: Paths to leave out (e.g. the output archive).
        progress: Optional ``progress(label, total)`` returning a context
            manager with ``update(n)``.
        staging_dir: Where the temporary staging file goes (default: the
            system's temporary folder).
        skip_bad: Leave bad files out (listed in ``ImageFolder.skipped``)
            instead of raising `BadImagesError`.

    Raises:
        NotADirectoryError: ``folder`` is not a folder.
        BadImagesError: listing every file that cannot be used (also with
            ``skip_bad`` when no file can be used).
        OptionError: (a ValueError) the folder holds no images.
    """
    progress = progress or null_progress
    images, bad = _checked(folder, exclude, progress, skip_bad)
    mode = _working_mode(images.natural_modes)
    offsets, pixels, mapped, tmpdir = _stage(images, mode, staging_dir, progress)
    skipped = [(display_name(name), reason) for name, reason in bad]
    return ImageFolder(images, mode, offsets, pixels, int(images.file_bytes.sum()), skipped, tmpdir, mapped)


def _checked(folder: Path, exclude: Sequence[Path], progress: ProgressFactory, skip_bad: bool
             ) -> tuple[FolderImages, list[tuple[str, str]]]:
    folder = Path(folder)
    names, on_disk = scan_names(folder, exclude)
    if not names:
        raise OptionError(f"{folder} holds no images")
    images, bad = _check_files(folder, names, on_disk, progress)
    if bad and (not skip_bad or not images):
        raise BadImagesError(bad)
    if not images:
        raise OptionError(f"{folder} holds no images (only latentpack archives)")
    return images, bad


def check_folder(folder: Path, *, exclude: Sequence[Path] = (), progress: ProgressFactory | None = None,
                 skip_bad: bool = False) -> ImageFolder:
    """`read_folder`'s first pass alone: every file opened and checked, nothing staged.

    The result has the images' metadata and working mode but no pixels
    (``pixels`` is empty): enough to plan a compression (``compress --dry-run``).

    Raises:
        As `read_folder`.
    """
    images, bad = _checked(folder, exclude, progress or null_progress, skip_bad)
    mode = _working_mode(images.natural_modes)
    skipped = [(display_name(name), reason) for name, reason in bad]
    return ImageFolder(images, mode, np.zeros(len(images) + 1, np.int64), np.zeros(0, np.uint8),
                       int(images.file_bytes.sum()), skipped)


def _name_refused(name: str, seen: dict[str, str]) -> str | None:
    """Why ``name`` cannot be stored (``seen``: case-folded names of the good files so far), or None."""
    problem = _name_problem(name)
    if problem:
        return problem
    if name.casefold() in seen:
        return (f"differs from {display_name(seen[name.casefold()])} only by letter case or Unicode form "
                "(extraction could clash)")
    return None


def _check_files(folder: Path, names: Sequence[str], on_disk: dict[str, str], progress: ProgressFactory
                 ) -> tuple[FolderImages, list[tuple[str, str]]]:
    """The first pass: every file opened and checked (on every core for a large folder,
    `latentpack.fs.check_pool`); the good ones' metadata, and every bad one.

    A latentpack archive in the folder is left out without a word.
    """
    images, top = FolderImages(folder), os.fspath(folder)
    bad: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    def path_of(name: str) -> str:
        return os.path.join(top, on_disk.get(name, name))  # a string: a `Path` would intern every file name

    with progress("Checking images", len(names)) as bar:
        for name, (kind, value) in zip(names, checked_paths(map(path_of, names), len(names))):
            path = path_of(name)
            refused = _name_refused(name, seen)  # the name is judged first, whatever the file holds
            if refused is None and kind == "ok":
                key = name.casefold()
                seen[name if key == name else key] = name  # a lower-case name is its own key: no second string
                images.append(FolderImage(name, *value, path=Path(path) if on_disk.get(name, name) != name else None))
            elif refused is None and kind == "unreadable":
                bad.append((name, value))
            elif not is_latentpack_archive(Path(path)):
                bad.append((name, refused or value))
            bar.update(1)
    return images, bad


def _stage(images: FolderImages, mode: str, staging_dir: Path | None, progress: ProgressFactory
           ) -> tuple[np.ndarray, np.ndarray, mmap.mmap, tempfile.TemporaryDirectory]:
    """The second pass: the working pixels of every good file in a temporary file, mapped read-only.

    The file is written with plain writes (the kernel's cache holds the
    pages, not this process) and mapped once complete.

    Returns:
        (offsets, pixels, the map, the temporary folder).
    """
    sizes = images.heights * images.widths * NATURAL_CHANNELS[mode]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    tmpdir = tempfile.TemporaryDirectory(prefix="latentpack-", dir=staging_dir)
    path = os.path.join(tmpdir.name, "pixels.bin")
    try:
        with open(path, "wb") as fh, progress("Reading images", len(images)) as bar:
            for i in range(len(images)):
                working = to_working(*_natural(images.file(i)), mode)
                if working.size != sizes[i]:  # the file changed between the two passes
                    raise ImageReadError(f"{images.names[i]}: changed while the folder was read "
                                         f"({working.shape[1]}x{working.shape[0]} now)")
                fh.write(memoryview(working).cast("B"))
                bar.update(1)
            fh.write(b"\0")  # a map needs at least one byte
        with open(path, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except BaseException:
        tmpdir.cleanup()
        raise
    pixels = np.frombuffer(mapped, dtype=np.uint8, count=int(offsets[-1]))
    return offsets, pixels, mapped, tmpdir


def _natural(path: str) -> tuple[np.ndarray, str]:
    im = open_image(path)
    return im.natural, im.natural_mode


def _refuse_replacing_an_input(folder: Path, archive: Path) -> None:
    """``--force`` replaces an earlier archive, never a file of the folder being read."""
    if not archive.exists():
        return
    root, target = os.path.realpath(folder), os.path.realpath(archive)
    if os.path.commonpath([root, target]) != root:
        return
    if not is_latentpack_archive(Path(target)):
        raise OptionError(f"refusing to write the archive over {archive}: it is a file of the input folder, "
                          "not an archive")


def _check_output_folder(archive: Path) -> None:
    """The folder the archive goes into must exist and be writable (checked before any work)."""
    parent = archive.parent
    if not parent.is_dir():
        raise OptionError(f"cannot write {archive}: its folder {parent} does not exist")
    effective = os.access in os.supports_effective_ids
    if not os.access(parent, os.W_OK | os.X_OK, effective_ids=effective):
        raise OptionError(f"cannot write {archive}: its folder {parent} is not writable "
                          "(read-only, or no permission)")


def check_output_path(folder: Path, archive: Path, force: bool) -> None:
    """Refuse an ``archive`` that cannot or must not be written, before any work.

    Refused: a missing or unwritable folder; an existing folder, FIFO, socket
    or device (even with ``force``: only a regular file is ever replaced); an
    existing file without ``force``; a file of ``folder`` that is not an
    archive.

    Raises:
        OptionError: the archive's folder is missing or not writable.
        NotRegularFileError: ``archive`` exists and is a FIFO, socket or device.
        IsADirectoryError: ``archive`` is a folder.
        FileExistsError: ``archive`` exists and ``force`` is False.
    """
    _check_output_folder(archive)
    try:
        mode = os.stat(archive).st_mode
    except FileNotFoundError:  # absent (or a dangling symlink, which the rename replaces)
        mode = None
    kind = file_kind(mode) if mode is not None else None
    if kind == "a folder":
        raise IsADirectoryError(f"{archive} is a folder")
    if kind is not None:
        raise NotRegularFileError(archive, kind, message=f"refusing to write the archive to {archive}: it is {kind}, "
                                  "not a regular file (only a regular file is replaced, even with --force)")
    if mode is not None and not force:
        raise FileExistsError(f"{archive} exists (use --force to replace it)")
    _refuse_replacing_an_input(folder, archive)
