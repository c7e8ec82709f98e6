"""Extract images from an archive: decode with numpy, write safely, stream.

    archive -> check every target name -> decode a batch -> write each image
            (temp file + rename) -> next batch

Nothing is written, not even OUTDIR created, until every requested name has
been checked (inside the output folder, no clash, no existing file unless
``force``). A failed extraction (a full disk included) removes the files and
folders it created. Never imports TensorFlow.

Memory grows with the number of images only by what the archive itself needs
(the latents, the names) plus a few bytes an image: the checks keep one dict
entry per name (keyed by the name itself when it is its own clash key), and
the targets are rebuilt from the names while writing instead of being held
as one `Path` per image.

Lossless archives decode exactly (`latentpack.codec.lossless`): every image's
pixels are checked against its stored sha256 before it is written, the file
bytes are decoded again and checked (a format that cannot hold the pixels
exactly, such as JPEG, is written as PNG data instead), and when every image
is extracted the digest of all full digests is checked too.
"""
from __future__ import annotations

import io
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from latentpack.codec.entropy.lossless import AllDigests, DigestMismatchError, fixed_point_decoder, iter_exact
from latentpack.codec.runtime.reconstruct import check_decodable, integer_latents, iter_reconstructions, load_decoder
from latentpack.formats import ArchiveContents, ArchiveError, read_archive, validate_architecture
from latentpack.images import ImageReadError, open_image
from latentpack.progress import ProgressFactory, null_progress
from latentpack.safenames import UnsafeNameError, display_name, safe_target

__all__ = ["ExtractResult", "extract_archive", "select_images", "encode_image", "encode_exact", "iter_images"]

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
        return [_target(self.root, name) for name in self.names]


def select_images(names: Sequence[str], wanted: Sequence[str] | None) -> Sequence[int]:
    """Indices of the wanted names, sorted (all, as a `range`, when ``wanted`` is empty).

    Raises:
        KeyError: listing every wanted name that is not in the archive.
    """
    if not wanted:
        return range(len(names))
    where = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in where]
    if missing:
        raise KeyError(f"not in the archive: {', '.join(missing)}")
    return sorted({where[n] for n in wanted})


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


def iter_images(contents: ArchiveContents, indices: Sequence[int] | None = None, strict: bool = True
                ) -> Iterator[tuple[int, Image.Image, bytes | None, bool]]:
    """Decode images of an archive: ``(index, image, full sha256 or None, digest matches)``.

    Lossless archives decode exactly and check each digest (raising
    `DigestMismatchError` when ``strict``); lossy ones decode with the float
    decoder (digest None, matches True).
    """
    table = contents.images
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


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # a full disk names no file
            raise OSError(err.errno, err.strerror or str(err), str(target)) from err
        raise


