"""Extract images from an archive: decode with numpy, write safely, stream.

    archive -> check every target name -> decode a batch -> write each image
            (temp file + rename) -> next batch

Nothing is written, not even OUTDIR created, until every requested name has
been checked (inside the output folder, no clash, no existing file unless
``force``). A failed extraction (a full disk included) removes the files and
folders it created. Never imports TensorFlow.
"""
from __future__ import annotations

import io
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

from latentpack.codec.reconstruct import check_decodable, iter_reconstructions, load_decoder
from latentpack.formats import ArchiveError, read_archive, validate_architecture
from latentpack.progress import ProgressFactory, null_progress
from latentpack.safenames import UnsafeNameError, display_name, safe_target

__all__ = ["ExtractResult", "extract_archive", "select_images", "encode_image"]

#: Formats written back as themselves; anything else is written as PNG.
_WRITABLE = {"PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}, "PNG": {"optimize": False}}


@dataclass
class ExtractResult:
    """The files `extract_archive` wrote, in archive order."""

    paths: list[Path]


def select_images(names: Sequence[str], wanted: Sequence[str] | None) -> list[int]:
    """Indices of the wanted names (all when ``wanted`` is empty).

    Raises:
        KeyError: listing every wanted name that is not in the archive.
    """
    if not wanted:
        return list(range(len(names)))
    where = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in where]
    if missing:
        raise KeyError(f"not in the archive: {', '.join(missing)}")
    return sorted({where[n] for n in wanted})


def encode_image(image: Image.Image, fmt: str) -> bytes:
    """The bytes of an image saved in its source format (PNG as a fallback)."""
    buf = io.BytesIO()
    if fmt in _WRITABLE:
        try:
            image.save(buf, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
            return buf.getvalue()
        except (OSError, KeyError, ValueError):
            buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


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
    """
    contents = read_archive(archive)
    table = contents.images
    indices = select_images(table.names, names)
    outdir = Path(outdir)
    targets = _check_targets(archive, outdir, table.names, indices, force)
    try:
        check_decodable(validate_architecture(contents.decoder.architecture), contents.latents.shapes, table.names, indices)
    except ArchiveError as err:
        err.file = archive
        raise

    decoder = load_decoder(contents.decoder)
    made_outdirs = [p for p in [outdir, *outdir.parents] if not p.exists()]
    created: list[Path] = []
    made_dirs: list[Path] = []
    written: list[Path] = []
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with (progress or null_progress)("Extracting", len(indices)) as bar:
            for i, _, image in iter_reconstructions(decoder, contents.latents, table, indices):
                target = targets[i]
                missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
                target.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.extend(reversed(missing))
                is_new = not target.exists()
                _write_atomic(target, encode_image(image, table.formats[i]))
                if is_new:
                    created.append(target)
                written.append(target)
                bar.update(1)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        for d in reversed(made_outdirs[::-1] + made_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        raise
    return ExtractResult(paths=written)


def _check_targets(
    archive: str | os.PathLike, outdir: Path, names: Sequence[str], indices: Sequence[int], force: bool
) -> dict[int, Path]:
    """The checked target of every image to extract, before anything is written.

    Raises:
        UnsafeNameError: a name breaks a rule of `safe_target`, two names map
            to the same file (case or Unicode normalisation only differing,
            for case-insensitive disks), or one name is a folder of another.
        FileExistsError: targets exist and ``force`` is False.
    """
    targets: dict[int, Path] = {}
    seen: dict[str, str] = {}
    existing = []
    for i in indices:
        where = f"{os.fspath(archive)}: /images/names entry {i}"
        target = safe_target(outdir, names[i], where=where)
        key = unicodedata.normalize("NFC", str(target)).casefold()
        if key in seen:
            raise UnsafeNameError(names[i], f"maps to the same output file as {seen[key]!r}", where)
        seen[key] = names[i]
        if target.exists() or target.is_symlink():
            if target.is_dir() or target.is_symlink() or not force:
                existing.append(display_name(names[i]))
        targets[i] = target
    folders = {k for key in seen for k in _parents(key)}
    for key, name in seen.items():
        if key in folders:
            raise UnsafeNameError(name, "is both a file and the folder of another name", f"{os.fspath(archive)}: /images/names")
    if existing:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise FileExistsError(f"{len(existing)} file(s) exist in {outdir} (use --force to overwrite): {shown}")
    return targets


def _parents(key: str) -> list[str]:
    parts = key.split(os.sep)
    return [os.sep.join(parts[:n]) for n in range(1, len(parts))]
