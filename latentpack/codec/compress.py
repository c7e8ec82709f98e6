"""Compress a folder of images into one archive.

    folder -> read & check every file -> stage working pixels (memmap)
           -> design (arch, y, capacity) -> train g_a, g_s (Keras)
              (--codes index: train g_s alone on codes generated from i)
           -> round g_s's weights as they will be stored (--weights float16)
           -> encode y per image -> quantise (step) -> range-code q
           -> lossy: decode with numpy, measure PSNR
              lossless: fixed-point prediction -> code the pixels -> decode, check
           -> header (z + w*y*32 < x, and the bits stored) -> write archive

This is the only path that imports TensorFlow (through
`latentpack.codec.train`, imported lazily).
"""
from __future__ import annotations

import hashlib
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import latentpack
from latentpack.codec.design import ARCHS, CodecDesign, design_codec
from latentpack.codec.index_codes import DEFAULT_STEP, index_codes
from latentpack.codec.latent_coding import dequantize, encode_latents, quantize_latents
from latentpack.codec.rate import RateChoice, RateTarget, bisect_steps, step_grid
from latentpack.codec.lossless import check_all_digests, encode_residuals, fixed_point_decoder, iter_exact, predict
from latentpack.codec.reconstruct import iter_reconstructions, load_decoder, to_uint8
from latentpack.codec.residual import ContextParams, count_table
from latentpack.fs.folder import ImageFolder, read_folder, scan_folder
from latentpack.formats import write_archive
from latentpack.formats.schema import (
    WEIGHT_DTYPES,
    ArchiveContents,
    ImageTable,
    IndexCodes,
    Latents,
    LosslessResiduals,
    Quality,
    compute_header,
)
from latentpack.formats.validate import DIGEST_BYTES
from latentpack.fs.images import natural_pixels
from latentpack.metrics import psnr
from latentpack.progress import ProgressFactory, null_progress

__all__ = ["CompressResult", "compress_folder", "DEFAULT_BATCH_SIZE", "CODES", "DEFAULT_DIGEST_BYTES"]

DEFAULT_BATCH_SIZE = 128
#: Where latents come from: an encoder, or a rule applied to the image's index.
CODES = ("encoder", "index")
#: Stored bytes of each image's sha256 (the full digests are covered by /images/sha256_all).
DEFAULT_DIGEST_BYTES = 32
#: Planning a size target: image metadata besides the digest, per image, and fixed.
METADATA_BYTES_PER_IMAGE = 4.5
METADATA_FIXED_BYTES = 16 * 1024
#: Images used to choose the latent step.
STEP_SAMPLE = 256
#: Lossy: the coarsest step whose PSNR stays within this of unquantised latents.
STEP_PSNR_LOSS = 0.1


@dataclass
class CompressResult:
    """What `compress_folder` wrote and measured."""

    path: Path
    contents: ArchiveContents
    timings: dict[str, float] = field(default_factory=dict)


def _metadata_estimate(w: int, digest_bytes: int) -> int:
    """Bytes an archive spends besides the decoder and the latents (for planning a size target).

    Per image: the digest, plus about 4 bytes of deflated name, shape and PSNR
    columns (MNIST: 2.4 + 1.4); plus the HDF5 overhead and records (13 KiB for
    400 images, 25 KiB for 70,000).
    """
    return int(w * (digest_bytes + METADATA_BYTES_PER_IMAGE) + METADATA_FIXED_BYTES)


def _image_table(folder: ImageFolder, digest_bytes: int = 32) -> ImageTable:
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
        sha256=np.frombuffer(b"".join(im.sha256 for im in folder.images), dtype=np.uint8).reshape(-1, 32)[:, :digest_bytes].copy(),
        sha256_all=(None if digest_bytes == 32 else
                    np.frombuffer(hashlib.sha256(b"".join(im.sha256 for im in folder.images)).digest(), np.uint8).copy()),
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
    from latentpack.fs.folder import is_latentpack_archive

    if not is_latentpack_archive(Path(target)):
        raise ValueError(f"refusing to write the archive over {archive}: it is a file of the input folder, not an archive")


