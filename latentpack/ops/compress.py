"""Compress a folder of images into one archive: the codec's stages, composed.

    read folder -> design -> train -> encode -> choose step -> refine -> measure -> assemble -> write

    folder -> read & check every file -> stage working pixels (memmap)      latentpack.fs.folder
           -> design (arch, y, capacity)                                   latentpack.codec.design
           -> train g_a, g_s (Keras); round g_s's weights as stored        latentpack.codec.keras
              (--codes index: train g_s alone on codes generated from i)
           -> encode y per image -> choose the latent step (target or not) latentpack.codec.rate
           -> refine g_s on the quantised latents (kept if better)
           -> lossy: decode with numpy, measure PSNR                       latentpack.codec.runtime
              lossless: fixed-point prediction -> code the pixels -> decode, check   latentpack.codec.entropy
           -> header (z + w*y*32 < x, and the bits stored) -> write archive

`compress` takes one `CompressOptions`; `compress_folder` is the keyword
form (what ``latentpack.compress`` exposes). TensorFlow is imported lazily,
by the training stage only.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from latentpack.codec.assemble import TrainingRecord, assemble_contents, metadata_estimate
from latentpack.codec.cluster import ClusterRole, cluster_role
from latentpack.codec.design import CodecDesign
from latentpack.codec.entropy.latent_coding import CodedLatents, code_latents, dequantize, quantize_latents
from latentpack.codec import rate, rd
from latentpack.codec.index_codes import DEFAULT_STEP, index_codes
from latentpack.codec.rate import RateChoice
from latentpack.codec.runtime.reconstruct import load_decoder
from latentpack.errors import OptionError
from latentpack.fs.folder import ImageFolder, check_output_path, read_folder
from latentpack.formats import write_archive
from latentpack.formats.schema import ArchiveContents, DecoderWeights, IndexCodes, Latents
from latentpack.ops.compress_options import (CODES, DEFAULT_BATCH_SIZE, DEFAULT_DIGEST_BYTES,
                                             DEFAULT_LOSSLESS_DIGEST_BYTES, CompressOptions)
from latentpack.ops.compress_pixels import pixel_contents, uses_pixel_model
from latentpack.ops.guard_rails import GuardWarning, compression_warnings
from latentpack.ops.plan import autoencoder_plan, design_for, report, report_plan
from latentpack.progress import ProgressFactory, null_progress

__all__ = ["CompressOptions", "CompressResult", "compress", "compress_folder", "DEFAULT_BATCH_SIZE", "CODES",
           "DEFAULT_DIGEST_BYTES", "DEFAULT_LOSSLESS_DIGEST_BYTES"]


@dataclass
class CompressResult:
    """What `compress` wrote and measured."""

    path: Path
    contents: ArchiveContents | None  # None on a TF_CONFIG worker other than the chief: it wrote nothing
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[GuardWarning] = field(default_factory=list)  # latentpack.ops.guard_rails
    worker: ClusterRole | None = None  # TF_CONFIG's role of this process (latentpack.codec.cluster)


class _ShardTrained(Exception):
    """Raised after training on a TF_CONFIG worker other than the chief: only the chief goes on and writes."""


@dataclass
class _Compression:
    """The state one compression builds up, stage by stage (each method is a stage)."""

    options: CompressOptions
    staged: ImageFolder
    progress: ProgressFactory
    timings: dict[str, float]
    design: CodecDesign | None = None
    decoder: DecoderWeights | None = None
    encoder: Any = None
    density: Any = None
    record: TrainingRecord | None = None
    float_latents: Latents | None = None
    role: ClusterRole | None = None

    def plan(self) -> None:
        """Design: architecture, latent size and capacity (planned for a size target)."""
        self.design = design_for(self.staged, self.options)

    def train(self) -> None:
        """Train (encoder and decoder, or the decoder alone on index codes); round the weights as stored."""
        from latentpack.codec.keras import train  # TensorFlow loads here, and only here.
        from latentpack.codec.keras.device import training_device

        o, w = self.options, len(self.staged)
        epochs = o.epochs or train.default_epochs(self.staged, self.design, o.batch_size)
        report_plan(autoencoder_plan(self.staged, o, self.design))
        device = training_device()
        report.info(f"Training on {device}" + (f", {self.role.describe()} (TF_CONFIG)" if self.role else ""))
        t = time.perf_counter()
        if o.codes == "index":
            if not self.design.one_vector:
                raise OptionError("`codes` index needs images of one size (the mlp or dense architecture)")
            codes = self.index_coded().values.reshape(w, 1, 1, -1)
            trained = train.train_decoder(self.staged, self.design, codes, epochs=epochs, batch_size=o.batch_size,
                                          seed=o.seed, progress=self.progress)
        elif o.rate_distortion:
            lmbda, target = self.rd_plan()
            from latentpack.codec.keras import train_rd

            trained = train_rd.train_rd_autoencoder(self.staged, self.design, lmbda=lmbda, target=target, epochs=epochs,
                                                 batch_size=o.batch_size, seed=o.seed, progress=self.progress)
        else:
            trained = train.train_autoencoder(self.staged, self.design, epochs=epochs, batch_size=o.batch_size,
                                              seed=o.seed, progress=self.progress)
        self.decoder = trained.decoder.as_stored(o.stored_weight_dtype)  # before anything measures it
        self.encoder = trained.encoder
        self.density = getattr(trained, "density", None)
        self.record = TrainingRecord.of(self.design, trained, o, self.timings, self.staged.skipped)
        self.record.device = device
        self.timings["train"] = time.perf_counter() - t
        if self.role is not None and not self.role.is_chief:
            raise _ShardTrained  # the chief alone encodes, refines, chooses the step and writes

    def rd_plan(self) -> tuple[float, tuple[str, float] | None]:
        """Rate-distortion training: the first lambda, and the PSNR or rate it is steered toward (if any)."""
        o, target = self.options, self.options.rate_target
        if target.psnr is not None:
            return o.lmbda or rd.lambda_for_psnr(target.psnr), rd.steering_target(psnr=target.psnr)
        budget = target.byte_budget(self.staged.x_bits // 8)
        if budget is None:
            return o.lmbda or rd.DEFAULT_LAMBDA, None
        weight_bytes = 2 if o.stored_weight_dtype == "float16" else 4
        left = budget - metadata_estimate(len(self.staged), o.stored_digest_bytes) - self.design.decoder_scalars * weight_bytes
        return o.lmbda or rd.DEFAULT_LAMBDA, rd.steering_target(latent_bytes=left, samples=self.staged.x_bits // 8)

    def index_coded(self) -> CodedLatents:
        """``--codes index``: image i's codes generated from i (nothing stored per image)."""
        o, w, y = self.options, len(self.staged), self.design.latent_dims
        shapes = np.tile(np.array([[1, 1, y]], dtype=np.int32), (w, 1))
        offsets = np.arange(w + 1, dtype=np.int64) * y
        step = o.latent_step or DEFAULT_STEP
        q = index_codes(np.arange(int(offsets[-1])), o.seed)
        latents = Latents(values=np.zeros(0, np.float32), offsets=offsets, shapes=shapes,
                          index_codes=IndexCodes(seed=o.seed, step=float(step)))
        return CodedLatents(q, dequantize(q, step), latents, 0, step)

    def encode(self) -> None:
        """Encode every image to float latents."""
        from latentpack.codec.keras import train

        t = time.perf_counter()
        self.float_latents = train.encode_folder(self.encoder, self.staged, self.design, progress=self.progress)
        if self.density is not None:  # what the learned density predicts the coded latents take, at step 1
            from latentpack.codec.keras.train_rd import predicted_bits

            self.record.rate_distortion["predicted_bits"] = predicted_bits(self.density, self.float_latents)
        self.timings["encode"] = time.perf_counter() - t

    def refine_at(self, step: float, values: np.ndarray | None = None) -> bool:
        """Fine-tune the decoder on the latents quantised at ``step``; True if its error went down.

        ``values``: those latents' flat float32 values when the caller has them (not made twice).
        """
        o = self.options
        if o.codes != "encoder" or not self.design.one_vector or o.refine_steps == 0:
            return False
        from latentpack.codec.keras import train

        t = time.perf_counter()
        n = o.refine_steps or train.default_refine_steps(self.record.epochs, self.record.steps_per_epoch)
        if values is None:  # the values code_latents gives, without coding them (nor keeping the integers)
            values = dequantize(quantize_latents(self.float_latents.values, step), step)
        values = values.reshape(len(self.staged), 1, 1, -1)
        result = train.refine_decoder(self.staged, self.design, self.decoder, values, steps=n,
                                      batch_size=o.batch_size, seed=o.seed, progress=self.progress)
        kept = result.mse_after < result.mse_before
        if kept:
            self.decoder = result.decoder
        self.record.refine = result.as_json(kept)
        self.timings["refine"] = time.perf_counter() - t
        return kept

    def assemble(self, coded: CodedLatents, choice: RateChoice | None = None) -> ArchiveContents:
        """Measure (lossless: code and check the pixels) and put the archive's contents together."""
        self.record.rate_control = choice
        return assemble_contents(self.staged, self.decoder, load_decoder(self.decoder), coded, self.record,
                                 self.options.lossless, self.options.stored_digest_bytes, self.progress)


