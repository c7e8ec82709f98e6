"""``latentpack add``: append images to an archive without retraining.

    ARCHIVE -> read and check all of it -> what it can hold (working mode, image size)
    FOLDER|FILES -> every file checked (as compress checks a folder) -> names must be new
      lossy, lossless:  latents fitted to the stored decoder (gradient steps, decoder frozen; TensorFlow)
                        -> rounded at the archive's step -> latents re-coded (old integers unchanged)
                        lossy: PSNR measured as compress measures it
                        lossless: pixels coded under the stored tables as new blocks, decoded back, checked
      pixel model:      pixels coded under the stored network as new blocks, decoded back, checked
    -> image table, quality, header (z + w*y*32 < x for the new w), /additions + one batch (format 1.5)
    -> a temporary file beside the target, read back, renamed over ARCHIVE (or -o OUT): old or new, never a mix

Fitting, not an encoder: an archive stores only the decoder, so a new image's
latents are found by descent on the decoder's error. The archive needs no
encoder (which would cost about as many bytes as the decoder) and any archive
written since 1.0 can grow; the price is time (a few hundred decoder passes
per image) and, since the fitted latents need not be the encoder's, a PSNR
that can differ from the originally compressed images' (docs/BENCHMARKS.md).
Archives with generated codes (``--codes index``) cannot grow: their decoder
maps an image's index to that image, so a new one needs retraining.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

import latentpack
from latentpack.codec.assemble import image_table, measure_quality, open_original
from latentpack.codec.entropy.lossless import DigestMismatchError
from latentpack.codec.runtime.reconstruct import load_decoder, resolve_latents
from latentpack.errors import OptionError
from latentpack.formats import ArchiveContents, ImageTable, Quality, compute_header, read_archive, write_archive
from latentpack.formats.decoder_spec import validate_architecture
from latentpack.formats.schema import Additions
from latentpack.fs.folder import ImageFolder
from latentpack.fs.inputs import read_inputs
from latentpack.fs.names import display_name
from latentpack.fs.special import require_regular
from latentpack.ops.add_coding import append_latents, append_pixels, append_residuals, check_new_exact, concat
from latentpack.ops.add_latents import fit_new_latents
from latentpack.progress import ProgressFactory, null_progress

__all__ = ["AddResult", "add_images", "DEFAULT_FIT_STEPS"]

#: Gradient steps per new image by default (`latentpack.codec.keras.fit_latents`).
DEFAULT_FIT_STEPS = 200


@dataclass
class AddResult:
    """What `add_images` wrote and measured.

    Attributes:
        path: The archive written (ARCHIVE itself, or ``output``).
        names: The stored names of the images added, in archive order.
        batch: The batch they form (0 for the first ``add``).
        mean_psnr: Mean PSNR of the added images (``inf`` when exact).
        earlier_mean_psnr: Mean PSNR of the images that were already there.
        bytes_before, bytes_after: The archive's size before and after.
        timings: Seconds per stage.
        skipped: (name, reason) of the bad files left out (``skip_bad``).
        contents: The new archive's contents.
    """

    path: Path
    names: list[str]
    batch: int
    mean_psnr: float
    earlier_mean_psnr: float
    bytes_before: int
    bytes_after: int
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    contents: ArchiveContents | None = None

    def as_json(self) -> dict[str, Any]:
        """The summary ``add --json`` prints (non-finite numbers become null)."""
        return {"archive": os.fspath(self.path), "added": len(self.names), "batch": self.batch,
                "mean_psnr": self.mean_psnr, "earlier_mean_psnr": self.earlier_mean_psnr,
                "bytes_before": self.bytes_before, "bytes": self.bytes_after,
                "images": len(self.contents.images) if self.contents is not None else None,
                "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}


def _refuse(archive: Path, reason: str) -> OptionError:
    return OptionError(f"cannot add to {archive}: {reason}")


def _working_mode(contents: ArchiveContents, archive: Path) -> str:
    """The mode the archive's model makes; refuses an archive whose images need retraining to grow."""
    if contents.pixels is not None:
        return contents.pixels.working_mode
    if contents.latents.index_codes is not None:
        raise _refuse(archive, "its latents are generated from each image's index (--codes index), and its "
                               "decoder was trained on those codes alone: a new image needs retraining "
                               "(compress the folder again)")
    if contents.lossless is not None and contents.latents.quantized is None:
        raise _refuse(archive, "its lossless residuals need integer latents, and /latents stores float32 ones")
    return validate_architecture(contents.decoder.architecture).output_mode


