"""The ``inspect`` operation and ``list``'s rows: what an archive holds (no TensorFlow).

Format 1.1 archives also report the bits actually stored (coded latents,
lossless residuals) next to the seed's float32 accounting, and 1.2 archives
the decoder's bits as stored (float16 weights) next to ``z``.

`archive_summary` gives the size breakdown a user came for: both sides of
z + w*y*32 < x and the verdict, the real bytes of each part of the file, the
ratios to the raw size and to the folder's size on disk, and the quality
measured at compress time.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentpack.codec.decode import check_decodable_images, check_latent_range
from latentpack.codec.entropy.latent_coding import decode_latents
from latentpack.formats import ArchiveContents, ArchiveError, open_archive
from latentpack.fs.special import require_regular

__all__ = ["ArchiveSummary", "archive_summary", "added_batches", "extract_checks", "image_rows", "skipped_files",
           "json_ready"]


def json_ready(value: Any) -> Any:
    """A copy of nested dicts and lists fit for strict JSON: non-finite floats (an exact PSNR) become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


@dataclass
class ArchiveSummary:
    """What ``inspect`` reports about an archive (`archive_summary`); ``inspect --json`` prints `as_json`.

    Attributes:
        archive: The archive's path, as given.
        format_version: The file's format version (``"1.2"``).
        mode: ``"lossy"`` or ``"lossless"``.
        stored: Format 1.1 and later: the bits as stored (coded latents,
            residuals, float16 weights), else None.
        writer: The latentpack version that wrote it.
        created: When it was written (ISO 8601).
        formula: Both sides of z + w*y*32 < x and the verdict.
        bytes: The real bytes of each part of the file and the ratios.
        quality: Mean and worst PSNR measured at compress time.
        training: The model's settings (arch, y, filters, epochs, seed, ...).
        skipped: Files left out with ``compress --skip-bad``: name, reason.
        rate_control: The ``--quality``/``--max-size`` record, if any.
        refine: The decoder refinement record, if any.
        checks: What ``inspect`` checked of what ``extract`` needs, and what
            it left to ``verify``: ``{"checked": [...], "skipped": [...]}``.
        additions: (1.5) The batches ``add`` appended: batch, first row,
            images, created, writer, mean PSNR (empty when none).
    """

    archive: str
    format_version: str
    mode: str
    stored: dict[str, Any] | None
    writer: str
    created: str
    formula: dict[str, Any]
    bytes: dict[str, Any]
    quality: dict[str, Any]
    training: dict[str, Any]
    skipped: list[dict[str, str]]
    rate_control: dict[str, Any] | None
    refine: dict[str, Any] | None
    checks: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    additions: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary as nested dicts (an exact PSNR stays ``inf``)."""
        return dataclasses.asdict(self)

    def as_json(self) -> dict[str, Any]:
        """The summary as ``inspect --json`` prints it (strict JSON: non-finite numbers are None)."""
        return json_ready(self.to_dict())


def _ratio(num: float, den: float) -> float | None:
    return None if den <= 0 else num / den


def archive_summary(path: str | os.PathLike) -> ArchiveSummary:
    """The facts `inspect` prints.

    Raises:
        ArchiveError: the file is not a valid archive.
    """
    require_regular(path, "archive")  # a FIFO or device would block the HDF5 open
    with open_archive(path) as ar:
        ar.validate()  # inspect vouches for the whole archive, weights and latents included
        try:
            checks = extract_checks(ar.contents())
        except ArchiveError as err:  # a latent stream that does not decode, a tensor over the limits
            err.file = err.file or path
            raise
        return _summary(path, ar, checks)


def _summary(path: str | os.PathLike, ar: Any, checks: dict[str, list[str]]) -> ArchiveSummary:
    """The summary of an open archive whose every part was read and checked."""
    h = ar.header
    breakdown = ar.storage_breakdown()
    training = ar.training
    images = ar.images
    pixels = int(np.sum(images.shapes[:, 0].astype(np.int64) * images.shapes[:, 1]))
    pixel_model = ar.part("pixels") is not None
    return ArchiveSummary(
        archive=os.fspath(path),
        format_version=ar.format_version,
        mode="lossless" if ar.is_lossless or pixel_model else "lossy",
        stored=_stored(ar, pixels),
        writer=ar.writer,
        created=ar.created,
        formula=_formula(ar, pixel_model),
        bytes=_bytes(h, breakdown, pixels),
        quality=_quality(ar),
        training=_training(training),
        skipped=_skipped(training),
        rate_control=_rate_control(training),
        refine=_refine(training),
        checks=checks,
        additions=added_batches(ar),
    )


def added_batches(ar: Any) -> list[dict[str, Any]]:
    """(1.5) One dict per batch of images ``add`` appended: where it starts, how many, when, and its mean PSNR."""
    from latentpack.formats.schema import Quality

    additions = ar.part("additions")
    if additions is None:
        return []
    w, psnr = len(ar.images), ar.quality.psnr
    return [{"batch": k, "first": a, "images": b - a, "created": additions.created[k], "writer": additions.writer[k],
             "mean_psnr": Quality(psnr=psnr[a:b]).mean_psnr} for k, (a, b) in enumerate(additions.bounds(w))]


def _training(training: dict[str, Any]) -> dict[str, Any]:
    """The training record's keys inspect shows (and rate-distortion training's final lambda)."""
    out = {k: training.get(k) for k in ("coder", "arch", "working_mode", "latent_dims", "filters", "epochs", "steps",
                                        "seed", "codes", "latent_step", "pixel_model", "device", "replicas",
                                        "strategy", "objective")
           if k in training}
    rd = training.get("rate_distortion")
    if isinstance(rd, dict) and isinstance(rd.get("lambda"), (int, float)):
        out["lambda"] = round(float(rd["lambda"]), 1)
    return out


def extract_checks(contents: ArchiveContents) -> dict[str, list[str]]:
    """Check what ``extract`` needs beyond the reader's rules, short of decoding the images.

    Checked: every image's largest decoding tensor against this reader's
    limits, the coded latent stream (decoded in full: one int32 a latent),
    and that every latent ``q * step`` is a finite float32. Skipped, and
    said so: running the decoder (lossy images), the residual or pixel-model
    streams and the digests (``verify`` decodes every image).

    Returns:
        ``{"checked": [...], "skipped": [...]}``, one sentence each.

    Raises:
        CorruptArchiveError: naming the HDF5 path at fault.
    """
    images = contents.images
    checked: list[str] = []
    check_decodable_images(contents, range(len(images)))
    checked.append("every image's largest decoding tensor is within this reader's limits")
    lat = contents.latents
    if lat is not None and lat.quantized is not None:
        q = decode_latents(lat.quantized, lat.offsets, lat.shapes)
        check_latent_range(q, lat.quantized.step)
        checked.append(f"the latent stream decodes ({q.size:,} latents, all finite)")
    elif lat is not None and lat.index_codes is not None:
        check_latent_range(np.array([510]), lat.index_codes.step)
        checked.append("the generated latents are finite")
    if contents.pixels is not None:
        skipped = ["the pixel-model streams and the digests (verify decodes every image)"]
    elif contents.lossless is not None:
        skipped = ["the decoder run, the residual streams and the digests (verify decodes every image)"]
    else:
        skipped = ["the decoder run on the images (verify decodes every image)"]
    return {"checked": checked, "skipped": skipped if len(images) else []}


def _stored(ar: Any, pixels: int) -> dict[str, Any] | None:
    """The bits as stored (format 1.1 and later), else None."""
    h = ar.header
    if h.stored_bits is None:
        return None
    return {
        "latent_coding": ar.latent_coding or "none (no latents)",
        "decoder_bits": h.z_bits if h.stored_decoder_bits is None else h.stored_decoder_bits,
        "latent_bits": h.stored_latent_bits,
        "latent_bits_per_image": h.stored_latent_bits / h.w if h.w else 0.0,
        "residual_bits": h.residual_bits,
        "total_bits": h.stored_bits,
        "beats_raw": bool(h.beats_raw_stored),
        "factor": _ratio(h.x_bits, h.stored_bits),
        "bits_per_pixel": _ratio(h.stored_bits, pixels),
    }


def _formula(ar: Any, pixel_model: bool) -> dict[str, Any]:
    """Both sides of z + w*y*32 < x, the verdict and the decoder's share.

    For an archive coded under the pixel model alone, ``z`` is that model (its weights
    at 32 bits each) and ``y`` is 0: no latents.
    """
    h = ar.header
    return {
        "model": "pixel model" if pixel_model else "decoder",
        "w": h.w,
        "y": h.y if h.y >= 0 else None,
        "latent_scalars": h.latent_scalars,
        "x_bits": h.x_bits,
        "z_bits": h.z_bits,
        "weight_dtype": "int16" if pixel_model else ar.weight_dtype,
        "latent_bits": h.latent_bits,
        "lhs_bits": h.lhs_bits,
        "beats_raw": bool(h.beats_raw),
        "factor": _ratio(h.x_bits, h.lhs_bits),
        "decoder_share": _ratio(h.z_bits, h.lhs_bits),
        "decoder_dominates": h.z_bits > h.latent_bits and not pixel_model,
    }


def _bytes(h: Any, breakdown: dict[str, int], pixels: int) -> dict[str, Any]:
    """The file's real bytes, part by part, and its ratios to the raw pixels and to the folder."""
    file_bytes = breakdown["file"]
    return {
        "raw": h.x_bits // 8,
        "folder": h.folder_bytes,
        "archive": file_bytes,
        "breakdown": breakdown,
        "ratio_to_raw": _ratio(h.x_bits / 8, file_bytes),
        "ratio_to_folder": _ratio(h.folder_bytes, file_bytes),
        "beats_raw_on_disk": file_bytes * 8 < h.x_bits,
        "beats_folder": file_bytes < h.folder_bytes,
        "bits_per_pixel": _ratio(file_bytes * 8, pixels),
    }


