"""The metadata of a folder's images, one compact column per field.

A folder of 200,000 images read as one Python object per image (a dataclass,
its dict, a `Path`, a digest `bytes`) costs about a kilobyte an image before
anything is trained. `FolderImages` keeps instead, per image, its name (a
Python string: the archive stores it) and a few bytes of numpy columns:

    heights, widths       int32          sha256      (w, 32) uint8
    channels              uint8          file_bytes  int64
    mode, format, natural mode: uint8 codes into the few distinct values seen
    palettes: a dict, only for the images that have one (mode P)
    paths: the folder joined with the name (a dict holds the rare file whose
           name on disk differs from its stored name, e.g. not NFC)

It is a read-only ``Sequence[FolderImage]``: ``images[i]`` builds image i's
`FolderImage` on request (code that walks the images keeps working), while
the columns serve whatever touches every image (`image_table`, ``x_bits``).
"""
from __future__ import annotations

import os
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence, overload

import numpy as np

__all__ = ["FolderImage", "FolderImages"]


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


class _Codes:
    """Small strings (modes, formats) as one-byte codes into the distinct values met."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.codes = array("B")

    def append(self, value: str) -> None:
        try:
            k = self.values.index(value)
        except ValueError:
            k = len(self.values)
            if k > 255:
                raise ValueError(f"more than 256 distinct values; cannot code {value!r}") from None
            self.values.append(value)
        self.codes.append(k)

    def __getitem__(self, i: int) -> str:
        return self.values[self.codes[i]]

    def as_list(self) -> list[str]:
        """Every row's value (the strings are shared: 8 bytes a row)."""
        return [self.values[k] for k in self.codes]


class FolderImages(Sequence[FolderImage]):
    """The folder's good images, in archive order, held as columns (see the module docstring).

    Args:
        root: The folder the names are relative to (None: images without files).
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.names: list[str] = []
        self._heights = array("i")
        self._widths = array("i")
        self._channels = array("B")
        self._sha256 = bytearray()
        self._file_bytes = array("q")
        self._modes, self._formats, self._natural = _Codes(), _Codes(), _Codes()
        self._palettes: dict[int, np.ndarray] = {}
        self._paths: dict[int, Path] = {}

    @classmethod
    def of(cls, rows: Iterable[FolderImage], root: Path | None = None) -> FolderImages:
        """Columns made from `FolderImage` rows (each row's path kept as it is)."""
        out = cls(root)
        for im in rows:
            out.append(im)
        return out

    def append(self, im: FolderImage) -> None:
        """Add one image at the end (its ``path`` is kept only when the name does not give it)."""
        i = len(self.names)
        self.names.append(im.name)
        self._heights.append(im.height)
        self._widths.append(im.width)
        self._channels.append(im.channels)
        if len(im.sha256) != 32:
            raise ValueError(f"`sha256` must be 32 bytes, got {len(im.sha256)}")
        self._sha256 += im.sha256
        self._file_bytes.append(im.file_bytes)
        self._modes.append(im.mode)
        self._formats.append(im.format)
        self._natural.append(im.natural_mode)
        if im.palette is not None:
            self._palettes[i] = im.palette
        if im.path is not None and (self.root is None or Path(im.path) != self.root / im.name):
            self._paths[i] = Path(im.path)

    def __len__(self) -> int:
        return len(self.names)

    @overload
    def __getitem__(self, i: int) -> FolderImage: ...
    @overload
    def __getitem__(self, i: slice) -> list[FolderImage]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # IndexError as a list's, negative indices counted from the end
        return FolderImage(self.names[i], self._modes[i], self._formats[i], self._heights[i], self._widths[i],
                           self._channels[i], self._natural[i], self._palettes.get(i), self.digest(i),
                           self._file_bytes[i], self.path(i))

    def __iter__(self) -> Iterator[FolderImage]:
        return (self[i] for i in range(len(self)))

    def path(self, i: int) -> Path | None:
        """The file image ``i`` was read from (None for images without files)."""
        if i in self._paths:
            return self._paths[i]
        return None if self.root is None else self.root / self.names[i]

    def file(self, i: int) -> str:
        """`path` as a string (no `Path` made: pathlib interns each file name it parses, for good)."""
        if i in self._paths:
            return str(self._paths[i])
        if self.root is None:
            raise ValueError(f"image {i} ({self.names[i]!r}) has no file")
        return os.path.join(self.root, self.names[i])

    def digest(self, i: int) -> bytes:
        """Image ``i``'s full 32-byte sha256 (see `latentpack.fs.images.pixel_sha256`)."""
        return bytes(self._sha256[32 * i : 32 * i + 32])

    @property
    def heights(self) -> np.ndarray:
        """(w,) int64 heights."""
        return np.frombuffer(self._heights, dtype=np.int32).astype(np.int64)

    @property
    def widths(self) -> np.ndarray:
        """(w,) int64 widths."""
        return np.frombuffer(self._widths, dtype=np.int32).astype(np.int64)

    @property
    def channels(self) -> np.ndarray:
        """(w,) int64 channels of each original mode (P and 1 count as 1)."""
        return np.frombuffer(self._channels, dtype=np.uint8).astype(np.int64)

    @property
    def sha256(self) -> np.ndarray:
        """(w, 32) uint8 full digests (a read-only view)."""
        return np.frombuffer(self._sha256, dtype=np.uint8).reshape(-1, 32)

    @property
    def file_bytes(self) -> np.ndarray:
        """(w,) int64 size of each file on disk."""
        return np.frombuffer(self._file_bytes, dtype=np.int64)

    @property
    def modes(self) -> list[str]:
        """Each image's original Pillow mode."""
        return self._modes.as_list()

    @property
    def formats(self) -> list[str]:
        """Each image's source format."""
        return self._formats.as_list()

    @property
    def natural_modes(self) -> Sequence[str]:
        """The distinct natural modes met (``L``, ``LA``, ``RGB``, ``RGBA``)."""
        return tuple(self._natural.values)

    def natural_mode(self, i: int) -> str:
        return self._natural[i]

    @property
    def palettes(self) -> dict[int, np.ndarray]:
        """(256, 4) uint8 RGBA palettes of the ``P`` images, by index."""
        return dict(self._palettes)

    def size(self, i: int) -> tuple[int, int]:
        """(height, width) of image ``i``."""
        return self._heights[i], self._widths[i]

    def sizes(self) -> list[tuple[int, int]]:
        """(height, width) of every image."""
        return list(zip(self._heights, self._widths))
