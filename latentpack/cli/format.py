"""How the commands print numbers: byte sizes, PSNR and ratios."""
from __future__ import annotations

import math

__all__ = ["size", "db", "times"]


def size(n: float) -> str:
    """Bytes in B, KiB, MiB or GiB (``1,234 B``, ``12.1 KiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"


def db(v: float | None) -> str:
    """A PSNR: ``31.20 dB``, ``exact`` (infinite) or ``n/a``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return "exact" if math.isinf(v) else f"{v:.2f} dB"


def times(v: float | None) -> str:
    """A ratio: ``3.20x`` or ``n/a``."""
    return "n/a" if v is None else f"{v:.2f}x"
