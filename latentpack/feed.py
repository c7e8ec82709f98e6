"""Training straight from an archive: shuffled batches as uint8 arrays, and a `tf.data.Dataset` adapter.

    a = latentpack.open("digits.lpk")
    batches = a.training_batches(64, shuffle=True, seed=0)   # an iterable: one pass is one epoch
    for epoch in range(3):
        for x in batches: ...                                # uint8 (b, h, w, c); reshuffled each epoch
    ds = latentpack.tf_dataset(a, batch_size=64, shuffle=True, seed=0)   # imports TensorFlow, here only

Every image must have the same height, width and channels (``/images/shapes``)
and the same mode; ``x[k]`` is ``a[i]`` (the pixels ``extract`` writes) with a
channel axis (greyscale and palette images get ``c = 1``; bilevel ones are 0
or 255). Each batch is decoded in one call of the decoder, images in archive
order (what the latents' chunks and lossless blocks favour), then put in the
shuffled order; when the images' mode is the decoder's (lossy archives of L,
LA, RGB or RGBA images) the batch is the decoder's rounded output itself,
with no per-image conversion. Plain reading never imports TensorFlow; `tf_dataset` does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from latentpack.errors import OptionError

if TYPE_CHECKING:
    from latentpack.api import Archive

__all__ = ["TrainingBatches", "tf_dataset"]


class TrainingBatches:
    """Batches of an archive's images for training, one epoch per iteration (see the module).

    Args:
        archive: The open archive.
        batch_size: Images per batch (the last one of an epoch may be smaller
            unless ``drop_remainder``).
        shuffle: A new order every epoch: a permutation drawn from
            ``numpy.random.default_rng((seed, epoch))``; else archive order.
        seed: Makes the orders repeatable (None: fresh entropy each epoch).
        drop_remainder: Leave out an epoch's last, smaller batch.
        names: Only these stored names (default every image).

    Raises:
        OptionError: (a ValueError) ``batch_size`` below 1, or images of
            different shapes or modes, naming the first that differs.
    """

    def __init__(self, archive: Archive, batch_size: int = 64, *, shuffle: bool = False, seed: int | None = None,
                 drop_remainder: bool = False, names: Sequence[str] | None = None):
        from latentpack.ops.extract import select_images

        if batch_size < 1:
            raise OptionError(f"`batch_size` must be >= 1, got {batch_size}")
        self.archive, self.batch_size, self.shuffle, self.seed = archive, int(batch_size), shuffle, seed
        self.drop_remainder = drop_remainder
        table = archive._open_contents().images
        self.indices = np.asarray(select_images(table.names, names), dtype=np.int64)
        self.image_shape, self.mode = _common_shape(table, self.indices)
        #: The epoch the next iteration serves (0 first); set it to resume an order.
        self.epoch = 0

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = len(self.indices), self.batch_size
        return n // b if self.drop_remainder else -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        """The image indices of one epoch, in the order served."""
        if not self.shuffle:
            return self.indices
        rng = np.random.default_rng(None if self.seed is None else (int(self.seed), int(epoch)))
        return self.indices[rng.permutation(len(self.indices))]

    def __iter__(self) -> Iterator[np.ndarray]:
        order = self.order(self.epoch)
        self.epoch += 1
        for k in range(len(self)):
            yield self.decode(order[k * self.batch_size : (k + 1) * self.batch_size])

    def decode(self, indices: np.ndarray) -> np.ndarray:
        """The images at ``indices`` (any order) as one uint8 array ``(len(indices), h, w, c)``."""
        out = np.empty((len(indices), *self.image_shape), dtype=np.uint8)
        slot = {int(i): k for k, i in enumerate(indices)}
        wanted = sorted(slot)
        if self._direct:  # the decoder's own pixels are the images': no conversion, one array
            out[[slot[i] for i in wanted]] = self._reconstruct(wanted)
            return out
        for i, pixels in zip(wanted, self.archive._arrays(wanted)):
            out[slot[i]] = _as_channels(pixels, self.image_shape)
        return out

    @property
    def _direct(self) -> bool:
        """Lossy, and every image in the decoder's output mode: batches come straight from the decoder."""
        contents = self.archive._open_contents()
        return contents.lossless is None and contents.pixels is None and contents.decoder is not None \
            and self.mode == self.archive._images.decoder().spec.output_mode

    def _reconstruct(self, wanted: list[int]) -> np.ndarray:
        from latentpack.codec.runtime.reconstruct import decode_batch, to_uint8
        from latentpack.formats import ArchiveError

        images = self.archive._images
        h, w, _ = self.image_shape
        try:
            return to_uint8(decode_batch(images.decoder(), images.float_latents(), images.contents.images,
                                         wanted)[:, :h, :w, :])
        except ArchiveError as err:
            err.file = err.file or self.archive.path
            raise


def _common_shape(table: Any, indices: np.ndarray) -> tuple[tuple[int, int, int], str]:
    """``((h, w, c), mode)`` shared by the selected images; refuses a selection that mixes them."""
    if not len(indices):
        raise OptionError("no images to train on")
    first = int(indices[0])
    shape = tuple(int(v) for v in table.shapes[first])
    differs = np.flatnonzero(np.any(table.shapes[indices] != table.shapes[first], axis=1))
    if len(differs):
        j = int(indices[differs[0]])
        raise OptionError(f"training batches need images of one shape: {table.names[first]!r} is "
                          f"{'x'.join(map(str, shape))}, {table.names[j]!r} is "
                          f"{'x'.join(str(int(v)) for v in table.shapes[j])} (use names= to choose)")
    modes = table.modes
    mode = modes[first]
    if not (len(set(modes)) == 1 if len(indices) == len(modes) else all(modes[int(i)] == mode for i in indices)):
        j = next(int(i) for i in indices if modes[int(i)] != mode)
        raise OptionError(f"training batches need images of one mode: {table.names[first]!r} is {mode}, "
                          f"{table.names[j]!r} is {modes[j]} (use names= to choose)")
    channels = 1 if mode in ("1", "L", "P") else shape[2]
    return (shape[0], shape[1], channels), mode


def _as_channels(pixels: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * np.uint8(255)
    return pixels.reshape(shape)


def tf_dataset(archive: Archive, batch_size: int = 64, *, shuffle: bool = False, seed: int | None = None,
               drop_remainder: bool = False, names: Sequence[str] | None = None) -> Any:
    """A `tf.data.Dataset` of the archive's images: uint8 batches ``(b, h, w, c)``, as `TrainingBatches`.

    Each pass over the dataset (each Keras epoch) is one epoch of
    `TrainingBatches`: reshuffled when ``shuffle``, repeatably with ``seed``.
    The batch dimension is fixed when ``drop_remainder``. Decoding runs in
    Python (numpy) inside ``tf.data``; add ``.prefetch(...)`` to overlap it
    with training. Imports TensorFlow.

    Raises:
        OptionError: as `TrainingBatches`.
    """
    import tensorflow as tf

    batches = TrainingBatches(archive, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
                              names=names)
    spec = tf.TensorSpec((batch_size if drop_remainder else None, *batches.image_shape), tf.uint8)
    return tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec)
