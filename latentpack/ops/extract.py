"""The ``extract`` operation: decode with numpy, write safely, stream.

    archive -> check every target name (`latentpack.fs.output`) -> decode a
            batch (`latentpack.codec.decode`) -> encode each image in its
            source format -> write it (temp file + rename) -> next batch

Requested names are stored names, shell-style patterns or folder prefixes
(`match_images`); `extract_to_stream` writes the one image a name selects to
a stream (``extract -o -``). `output_format` chooses each file's format
(``--format``: PNG for reconstructions of JPEG and WebP sources by default).

Nothing is written, not even OUTDIR created, until every requested name has
been checked (inside the output folder, no clash, no existing file unless
``force``). A failed extraction (a full disk included) removes the files and
folders it created. Never imports TensorFlow.

Memory grows with the number of images only by what the archive itself needs
(the latents, the names) plus a few bytes an image (see `latentpack.fs.output`).

Lossless archives decode exactly (`latentpack.codec.entropy.lossless`): every image's
pixels are checked against its stored sha256 before it is written, the file
bytes are decoded again and checked (a format that cannot hold the pixels
exactly, such as JPEG, is written as PNG data instead), and when every image
is extracted the digest of all full digests is checked too.
"""
from __future__ import annotations

import fnmatch
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

from PIL import Image

from latentpack.codec.decode import DECODING_PARTS, check_decodable_images, digest_checked, iter_images
from latentpack.codec.entropy.lossless import AllDigests, DigestMismatchError
from latentpack.errors import LatentpackError, OptionError
from latentpack.formats import ArchiveContents, ArchiveError, CorruptArchiveError, read_archive
from latentpack.fs.images import ImageReadError, open_image
from latentpack.fs.output import OutputFolder, check_targets, target
from latentpack.fs.special import require_regular
from latentpack.progress import ProgressFactory, null_progress

__all__ = ["ExtractResult", "MissingImagesError", "extract_archive", "extract_to_stream", "select_images",
           "match_images", "parse_shard", "shard_images", "output_format", "FILE_FORMATS", "encode_image", "encode_exact"]