def _quality(ar: Any) -> dict[str, Any]:
    """The PSNR measured at compress time: mean, worst and which image."""
    q = ar.quality
    worst = int(np.argmin(q.psnr)) if len(q.psnr) else None
    return {
        "mean_psnr": q.mean_psnr,
        "min_psnr": q.min_psnr,
        "worst_image": ar.images.names[worst] if worst is not None else None,
        "exact_images": int(np.sum(np.isinf(q.psnr))),
        "prediction_mean_psnr": ar.training.get("prediction_mean_psnr"),
    }


def _rate_control(training: dict[str, Any]) -> dict[str, Any] | None:
    """The ``rate_control`` record of the training log (FORMAT.md: MAY), if well-formed."""
    rc = training.get("rate_control")
    if not isinstance(rc, dict) or rc.get("target") not in ("psnr", "bytes"):
        return None
    number = (int, float)
    if not isinstance(rc.get("value"), number) or not isinstance(rc.get("reached"), bool):
        return None
    out = {"target": rc["target"], "value": rc["value"], "reached": rc["reached"]}
    if isinstance(rc.get("step"), number):
        out["step"] = rc["step"]
    if isinstance(rc.get("got"), number):
        out["got"] = rc["got"]
    return out


def _refine(training: dict[str, Any]) -> dict[str, Any] | None:
    """The ``refine`` record of the training log (FORMAT.md: MAY), if well-formed."""
    r = training.get("refine")
    number = (int, float)
    if not isinstance(r, dict) or not isinstance(r.get("kept"), bool):
        return None
    if not all(isinstance(r.get(k), number) and not isinstance(r.get(k), bool) for k in ("steps", "mse_before", "mse_after")):
        return None
    return {"steps": int(r["steps"]), "mse_before": float(r["mse_before"]), "mse_after": float(r["mse_after"]),
            "kept": r["kept"]}


