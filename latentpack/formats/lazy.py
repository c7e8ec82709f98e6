"""Bulk datasets read a slice at a time: only the HDF5 chunks a slice overlaps are read.

An archive opened with ``lazy=True`` (`latentpack.formats.reader.Archive`)
hands out its bulk datasets (fields declared ``bulk=True``: latent values,
coded streams) as `LazyArray` instead of reading them whole::

    open:   dtype, shape, filters, declared size checked (as always), no data read
    x[a:b]: HDF5 reads the chunks overlapping [a, b) (Fletcher-32 checked by HDF5)
            -> the element's `Element.check_slice` (e.g. latents finite) -> ndarray

Every failure is the `ArchiveError` the eager reader raises, naming the file
and the dataset's HDF5 path. `bytes_read` counts what the slices asked for
(the bytes of the values, not the chunks HDF5 read to serve them).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from latentpack.formats.h5checks import reading, read_data

__all__ = ["LazyArray"]


class LazyArray:
    """A checked 1-D numeric dataset of an open archive, read by slices.

    Args:
        dataset: The h5py dataset (its storage, dtype and shape already checked).
        dtype: The declared dtype; slices come back as native arrays of it.
        path: Its HDF5 path, for errors.
        file: The archive's path, for errors.
        check: Called on every slice read (raising `ArchiveError`), or None.
    """

    def __init__(self, dataset: Any, dtype: Any, path: str, file: Any,
                 check: Callable[[np.ndarray], None] | None = None):
        self._ds = dataset
        self.dtype = np.dtype(dtype)
        self.shape = tuple(dataset.shape)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self.path, self.file = path, file
        self._check = check
        #: Bytes of the values handed out so far (slices and whole reads).
        self.bytes_read = 0

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def __repr__(self) -> str:
        return f"<LazyArray {self.path} {self.shape} {self.dtype.name}>"

    def _checked(self, load: Callable[[], np.ndarray]) -> np.ndarray:
        if not self._ds.id.valid:
            raise ValueError(f"the archive {str(self.file)!r} is closed; {self.path} can no longer be read")
        with reading(self.path, self.file):
            arr = load()
            if self._check is not None:
                self._check(arr)
        self.bytes_read += arr.nbytes
        return arr

    def __getitem__(self, key: Any) -> np.ndarray:
        """A slice (``x[a:b]``) read from the file; other keys read the whole dataset first."""
        if isinstance(key, slice) and key.step in (None, 1) and self.ndim == 1:
            start, stop, _ = key.indices(len(self))
            if stop <= start:
                return np.zeros(0, self.dtype)
            return self._checked(lambda: np.asarray(self._ds[start:stop], dtype=self.dtype))
        return self.read()[key]

    def read(self) -> np.ndarray:
        """The whole dataset (what the eager reader would have read)."""
        return self._checked(lambda: read_data(self._ds, self.dtype, self.path))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self.read()
        return arr if dtype is None else arr.astype(dtype)
