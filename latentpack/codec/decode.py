"""Decode the images of an archive with numpy, a batch at a time (never imports TensorFlow).

    contents -> lossy:    float decoder -> batches of reconstructions
             -> lossless: fixed-point decoder + residuals -> exact pixels,
                          each checked against its stored sha256
             -> pixels:   the pixel model alone (no decoder, no latents) -> exact pixels, checked

`extract`, `verify` and the Python API (`latentpack.open`) all read images
through `iter_images`.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from latentpack.codec.entropy.lossless import DigestMismatchError, fixed_point_decoder, iter_exact
from latentpack.codec.runtime.latent_values import latent_values
from latentpack.codec.runtime.numpy_decoder import NumpyDecoder
from latentpack.codec.runtime.reconstruct import check_decodable, integer_latents, iter_reconstructions, load_decoder
from latentpack.formats import ArchiveContents, CorruptArchiveError, ImageTable, Latents, validate_architecture
from latentpack.fs.images import OUTPUT_MODES

__all__ = ["DECODING_PARTS", "ImageDecoder", "iter_images", "check_decodable_images", "check_image_table", "check_latent_range", "digest_checked"]

#: The parts of an archive that decoding its images reads (`latentpack.formats.read_archive`'s ``parts``;
#: ``additions``: which digest of digests covers which rows, 1.5).
DECODING_PARTS = ("decoder", "latents", "images", "lossless", "pixels", "additions")


def digest_checked(contents: ArchiveContents) -> bool:
    """Whether the archive's images decode exactly, each checked against its stored digest."""
    return contents.lossless is not None or contents.pixels is not None


