"""``/quality``: the PSNR of every reconstruction, measured at compress time (+inf: exact)."""
from __future__ import annotations

from typing import Any

import numpy as np

from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.registry import Context, Element, Field, register
from latentpack.formats.schema import Quality

__all__ = ["QualityElement"]


@register
class QualityElement(Element, encoding_type="quality", label="quality", reads=("1.0", "1.1", "1.2", "1.3"), display=4):
    fields = (
        Field("mean_psnr", np.float64, attr=True, derived=True),
        Field("min_psnr", np.float64, attr=True, derived=True),
        Field("psnr", np.float64, ("w",)),
    )

    def check(self, obj: Quality, ctx: Context) -> None:
        bad = np.isnan(obj.psnr) | (obj.psnr == -np.inf)
        if np.any(bad):
            raise CorruptArchiveError(f"entry {int(np.argmax(bad))}: must be a number or +inf, got {obj.psnr[bad][0]}",
                                      hdf5_path="/quality/psnr")

    def build(self, values: dict[str, Any], archive: Any) -> Quality:
        return Quality(psnr=values["psnr"])
