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

from latentpack.codec.assemble import TrainingRecord, assemble_contents
from latentpack.codec.design import ARCHS, CodecDesign
from latentpack.codec.entropy.latent_coding import CodedLatents, code_latents, dequantize
from latentpack.codec import rate
from latentpack.codec.index_codes import DEFAULT_STEP, index_codes
from latentpack.codec.rate import RateChoice, RateTarget
from latentpack.codec.runtime.reconstruct import load_decoder
from latentpack.errors import OptionError
from latentpack.fs.folder import ImageFolder, check_output_path, read_folder
from latentpack.formats import write_archive
from latentpack.formats.schema import WEIGHT_DTYPES, ArchiveContents, DecoderWeights, IndexCodes, Latents
from latentpack.formats.validate import DIGEST_BYTES
from latentpack.ops.compress_pixels import LOSSLESS_CODERS, pixel_contents, uses_pixel_model
from latentpack.ops.plan import autoencoder_plan, design_for, report, report_plan
from latentpack.progress import ProgressFactory, null_progress

__all__ = ["CompressOptions", "CompressResult", "compress", "compress_folder", "DEFAULT_BATCH_SIZE", "CODES",
           "DEFAULT_DIGEST_BYTES", "DEFAULT_LOSSLESS_DIGEST_BYTES"]

DEFAULT_BATCH_SIZE = 128
#: Where latents come from: an encoder, or a rule applied to the image's index.
CODES = ("encoder", "index")
#: Stored bytes of each image's sha256 by default: full ones in lossy archives; 4 in lossless ones,
#: whose every image is checked at extraction, plus /images/sha256_all over all full digests
#: (28 bytes less per image: on 28x28 digits the difference between beating xz and not).
DEFAULT_DIGEST_BYTES = 32
DEFAULT_LOSSLESS_DIGEST_BYTES = 4


@dataclass(frozen=True)
class CompressOptions:
    """How to compress a folder (the arguments of `compress_folder`, which documents each).

    Raises:
        OptionError: from `checked`, naming the option that cannot work.
    """

    latent_dims: int | None = None
    epochs: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    arch: str = "auto"
    filters: int | None = None
    seed: int = 0
    force: bool = False
    skip_bad: bool = False
    lossless: bool = False
    codes: str = "encoder"
    latent_step: float | None = None
    digest_bytes: int | None = None
    quality: float | None = None
    max_bytes: int | None = None
    ratio: float | None = None
    weight_dtype: str | None = None
    refine_steps: int | None = None
    lossless_coder: str = "auto"
    progress: ProgressFactory | None = None

    @property
    def rate_target(self) -> RateTarget:
        """The quality or size target (checked)."""
        return RateTarget(psnr=self.quality, max_bytes=self.max_bytes, ratio=self.ratio)

    @property
    def stored_weight_dtype(self) -> str:
        """``weight_dtype``, or its default: ``float16`` for a size target, else ``float32``."""
        if self.weight_dtype is not None:
            return self.weight_dtype
        # a size target wants the smallest file: float16 weights cost no measurable PSNR (README)
        target = self.rate_target
        return "float16" if target.active and target.psnr is None else "float32"

    @property
    def stored_digest_bytes(self) -> int:
        """``digest_bytes``, or its default: `DEFAULT_LOSSLESS_DIGEST_BYTES` when lossless, else 32."""
        if self.digest_bytes is not None:
            return self.digest_bytes
        return DEFAULT_LOSSLESS_DIGEST_BYTES if self.lossless else DEFAULT_DIGEST_BYTES

    def check(self) -> None:
        """Refuse option values that cannot work (the first one met, as `compress_folder` documents)."""
        if self.arch not in ARCHS:
            raise OptionError(f"`arch` must be one of {list(ARCHS)}, got {self.arch!r}")
        if self.batch_size < 1:
            raise OptionError(f"`batch_size` must be >= 1, got {self.batch_size}")
        if self.epochs is not None and self.epochs < 1:
            raise OptionError(f"`epochs` must be >= 1, got {self.epochs}")
        if self.codes not in CODES:
            raise OptionError(f"`codes` must be one of {list(CODES)}, got {self.codes!r}")
        if self.latent_step is not None and not (self.latent_step > 0 and np.isfinite(self.latent_step)):
            raise OptionError(f"`latent_step` must be a positive number, got {self.latent_step}")
        if self.stored_digest_bytes not in DIGEST_BYTES:
            raise OptionError(f"`digest_bytes` must be one of {list(DIGEST_BYTES)}, got {self.digest_bytes}")
        if self.refine_steps is not None and self.refine_steps < 0:
            raise OptionError(f"`refine_steps` must be >= 0, got {self.refine_steps}")
        if self.lossless_coder not in LOSSLESS_CODERS:
            raise OptionError(f"`lossless_coder` must be one of {list(LOSSLESS_CODERS)}, got {self.lossless_coder!r}")
        target = self.rate_target
        if self.stored_weight_dtype not in WEIGHT_DTYPES:
            raise OptionError(f"`weight_dtype` must be one of {list(WEIGHT_DTYPES)}, got {self.weight_dtype!r}")
        if target.active and (self.lossless or self.codes == "index" or self.latent_step is not None):
            raise OptionError("a rate target (quality, max_bytes, ratio) needs lossy coded latents: "
                              "not with `lossless`, `codes` index or `latent_step`")
        uses_pixel_model(self)  # refuses the pixel coder with an autoencoder's options