def check_image_table(table: ImageTable, indices: Sequence[int] | None = None) -> None:
    """Refuse an image whose stored mode extraction cannot produce, or a ``P`` image without a palette.

    FORMAT.md allows any Pillow mode name and says ``P`` images SHOULD have
    a palette; this reader produces `OUTPUT_MODES` only.

    Raises:
        CorruptArchiveError: naming the image and ``/images/modes`` or ``/images/palette_index``.
    """
    rows = np.arange(len(table), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    modes = table.modes
    few = len(rows) * 8 < len(modes)  # a few images (random access): look at their rows only
    bad = [int(i) for i in rows if modes[i] not in OUTPUT_MODES] if few or not set(modes) <= OUTPUT_MODES else []
    if bad:
        i = bad[0]
        raise CorruptArchiveError(f"row {i} ({table.names[i]!r}): mode {modes[i]!r} is not one this reader "
                                  f"can write ({', '.join(sorted(OUTPUT_MODES))})", hdf5_path="/images/modes")
    no_palette = rows[np.asarray(table.palette_index)[rows] < 0] if len(rows) else rows
    bad = [int(i) for i in no_palette if modes[i] == "P"]
    if bad:
        i = bad[0]
        raise CorruptArchiveError(f"row {i} ({table.names[i]!r}): a palette image (mode P) without a palette",
                                  hdf5_path="/images/palette_index")


def check_latent_range(q: np.ndarray, step: float) -> None:
    """Refuse integer latents whose real values ``q * step`` overflow float32 (FORMAT.md: latents are finite).

    Raises:
        CorruptArchiveError: naming ``/latents`` and its ``step``.
    """
    top = max(abs(int(q.min())), abs(int(q.max()))) if q.size else 0
    if not float(top) * float(step) <= float(np.finfo(np.float32).max):  # Python floats: inf, no warning
        raise CorruptArchiveError(f"attribute step: {step!r} times a latent of {top} is not a finite float32",
                                  hdf5_path="/latents")


def check_decodable_images(contents: ArchiveContents, indices: Sequence[int]) -> None:
    """Refuse, before any work, an image this reader cannot write, or whose decoding would need more memory
    than it allows.

    Raises:
        ArchiveError: naming the image and the HDF5 path at fault.
    """
    check_image_table(contents.images, indices)
    names = contents.images.names
    if contents.pixels is not None:
        from latentpack.codec.pixel_model.exact import check_block_sizes

        check_block_sizes(contents.pixels, contents.images, indices)
        return
    check_decodable(validate_architecture(contents.decoder.architecture), contents.latents.shapes, names, indices)


def iter_images(contents: ArchiveContents, indices: Sequence[int] | None = None, strict: bool = True
                ) -> Iterator[tuple[int, Image.Image, bytes | None, bool]]:
    """Decode images of an archive: ``(index, image, full sha256 or None, digest matches)``.

    Images come in index order; the decoder runs on batches of them.

    Args:
        contents: The archive, as `latentpack.formats.read_archive` returns it.
        indices: Sorted indices of the images to decode (default all).
        strict: Lossless: raise on a digest mismatch instead of reporting it.

    Raises:
        DigestMismatchError: (lossless, ``strict``) an image's pixels do not
            have its stored sha256.
        CorruptArchiveError: a stream that does not decode, a mode this
            reader cannot write, a non-finite latent or reconstruction.
    """
    return ImageDecoder(contents).iter_images(indices, strict)


class ImageDecoder:
    """Decodes images of one archive again and again, keeping what every call shares.

    The numpy (or fixed-point) decoder is built once; coded latents are
    decoded once, on the first call that needs them (the stream codes all
    images together), generated latents (``--codes index``) are made per
    image and float32 ones read per image (slices of a lazy archive's
    `latentpack.formats.lazy.LazyArray`). `latentpack.open` keeps one.

    Args:
        contents: The archive (`latentpack.formats.read_archive`, or a lazy archive's `contents`).
    """

    def __init__(self, contents: ArchiveContents):
        self.contents = contents
        self._decoder: NumpyDecoder | None = None
        self._latents: Latents | None = None
        self._exact: tuple | None = None

    def iter_images(self, indices: Sequence[int] | None = None, strict: bool = True
                    ) -> Iterator[tuple[int, Image.Image, bytes | None, bool]]:
        """As `iter_images`."""
        check_image_table(self.contents.images, indices)
        images = self._iter_images(indices, strict)
        while True:
            with np.errstate(all="ignore"):  # overflow in a hostile archive is refused, never printed as a warning
                item = next(images, None)
            if item is None:
                return
            yield item

    def decoder(self) -> NumpyDecoder:
        """The numpy decoder (lossy archives), built once."""
        self._decoder = self._decoder or load_decoder(self.contents.decoder)
        return self._decoder

    def float_latents(self) -> Latents:
        """The latents with float32 values: read, generated per slice, or (coded) decoded once."""
        if self._latents is None:
            self._latents = latent_values(self.contents.latents)
        return self._latents

    def _iter_images(self, indices: Sequence[int] | None, strict: bool
                     ) -> Iterator[tuple[int, Image.Image, bytes | None, bool]]:
        contents, table = self.contents, self.contents.images
        if contents.pixels is not None:
            from latentpack.codec.pixel_model.exact import iter_exact_pixels

            for i, _, image, digest, ok in iter_exact_pixels(contents.pixels, table, indices, strict):
                yield i, image, digest, ok
            return
        if contents.lossless is None:
            for i, _, image in iter_reconstructions(self.decoder(), self.float_latents(), table, indices):
                yield i, image, None, True
            return
        q, fp = self._exact_decoder()
        lat = contents.latents
        for i, _, image, digest, ok in iter_exact(contents.lossless, fp, q, lat.offsets, lat.shapes, table,
                                                  fp.spec.output_mode, indices, strict):
            yield i, image, digest, ok

    def _exact_decoder(self) -> tuple:
        """(lossless residuals) The integer latents, decoded once and range-checked, and the fixed-point decoder."""
        if self._exact is None:
            ints = integer_latents(self.contents.latents)
            if ints is None:
                raise DigestMismatchError("a lossless archive must store integer latents", hdf5_path="/latents")
            q, step = ints
            check_latent_range(q, step)
            self._exact = q, fixed_point_decoder(self.contents.decoder, step, self.contents.lossless.thresholds)
        return self._exact
