"""Compress a folder of images into one archive.

    folder -> read & check every file -> stage working pixels (memmap)
           -> design (arch, y, capacity) -> train g_a, g_s (Keras)
           -> encode y per image -> decode with numpy, measure PSNR
           -> header (z + w*y*32 < x) -> write archive (temp file, rename)

This is the only path that imports TensorFlow (through
`latentpack.codec.train`, imported lazily).
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import latentpack
from latentpack.codec.design import ARCHS, design_codec
from latentpack.codec.reconstruct import iter_reconstructions, load_decoder
from latentpack.folder import ImageFolder, read_folder
from latentpack.formats import write_archive
from latentpack.formats.schema import ArchiveContents, ImageTable, Latents, Quality, compute_header
from latentpack.images import natural_pixels
from latentpack.metrics import psnr
from latentpack.progress import ProgressFactory, null_progress

__all__ = ["CompressResult", "compress_folder", "DEFAULT_BATCH_SIZE"]

DEFAULT_BATCH_SIZE = 128


@dataclass
class CompressResult:
    """What `compress_folder` wrote and measured."""

    path: Path
    contents: ArchiveContents
    timings: dict[str, float] = field(default_factory=dict)


def _image_table(folder: ImageFolder) -> ImageTable:
    palettes = [im.palette for im in folder.images if im.palette is not None]
    index = np.full(len(folder), -1, dtype=np.int32)
    k = 0
    for i, im in enumerate(folder.images):
        if im.palette is not None:
            index[i] = k
            k += 1
    return ImageTable(
        names=[im.name for im in folder.images],
        shapes=np.array([(im.height, im.width, im.channels) for im in folder.images], dtype=np.int32).reshape(-1, 3),
        modes=[im.mode for im in folder.images],
        formats=[im.format for im in folder.images],
        sha256=np.frombuffer(b"".join(im.sha256 for im in folder.images), dtype=np.uint8).reshape(-1, 32).copy(),
        palette_index=index,
        palettes=np.stack(palettes).astype(np.uint8) if palettes else np.zeros((0, 256, 4), np.uint8),
        file_bytes=np.array([im.file_bytes for im in folder.images], dtype=np.int64),
    )


def _natural_of_working(working: np.ndarray, working_mode: str, natural_mode: str) -> np.ndarray:
    """Undo `to_working` exactly: pick the natural channels back out."""
    c = working.shape[2]
    color = working_mode.startswith("RGB")
    base = working[..., : 3 if color else 1]
    if not natural_mode.startswith("RGB"):
        base = base[..., :1]
    if natural_mode.endswith("A"):
        base = np.concatenate([base, working[..., c - 1 : c]], axis=2)
    return base


def _measure_quality(folder: ImageFolder, contents_decoder, latents: Latents, table: ImageTable,
                     progress: ProgressFactory) -> np.ndarray:
    decoder = load_decoder(contents_decoder)
    out = np.empty(len(folder), dtype=np.float64)
    with progress("Measuring quality", len(folder)) as bar:
        for i, _, image in iter_reconstructions(decoder, latents, table):
            im = folder.images[i]
            original = _natural_of_working(folder.working(i), folder.working_mode, im.natural_mode)
            p = int(table.palette_index[i])
            recon, _ = natural_pixels(image, table.palettes[p] if p >= 0 else None)
            if recon.shape != original.shape:  # e.g. palette image whose alpha vanished
                recon = recon[..., : original.shape[2]]
            out[i] = psnr(original, recon)
            bar.update(1)
    return out


def _refuse_replacing_an_input(folder: Path, archive: Path) -> None:
    """``--force`` replaces an earlier archive, never a file of the folder being read."""
    if not archive.exists():
        return
    root, target = os.path.realpath(folder), os.path.realpath(archive)
    if os.path.commonpath([root, target]) != root:
        return
    from latentpack.folder import is_latentpack_archive

    if not is_latentpack_archive(Path(target)):
        raise ValueError(f"refusing to write the archive over {archive}: it is a file of the input folder, not an archive")


def compress_folder(
    folder: str | os.PathLike,
    archive: str | os.PathLike,
    *,
    latent_dims: int | None = None,
    epochs: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    arch: str = "auto",
    filters: int | None = None,
    seed: int = 0,
    force: bool = False,
    skip_bad: bool = False,
    progress: ProgressFactory | None = None,
) -> CompressResult:
    """Train an autoencoder on a folder and write its archive.

    Args:
        folder: The image folder (read recursively; hidden files skipped).
        archive: The archive to write.
        latent_dims: ``y`` for dense, latent channels for conv; None picks.
        epochs: Training epochs; None picks about 12,000 optimiser steps.
        batch_size: Images (or patches) per training step.
        arch: ``auto``, ``dense`` or ``conv``.
        filters: Decoder width; None picks from the size budget.
        seed: Random seed (same folder and seed give the same archive
            contents on the same machine).
        force: Replace an existing archive (never an input image: an
            existing file inside ``folder`` must be a latentpack archive).
        skip_bad: Leave out the files that cannot be used instead of
            failing; their names and reasons go into the archive's training
            record (``skipped``).
        progress: Optional ``progress(label, total)`` factory.

    Returns:
        The written path, the archive's contents and the timings.

    Raises:
        FileExistsError: ``archive`` exists and ``force`` is False.
        BadImagesError: some files cannot be used (all are listed).
        ValueError: an argument is out of range, the folder is empty, or
            ``archive`` is an input file.
    """
    if arch not in ARCHS:
        raise ValueError(f"`arch` must be one of {list(ARCHS)}, got {arch!r}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"`epochs` must be >= 1, got {epochs}")
    folder, archive = Path(folder), Path(archive)
    if archive.exists() and not force:
        raise FileExistsError(f"{archive} exists (use --force to replace it)")
    if archive.is_dir():
        raise IsADirectoryError(f"{archive} is a folder")
    _refuse_replacing_an_input(folder, archive)
    progress = progress or null_progress
    timings: dict[str, float] = {}

    t = time.perf_counter()
    staged = read_folder(folder, exclude=[archive], progress=progress, skip_bad=skip_bad)
    timings["read"] = time.perf_counter() - t
    try:
        design = design_codec(
            [(im.height, im.width) for im in staged.images], staged.working_mode,
            arch=arch, latent_dims=latent_dims, filters=filters,
        )
        from latentpack.codec import train  # TensorFlow loads here, and only here.

        epochs = epochs or train.default_epochs(staged, design, batch_size)
        t = time.perf_counter()
        trained = train.train_autoencoder(staged, design, epochs=epochs, batch_size=batch_size, seed=seed, progress=progress)
        timings["train"] = time.perf_counter() - t
        t = time.perf_counter()
        values, offsets, shapes = train.encode_folder(trained.encoder, staged, design, progress=progress)
        timings["encode"] = time.perf_counter() - t
        latents = Latents(values=values, offsets=offsets, shapes=shapes)
        table = _image_table(staged)
        t = time.perf_counter()
        quality = Quality(psnr=_measure_quality(staged, trained.decoder, latents, table, progress))
        timings["measure"] = time.perf_counter() - t
        header = compute_header(
            w=len(staged), latent_counts=latents.counts, x_bits=staged.x_bits,
            decoder_scalars=trained.decoder.num_scalars, folder_bytes=staged.folder_bytes,
        )
        training: dict[str, Any] = {
            "arch": design.arch,
            "working_mode": design.mode,
            "latent_dims": design.latent_dims,
            "filters": design.filters,
            "epochs": trained.epochs,
            "steps_per_epoch": trained.steps_per_epoch,
            "batch_size": batch_size,
            "seed": seed,
            "loss": trained.loss,
            "timings": timings,
            "platform": platform.platform(),
        }
        if staged.skipped:
            training["skipped"] = [{"name": name, "reason": reason} for name, reason in staged.skipped]
        contents = ArchiveContents(
            header=header, decoder=trained.decoder, latents=latents, images=table, quality=quality,
            training=training, writer=f"latentpack {latentpack.__version__}",
        )
        t = time.perf_counter()
        write_archive(archive, contents, force=force)
        timings["write"] = time.perf_counter() - t
    finally:
        staged.close()
    return CompressResult(path=archive, contents=contents, timings=timings)
