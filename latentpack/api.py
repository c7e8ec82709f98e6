"""The public Python API: read an archive's images as numpy arrays, or compress a folder.

    a = latentpack.open("photos.lpk")     # reads and checks the file (numpy, h5py)
    len(a), a.names, a.info               # a.info: what ``inspect --json`` prints
    a[0], a["cats/tom.png"]               # numpy arrays, as ``extract`` would write them
    for batch in a.batches(64): ...       # lists of arrays; the decoder runs on batches

``a[i]`` equals ``np.asarray(Image.open(f))`` of the file ``latentpack extract``
writes for that image (for JPEG sources: the pixels before JPEG re-encoding).
Reading never imports TensorFlow; `compress` does, when it trains.
"""
from __future__ import annotations

import itertools
import os
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from latentpack.errors import OptionError
from latentpack.ops.extract import select_images

if TYPE_CHECKING:
    from latentpack.ops.compress import CompressResult
    from latentpack.formats import ArchiveContents

__all__ = ["Archive", "open", "compress"]


class Archive:
    """An archive opened for reading (`latentpack.open`): its images as numpy arrays.

    The whole archive is read and checked when it is opened; images are
    decoded when asked for, a batch at a time (`latentpack.codec.decode`).
    Lossless archives decode exactly, each image checked against its stored
    sha256. Use as a context manager, or call `close`.
    """

    def __init__(self, path: str | os.PathLike):
        from latentpack.codec.decode import check_decodable_images
        from latentpack.formats import ArchiveError, read_archive
        from latentpack.fs.special import require_regular

        self.path = os.fspath(path)
        require_regular(path, "archive")  # a FIFO or device would block the HDF5 open
        contents = read_archive(path)
        names = contents.images.names
        try:
            check_decodable_images(contents, range(len(names)))
        except ArchiveError as err:
            err.file = err.file or self.path
            raise
        self._contents = contents

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._contents is None else f"{len(self)} images"
        return f"<latentpack.Archive {self.path!r}: {state}>"

    def close(self) -> None:
        """Drop what was read (the file itself is not held open)."""
        self._contents = None

    @property
    def contents(self) -> ArchiveContents:
        """The archive's contents (`latentpack.formats.ArchiveContents`)."""
        if self._contents is None:
            raise ValueError(f"the archive {self.path!r} is closed")
        return self._contents

    def __len__(self) -> int:
        return len(self.contents.images)

    @property
    def names(self) -> list[str]:
        """The stored names of the images, in archive order."""
        return list(self.contents.images.names)

    @cached_property
    def info(self) -> dict[str, Any]:
        """What ``latentpack inspect --json`` prints for this archive (the whole file is checked)."""
        from latentpack.ops.inspect import archive_summary

        self.contents  # refuse when closed
        return archive_summary(self.path).as_json()

    def __getitem__(self, key: int | str) -> np.ndarray:
        """One image's pixels, by position (negative counts from the end) or by stored name.

        Raises:
            IndexError: a position out of range.
            MissingImagesError: (a KeyError) a name the archive does not hold.
        """
        if isinstance(key, str):
            (index,) = select_images(self.contents.images.names, [key])
        elif isinstance(key, (int, np.integer)):
            index = int(key) + len(self) if key < 0 else int(key)
            if not 0 <= index < len(self):
                raise IndexError(f"image index {key} out of range for {len(self)} images")
        else:
            raise TypeError(f"an image is chosen by int or str, got {type(key).__name__}")
        return next(self._arrays([index]))

    def __iter__(self) -> Iterator[np.ndarray]:
        """Every image's pixels in archive order (decoded in batches)."""
        return self._arrays(range(len(self)))

    def items(self, names: Sequence[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, pixels)`` of every image (or of ``names``), in archive order, decoded in batches."""
        indices = select_images(self.contents.images.names, names)
        table = self.contents.images
        return ((table.names[i], pixels) for i, pixels in zip(indices, self._arrays(indices)))

    def batches(self, size: int = 64, names: Sequence[str] | None = None) -> Iterator[list[np.ndarray]]:
        """The images' pixels (all, or ``names``) in archive order, ``size`` at a time.

        Raises:
            OptionError: (a ValueError) ``size`` below 1.
        """
        if size < 1:
            raise OptionError(f"`size` must be >= 1, got {size}")
        stream = self._arrays(select_images(self.contents.images.names, names))
        while batch := list(itertools.islice(stream, size)):
            yield batch

    def _arrays(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """Decode the images at sorted ``indices``: one stream, so the decoder runs on batches."""
        from latentpack.codec.decode import iter_images

        from latentpack.formats import ArchiveError

        try:
            for _, image, _, _ in iter_images(self.contents, indices):
                yield np.asarray(image)
        except ArchiveError as err:  # a stream that does not decode: name the file as the reader does
            err.file = err.file or self.path
            raise


def open(path: str | os.PathLike) -> Archive:  # noqa: A001  (latentpack.open, like gzip.open)
    """Open an archive for reading.

    Raises:
        ArchiveError: the file is not a valid latentpack archive.
        FileNotFoundError: there is no such file.
    """
    return Archive(path)


def compress(folder: str | os.PathLike, archive: str | os.PathLike, **options: Any) -> CompressResult:
    """Train on ``folder`` and write ``archive``; the same options as ``latentpack compress``.

    Args:
        folder: The image folder.
        archive: The archive to write.
        **options: The keyword arguments of
            `latentpack.ops.compress.compress_folder` (``latent_dims``,
            ``epochs``, ``arch``, ``lossless``, ``quality``, ...).

    Returns:
        The `CompressResult` (``result.path``, ``result.contents``).
    """
    from latentpack.ops.compress import compress_folder

    return compress_folder(folder, archive, **options)
