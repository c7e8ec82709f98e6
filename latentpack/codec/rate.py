"""Rate control: pick the latent quantisation step that meets a target.

A trained decoder and its float latents leave one knob free: the step that
rounds the latents to integers before they are range-coded. A coarser step
costs fewer bits and more error. Given a target, latentpack searches a grid
of steps (quarter-octaves below the latents' standard deviation) by
bisection, assuming bits fall and PSNR falls as the step grows:

* ``--quality DB``: the coarsest step whose mean PSNR (on a sample of images,
  then confirmed on all of them) is at least DB;
* ``--max-size BYTES`` or ``--ratio N``: the finest step whose archive file,
  every byte of it, is at most BYTES (raw bytes / N).

The grid stops before steps so fine that the largest latent would be
clipped to the coder's alphabet (a clipped latent makes a finer step worse).

A size target is also planned *before* training (`latentpack.codec.design`,
``byte_budget``): when the default design would not fit, the decoder gets at
most ``SIZE_DECODER_SHARE`` of the budget the image metadata leaves, and
``y`` what the rest buys at ``SIZE_BITS_PER_LATENT`` bits per latent. A
quality target cannot be planned without training (nothing predicts the
PSNR of an untrained design), so it keeps the default design and only
searches the step. A target that this decoder cannot reach is reported, not
hidden: `RateChoice.reached` is False and the archive is still written at the
closest step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["RateTarget", "RateChoice", "step_grid", "bisect_steps"]

#: Steps per octave of the grid, and how many octaves below the latents' std it reaches.
STEPS_PER_OCTAVE = 4
OCTAVES = 12


@dataclass(frozen=True)
class RateTarget:
    """One target: a mean PSNR in dB, or a file size (bytes, or raw bytes / ratio)."""

    psnr: float | None = None
    max_bytes: int | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.psnr, self.max_bytes, self.ratio) if v is not None]
        if len(given) > 1:
            raise ValueError("give one rate target: `quality`, `max_bytes` or `ratio`")
        if self.psnr is not None and not (math.isfinite(self.psnr) and self.psnr > 0):
            raise ValueError(f"`quality` must be a positive number of dB, got {self.psnr}")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ValueError(f"`max_bytes` must be >= 1, got {self.max_bytes}")
        if self.ratio is not None and not (math.isfinite(self.ratio) and self.ratio > 0):
            raise ValueError(f"`ratio` must be a positive number, got {self.ratio}")

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.psnr, self.max_bytes, self.ratio))

    def byte_budget(self, raw_bytes: int) -> int | None:
        """The file size allowed, or None for a quality target."""
        if self.max_bytes is not None:
            return self.max_bytes
        if self.ratio is not None:
            return int(raw_bytes // self.ratio)
        return None


@dataclass
class RateChoice:
    """What rate control chose and reached (recorded in ``/training/config``)."""

    target: str
    value: float
    step: float
    reached: bool
    got: float | None = None

    def as_json(self) -> dict[str, Any]:
        out = {"target": self.target, "value": self.value, "step": self.step, "reached": self.reached}
        if self.got is not None:
            out["got"] = self.got
        return out


def step_grid(latent_std: float, latent_max: float | None = None) -> list[float]:
    """Candidate steps, coarsest first: ``std * 2**(-k/4)`` for ``k = 0 .. 48``.

    With ``latent_max`` (the largest ``|latent|``), steps so fine that a
    latent would be clipped to the coder's alphabet (`MAX_SYMBOLS`) are
    left out: clipping would make a finer step worse, and rate control
    relies on quality rising as steps get finer.
    """
    from latentpack.codec.latent_coding import MAX_SYMBOLS

    std = latent_std if latent_std > 0 and math.isfinite(latent_std) else 1.0
    grid = [std * 2.0 ** (-k / STEPS_PER_OCTAVE) for k in range(STEPS_PER_OCTAVE * OCTAVES + 1)]
    if latent_max is not None and math.isfinite(latent_max) and latent_max > 0:
        finest = latent_max / (MAX_SYMBOLS // 2 - 1)
        grid = [g for g in grid if g >= finest] or grid[:1]
    return grid


def bisect_steps(grid: list[float], ok: Callable[[float], bool], *, want_coarsest: bool) -> int | None:
    """Index in ``grid`` (coarsest first) of the step that meets ``ok``, by bisection.

    ``ok`` is assumed monotone along the grid: for a quality target it turns
    True as steps get finer (``want_coarsest``: the first True index); for a
    size target it is True for coarse steps (the last True index).

    Returns:
        The index, or None when no step of the grid meets ``ok``.
    """
    lo, hi = 0, len(grid) - 1
    if want_coarsest:
        if not ok(grid[hi]):
            return None
        while lo < hi:  # invariant: ok(grid[hi])
            mid = (lo + hi) // 2
            if ok(grid[mid]):
                hi = mid
            else:
                lo = mid + 1
        return hi
    if not ok(grid[lo]):
        return None
    while lo < hi:  # invariant: ok(grid[lo])
        mid = (lo + hi + 1) // 2
        if ok(grid[mid]):
            lo = mid
        else:
            hi = mid - 1
    return lo