def _check_names(old: Sequence[str], new: Sequence[str], archive: Path) -> None:
    """New names must not be in the archive, differ from one only by case, or be a folder of one (or hold one).

    Raises:
        OptionError: naming the first clash.
    """
    import unicodedata

    def key(name: str) -> str:
        return unicodedata.normalize("NFC", name).casefold()

    names = {key(n): n for n in old}
    folders: dict[str, str] = {}
    for n in old:
        parts = key(n).split("/")
        for j in range(1, len(parts)):
            folders.setdefault("/".join(parts[:j]), n)
    for name in new:
        k = key(name)
        clash = names.get(k)
        if clash is not None:
            same = "is already" if clash == name else f"differs only by letter case from {display_name(clash)!r},"
            raise OptionError(f"{archive}: {display_name(name)!r} {same} in the archive (rename it, or use "
                              "--prefix to add it under a folder); nothing was written")
        if k in folders:
            raise OptionError(f"{archive}: {display_name(name)!r} is a folder of the archive's "
                              f"{display_name(folders[k])!r}; nothing was written")
        parts = k.split("/")
        for j in range(1, len(parts)):
            if "/".join(parts[:j]) in names:
                raise OptionError(f"{archive}: {display_name(name)!r} would go under the archive's image "
                                  f"{display_name(names['/'.join(parts[:j])])!r}; nothing was written")


def _merged_table(old: ImageTable, new: ImageTable) -> ImageTable:
    """The image table with the new rows after the old (digests cut to the archive's length, palettes renumbered)."""
    k = old.sha256.shape[1]
    palettes = len(old.palettes)
    index = np.where(new.palette_index >= 0, new.palette_index + palettes, -1).astype(np.int32)
    return ImageTable(
        names=[*old.names, *new.names], shapes=concat(old.shapes.reshape(-1, 3), new.shapes),
        modes=[*old.modes, *new.modes], formats=[*old.formats, *new.formats],
        sha256=concat(old.sha256.reshape(-1, k), new.sha256[:, :k]),
        palette_index=concat(old.palette_index, index),
        palettes=concat(old.palettes.reshape(-1, 256, 4), new.palettes.reshape(-1, 256, 4)),
        file_bytes=concat(old.file_bytes, new.file_bytes), sha256_all=old.sha256_all,
    )


def _batch_digest(new: ImageTable) -> np.ndarray:
    """The sha256 of the new images' full digests, in order (``/additions/sha256_all``)."""
    return np.frombuffer(hashlib.sha256(new.sha256.tobytes()).digest(), dtype=np.uint8).copy()


def _additions(old: Additions | None, w0: int, new: ImageTable) -> Additions:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    writer = f"latentpack {latentpack.__version__}"
    if old is None:
        return Additions(first=np.array([w0], np.int64), created=[created], writer=[writer],
                         sha256_all=_batch_digest(new)[None])
    return Additions(first=concat(old.first, [w0]), created=[*old.created, created], writer=[*old.writer, writer],
                     sha256_all=concat(old.sha256_all.reshape(-1, 32), _batch_digest(new)[None]))


def _compact(archive: Path) -> bool:
    """Whether the archive's image table is in the 1.4 layout (kept: rewriting never changes old rows' values)."""
    with h5py.File(archive, "r") as f:
        version = f["images"].attrs["encoding-version"]
    return tuple(int(v) for v in (version.decode() if isinstance(version, bytes) else str(version)).split(".")) >= (1, 4)


@dataclass
class _Coded:
    """The new images coded: the elements that change, and their PSNRs."""

    latents: Any = None
    lossless: Any = None
    pixels: Any = None
    psnr: np.ndarray | None = None
    record: dict[str, Any] = field(default_factory=dict)


