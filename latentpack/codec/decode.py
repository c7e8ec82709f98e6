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

from PIL import Image

from latentpack.codec.entropy.lossless import DigestMismatchError, fixed_point_decoder, iter_exact
from latentpack.codec.runtime.reconstruct import check_decodable, integer_latents, iter_reconstructions, load_decoder
from latentpack.formats import ArchiveContents, validate_architecture

__all__ = ["iter_images", "check_decodable_images", "digest_checked"]


def digest_checked(contents: ArchiveContents) -> bool:
    """Whether the archive's images decode exactly, each checked against its stored digest."""
    return contents.lossless is not None or contents.pixels is not None


def check_decodable_images(contents: ArchiveContents, indices: Sequence[int]) -> None:
    """Refuse, before any work, an image whose decoding would need more memory than this reader allows.

    Raises:
        ArchiveError: naming the image and the HDF5 path at fault.
    """
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
    """
    table = contents.images
    if contents.pixels is not None:
        from latentpack.codec.pixel_model.exact import iter_exact_pixels

        for i, _, image, digest, ok in iter_exact_pixels(contents.pixels, table, indices, strict):
            yield i, image, digest, ok
        return
    if contents.lossless is None:
        decoder = load_decoder(contents.decoder)
        for i, _, image in iter_reconstructions(decoder, contents.latents, table, indices):
            yield i, image, None, True
        return
    ints = integer_latents(contents.latents)
    if ints is None:
        raise DigestMismatchError("a lossless archive must store integer latents", hdf5_path="/latents")
    q, step = ints
    fp = fixed_point_decoder(contents.decoder, step, contents.lossless.thresholds)
    mode = fp.spec.output_mode
    lat = contents.latents
    for i, _, image, digest, ok in iter_exact(contents.lossless, fp, q, lat.offsets, lat.shapes, table, mode,
                                              indices, strict):
        yield i, image, digest, ok
