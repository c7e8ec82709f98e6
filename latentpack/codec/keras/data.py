"""Training data for Keras, read from the folder's memory-mapped staging file (memory does not grow).

    whole images:  shuffled batches of equal-sized images          (``training_data`` "images")
    coded images:  (fixed code, image) batches for a decoder alone
    patches:       random square patches of images of any size     (``training_data`` "patches")

Every read is counted (`ImageFolder.pages_read`), so the file's pages do not
pile up in resident memory over an epoch.
"""
from __future__ import annotations

import math

import numpy as np

from latentpack.codec import quiet_tensorflow
from latentpack.fs.folder import ImageFolder

quiet_tensorflow()
import keras  # noqa: E402

__all__ = ["PATCH_SIZE", "WholeImages", "CodedImages", "Patches", "pad_to", "patch_size"]

#: Side of the square training patches of the ``conv`` architecture.
PATCH_SIZE = 64


def pad_to(x: np.ndarray, h: int, w: int) -> np.ndarray:
    ph, pw = h - x.shape[0], w - x.shape[1]
    if ph <= 0 and pw <= 0:
        return x
    return np.pad(x, ((0, max(ph, 0)), (0, max(pw, 0)), (0, 0)), mode="edge")


class WholeImages(keras.utils.PyDataset):
    """Shuffled batches of whole equal-sized images from the staging file."""

    def __init__(self, folder: ImageFolder, batch_size: int, seed: int):
        super().__init__(workers=1, use_multiprocessing=False)
        h, w = folder.images.size(0)
        self.folder = folder
        self.array = folder.pixels[: len(folder) * h * w * folder.channels].reshape(len(folder), h, w, folder.channels)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(folder))

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """The images at ``idx`` as float32 in [0, 1] (the staging file's pages counted: `ImageFolder.pages_read`)."""
        x = self.array[idx]
        self.folder.pages_read(x.nbytes)
        return x.astype(np.float32) / 255.0

    def __getitem__(self, i: int):
        x = self.rows(np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size]))
        return x, x

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.order))


class CodedImages(WholeImages):
    """Shuffled (fixed code, image) batches for a decoder trained without an encoder."""

    def __init__(self, folder: ImageFolder, codes: np.ndarray, batch_size: int, seed: int):
        super().__init__(folder, batch_size, seed)
        self.codes = codes

    def __getitem__(self, i: int):
        idx = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
        return self.codes[idx], self.rows(idx)


class Patches(keras.utils.PyDataset):
    """Batches of random square patches from images of any size."""

    def __init__(self, folder: ImageFolder, batch_size: int, seed: int, patch: int, steps: int):
        super().__init__(workers=1, use_multiprocessing=False)
        self.folder = folder
        self.batch_size = batch_size
        self.patch = patch
        self.steps = steps
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int):
        p = self.patch
        out = np.empty((self.batch_size, p, p, self.folder.channels), dtype=np.float32)
        for b, k in enumerate(self.rng.integers(0, len(self.folder), self.batch_size)):
            img = self.folder.working(int(k))
            top = int(self.rng.integers(0, max(img.shape[0] - p, 0) + 1))
            left = int(self.rng.integers(0, max(img.shape[1] - p, 0) + 1))
            out[b] = pad_to(img[top : top + p, left : left + p], p, p)
        out /= 255.0
        return out, out


def patch_size(folder: ImageFolder, stride: int) -> int:
    largest = int(max(folder.images.heights.max(), folder.images.widths.max()))
    return min(PATCH_SIZE, -(-largest // stride) * stride)
