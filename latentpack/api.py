"""The public Python API: read an archive's images as numpy arrays, or compress a folder.

    a = latentpack.open("photos.lpk")     # checks the file; reads its tables, not its latents (numpy, h5py)
    len(a), a.names, a.info               # a.info: what ``inspect --json`` prints
    a[0], a["cats/tom.png"]               # numpy arrays, as ``extract`` would write them (reads only image 0's chunks)
    for batch in a.batches(64): ...       # lists of arrays; the decoder runs on batches
    for x in a.training_batches(64, shuffle=True, seed=0): ...   # uint8 (b, h, w, c), one epoch per pass
    a.to_tf_dataset(batch_size=64)        # a tf.data.Dataset of the same (imports TensorFlow, only then)

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
from latentpack.ops.extract import MissingImagesError, select_images

if TYPE_CHECKING:
    from latentpack.feed import TrainingBatches
    from latentpack.ops.add import AddResult
    from latentpack.ops.compress import CompressResult
    from latentpack.formats import ArchiveContents

__all__ = ["Archive", "open", "compress", "add"]


class Archive:
    """An archive opened for reading (`latentpack.open`): its images as numpy arrays.

    Opening reads and checks the header, the decoder (description and
    weights), the per-image tables and names and the latents' index, and
    every image's decoding limits; it reads no latent values and no coded
    stream. ``a[i]`` then reads only what image ``i`` needs: its slice of
    float32 latents (the HDF5 chunks holding it), its block's slice of a
    lossless stream; coded latents (one stream for all images) are decoded
    once, on the first image asked for. A damaged part raises the
    `ArchiveError` the full read would (naming the file and HDF5 path) when
    it is touched; `latentpack verify` checks everything. The file stays
    open until `close` (use as a context manager).

    Lossless archives decode exactly, each image checked against its stored
    sha256.
    """

    def __init__(self, path: str | os.PathLike):
        from latentpack.codec.decode import DECODING_PARTS, ImageDecoder, check_decodable_images
        from latentpack.formats import ArchiveError, open_archive
        from latentpack.fs.special import require_regular

        self.path = os.fspath(path)
        require_regular(path, "archive")  # a FIFO or device would block the HDF5 open
        self._reader = open_archive(path, lazy=True)
        try:
            contents = self._reader.contents(DECODING_PARTS)
            check_decodable_images(contents, range(len(contents.images)))
        except BaseException as err:
            self._reader.close()
            if isinstance(err, ArchiveError):
                err.file = err.file or self.path
            raise
        self._decoding: ArchiveContents | None = contents
        self._images = ImageDecoder(contents)
        self._where: dict[str, int] | None = None

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._decoding is None else f"{len(self)} images"
        return f"<latentpack.Archive {self.path!r}: {state}>"

    def close(self) -> None:
        """Close the file and drop what was read."""
        self._decoding = None
        self._reader.close()

    def __del__(self) -> None:  # ``latentpack.open(p)[0]`` closes its file when the archive is dropped
        if getattr(self, "_reader", None) is not None:
            self.close()

    @property
    def contents(self) -> ArchiveContents:
        """The archive's contents (`latentpack.formats.ArchiveContents`); bulk datasets (latent values, coded
        streams) are `latentpack.formats.lazy.LazyArray` objects, read by slices."""
        self._open_contents()
        return self._reader.contents()

    def _open_contents(self) -> ArchiveContents:
        if self._decoding is None:
            raise ValueError(f"the archive {self.path!r} is closed")
        return self._decoding

    def __len__(self) -> int:
        return len(self._open_contents().images)

    @property
    def names(self) -> list[str]:
        """The stored names of the images, in archive order."""
        return list(self._open_contents().images.names)

    @cached_property
    def info(self) -> dict[str, Any]:
        """What ``latentpack inspect --json`` prints for this archive (the whole file is checked)."""
        from latentpack.ops.inspect import archive_summary

        self._open_contents()  # refuse when closed
        return archive_summary(self.path).as_json()

    def index(self, key: int | str) -> int:
        """The position of an image given by position (negative counts from the end) or by stored name.

        Raises:
            IndexError: a position out of range.
            MissingImagesError: (a KeyError) a name the archive does not hold.
        """
        if isinstance(key, str):
            if self._where is None:
                self._where = {n: i for i, n in enumerate(self._open_contents().images.names)}
            if key not in self._where:
                raise MissingImagesError(f"not in the archive: {key}")
            return self._where[key]
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            index = int(key) + len(self) if key < 0 else int(key)
            if not 0 <= index < len(self):
                raise IndexError(f"image index {key} out of range for {len(self)} images")
            return index
        raise TypeError(f"an image is chosen by int or str, got {type(key).__name__}")

    def __getitem__(self, key: int | str) -> np.ndarray:
        """One image's pixels, by position (negative counts from the end) or by stored name; reads only what
        that image needs (see `Archive`).

        Raises:
            IndexError: a position out of range.
            MissingImagesError: (a KeyError) a name the archive does not hold.
        """
        return next(self._arrays([self.index(key)]))

    def __iter__(self) -> Iterator[np.ndarray]:
        """Every image's pixels in archive order (decoded in batches)."""
        return self._arrays(range(len(self)))

    def items(self, names: Sequence[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, pixels)`` of every image (or of ``names``), in archive order, decoded in batches."""
        table = self._open_contents().images
        indices = select_images(table.names, names)
        return ((table.names[i], pixels) for i, pixels in zip(indices, self._arrays(indices)))

    def batches(self, size: int = 64, names: Sequence[str] | None = None) -> Iterator[list[np.ndarray]]:
        """The images' pixels (all, or ``names``) in archive order, ``size`` at a time, as lists of arrays
        (any archive, mixed sizes too; for training, `training_batches`).

        Raises:
            OptionError: (a ValueError) ``size`` below 1.
        """
        if size < 1:
            raise OptionError(f"`size` must be >= 1, got {size}")
        stream = self._arrays(select_images(self._open_contents().images.names, names))
        while batch := list(itertools.islice(stream, size)):
            yield batch

    def training_batches(self, batch_size: int = 64, *, shuffle: bool = False, seed: int | None = None,
                         drop_remainder: bool = False, names: Sequence[str] | None = None) -> TrainingBatches:
        """Batches for training: uint8 arrays ``(b, h, w, c)`` of images of one shape and mode; an iterable
        whose every pass is one epoch, reshuffled each time when ``shuffle`` (`latentpack.feed.TrainingBatches`).

        Raises:
            OptionError: (a ValueError) ``batch_size`` below 1, or images of different shapes or modes.
        """
        from latentpack.feed import TrainingBatches

        return TrainingBatches(self, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
                               names=names)

    def to_tf_dataset(self, batch_size: int = 64, **options: Any) -> Any:
        """A `tf.data.Dataset` of `training_batches` (`latentpack.feed.tf_dataset`; imports TensorFlow)."""
        from latentpack.feed import tf_dataset

        return tf_dataset(self, batch_size, **options)

    def _arrays(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """Decode the images at sorted ``indices``: one stream, so the decoder runs on batches."""
        from latentpack.formats import ArchiveError

        self._open_contents()
        try:
            for _, image, _, _ in self._images.iter_images(indices):
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


def add(archive: str | os.PathLike, *sources: str | os.PathLike, **options: Any) -> "AddResult":
    """Add the images of folders and files to ``archive`` without retraining; ``latentpack add``.

    Args:
        archive: The archive to extend (replaced atomically unless ``output`` is given).
        *sources: Folders (their files named relative to them) and files (named by their file name).
        **options: The keyword arguments of `latentpack.ops.add.add_images`
            (``output``, ``force``, ``prefix``, ``fit_steps``, ``skip_bad``).

    Returns:
        The `AddResult` (``result.path``, ``result.names``, ``result.mean_psnr``).
    """
    from latentpack.ops.add import add_images

    if not sources:
        raise OptionError("latentpack.add needs at least one folder or file to add")
    return add_images(archive, list(sources), **options)