def extract_archive(
    archive: str | os.PathLike,
    outdir: str | os.PathLike,
    names: Sequence[str] | None = None,
    *,
    force: bool = False,
    progress: ProgressFactory | None = None,
) -> ExtractResult:
    """Write the reconstructed images under ``outdir`` with their stored names.

    Args:
        archive: The archive.
        outdir: The output folder (created if missing).
        names: Images to extract (default all).
        force: Overwrite existing files.
        progress: Optional ``progress(label, total)`` factory.

    Raises:
        ArchiveError: the archive is not valid.
        KeyError: a requested name is not in the archive.
        UnsafeNameError: a stored name would write outside ``outdir``, or two
            names would write the same file.
        FileExistsError: a target exists and ``force`` is False.
        DigestMismatchError: (lossless) an image decodes to pixels whose
            sha256 differs from the stored one; nothing wrong is left behind.
    """
    contents = read_archive(archive)
    table = contents.images
    indices = select_images(table.names, names)
    outdir = Path(outdir)
    root = _check_targets(archive, outdir, table.names, indices, force)
    try:
        check_decodable(validate_architecture(contents.decoder.architecture), contents.latents.shapes, table.names, indices)
    except ArchiveError as err:
        err.file = archive
        raise

    made_outdirs = [p for p in [outdir, *outdir.parents] if not p.exists()]
    created = np.zeros(len(table), dtype=bool)
    all_digests = AllDigests()
    made_dirs: list[Path] = []
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with (progress or null_progress)("Extracting", len(indices)) as bar:
            for i, image, digest, _ in iter_images(contents, indices):
                target = _target(root, table.names[i])
                missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
                target.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.extend(reversed(missing))
                is_new = not target.exists()
                if digest is None:
                    data = encode_image(image, table.formats[i])
                else:
                    data = encode_exact(image, table.formats[i], digest, table.names[i])
                    all_digests.add(digest)
                _write_atomic(target, data)
                created[i] = is_new
                bar.update(1)
        if contents.lossless is not None and all_digests.count == len(table):
            all_digests.check(table.sha256_all)
    except BaseException:
        for i in np.flatnonzero(created):
            _target(root, table.names[i]).unlink(missing_ok=True)
        for d in reversed(made_outdirs[::-1] + made_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        raise
    chosen = table.names if len(indices) == len(table) else [table.names[i] for i in indices]
    return ExtractResult(root=root, names=chosen)


def _target(root: Path, name: str) -> Path:
    """Where a name checked by `safe_target` is written under the resolved output folder (the same path)."""
    return root.joinpath(*name.split("/"))


def _check_targets(
    archive: str | os.PathLike, outdir: Path, names: Sequence[str], indices: Sequence[int], force: bool
) -> Path:
    """Check the target of every image to extract, before anything is written.

    Targets are not kept (`_target` rebuilds each from its name while
    writing); what is kept is one clash key per name, which is the name
    object itself when normalising and case-folding leave it unchanged.

    Returns:
        The output folder, symlinks resolved: the root of every target.

    Raises:
        UnsafeNameError: a name breaks a rule of `safe_target`, two names map
            to the same file (case or Unicode normalisation only differing,
            for case-insensitive disks), or one name is a folder of another.
        FileExistsError: targets exist and ``force`` is False.
    """
    seen: dict[str, str] = {}
    existing = 0
    shown: list[str] = []
    for i in indices:
        name = names[i]
        where = f"{os.fspath(archive)}: /images/names entry {i}"
        target = safe_target(outdir, name, where=where)
        key = _clash_key(name)
        if key in seen:
            raise UnsafeNameError(name, f"maps to the same output file as {seen[key]!r}", where)
        seen[key] = name
        if target.exists() or target.is_symlink():
            if target.is_dir() or target.is_symlink() or not force:
                existing += 1
                if len(shown) < 5:
                    shown.append(display_name(name))
    # a key that is a parent folder of another key: found from the children, without a set of all folders
    folders = {parent for key in seen for parent in _parents(key) if parent in seen}
    for key, name in seen.items():
        if key in folders:
            raise UnsafeNameError(name, "is both a file and the folder of another name", f"{os.fspath(archive)}: /images/names")
    if existing:
        more = f" and {existing - len(shown)} more" if existing > len(shown) else ""
        raise FileExistsError(f"{existing} file(s) exist in {outdir} (use --force to overwrite): {', '.join(shown)}{more}")
    return Path(os.path.realpath(outdir))


def _clash_key(name: str) -> str:
    """Names with the same key would be the same file on a case-insensitive or normalising disk.

    The key of a target is that of its name: the output folder is the same for
    all, and nothing composes with the ``/`` between folder and name.
    """
    key = unicodedata.normalize("NFC", name).casefold()
    return name if key == name else key


def _parents(key: str) -> Iterator[str]:
    """The proper parent folders of a key, shortest first (``a``, ``a/b`` of ``a/b/c``)."""
    end = key.find("/")
    while end != -1:
        yield key[:end]
        end = key.find("/", end + 1)