def _choose_and_assemble(run: _Compression) -> ArchiveContents:
    """Choose the latent step (for the target, or by default), refine at it, assemble."""
    o, latents = run.options, run.float_latents
    target = o.rate_target
    if not target.active:
        t = time.perf_counter()
        if o.latent_step:
            step = o.latent_step
        elif o.rate_distortion:
            step = 1.0  # the step the latents were trained for
        elif o.lossless:
            step = rate.lossless_step(run.staged, run.decoder, latents)
        else:
            step = rate.lossy_step(run.staged, load_decoder(run.decoder), latents)
        coded = code_latents(latents, step, keep_integers=o.lossless)  # lossy: the values alone are measured
        run.float_latents = latents = None  # not needed once coded: 4 bytes a latent given back
        run.timings["code_latents"] = time.perf_counter() - t
        run.refine_at(step, coded.values)
        return run.assemble(coded)
    t = time.perf_counter()
    latent_max = float(np.max(np.abs(latents.values))) if latents.values.size else None
    grid = rd.rd_step_grid(latent_max) if o.rate_distortion else rate.step_grid(float(np.std(latents.values)), latent_max)
    budget = target.byte_budget(run.staged.x_bits // 8)
    if target.psnr is not None:
        k = rate.quality_index(run.staged, load_decoder(run.decoder), latents, grid, target.psnr)
        run.timings["code_latents"] = time.perf_counter() - t
        contents, choice = rate.meet_quality(run.assemble, latents, grid, k, target.psnr)
    else:
        run.timings["code_latents"] = time.perf_counter() - t
        contents, choice = rate.fit_size(run.assemble, latents, grid, budget)
    return _refined(run, contents, choice, None if target.psnr is not None else budget)


def _refined(run: _Compression, contents: ArchiveContents, choice: RateChoice, budget: int | None) -> ArchiveContents:
    """Refine the decoder at the step rate control chose; keep the result only if it is better and still fits."""
    if not run.refine_at(choice.step):
        return contents
    refined = run.assemble(code_latents(run.float_latents, choice.step))
    if not rate.refined_is_kept(contents, refined, budget):
        contents.training["refine"] = dict(run.record.refine, kept=False)  # tried, not kept
        return contents
    refined.training["rate_control"] = rate.refined_choice(choice, refined).as_json()
    return refined


def _autoencoder_contents(run: _Compression) -> ArchiveContents:
    """Plan, train and encode the autoencoder, then choose the step and assemble."""
    run.plan()
    run.train()
    if run.options.codes == "index":
        return run.assemble(run.index_coded())
    run.encode()
    return _choose_and_assemble(run)


def compress(folder: str | os.PathLike, archive: str | os.PathLike, options: CompressOptions) -> CompressResult:
    """Train an autoencoder on a folder and write its archive (see `compress_folder` for the options).

    Under ``TF_CONFIG`` (several workers: `latentpack.codec.cluster`) every
    worker trains its shard; only the chief writes, the others return with
    ``contents`` None.

    Returns:
        The written path, the archive's contents and the timings.

    Raises:
        FileExistsError: ``archive`` exists and ``options.force`` is False.
        BadImagesError: some files cannot be used (all are listed).
        OptionError: an option is out of range, a target cannot be reached,
            ``archive`` is an input file, or ``TF_CONFIG`` is malformed.
        ClusterError: the workers' folders differ, or a worker stopped.
    """
    options.check()
    role = cluster_role()  # TF_CONFIG (None: one process); malformed: an OptionError before any work
    folder, archive = Path(folder), Path(archive)
    check_output_path(folder, archive, options.force)
    if role is not None and not role.is_chief and uses_pixel_model(options):
        return CompressResult(path=archive, contents=None, worker=role)  # the pixel model trains on the chief alone
    progress = options.progress or null_progress
    timings: dict[str, float] = {}
    t = time.perf_counter()
    staged = read_folder(folder, exclude=[archive], progress=progress, skip_bad=options.skip_bad)
    timings["read"] = time.perf_counter() - t
    try:
        if uses_pixel_model(options):
            contents = pixel_contents(staged, options, progress, timings)
        else:
            contents = _autoencoder_contents(_Compression(options, staged, progress, timings, role=role))
        t = time.perf_counter()
        write_archive(archive, contents, force=options.force)
        timings["write"] = time.perf_counter() - t
        warnings = compression_warnings(archive, staged.folder_bytes, contents.quality.mean_psnr, options)
    except _ShardTrained:  # TF_CONFIG: this worker trained its shard; the chief writes the archive
        return CompressResult(path=archive, contents=None, timings=timings, worker=role)
    finally:
        staged.close()
    return CompressResult(path=archive, contents=contents, timings=timings, warnings=warnings, worker=role)


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
    digest_bytes: int | None = None,
    quality: float | None = None,
    max_bytes: int | None = None,
    ratio: float | None = None,
    weight_dtype: str | None = None,
    refine_steps: int | None = None,
    lossless_coder: str = "auto",
    objective: str = "rd",
    lmbda: float | None = None,
    progress: ProgressFactory | None = None,
) -> CompressResult:
    """Train an autoencoder on a folder and write its archive.

    Args:
        folder: The image folder (read recursively; hidden files skipped).
        archive: The archive to write.
        latent_dims, epochs, ...: the options, each documented in `CompressOptions`.

    Returns:
        The written path, the archive's contents and the timings. Under
        ``TF_CONFIG``, on a worker other than the chief: nothing is written
        and ``contents`` is None (``worker`` says which worker it was).

    Raises:
        FileExistsError: ``archive`` exists and ``force`` is False.
        BadImagesError: some files cannot be used (all are listed).
        OptionError: (a ValueError) an argument is out of range, a target
            cannot be reached, or ``archive`` is an input file.
        ValueError: the folder is empty.
    """
    given = dict(locals())
    options = CompressOptions(**{f.name: given[f.name] for f in fields(CompressOptions)})
    return compress(folder, archive, options)