def _working_psnr(decoder, values: np.ndarray, staged: ImageFolder, sample: Sequence[int], dims: tuple) -> float:
    """Mean PSNR of working pixels over a sample of equal-sized images, float decoder."""
    h, w = staged.images[sample[0]].height, staged.images[sample[0]].width
    x_hat = to_uint8(decoder(values.reshape((len(sample),) + dims)))[:, :h, :w, :]
    return float(np.mean([psnr(staged.working(i), x_hat[k]) for k, i in enumerate(sample)]))


def _choose_step(staged: ImageFolder, design: CodecDesign, decoder_weights, values: np.ndarray, offsets: np.ndarray,
                 shapes: np.ndarray, lossless: bool) -> float:
    """A latent quantisation step: lossy, the coarsest within `STEP_PSNR_LOSS` dB of float latents;
    lossless, the one with the fewest estimated bits (latents plus coded pixels)."""
    std = float(np.std(values)) if values.size else 1.0
    std = std if std > 0 else 1.0
    candidates = [std * 2.0**-k for k in range(0, 7)]
    w = len(staged)
    # equal latent shapes and image sizes only: the sample is one batch
    sample, sample_values, first = _step_sample(staged, values, offsets, shapes)
    if not lossless:
        decoder = load_decoder(decoder_weights)
        reference = _working_psnr(decoder, sample_values, staged, sample, first)
        for step in reversed(candidates):  # coarsest first
            got = _working_psnr(decoder, dequantize(quantize_latents(sample_values, step), step), staged, sample, first)
            if got >= reference - STEP_PSNR_LOSS:
                return step
        return candidates[-1]
    best, best_bits = candidates[-1], np.inf
    images = [np.asarray(staged.working(i)) for i in sample]
    params = ContextParams(16, 4)
    for step in candidates:
        q = quantize_latents(values, step)
        latent_bits = encode_latents(q, offsets, shapes, step).stored_bits / w
        fp = fixed_point_decoder(decoder_weights, step)
        sub_offsets = np.arange(len(sample) + 1, dtype=np.int64) * int(np.prod(first))
        sizes = np.array([[staged.images[i].height, staged.images[i].width, 1] for i in sample])
        preds_by = predict(fp, quantize_latents(sample_values, step), sub_offsets, np.array([first] * len(sample)),
                           sizes, range(len(sample)))
        preds = [preds_by[k] for k in range(len(sample))]
        counts = count_table(images, preds, params).astype(np.float64)
        rows = counts.sum(axis=1, keepdims=True)
        nz = counts > 0
        pixel_bits = -(counts[nz] * np.log2(counts[nz] / np.broadcast_to(rows, counts.shape)[nz])).sum() / len(sample)
        if latent_bits + pixel_bits < best_bits:
            best, best_bits = step, latent_bits + pixel_bits
    return best


def _code_latents(raw: np.ndarray, offsets: np.ndarray, shapes: np.ndarray,
                  step: float) -> tuple[np.ndarray, np.ndarray, Latents, int]:
    """Quantise and range-code float latents: (q, dequantised values, Latents, stored bits)."""
    q = quantize_latents(raw, step)
    quantized = encode_latents(q, offsets, shapes, step)
    latents = Latents(values=np.zeros(0, np.float32), offsets=offsets, shapes=shapes, quantized=quantized)
    return q, dequantize(q, step), latents, quantized.stored_bits


def _step_sample(staged: ImageFolder, values: np.ndarray, offsets: np.ndarray,
                 shapes: np.ndarray) -> tuple[list[int], np.ndarray, tuple]:
    """Up to `STEP_SAMPLE` images sharing the first image's size and latent shape, and their latents."""
    w = len(staged)
    first = tuple(int(v) for v in shapes[0])
    size0 = (staged.images[0].height, staged.images[0].width)
    same = [i for i in range(w) if tuple(int(v) for v in shapes[i]) == first
            and (staged.images[i].height, staged.images[i].width) == size0]
    sample = sorted(np.random.default_rng(0).permutation(same)[:STEP_SAMPLE].tolist())
    sample_values = np.concatenate([values[offsets[i] : offsets[i + 1]] for i in sample])
    return sample, sample_values, first


