"""``/quality``: the PSNR of every reconstruction, measured at compress time (+inf: exact).

Layouts: 1.0 (to 1.3) stores float64 PSNRs; 1.4 stores them in 64ths of a
dB as uint16 (`PSNR_STEP`; `INF_CODE` for an exact image). ``compress``
records PSNRs to the nearest 1/64 dB (`latentpack.codec.assemble`), so the
1.4 column holds them exactly, and what ``list``, ``inspect`` and ``verify``
print (two decimals) does not change; another PSNR is rounded to the
nearest 1/64 dB (at most 1/128 dB off). The 1.4 layout is written when
``ArchiveContents.compact_metadata`` is True and every PSNR is +inf or
within 0 to 1023.97 dB; otherwise the 1.0 layout.
"""
from __future__ import annotations

from typing import Any, Mapping

import h5py
import numpy as np

from latentpack.formats import h5write, layout
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.registry import Context, Element, Field, register
from latentpack.formats.schema import Quality

__all__ = ["QualityElement", "CompactQuality", "PSNR_STEP", "INF_CODE", "psnr_codes", "psnr_of_codes"]

#: dB per unit of a 1.4 PSNR code: code ``c`` (below `INF_CODE`) means ``c / 64`` dB, exactly.
PSNR_STEP = 1 / 64
_PER_DB = 64.0
#: The 1.4 code of an exact reconstruction (+inf dB).
INF_CODE = 65535


def psnr_codes(psnr: np.ndarray) -> np.ndarray | None:
    """PSNRs as 1.4 codes (rounded to the nearest 1/64 dB, ties to even), or None when one does not fit."""
    psnr = np.asarray(psnr, dtype=np.float64)
    inf = psnr == np.inf
    with np.errstate(invalid="ignore"):
        codes = np.rint(np.where(inf, 0.0, psnr) * _PER_DB)
    if not np.all(np.isfinite(codes) & (codes >= 0) & (codes < INF_CODE)):
        return None
    return np.where(inf, INF_CODE, codes).astype(np.uint16)


def psnr_of_codes(codes: np.ndarray) -> np.ndarray:
    """1.4 codes as PSNRs in dB (float64; `INF_CODE` -> +inf)."""
    codes = np.asarray(codes)
    return np.where(codes == INF_CODE, np.inf, codes.astype(np.float64) / _PER_DB)


def _compact(contents: Any) -> bool:
    """Whether `contents`' PSNRs are written in the 1.4 layout."""
    return contents.compact_metadata and psnr_codes(contents.quality.psnr) is not None


@register
class QualityElement(Element, encoding_type="quality", label="quality", reads=("1.0", "1.1", "1.2", "1.3"), display=4):
    fields = (
        Field("mean_psnr", np.float64, attr=True, derived=True),
        Field("min_psnr", np.float64, attr=True, derived=True),
        Field("psnr", np.float64, ("w",)),
    )

    def holds(self, contents: Any) -> bool:
        return contents.quality is not None and not _compact(contents)

    def check(self, obj: Quality, ctx: Context) -> None:
        bad = np.isnan(obj.psnr) | (obj.psnr == -np.inf)
        if np.any(bad):
            raise CorruptArchiveError(f"entry {int(np.argmax(bad))}: must be a number or +inf, got {obj.psnr[bad][0]}",
                                      hdf5_path="/quality/psnr")

    def build(self, values: dict[str, Any], archive: Any) -> Quality:
        return Quality(psnr=values["psnr"])


@register
class CompactQuality(QualityElement, encoding_type="quality", label="quality", reads=("1.4", "1.5"), display=4):
    fields = (
        Field("mean_psnr", np.float64, attr=True, derived=True),
        Field("min_psnr", np.float64, attr=True, derived=True),
        Field("psnr", np.uint16, ("w",), since="1.4", storage=h5write.PACKED_WHOLE),
    )

    def holds(self, contents: Any) -> bool:
        return contents.quality is not None and _compact(contents)

    def version(self, obj: Quality) -> str:
        return "1.4"

    def normalise(self, obj: Quality) -> Quality:
        """The PSNRs as stored: rounded to the nearest 1/64 dB (unchanged when ``compress`` measured them)."""
        codes = psnr_codes(layout.floats("contents.quality.psnr", obj.psnr, np.float64))
        if codes is None:
            raise ValueError("`contents.quality.psnr` must be +inf or within 0 to 1023.97 dB for the 1.4 layout")
        return Quality(psnr=psnr_of_codes(codes))

    def validate(self, obj: Quality, ctx: Context) -> None:
        layout.expect(f"{self.path}/psnr", np.asarray(obj.psnr), np.float64, (ctx.w,))
        self.check(obj, ctx)

    def write(self, group: h5py.Group, obj: Quality, options: Mapping[str, Any]) -> None:
        h5write.write_attr(group, "mean_psnr", obj.mean_psnr, np.float64)
        h5write.write_attr(group, "min_psnr", obj.min_psnr, np.float64)
        h5write.write_dataset(group, "psnr", psnr_codes(obj.psnr), h5write.PACKED_WHOLE)

    def build(self, values: dict[str, Any], archive: Any) -> Quality:
        return Quality(psnr=psnr_of_codes(values["psnr"]))