def _code_new(contents: ArchiveContents, staged: ImageFolder, new: ImageTable, archive: Path, fit_steps: int,
              progress: ProgressFactory, timings: dict[str, float]) -> _Coded:
    """Code the new images under the archive's model (fitting their latents first when it has a decoder)."""
    n = len(staged)
    originals = lambda i: open_original(staged, i)  # noqa: E731
    if contents.pixels is not None:
        t = time.perf_counter()
        pixels = append_pixels(contents.pixels, staged.working, new, originals)
        timings["code_pixels"] = time.perf_counter() - t
        return _Coded(pixels=pixels, psnr=np.full(n, np.inf))
    spec = validate_architecture(contents.decoder.architecture)
    old = resolve_latents(contents.latents)
    fitted = fit_new_latents(contents, old, staged, spec, os.fspath(archive), fit_steps, progress)
    timings["fit"] = fitted.seconds
    t = time.perf_counter()
    latents = append_latents(contents.latents, old.q, fitted.latents, fitted.q)
    timings["code_latents"] = time.perf_counter() - t
    record = {"fit_steps": fitted.steps, "fit_seconds": round(fitted.seconds, 3)}
    t = time.perf_counter()
    # what extract writes, against each image's natural pixels (as compress measures it), to 1/64 dB
    psnr = np.round(measure_quality(staged, load_decoder(contents.decoder, spec), fitted.latents, new, progress) * 64) / 64
    timings["measure"] = time.perf_counter() - t
    record["prediction_mean_psnr"] = Quality(psnr=psnr).mean_psnr
    if contents.lossless is None:
        return _Coded(latents=latents, psnr=psnr, record=record)
    t = time.perf_counter()
    lossless = append_residuals(contents.lossless, contents.decoder, float(contents.latents.quantized.step), fitted.q,
                                fitted.latents, staged.working, staged.working_mode, new, originals)
    timings["code_pixels"] = time.perf_counter() - t
    return _Coded(latents=latents, lossless=lossless, psnr=np.full(n, np.inf), record=record)


def _header(contents: ArchiveContents, coded: _Coded, staged: ImageFolder, w: int):
    h = contents.header
    if coded.pixels is not None:
        return compute_header(w=w, latent_counts=np.zeros(w, np.int64), x_bits=h.x_bits + staged.x_bits,
                              decoder_scalars=coded.pixels.model_scalars, folder_bytes=h.folder_bytes + staged.folder_bytes,
                              stored_latent_bits=0, residual_bits=coded.pixels.residual_bits,
                              stored_decoder_bits=coded.pixels.model_bits)
    decoder = contents.decoder
    q = coded.latents.quantized
    return compute_header(
        w=w, latent_counts=coded.latents.counts, x_bits=h.x_bits + staged.x_bits, decoder_scalars=decoder.num_scalars,
        folder_bytes=h.folder_bytes + staged.folder_bytes, stored_latent_bits=q.stored_bits if q is not None else None,
        residual_bits=coded.lossless.stored_bits if coded.lossless is not None else None,
        stored_decoder_bits=decoder.stored_bits if decoder.weight_dtype != "float32" else None,
    )


def _training(contents: ArchiveContents, coded: _Coded, batch: int, names: list[str], psnr: float,
              skipped: list[tuple[str, str]], timings: dict[str, float], created: str) -> dict[str, Any]:
    """The training record with this batch's entry under ``additions`` (informational)."""
    training = dict(contents.training)
    training.setdefault("written", {"writer": contents.writer, "created": contents.created})
    entry = {"batch": batch, "images": len(names), "created": created, "mean_psnr": psnr, **coded.record,
             "timings": {k: round(v, 3) for k, v in timings.items()}}
    if skipped:
        entry["skipped"] = [{"name": n, "reason": r} for n, r in skipped]
    training["additions"] = [*(training.get("additions") or []), entry]
    return training


def _new_table(staged: ImageFolder, archive_table: ImageTable) -> ImageTable:
    """The new images' own table (full digests; file sizes recorded when the archive records them)."""
    recorded = bool(len(archive_table.file_bytes)) and bool(np.any(np.asarray(archive_table.file_bytes) >= 0))
    return image_table(staged, 32, file_sizes=recorded)