def _quality_index(staged: ImageFolder, decoder_weights, raw: np.ndarray, offsets: np.ndarray, shapes: np.ndarray,
                   grid: list[float], target: float) -> int | None:
    """The coarsest step of ``grid`` whose sample mean PSNR reaches ``target`` (None: none does)."""
    sample, sample_values, first = _step_sample(staged, raw, offsets, shapes)
    decoder = load_decoder(decoder_weights)

    def reaches(step: float) -> bool:
        x = dequantize(quantize_latents(sample_values, step), step)
        return _working_psnr(decoder, x, staged, sample, first) >= target

    return bisect_steps(grid, reaches, want_coarsest=True)


def _meet_quality(assemble, raw: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, grid: list[float],
                  k: int | None, target: float) -> ArchiveContents:
    """Assemble at the sampled step; go finer while the mean over all images misses ``target``."""
    k = len(grid) - 1 if k is None else k
    while True:
        q, values, latents, bits = _code_latents(raw, offsets, shapes, grid[k])
        contents = assemble(q, values, latents, bits, grid[k])
        got = float(contents.quality.mean_psnr)
        if got >= target or k == len(grid) - 1:
            contents.training["rate_control"] = RateChoice("psnr", target, grid[k], got >= target, round(got, 3)).as_json()
            return contents
        k += 1


def _refined(contents: ArchiveContents, refine_at, assemble, raw: np.ndarray, offsets: np.ndarray,
             shapes: np.ndarray, target_psnr: float | None, budget: int | None) -> ArchiveContents:
    """Refine the decoder at the step rate control chose; keep the result only if it is better and still fits.

    Better: a higher mean PSNR over every image. Fits: for a size target,
    the refined archive (written to a temporary folder) is still at most
    ``budget`` bytes; for a quality target the step is not changed.
    """
    rc = contents.training["rate_control"]
    step = float(rc["step"])
    if not refine_at(step):
        return contents
    refined = assemble(*_code_latents(raw, offsets, shapes, step), step)
    better = float(refined.quality.mean_psnr) > float(contents.quality.mean_psnr)
    if better and budget is not None:
        with tempfile.TemporaryDirectory(prefix="latentpack-rate-") as tmp:
            probe = Path(tmp) / "probe.lpk"
            write_archive(probe, refined, force=True)
            better = probe.stat().st_size <= budget
    if not better:
        contents.training["refine"] = dict(refined.training["refine"], kept=False)
        return contents
    got = float(refined.quality.mean_psnr)
    if target_psnr is not None:
        rc = dict(rc, got=round(got, 3), reached=got >= target_psnr)
    refined.training["rate_control"] = dict(rc)
    return refined


