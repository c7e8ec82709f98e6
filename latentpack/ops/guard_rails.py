"""Guard rails: what `compress` tells the user when the archive it wrote is not worth keeping.

Two checks, after the archive is written:

- **larger than the folder**: the archive takes more bytes than the input
  images' files on disk (the decoder's weights dominate a small folder, or
  the files were already well compressed);
- **low quality**: a lossy archive whose mean PSNR is below `LOW_PSNR_DB`.

Each `GuardWarning` says what was found and what to try, worded for the
options this run used. The CLI prints them on stderr as ``Warning: ...`` and
puts them in ``--json`` output under ``"warnings"``; library callers find
them in `latentpack.ops.compress.CompressResult.warnings`.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = ["LOW_PSNR_DB", "SMALL_FOLDER_BYTES", "GuardWarning", "larger_than_folder", "low_quality", "compression_warnings",
           "warnings_json"]

#: Mean PSNR (dB) below which a lossy archive is said to lose too much.
LOW_PSNR_DB = 20.0
#: Below this many bytes of images, no archive can be smaller: the advice says so instead of naming options.
SMALL_FOLDER_BYTES = 32 * 1024


class _Options(Protocol):
    """The options the advice is worded for (`latentpack.ops.compress.CompressOptions` has them all)."""

    lossless: bool
    epochs: int | None
    latent_dims: int | None
    arch: str
    max_bytes: int | None
    ratio: float | None
    quality: float | None
    stored_weight_dtype: str


@dataclass(frozen=True)
class GuardWarning:
    """One warning: which check (``kind``), what was found, and what to try.

    Attributes:
        kind: ``larger_than_folder`` or ``low_psnr``.
        message: What was found, with the figures.
        advice: What to try, for the options this run used.
    """

    kind: str
    message: str
    advice: str

    def __str__(self) -> str:
        return f"{self.message}; {self.advice}"

    def as_json(self) -> dict[str, str]:
        """``{"kind", "message", "advice"}``."""
        return asdict(self)


def larger_than_folder(archive_bytes: int, folder_bytes: int, options: _Options) -> GuardWarning | None:
    """The warning for an archive larger than the images' files, or None.

    Args:
        archive_bytes: Size of the written archive.
        folder_bytes: Total size of the input images' files on disk.
        options: The run's options (the advice depends on them).
    """
    if archive_bytes <= folder_bytes:
        return None
    ratio = archive_bytes / max(folder_bytes, 1)
    message = (f"the archive ({archive_bytes:,} bytes) is larger than the images' files on disk "
               f"({folder_bytes:,} bytes, {ratio:.1f}x)")
    if folder_bytes < SMALL_FOLDER_BYTES:
        advice = ("an archive's fixed part (its structure, the names, the model) outweighs images this small: "
                  "keep the files as they are, or compress more images at once")
    elif options.lossless:
        advice = ("the files are already well compressed: keep them as they are, or try the other "
                  "--lossless-coder (pixel or residual)")
    else:
        sized = "a smaller --max-size" if options.max_bytes or options.ratio else f"--max-size {folder_bytes // 2}"
        weights = ", --weights float16" if options.stored_weight_dtype == "float32" else ""
        advice = (f"try {sized} (plans the decoder for it){weights}, a smaller -y or --filters, "
                  "or compress more images at once (the decoder is shared by all of them)")
    return GuardWarning("larger_than_folder", message, advice)


def low_quality(mean_psnr: float, options: _Options) -> GuardWarning | None:
    """The warning for a lossy archive whose mean PSNR is below `LOW_PSNR_DB`, or None.

    Never for a lossless archive, nor for a ``--quality`` target below `LOW_PSNR_DB` (asked for).
    """
    if options.lossless or not math.isfinite(mean_psnr) or mean_psnr >= LOW_PSNR_DB:
        return None
    if options.quality is not None and options.quality < LOW_PSNR_DB:  # asked for it
        return None
    tries = [f"more --epochs (this run: {options.epochs})" if options.epochs else "more --epochs",
             f"a larger -y (this run: {options.latent_dims})" if options.latent_dims else "a larger -y or --filters"]
    if options.max_bytes or options.ratio:
        tries.append("a larger --max-size or a smaller --ratio")
    tries.append("a different --arch (mlp, dense or conv; conv suits photographs)")
    tries.append("--lossless for bit-exact images")
    return GuardWarning("low_psnr", f"the mean PSNR is {mean_psnr:.2f} dB, below {LOW_PSNR_DB:g} dB: "
                        "the images lose much detail", "try " + ", ".join(tries))


def compression_warnings(archive: str | os.PathLike, folder_bytes: int, mean_psnr: float,
                         options: _Options) -> list[GuardWarning]:
    """Every guard-rail warning for an archive just written.

    Args:
        archive: The archive's path (its size on disk is measured).
        folder_bytes: Total size of the input images' files on disk.
        mean_psnr: The archive's mean PSNR (inf when every image is exact).
        options: The run's options.
    """
    found = (larger_than_folder(os.stat(archive).st_size, folder_bytes, options), low_quality(mean_psnr, options))
    return [w for w in found if w is not None]


def warnings_json(warnings: list[GuardWarning]) -> list[dict[str, Any]]:
    """The warnings as JSON-able dicts, for ``--json`` output."""
    return [w.as_json() for w in warnings]
