"""The last stages of compress: measure, code the pixels (lossless), and put the archive's contents together.

    coded latents, decoder -> numpy decode -> PSNR per image (rounded to 1/64 dB)
        lossless: fixed-point prediction -> code the pixels -> decode all, check the digests
    -> header (sizes and bits) + image table + training record -> `ArchiveContents`

Numpy, Pillow and constriction only: the trained decoder arrives as stored weights.
"""
from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

import latentpack
from latentpack.codec.design import CodecDesign
from latentpack.codec.entropy.latent_coding import CodedLatents
from latentpack.codec.entropy.lossless import check_all_digests, encode_residuals, fixed_point_decoder, iter_exact
from latentpack.codec.rate import RateChoice
from latentpack.codec.runtime.numpy_decoder import NumpyDecoder
from latentpack.codec.runtime.reconstruct import iter_reconstructions
from latentpack.fs.folder import ImageFolder
from latentpack.formats.schema import ArchiveContents, DecoderWeights, ImageTable, Latents, LosslessResiduals, Quality, compute_header
from latentpack.fs.images import natural_pixels, open_image
from latentpack.metrics import psnr
from latentpack.progress import ProgressFactory

__all__ = ["TrainingRecord", "assemble_contents", "image_table", "measure_quality", "metadata_estimate", "open_original",
           "METADATA_BYTES_PER_IMAGE", "METADATA_FIXED_BYTES"]

#: Planning a size target: image metadata besides the digest, per image, and fixed.
METADATA_BYTES_PER_IMAGE = 2.5
METADATA_FIXED_BYTES = 16 * 1024


def metadata_estimate(w: int, digest_bytes: int) -> int:
    """Bytes an archive spends besides the decoder and the latents (for planning a size target).

    Per image: the digest, plus about 2.5 bytes of compact names, PSNR and
    file-size columns (format 1.4; MNIST: 0.1 + 1.4, and 1.2 when sizes are recorded); plus the HDF5 overhead and records (13 KiB for
    400 images, 25 KiB for 70,000).
    """
    return int(w * (digest_bytes + METADATA_BYTES_PER_IMAGE) + METADATA_FIXED_BYTES)


@dataclass
class TrainingRecord:
    """What ``/training/config`` records of a compression (`as_json` is the stored form).

    ``timings`` is the compression's own dict: stages timed later show in it too.
    """

    design: CodecDesign
    epochs: int
    steps_per_epoch: int
    batch_size: int
    seed: int
    loss: list[float]
    codes: str
    lossless: bool
    timings: dict[str, float]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    refine: dict[str, Any] | None = None
    rate_control: RateChoice | None = None
    rate_distortion: dict[str, Any] | None = None
    device: str = "unknown"
    #: How many replicas trained (``{"replicas": 1}``, or with ``strategy`` and ``workers``: codec/keras/distribute).
    replication: dict[str, Any] = field(default_factory=lambda: {"replicas": 1})

    @classmethod
    def of(cls, design: CodecDesign, trained: Any, options: Any, timings: dict[str, float],
           skipped: list[tuple[str, str]]) -> TrainingRecord:
        """The record of a training (`TrainResult`) run with these compress options."""
        return cls(design, trained.epochs, trained.steps_per_epoch, options.batch_size, options.seed, trained.loss,
                   options.codes, options.lossless, timings, list(skipped),
                   rate_distortion=getattr(trained, "rate_distortion", None),
                   replication=dict(getattr(trained, "replication", {"replicas": 1})))

    def as_json(self, step: float, prediction_mean_psnr: float) -> dict[str, Any]:
        """The stored record, for an archive coded at ``step`` whose prediction has that mean PSNR."""
        d = self.design
        out: dict[str, Any] = {
            "arch": d.arch, "working_mode": d.mode, "latent_dims": d.latent_dims, "filters": d.filters,
            "epochs": self.epochs, "steps_per_epoch": self.steps_per_epoch, "batch_size": self.batch_size,
            "seed": self.seed, "loss": self.loss, "codes": self.codes, "lossless": self.lossless,
            "latent_step": float(step), "prediction_mean_psnr": prediction_mean_psnr, "timings": self.timings,
            "platform": platform.platform(), "device": self.device, **self.replication,
        }
        if self.refine is not None:
            out["refine"] = dict(self.refine)
        if self.skipped:
            out["skipped"] = [{"name": name, "reason": reason} for name, reason in self.skipped]
        if self.rate_control is not None:
            out["rate_control"] = self.rate_control.as_json()
        if self.rate_distortion is not None:
            out["objective"] = "rd"
            out["rate_distortion"] = dict(self.rate_distortion)
        return out