#: Formats written back as themselves; anything else is written as PNG.
_WRITABLE = {"PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}, "PNG": {"optimize": False}}


@dataclass
class ExtractResult:
    """What `extract_archive` wrote: the images' names, in archive order, under ``root``.

    Attributes:
        root: The output folder, symlinks resolved.
        names: The stored names of the images written, in archive order.
    """

    root: Path
    names: Sequence[str]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def paths(self) -> list[Path]:
        """The files written, in archive order (built on request: one `Path` per image)."""
        return [target(self.root, name) for name in self.names]


class MissingImagesError(LatentpackError, KeyError):
    """Names asked for that the archive does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "not found"


def select_images(names: Sequence[str], wanted: Sequence[str] | None) -> Sequence[int]:
    """Indices of the wanted names, sorted (all, as a `range`, when ``wanted`` is empty).

    Raises:
        MissingImagesError: (a KeyError) listing every wanted name that is not in the archive.
    """
    if not wanted:
        return range(len(names))
    where = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in where]
    if missing:
        raise MissingImagesError(f"not in the archive: {', '.join(missing)}")
    return sorted({where[n] for n in wanted})


def match_images(names: Sequence[str], patterns: Sequence[str] | None) -> Sequence[int]:
    """Indices, sorted, of the names that any of ``patterns`` selects (all, as a `range`, when none given).

    A pattern selects a stored name equal to it, a name it matches as a
    shell-style pattern (`fnmatch.fnmatchcase`: ``*``, ``?``, ``[0-9]``;
    ``*`` also crosses ``/``), and every name under it as a folder prefix
    (``digits`` or ``digits/`` selects ``digits/0.png``).

    Raises:
        MissingImagesError: listing every pattern that selects nothing.
    """
    if not patterns:
        return range(len(names))
    chosen: set[int] = set()
    missing = []
    for pattern in patterns:
        prefix = pattern.rstrip("/") + "/"
        regex = re.compile(fnmatch.translate(pattern))
        hits = [i for i, n in enumerate(names) if n == pattern or n.startswith(prefix) or regex.match(n)]
        if not hits:
            missing.append(pattern)
        chosen.update(hits)
    if missing:
        raise MissingImagesError(f"not in the archive: {', '.join(missing)}")
    return sorted(chosen)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (``extract --shard``) as ``(I, N)``: the I-th of N slices, counted from 1 (as ``split -n I/N``).

    Raises:
        OptionError: anything but two integers with ``1 <= I <= N``.
    """
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*", text)
    if not match:
        raise OptionError(f"expected I/N (the I-th of N slices, e.g. 1/4), got {text!r}")
    i, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= i <= n:
        raise OptionError(f"expected I/N with 1 <= I <= N (slices are counted from 1), got {text!r}")
    return i, n


def shard_images(indices: Sequence[int], shard: tuple[int, int] | None) -> Sequence[int]:
    """The I-th of N contiguous, balanced slices of the selected ``indices`` (all of them when ``shard`` is None).

    Slice ``I`` of ``N`` is ``indices[(I-1)*k // N : I*k // N]`` for ``k`` selected images: the N slices are
    disjoint, cover the selection in archive order and differ in size by at most one image (a slice may be
    empty when N exceeds k).
    """
    if shard is None:
        return indices
    i, n = shard
    if n < 1 or not 1 <= i <= n:
        raise OptionError(f"`shard` must be (I, N) with 1 <= I <= N, got {shard!r}")
    k = len(indices)
    return indices[(i - 1) * k // n : i * k // n]


#: ``extract --format``: ``auto`` writes reconstructions of lossy sources (JPEG, WebP) as PNG and the rest
#: in their source format; ``png`` writes PNG always; ``original`` the source format always (JPEG and WebP
#: re-encoded at quality 95). Lossless archives write exact files whatever the choice (see `encode_exact`).
FILE_FORMATS = ("auto", "png", "original")
_LOSSY_SOURCES = {"JPEG", "WEBP"}


def output_format(source: str, choice: str = "auto", *, lossless: bool = False) -> str:
    """The Pillow format an image whose source format is ``source`` is written in (`FILE_FORMATS`)."""
    if choice not in FILE_FORMATS:
        raise ValueError(f"`choice` must be one of {list(FILE_FORMATS)}, got {choice!r}")
    if choice == "png":
        return "PNG"
    if choice == "auto" and source in _LOSSY_SOURCES and not lossless:
        return "PNG"  # the reconstruction as it is, not degraded by a second lossy encoding
    return source


def encode_image(image: Image.Image, fmt: str, *, lossless: bool = False) -> bytes:
    """The bytes of an image saved in its source format (PNG as a fallback)."""
    buf = io.BytesIO()
    if fmt in _WRITABLE:
        options = dict(_SAVE_OPTIONS.get(fmt, {}))
        if lossless and fmt == "WEBP":
            options = {"lossless": True}
        try:
            image.save(buf, format=fmt, **options)
            return buf.getvalue()
        except (OSError, KeyError, ValueError):
            buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def encode_exact(image: Image.Image, fmt: str, digest: bytes, name: str) -> bytes:
    """File bytes that decode to pixels with the given sha256: the source format, else PNG.

    Raises:
        DigestMismatchError: neither encoding reproduces the pixels.
    """
    for attempt in dict.fromkeys([fmt, "PNG"]):
        data = encode_image(image, attempt, lossless=True)
        try:
            if open_image(io.BytesIO(data)).sha256 == digest:  # type: ignore[arg-type]
                return data
        except ImageReadError:
            pass
    raise DigestMismatchError(f"image {name!r}: no file format reproduces its pixels exactly")


def _encoded(table, i: int, image: Image.Image, digest: bytes | None, file_format: str) -> bytes:
    """The file bytes of image ``i`` in the chosen format (a lossless one checked against its digest)."""
    fmt = output_format(table.formats[i], file_format, lossless=digest is not None)
    try:
        if digest is None:
            return encode_image(image, fmt)
        return encode_exact(image, fmt, digest, table.names[i])
    except (OSError, KeyError, ValueError) as err:  # Pillow: a mode neither the format nor PNG holds
        raise CorruptArchiveError(f"row {i} ({table.names[i]!r}): mode {table.modes[i]!r} cannot be written "
                                  f"as {' or '.join(dict.fromkeys([fmt or 'PNG', 'PNG']))} ({err})",
                                  hdf5_path="/images/formats") from None


def _write_images(contents: ArchiveContents, indices: Sequence[int], output: OutputFolder,
                  progress: ProgressFactory | None, file_format: str = "auto") -> None:
    """Decode the images and write each one (a lossless one checked against its digest first)."""
    table = contents.images
    all_digests = AllDigests.of(contents)
    with output as out, (progress or null_progress)("Extracting", len(indices)) as bar:
        for i, image, digest, _ in iter_images(contents, indices):
            out.write(i, _encoded(table, i, image, digest, file_format))
            if digest is not None:
                all_digests.add(digest)
            bar.update(1)
        if digest_checked(contents) and all_digests.count == len(table):
            all_digests.check(table.sha256_all)


def extract_to_stream(archive: str | os.PathLike, name: str, stream: BinaryIO, *, file_format: str = "auto") -> str:
    """Write the one image that ``name`` selects (`match_images`) to a binary stream (``extract -o -``).

    Returns:
        The stored name of the image written.

    Raises:
        MissingImagesError: ``name`` selects no image.
        OptionError: it selects more than one.
        ArchiveError, DigestMismatchError: as `extract_archive`.
    """
    require_regular(archive, "archive")
    contents = read_archive(archive)
    table = contents.images
    indices = match_images(table.names, [name])
    if len(indices) != 1:
        raise OptionError(f"{name!r} selects {len(indices):,} images; -o - writes exactly one "
                          f"(e.g. {table.names[indices[0]]})")
    try:
        check_decodable_images(contents, indices)
        for i, image, digest, _ in iter_images(contents, indices):
            stream.write(_encoded(table, i, image, digest, file_format))
    except ArchiveError as err:
        err.file = err.file or archive
        raise
    stream.flush()
    return table.names[indices[0]]


def extract_archive(
    archive: str | os.PathLike,
    outdir: str | os.PathLike,
    names: Sequence[str] | None = None,
    *,
    force: bool = False,
    progress: ProgressFactory | None = None,
    file_format: str = "auto",
    shard: tuple[int, int] | None = None,
) -> ExtractResult:
    """Write the reconstructed images under ``outdir`` with their stored names.

    Args:
        archive: The archive.
        outdir: The output folder (created if missing).
        names: Images to extract (default all): stored names, shell-style
            patterns or folder prefixes (`match_images`).
        force: Overwrite existing files.
        progress: Optional ``progress(label, total)`` factory.
        file_format: ``auto``, ``png`` or ``original`` (`FILE_FORMATS`, `output_format`);
            files keep their stored names whatever format they are written in.
        shard: ``(I, N)``: only the I-th of N slices of the selected images (`shard_images`).

    Raises:
        ArchiveError: the archive is not valid.
        NotRegularFileError: the archive is a FIFO, socket or device (not opened).
        MissingImagesError: a requested name or pattern selects no image.
        UnsafeNameError: a stored name would write outside ``outdir``, two
            names would write the same file, or one would write over the
            archive itself (even with ``force``).
        FileExistsError: a target exists and ``force`` is False.
        DigestMismatchError: (lossless) an image decodes to pixels whose
            sha256 differs from the stored one; nothing wrong is left behind.
    """
    require_regular(archive, "archive")  # a FIFO or device would block the HDF5 open
    contents = read_archive(archive, DECODING_PARTS)  # not the quality or the training record: never read
    table = contents.images
    indices = shard_images(match_images(table.names, names), shard)
    outdir = Path(outdir)
    root = check_targets(os.fspath(archive), outdir, table.names, indices, force, inputs=[archive])
    try:
        check_decodable_images(contents, indices)
    except ArchiveError as err:
        err.file = archive
        raise

    try:
        _write_images(contents, indices, OutputFolder(outdir, root, table.names), progress, file_format)
    except ArchiveError as err:  # a stream that does not decode, a digest that does not match
        err.file = err.file or archive
        raise
    chosen = table.names if len(indices) == len(table) else [table.names[i] for i in indices]
    return ExtractResult(root=root, names=chosen)