def _skipped(training: dict[str, Any]) -> list[dict[str, str]]:
    """The ``skipped`` list of the training record, as {"name", "reason"} strings (FORMAT.md: MAY)."""
    items = training.get("skipped")
    if not isinstance(items, list):
        return []
    return [
        {"name": str(item.get("name", "")), "reason": str(item.get("reason", ""))}
        for item in items
        if isinstance(item, dict)
    ]


def skipped_files(path: str | os.PathLike) -> list[dict[str, str]]:
    """The files left out at compress time (``compress --skip-bad``), with their reasons."""
    require_regular(path, "archive")  # a FIFO or device would block the HDF5 open
    with open_archive(path) as ar:
        return _skipped(ar.training)


def image_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per image: name, height, width, mode, format, PSNR; (1.5) the batch that added it (None: compressed)."""
    require_regular(path, "archive")  # a FIFO or device would block the HDF5 open
    with open_archive(path) as ar:
        images, psnr = ar.images, ar.quality.psnr
        additions = ar.part("additions")
        batch = additions.batch_of(len(images)).tolist() if additions is not None else [-1] * len(images)
        return [
            {
                "name": images.names[i],
                "height": int(images.shapes[i][0]),
                "width": int(images.shapes[i][1]),
                "mode": images.modes[i],
                "format": images.formats[i],
                "psnr": float(psnr[i]) if math.isfinite(psnr[i]) else math.inf,
                "batch": batch[i] if batch[i] >= 0 else None,
            }
            for i in range(len(images))
        ]
