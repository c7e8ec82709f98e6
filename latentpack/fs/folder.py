"""An input folder of images: scan, check every file, stage the pixels.

`scan_folder` lists candidate files (recursively, hidden files and folders
skipped, sorted by relative POSIX path). `read_folder` opens every one of them
before anything is trained or written, collects *every* bad file with its
reason, and stages the working pixels of the good ones in a temporary
memory-mapped file, so training and encoding read batches from disk instead of
holding the folder in memory.
"""
from __future__ import annotations

import os
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from latentpack.errors import LatentpackError, OptionError
from latentpack.fs.images import NATURAL_CHANNELS, ImageReadError, OpenedImage, open_image, to_working
from latentpack.fs.names import UnsafeNameError, check_name, display_name
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


@dataclass
class FolderImage:
    """Metadata of one input image (its pixels live in the staging file)."""

    name: str
    mode: str
    format: str
    height: int
    width: int
    channels: int
    natural_mode: str
    palette: np.ndarray | None
    sha256: bytes
    file_bytes: int
    path: Path | None = None  # the file it was read from (compress re-opens the rare lossless exception)


def scan_folder(folder: Path, exclude: Sequence[Path] = ()) -> list[tuple[str, Path]]:
    """List the files under ``folder`` as (relative POSIX name, path), sorted.

    Hidden files and folders (names starting with ``.``) are skipped and the
    paths in ``exclude`` are left out. Symlinked folders are not followed, and
    folders that cannot be listed are not skipped: both are listed like
    files, so that reading them reports them as bad.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    skip = {os.path.realpath(p) for p in exclude}
    found = []
    unlisted: list[OSError] = []
    for root, dirs, files in os.walk(folder, onerror=unlisted.append):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        linked = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in files + linked:  # a symlinked folder is listed (and refused), not followed
            if name.startswith("."):
                continue
            path = Path(root) / name
            if os.path.realpath(path) in skip:
                continue
            rel = path.relative_to(folder).as_posix()
            found.append((unicodedata.normalize("NFC", rel), path))
    for err in unlisted:  # a folder that cannot be listed is reported, not silently skipped
        path = Path(err.filename)
        if path != folder:
            found.append((unicodedata.normalize("NFC", path.relative_to(folder).as_posix()), path))
        else:
            raise err
    found.sort(key=lambda item: item[0])
    return found


@dataclass
class ImageFolder:
    """The good images of a folder, their metadata and staged working pixels.

    Attributes:
        images: Metadata, in archive order.
        working_mode: The mode every image was widened to.
        offsets: (w+1,) int64 offsets of each image in ``pixels``.
        pixels: Flat uint8 memmap of the working pixels of all images.
        folder_bytes: Total size of the files on disk.
        skipped: (display name, reason) of the bad files left out with
            ``skip_bad``.
    """

    images: list[FolderImage]
    working_mode: str
    offsets: np.ndarray
    pixels: np.ndarray
    folder_bytes: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _tmpdir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return NATURAL_CHANNELS[self.working_mode]

    def working(self, i: int) -> np.ndarray:
        """The working pixels of image ``i``, (H, W, C) uint8, a view of the memmap."""
        im = self.images[i]
        return self.pixels[self.offsets[i] : self.offsets[i + 1]].reshape(im.height, im.width, self.channels)

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        """Working pixels of equal-sized images stacked to (B, H, W, C) uint8."""
        return np.stack([self.working(int(i)) for i in indices])

    @property
    def x_bits(self) -> int:
        """Raw size: height*width*channels*8 of every original, summed."""
        return sum(im.height * im.width * im.channels * 8 for im in self.images)

    def close(self) -> None:
        """Drop the staging file."""
        self.pixels = np.zeros(0, np.uint8)
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
    metas, paths, bad = _checked(folder, exclude, progress, skip_bad)
    mode = _working_mode(m.natural_mode for m in metas)
    offsets, pixels, tmpdir = _stage(metas, paths, mode, staging_dir, progress)
    skipped = [(display_name(name), reason) for name, reason in bad]
    return ImageFolder(metas, mode, offsets, pixels, int(sum(m.file_bytes for m in metas)), skipped, tmpdir)


def _checked(folder: Path, exclude: Sequence[Path], progress: ProgressFactory, skip_bad: bool
             ) -> tuple[list[FolderImage], list[Path], list[tuple[str, str]]]:
    files = scan_folder(folder, exclude)
    if not files:
        raise OptionError(f"{folder} holds no images")
    metas, paths, bad = _check_files(files, progress)
    if bad and (not skip_bad or not metas):
        raise BadImagesError(bad)
    if not metas:
        raise OptionError(f"{folder} holds no images (only latentpack archives)")
    return metas, paths, bad


def check_folder(folder: Path, *, exclude: Sequence[Path] = (), progress: ProgressFactory | None = None,
                 skip_bad: bool = False) -> ImageFolder:
    """`read_folder`'s first pass alone: every file opened and checked, nothing staged.

    The result has the images' metadata and working mode but no pixels
    (``pixels`` is empty): enough to plan a compression (``compress --dry-run``).

    Raises:
        As `read_folder`.
    """
    metas, _, bad = _checked(folder, exclude, progress or null_progress, skip_bad)
    mode = _working_mode(m.natural_mode for m in metas)
    skipped = [(display_name(name), reason) for name, reason in bad]
    return ImageFolder(metas, mode, np.zeros(len(metas) + 1, np.int64), np.zeros(0, np.uint8),
                       int(sum(m.file_bytes for m in metas)), skipped)


def _check_file(name: str, path: Path, seen: dict[str, str]) -> FolderImage:
    """Open and check one file of the folder (``seen``: case-folded names so far).

    Raises:
        ImageReadError: the file cannot be used, with the reason.
        OSError: it cannot be read.
    """
    key = name.casefold()
    problem = _name_problem(name)
    if problem:
        raise ImageReadError(problem)
    if key in seen:
        raise ImageReadError(
            f"differs from {display_name(seen[key])} only by letter case or Unicode form "
            "(extraction could clash)"
        )
    if path.is_symlink() and path.is_dir():
        raise ImageReadError("is a folder reached through a symlink (symlinked folders are not followed)")
    if path.is_dir():  # os.walk could not list it: say why
        with os.scandir(path):
            pass
        raise ImageReadError("is a folder that could not be listed")
    im = open_image(path)
    seen[key] = name
    return FolderImage(name, im.mode, im.format, im.height, im.width, im.channels,
                       im.natural_mode, im.palette, im.sha256, path.stat().st_size, path)


def _check_files(files: Sequence[tuple[str, Path]], progress: ProgressFactory
                 ) -> tuple[list[FolderImage], list[Path], list[tuple[str, str]]]:
    """The first pass: every file opened and checked; the good ones' metadata and paths, and every bad one."""
    metas: list[FolderImage] = []
    paths: list[Path] = []
    bad: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    with progress("Checking images", len(files)) as bar:
        for name, path in files:
            try:
                metas.append(_check_file(name, path, seen))
                paths.append(path)
            except ImageReadError as exc:
                if not is_latentpack_archive(path):
                    bad.append((name, str(exc)))
            except OSError as exc:
                bad.append((name, f"cannot be read: {exc.strerror or exc}"))
            bar.update(1)
    return metas, paths, bad


def _stage(metas: Sequence[FolderImage], paths: Sequence[Path], mode: str, staging_dir: Path | None,
           progress: ProgressFactory) -> tuple[np.ndarray, np.ndarray, tempfile.TemporaryDirectory]:
    """The second pass: the working pixels of every good file in a temporary memmap; (offsets, pixels, its folder)."""
    c = NATURAL_CHANNELS[mode]
    sizes = np.array([m.height * m.width * c for m in metas], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    tmpdir = tempfile.TemporaryDirectory(prefix="latentpack-", dir=staging_dir)
    pixels = np.lib.format.open_memmap(
        os.path.join(tmpdir.name, "pixels.npy"), mode="w+", dtype=np.uint8, shape=(max(int(offsets[-1]), 1),)
    )
    with progress("Reading images", len(metas)) as bar:
        for i, path in enumerate(paths):
            im = open_image(path)
            pixels[offsets[i] : offsets[i + 1]] = to_working(im.natural, im.natural_mode, mode).reshape(-1)
            bar.update(1)
    pixels.flush()
    return offsets, pixels, tmpdir


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