def _fit_size(assemble, raw: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, grid: list[float],
              budget: int) -> ArchiveContents:
    """The finest step of ``grid`` whose archive file is at most ``budget`` bytes.

    The parts that do not depend on the step are measured once, from a probe
    written at the coarsest step; the step is then chosen from the latents'
    exact coded size, and every candidate archive is written to a temporary
    folder and measured before it is accepted.

    Raises:
        ValueError: even the coarsest step does not fit (names what takes the room).
    """
    with tempfile.TemporaryDirectory(prefix="latentpack-rate-") as tmp:
        probe = Path(tmp) / "probe.lpk"

        def written(contents: ArchiveContents) -> int:
            write_archive(probe, contents, force=True)
            return probe.stat().st_size

        def candidate(k: int) -> ArchiveContents:
            contents = assemble(*_code_latents(raw, offsets, shapes, grid[k]), grid[k])
            contents.training["rate_control"] = RateChoice("bytes", budget, grid[k], True, None).as_json()
            return contents

        def latent_bytes(k: int) -> int:
            return -(-_code_latents(raw, offsets, shapes, grid[k])[3] // 8)

        base = written(candidate(0)) - latent_bytes(0)  # everything but the latents

        def fits(k: int) -> bool:
            return base + latent_bytes(k) <= budget

        k = bisect_steps(list(range(len(grid))), fits, want_coarsest=False)
        k = 0 if k is None else k
        while True:
            contents = candidate(k)
            size = written(contents)
            if size <= budget:
                return contents
            if k == 0:
                raise ValueError(
                    f"the archive cannot be made {budget:,} bytes or smaller: at the coarsest latent step it takes "
                    f"{size:,} bytes, of which the decoder takes {contents.decoder.stored_bits // 8:,} "
                    f"(try a smaller --filters or -y, or --digest-bytes 4)")
            k -= 1


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
    lossless: bool = False,
    codes: str = "encoder",
    latent_step: float | None = None,
    digest_bytes: int = DEFAULT_DIGEST_BYTES,
    quality: float | None = None,
    max_bytes: int | None = None,
    ratio: float | None = None,
    weight_dtype: str | None = None,
    refine_steps: int | None = None,
    progress: ProgressFactory | None = None,
) -> CompressResult:
    """Train an autoencoder on a folder and write its archive.

    Args:
        folder: The image folder (read recursively; hidden files skipped).
        archive: The archive to write.
        latent_dims: ``y`` for mlp and dense, latent channels for conv; None picks.
        epochs: Training epochs; None picks about 24,000 (mlp) or 12,000
            optimiser steps.
        batch_size: Images (or patches) per training step.
        arch: ``auto``, ``mlp``, ``dense`` or ``conv``.
        filters: Decoder width; None picks from the size budget.
        seed: Random seed (same folder and seed give the same archive
            contents on the same machine).
        force: Replace an existing archive (never an input image: an
            existing file inside ``folder`` must be a latentpack archive).
        skip_bad: Leave out the files that cannot be used instead of
            failing; their names and reasons go into the archive's training
            record (``skipped``).
        lossless: Also store what makes every image decode bit-exact.
        codes: ``encoder`` (train an encoder, store coded latents) or
            ``index`` (image i's code is generated from i and not stored;
            equal-sized images only).
        latent_step: Quantisation step of the latents; None chooses.
        digest_bytes: Bytes of each image's sha256 kept (4, 8, 16 or 32;
            below 32 a digest of all full digests is kept too).
        quality: Target mean PSNR in dB: the coarsest latent step that
            reaches it (see `latentpack.codec.rate`).
        max_bytes: Target file size: the finest latent step whose archive
            is at most this many bytes.
        ratio: Target ratio to the raw pixels (``max_bytes = raw / ratio``).
        weight_dtype: How the decoder weights are stored: ``float32``, or
            ``float16`` (half the bytes; format 1.2); None picks ``float16``
            for a size target (``max_bytes``, ``ratio``), else ``float32``. The weights are rounded
            right after training, so the latent step, the lossless
            prediction and the recorded PSNR all use what ``extract`` runs.
        refine_steps: Steps of decoder refinement on the quantised latents
            once the step is chosen (``mlp`` and ``dense`` with an encoder);
            None: a tenth of the training steps; 0: none. The refined
            decoder is kept only if it lowers the folder's error.
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
    if codes not in CODES:
        raise ValueError(f"`codes` must be one of {list(CODES)}, got {codes!r}")
    if latent_step is not None and not (latent_step > 0 and np.isfinite(latent_step)):
        raise ValueError(f"`latent_step` must be a positive number, got {latent_step}")
    if digest_bytes not in DIGEST_BYTES:
        raise ValueError(f"`digest_bytes` must be one of {list(DIGEST_BYTES)}, got {digest_bytes}")
    if refine_steps is not None and refine_steps < 0:
        raise ValueError(f"`refine_steps` must be >= 0, got {refine_steps}")
    rate = RateTarget(psnr=quality, max_bytes=max_bytes, ratio=ratio)
    if weight_dtype is None:
        # a size target wants the smallest file: float16 weights cost no measurable PSNR (README)
        weight_dtype = "float16" if rate.active and rate.psnr is None else "float32"
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"`weight_dtype` must be one of {list(WEIGHT_DTYPES)}, got {weight_dtype!r}")
    if rate.active and (lossless or codes == "index" or latent_step is not None):
        raise ValueError("a rate target (quality, max_bytes, ratio) needs lossy coded latents: "
                         "not with `lossless`, `codes` index or `latent_step`")
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
        budget = rate.byte_budget(staged.x_bits // 8)
        design = design_codec(
            [(im.height, im.width) for im in staged.images], staged.working_mode,
            arch=arch, latent_dims=latent_dims, filters=filters,
            byte_budget=None if budget is None else max(1, budget - _metadata_estimate(len(staged), digest_bytes)),
            weight_bytes=2 if weight_dtype == "float16" else 4,
        )
        from latentpack.codec import train  # TensorFlow loads here, and only here.

        epochs = epochs or train.default_epochs(staged, design, batch_size)
        w = len(staged)
        t = time.perf_counter()
        if codes == "index":
            if not design.one_vector:
                raise ValueError("`codes` index needs images of one size (the mlp or dense architecture)")
            shapes = np.tile(np.array([[1, 1, design.latent_dims]], dtype=np.int32), (w, 1))
            offsets = (np.arange(w + 1, dtype=np.int64) * design.latent_dims)
            step = latent_step or DEFAULT_STEP
            q = index_codes(np.arange(int(offsets[-1])), seed)
            values = dequantize(q, step)
            trained = train.train_decoder(staged, design, values.reshape(w, 1, 1, -1), epochs=epochs,
                                          batch_size=batch_size, seed=seed, progress=progress)
            trained.decoder = trained.decoder.as_stored(weight_dtype)
            timings["train"] = time.perf_counter() - t
            latents = Latents(values=np.zeros(0, np.float32), offsets=offsets, shapes=shapes,
                              index_codes=IndexCodes(seed=seed, step=float(step)))
            stored_latent_bits = 0
        else:
            trained = train.train_autoencoder(staged, design, epochs=epochs, batch_size=batch_size, seed=seed,
                                              progress=progress)
            trained.decoder = trained.decoder.as_stored(weight_dtype)  # before anything measures it
            timings["train"] = time.perf_counter() - t
            t = time.perf_counter()
            raw, offsets, shapes = train.encode_folder(trained.encoder, staged, design, progress=progress)
            timings["encode"] = time.perf_counter() - t
            t = time.perf_counter()
            grid = step_grid(float(np.std(raw)), float(np.max(np.abs(raw))))
            if rate.psnr is not None:
                k = _quality_index(staged, trained.decoder, raw, offsets, shapes, grid, rate.psnr)
                step = grid[len(grid) - 1 if k is None else k]
            elif rate.active:
                k = 0  # the size loop below refines k
                step = grid[k]
            else:
                step = latent_step or _choose_step(staged, design, trained.decoder, raw, offsets, shapes, lossless)
            q, values, latents, stored_latent_bits = _code_latents(raw, offsets, shapes, step)
            timings["code_latents"] = time.perf_counter() - t
        table = _image_table(staged, digest_bytes)
        refine_record: dict[str, Any] | None = None

        def refine_at(step: float) -> bool:
            """Fine-tune the decoder on the latents quantised at ``step``; True if it got better."""
            nonlocal refine_record
            if codes != "encoder" or not design.one_vector or refine_steps == 0:
                return False
            t = time.perf_counter()
            n = refine_steps or train.default_refine_steps(trained.epochs, trained.steps_per_epoch)
            values = _code_latents(raw, offsets, shapes, step)[1]
            result = train.refine_decoder(staged, design, trained.decoder, values.reshape(w, 1, 1, -1), steps=n,
                                          batch_size=batch_size, seed=seed, progress=progress)
            kept = result.mse_after < result.mse_before
            if kept:
                trained.decoder = result.decoder
            refine_record = result.as_json(kept)
            timings["refine"] = time.perf_counter() - t
            return kept

        def assemble(q: np.ndarray, values: np.ndarray, latents: Latents, stored_latent_bits: int,
                     step: float) -> ArchiveContents:
            """Measure, code the pixels (lossless) and put the archive's contents together."""
            float_latents = Latents(values=values, offsets=offsets, shapes=shapes)
            t = time.perf_counter()
            residuals: LosslessResiduals | None = None
            # rounded to 1/64 dB: exact binary fractions, so the stored column deflates well
            measured = np.round(_measure_quality(staged, trained.decoder, float_latents, table, progress) * 64) / 64
            prediction_psnr = Quality(psnr=measured).mean_psnr
            timings["measure"] = time.perf_counter() - t
            if lossless:
                fp = fixed_point_decoder(trained.decoder, step)
                names = dict(scan_folder(folder, [archive]))

                def open_original(i: int):
                    from PIL import Image

                    with Image.open(names[table.names[i]]) as img:  # as open_image does
                        img.load()
                        if getattr(img, "n_frames", 1) > 1:
                            img.seek(0)
                        img = img.copy()
                    if img.mode in ("PA", "La", "RGBa"):
                        img = img.convert("LA" if img.mode == "La" else "RGBA")
                    return img

                t = time.perf_counter()
                residuals = encode_residuals(staged.working, staged.working_mode, table, fp, q, offsets, shapes,
                                             open_original, progress)
                timings["code_pixels"] = time.perf_counter() - t
                t = time.perf_counter()
                digests = []
                with progress("Checking", w) as bar:  # decode everything once: never write a wrong archive
                    for _, _, _, digest, _ in iter_exact(residuals, fp, q, offsets, shapes, table, staged.working_mode):
                        digests.append(digest)
                        bar.update(1)
                check_all_digests(table.sha256_all, digests)
                timings["check"] = time.perf_counter() - t
                quality = Quality(psnr=np.full(w, np.inf))
            else:
                quality = Quality(psnr=measured)
            header = compute_header(
                w=w, latent_counts=latents.counts, x_bits=staged.x_bits,
                decoder_scalars=trained.decoder.num_scalars, folder_bytes=staged.folder_bytes,
                stored_latent_bits=stored_latent_bits,
                residual_bits=residuals.stored_bits if residuals is not None else None,
                stored_decoder_bits=trained.decoder.stored_bits if weight_dtype != "float32" else None,
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
                "codes": codes,
                "lossless": lossless,
                "latent_step": float(step),
                "prediction_mean_psnr": prediction_psnr,
                "timings": timings,
                "platform": platform.platform(),
            }
            if refine_record is not None:
                training["refine"] = dict(refine_record)
            if staged.skipped:
                training["skipped"] = [{"name": name, "reason": reason} for name, reason in staged.skipped]
            return ArchiveContents(
                header=header, decoder=trained.decoder, latents=latents, images=table, quality=quality,
                training=training, writer=f"latentpack {latentpack.__version__}", lossless=residuals,
            )

        if rate.psnr is not None:
            contents = _meet_quality(assemble, raw, offsets, shapes, grid, k, rate.psnr)
            contents = _refined(contents, refine_at, assemble, raw, offsets, shapes, rate.psnr, None)
        elif rate.active:
            contents = _fit_size(assemble, raw, offsets, shapes, grid, budget)
            contents = _refined(contents, refine_at, assemble, raw, offsets, shapes, None, budget)
        else:
            refine_at(step)
            contents = assemble(q, values, latents, stored_latent_bits, step)
        t = time.perf_counter()
        write_archive(archive, contents, force=force)
        timings["write"] = time.perf_counter() - t
    finally:
        staged.close()
    return CompressResult(path=archive, contents=contents, timings=timings)