@dataclass
class CompressResult:
    """What `compress` wrote and measured."""

    path: Path
    contents: ArchiveContents
    timings: dict[str, float] = field(default_factory=dict)


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
    record: TrainingRecord | None = None
    float_latents: Latents | None = None

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
        report.info(f"Training on {device}")
        t = time.perf_counter()
        if o.codes == "index":
            if not self.design.one_vector:
                raise OptionError("`codes` index needs images of one size (the mlp or dense architecture)")
            codes = self.index_coded().values.reshape(w, 1, 1, -1)
            trained = train.train_decoder(self.staged, self.design, codes, epochs=epochs, batch_size=o.batch_size,
                                          seed=o.seed, progress=self.progress)
        else:
            trained = train.train_autoencoder(self.staged, self.design, epochs=epochs, batch_size=o.batch_size,
                                              seed=o.seed, progress=self.progress)
        self.decoder = trained.decoder.as_stored(o.stored_weight_dtype)  # before anything measures it
        self.encoder = trained.encoder
        self.record = TrainingRecord.of(self.design, trained, o, self.timings, self.staged.skipped)
        self.record.device = device
        self.timings["train"] = time.perf_counter() - t

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
        self.timings["encode"] = time.perf_counter() - t

    def refine_at(self, step: float) -> bool:
        """Fine-tune the decoder on the latents quantised at ``step``; True if its error went down."""
        o = self.options
        if o.codes != "encoder" or not self.design.one_vector or o.refine_steps == 0:
            return False
        from latentpack.codec.keras import train

        t = time.perf_counter()
        n = o.refine_steps or train.default_refine_steps(self.record.epochs, self.record.steps_per_epoch)
        values = code_latents(self.float_latents, step).values.reshape(len(self.staged), 1, 1, -1)
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
        elif o.lossless:
            step = rate.lossless_step(run.staged, run.decoder, latents)
        else:
            step = rate.lossy_step(run.staged, load_decoder(run.decoder), latents)
        coded = code_latents(latents, step)
        run.timings["code_latents"] = time.perf_counter() - t
        run.refine_at(step)
        return run.assemble(coded)
    t = time.perf_counter()
    grid = rate.step_grid(float(np.std(latents.values)), float(np.max(np.abs(latents.values))))
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

    Returns:
        The written path, the archive's contents and the timings.

    Raises:
        FileExistsError: ``archive`` exists and ``options.force`` is False.
        BadImagesError: some files cannot be used (all are listed).
        OptionError: an option is out of range, a target cannot be reached,
            or ``archive`` is an input file.
    """
    options.check()
    folder, archive = Path(folder), Path(archive)
    check_output_path(folder, archive, options.force)
    progress = options.progress or null_progress
    timings: dict[str, float] = {}
    t = time.perf_counter()
    staged = read_folder(folder, exclude=[archive], progress=progress, skip_bad=options.skip_bad)
    timings["read"] = time.perf_counter() - t
    try:
        if uses_pixel_model(options):
            contents = pixel_contents(staged, options, progress, timings)
        else:
            contents = _autoencoder_contents(_Compression(options, staged, progress, timings))
        t = time.perf_counter()
        write_archive(archive, contents, force=options.force)
        timings["write"] = time.perf_counter() - t
    finally:
        staged.close()
    return CompressResult(path=archive, contents=contents, timings=timings)


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
        arch: ``auto`` or a registered architecture (``mlp``, ``dense``, ``conv``).
        filters: Decoder width; None picks from the size budget.
        seed: Random seed (same folder and seed give the same archive
            contents on the same machine).
        force: Replace an existing archive (never an input image: an
            existing file inside ``folder`` must be a latentpack archive).
        skip_bad: Leave out the files that cannot be used instead of
            failing; their names and reasons go into the archive's training
            record (``skipped``).
        lossless: Store every image bit-exact.
        lossless_coder: ``pixel`` (a learned per-pixel model), ``residual`` (an autoencoder's
            prediction plus residuals), ``auto``: ``pixel`` unless an autoencoder option is given.
        codes: ``encoder`` (train an encoder, store coded latents) or
            ``index`` (image i's code is generated from i and not stored;
            equal-sized images only).
        latent_step: Quantisation step of the latents; None chooses.
        digest_bytes: Bytes of each image's sha256 kept (4, 8, 16 or 32; None: 4 if lossless, else 32;
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
        OptionError: (a ValueError) an argument is out of range, a target
            cannot be reached, or ``archive`` is an input file.
        ValueError: the folder is empty.
    """
    given = dict(locals())
    options = CompressOptions(**{f.name: given[f.name] for f in fields(CompressOptions)})
    return compress(folder, archive, options)