def _checked_exact(merged: ArchiveContents, rows: range, new: ImageTable) -> None:
    """Decode the new rows of an exact archive and compare their full digests (never write a wrong archive)."""
    digests = check_new_exact(merged, rows)
    if b"".join(digests) != new.sha256.tobytes():
        raise DigestMismatchError("the added images do not decode to their pixels; nothing was written",
                                  hdf5_path="/images/sha256")


def add_images(
    archive: str | os.PathLike,
    sources: Sequence[str | os.PathLike],
    *,
    output: str | os.PathLike | None = None,
    force: bool = False,
    prefix: str = "",
    fit_steps: int = DEFAULT_FIT_STEPS,
    skip_bad: bool = False,
    progress: ProgressFactory | None = None,
) -> AddResult:
    """Add the images of folders and files to an archive, without retraining its model.

    Args:
        archive: The archive to extend.
        sources: Folders (their files named relative to them, as compress
            names them) and files (named by their file name).
        output: Write the result here and leave `archive` alone; None
            replaces `archive` (atomically: a temporary file, read back, renamed).
        force: With `output`, replace an existing file there.
        prefix: Store the new names under this folder (``"batch2"``).
        fit_steps: Gradient steps fitting each new image's latents (archives with a decoder).
        skip_bad: Leave out files that cannot be used instead of failing.
        progress: A progress factory.

    Returns:
        The path written, the names added and their quality.

    Raises:
        ArchiveError: `archive` is not a good archive.
        OptionError: an archive that cannot grow (generated codes), a name
            already in it, an image of a size or mode it cannot hold.
        BadImagesError: input files that cannot be used (all listed).
        FileExistsError: `output` exists and `force` is False.
    """
    archive = Path(archive)
    target = Path(output) if output is not None else archive
    if fit_steps < 1:
        raise OptionError(f"`fit_steps` must be >= 1, got {fit_steps}")
    require_regular(archive, "archive")
    same = target.exists() and target.samefile(archive)
    if output is not None and target.exists() and not force and not same:
        raise FileExistsError(f"{target} exists (use --force to replace it)")
    progress = progress or null_progress
    timings: dict[str, float] = {}
    t = time.perf_counter()
    contents, compact = read_archive(archive), _compact(archive)
    mode = _working_mode(contents, archive)
    staged = read_inputs([Path(s) for s in sources], mode, exclude=[archive, target], prefix=prefix,
                         progress=progress, skip_bad=skip_bad)
    timings["read"] = time.perf_counter() - t
    try:
        old_table, w0 = contents.images, len(contents.images)
        new = _new_table(staged, old_table)
        _check_names(old_table.names, new.names, archive)
        coded = _code_new(contents, staged, new, archive, fit_steps, progress, timings)
    finally:
        staged.close()
    table = _merged_table(old_table, new)
    w = len(table)
    additions = _additions(contents.additions, w0, new)
    psnr = Quality(psnr=coded.psnr).mean_psnr
    merged = replace(
        contents, header=_header(contents, coded, staged, w), images=table,
        latents=coded.latents if coded.pixels is None else None, lossless=coded.lossless, pixels=coded.pixels,
        quality=Quality(psnr=concat(contents.quality.psnr, coded.psnr)), additions=additions, compact_metadata=compact,
        training=_training(contents, coded, additions.batches - 1, new.names, psnr, staged.skipped, timings,
                           additions.created[-1]),
        writer="", created="",
    )
    if coded.lossless is not None or coded.pixels is not None:
        _checked_exact(merged, range(w0, w), new)
    before = os.path.getsize(archive)
    t = time.perf_counter()
    write_archive(target, merged, force=output is None or force or same)
    timings["write"] = time.perf_counter() - t
    return AddResult(path=target, names=list(new.names), batch=additions.batches - 1, mean_psnr=psnr,
                     earlier_mean_psnr=contents.quality.mean_psnr, bytes_before=before,
                     bytes_after=os.path.getsize(target), timings=timings, skipped=staged.skipped, contents=merged)