def image_table(folder: ImageFolder, digest_bytes: int = 32, file_sizes: bool = True) -> ImageTable:
    """The archive's image table: names, shapes, modes, formats, digests, palettes, file sizes.

    With ``file_sizes`` False each file's size is recorded as ``-1`` (not
    recorded, format 1.4): no command reads it, the header keeps the folder's
    total, and on digits it costs more than a byte per image.
    """
    images = folder.images
    palettes = images.palettes  # the P images' only
    index = np.full(len(folder), -1, dtype=np.int32)
    index[sorted(palettes)] = np.arange(len(palettes), dtype=np.int32)
    digests = images.sha256
    return ImageTable(
        names=list(images.names),
        shapes=np.stack([images.heights, images.widths, images.channels], axis=1).astype(np.int32).reshape(-1, 3),
        modes=images.modes,
        formats=images.formats,
        sha256=digests[:, :digest_bytes].copy(),
        sha256_all=None if digest_bytes == 32 else np.frombuffer(hashlib.sha256(digests).digest(), np.uint8).copy(),
        palette_index=index,
        palettes=np.stack([palettes[i] for i in sorted(palettes)]).astype(np.uint8) if palettes
        else np.zeros((0, 256, 4), np.uint8),
        file_bytes=images.file_bytes.copy() if file_sizes else np.full(len(folder), -1, dtype=np.int64),
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


def measure_quality(folder: ImageFolder, decoder: NumpyDecoder, latents: Latents, table: ImageTable,
                    progress: ProgressFactory) -> np.ndarray:
    """PSNR of every image's reconstruction (what ``extract`` writes) against its natural pixels, (w,) float64."""
    out = np.empty(len(folder), dtype=np.float64)
    with progress("Measuring quality", len(folder)) as bar:
        for i, _, image in iter_reconstructions(decoder, latents, table):
            original = _natural_of_working(folder.working(i), folder.working_mode, folder.images.natural_mode(i))
            p = int(table.palette_index[i])
            recon, _ = natural_pixels(image, table.palettes[p] if p >= 0 else None)
            if recon.shape != original.shape:  # e.g. palette image whose alpha vanished
                recon = recon[..., : original.shape[2]]
            out[i] = psnr(original, recon)
            bar.update(1)
    return out


def open_original(folder: ImageFolder, i: int) -> Image.Image:
    """Image ``i``'s file in its original mode (for a lossless exception), from the path read_folder kept.

    `open_image` checks it again first (format, decompression bombs, truncation),
    so a file swapped since it was read is refused, not trusted.
    """
    path = folder.images.path(i)
    open_image(path)
    with Image.open(path) as img:  # as open_image does
        img.load()
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        img = img.copy()
    if img.mode in ("PA", "La", "RGBa"):
        img = img.convert("LA" if img.mode == "La" else "RGBA")
    return img


def _code_pixels(staged: ImageFolder, decoder: DecoderWeights, coded: CodedLatents, table: ImageTable,
                 progress: ProgressFactory, timings: dict[str, float]) -> LosslessResiduals:
    """Lossless: code every image's pixels given its fixed-point prediction, then decode all and check them."""
    fp = fixed_point_decoder(decoder, coded.step)
    offsets, shapes = coded.latents.offsets, coded.latents.shapes
    t = time.perf_counter()
    residuals = encode_residuals(staged.working, staged.working_mode, table, fp, coded.q, offsets, shapes,
                                 lambda i: open_original(staged, i), progress)
    timings["code_pixels"] = time.perf_counter() - t
    t = time.perf_counter()
    digests = []
    with progress("Checking", len(staged)) as bar:  # decode everything once: never write a wrong archive
        for _, _, _, digest, _ in iter_exact(residuals, fp, coded.q, offsets, shapes, table, staged.working_mode):
            digests.append(digest)
            bar.update(1)
    check_all_digests(table.sha256_all, digests)
    timings["check"] = time.perf_counter() - t
    return residuals


def assemble_contents(staged: ImageFolder, decoder: DecoderWeights, runtime: NumpyDecoder, coded: CodedLatents,
                      record: TrainingRecord, lossless: bool, digest_bytes: int,
                      progress: ProgressFactory) -> ArchiveContents:
    """Measure (lossless: code and check the pixels) and put the archive's contents together.

    Args:
        staged: The read folder.
        decoder: The decoder weights as stored.
        runtime: The same decoder, loaded for numpy.
        coded: The latents at the chosen step.
        record: The training record (its timings get ``measure`` and, lossless, ``code_pixels``, ``check``).
        lossless: Also code the pixels exactly.
        digest_bytes: Bytes of each image's sha256 kept.
        progress: A progress factory.
    """
    table = image_table(staged, digest_bytes, file_sizes=lossless)  # lossy: the metadata diet (issue 12)
    t = time.perf_counter()
    # rounded to 1/64 dB: exact binary fractions, so the stored column deflates well
    measured = np.round(measure_quality(staged, runtime, coded.float_latents, table, progress) * 64) / 64
    prediction_psnr = Quality(psnr=measured).mean_psnr
    record.timings["measure"] = time.perf_counter() - t
    residuals = _code_pixels(staged, decoder, coded, table, progress, record.timings) if lossless else None
    quality = Quality(psnr=np.full(len(staged), np.inf)) if lossless else Quality(psnr=measured)
    header = compute_header(
        w=len(staged), latent_counts=coded.latents.counts, x_bits=staged.x_bits,
        decoder_scalars=decoder.num_scalars, folder_bytes=staged.folder_bytes,
        stored_latent_bits=coded.stored_bits,
        residual_bits=residuals.stored_bits if residuals is not None else None,
        stored_decoder_bits=decoder.stored_bits if decoder.weight_dtype != "float32" else None,
    )
    return ArchiveContents(
        header=header, decoder=decoder, latents=coded.latents, images=table, quality=quality,
        training=record.as_json(coded.step, prediction_psnr), writer=f"latentpack {latentpack.__version__}",
        lossless=residuals,
    )
