"""The ``verify`` operation: decode every image of an archive, compare with digests and a folder.

    archive -> decode every image (lossless: exact, each sha256 compared)
            -> [FOLDER] open the file of the same name -> lossless: same pixels?
                                                        lossy: PSNR (and not worse
                                                        than recorded at compress time)
            -> a report; ``ok`` is False on any mismatch or missing file

Numpy, Pillow, h5py and constriction only (``verify`` never imports TensorFlow).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentpack.codec.decode import DECODING_PARTS, digest_checked, iter_images
from latentpack.codec.entropy.lossless import AllDigests
from latentpack.formats import ArchiveContents, ArchiveError, read_archive
from latentpack.fs.images import ImageReadError, natural_pixels, open_image
from latentpack.metrics import psnr
from latentpack.progress import ProgressFactory, null_progress
from latentpack.fs.names import display_name, safe_target
from latentpack.fs.special import require_regular

__all__ = ["PSNR_TOLERANCE", "VerifyReport", "verify_archive"]

#: Lossy: a PSNR more than this below the one recorded at compress time is a mismatch.
PSNR_TOLERANCE = 0.5


@dataclass
class VerifyReport:
    """What `verify_archive` found.

    Attributes:
        archive: The archive checked.
        lossless: Whether it is a lossless archive.
        checked: Images decoded.
        mismatches: ``(name, reason)`` of every image that failed.
        psnr: Lossy with a folder: PSNR of each image against its file.
        all_digests_ok: Lossless: whether the digest of all full digests
            matched (None when not stored).
    """

    archive: str
    lossless: bool
    checked: int = 0
    mismatches: list[tuple[str, str]] = field(default_factory=list)
    psnr: dict[str, float] = field(default_factory=dict)
    all_digests_ok: bool | None = None
    digest_failures: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.all_digests_ok is not False

    @property
    def mean_psnr(self) -> float | None:
        finite = [v for v in self.psnr.values() if math.isfinite(v)]
        if not self.psnr:
            return None
        return float(np.mean(finite)) if finite else math.inf

    def failure_summary(self) -> str:
        """One line naming what failed."""
        parts = []
        if self.mismatches:
            shown = ", ".join(f"{display_name(n)} ({display_name(r)})" for n, r in self.mismatches[:5])
            more = f" and {len(self.mismatches) - 5} more" if len(self.mismatches) > 5 else ""
            parts.append(f"{len(self.mismatches)} image(s) failed: {shown}{more}")
        if self.all_digests_ok is False:
            parts.append("the digest of all digests does not match /images/sha256_all")
        return "; ".join(parts)

    def lines(self) -> list[str]:
        """The report as text lines (names and reasons escaped for a terminal)."""
        kind = "lossless" if self.lossless else "lossy"
        out = [f"archive   {self.archive} ({kind})", f"decoded   {self.checked} image(s)"]
        if self.lossless:
            bad = self.digest_failures
            out.append(f"sha256    {self.checked - bad} match, {bad} differ")
            if self.all_digests_ok is not None:
                out.append(f"all       {'match' if self.all_digests_ok else 'DIFFER'} (/images/sha256_all)")
        if self.psnr:
            mean = self.mean_psnr
            worst = min(self.psnr.items(), key=lambda kv: kv[1])
            out.append(f"psnr      mean {'exact' if mean == math.inf else f'{mean:.2f} dB'}, "
                       f"worst {worst[1]:.2f} dB ({display_name(worst[0])})")
        for name, reason in self.mismatches:
            out.append(f"FAIL      {display_name(name)}: {display_name(reason)}")
        out.append("OK" if self.ok else "FAILED")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "archive": self.archive,
            "lossless": self.lossless,
            "checked": self.checked,
            "ok": self.ok,
            "mismatches": [{"name": n, "reason": r} for n, r in self.mismatches],
            "mean_psnr": self.mean_psnr,
            "psnr": self.psnr,
            "all_digests_ok": self.all_digests_ok,
        }


def verify_archive(
    archive: str | os.PathLike,
    folder: str | os.PathLike | None = None,
    *,
    progress: ProgressFactory | None = None,
) -> VerifyReport:
    """Decode every image of an archive and check it.

    Args:
        archive: The archive.
        folder: Optional folder holding the originals under the stored names.
        progress: Optional progress factory.

    Returns:
        The report (``report.ok`` says whether everything matched).

    Raises:
        ArchiveError: the archive itself is not valid.
        NotRegularFileError: the archive is a FIFO, socket or device (not opened).
    """
    require_regular(archive, "archive")  # a FIFO or device would block the HDF5 open
    contents = read_archive(archive, (*DECODING_PARTS, "quality"))  # the training record is never read
    try:
        return _verify(archive, contents, folder, progress)
    except ArchiveError as err:  # a stream that does not decode, a non-finite image: name the file too
        err.file = err.file or archive
        raise


def _verify(archive: str | os.PathLike, contents: ArchiveContents, folder: str | os.PathLike | None,
            progress: ProgressFactory | None) -> VerifyReport:
    """`verify_archive` after the archive was read."""
    table = contents.images
    lossless = digest_checked(contents)
    report = VerifyReport(archive=os.fspath(archive), lossless=lossless)
    digests: list[bytes] = []
    root = Path(folder) if folder is not None else None
    with (progress or null_progress)("Verifying", len(table)) as bar:
        for i, image, digest, ok in iter_images(contents, strict=False):
            name = table.names[i]
            report.checked += 1
            if digest is not None:
                digests.append(digest)
            if not ok:
                report.digest_failures += 1
                report.mismatches.append((name, "sha256 differs from the stored digest"))
            if root is not None:
                reason = _compare(root, name, image, digest, float(contents.quality.psnr[i]), report)
                if reason and ok:
                    report.mismatches.append((name, reason))
            bar.update(1)
    if lossless and table.sha256_all is not None:
        running = AllDigests.of(contents)  # (1.5) batch by batch in an archive that grew
        for digest in digests:
            running.add(digest)
        report.all_digests_ok = running.matches(table.sha256_all)
    return report


def _compare(root: Path, name: str, image, digest: bytes | None, recorded: float, report: VerifyReport) -> str | None:
    """Compare a decoded image with the folder's file; a reason when they differ."""
    try:
        path = safe_target(root, name)
        if not path.exists():
            return "missing from the folder"
        original = open_image(path)  # a FIFO or device there is refused by name, never opened blocking
    except (ImageReadError, OSError, ValueError) as err:
        return f"the folder's file cannot be read ({err})"
    if digest is not None:
        return None if original.sha256 == digest else "pixels differ from the folder's file"
    recon, _ = natural_pixels(image)
    if recon.shape[:2] != original.natural.shape[:2]:
        return f"size {recon.shape[1]}x{recon.shape[0]} differs from the file's"
    if recon.shape != original.natural.shape:
        recon = recon[..., : original.natural.shape[2]]
        if recon.shape != original.natural.shape:
            return "channels differ from the file's"
    value = psnr(original.natural, recon)
    report.psnr[name] = value
    if math.isfinite(recorded) and value < recorded - PSNR_TOLERANCE:
        return f"PSNR {value:.2f} dB is below the {recorded:.2f} dB recorded at compress time"
    return None
