"""Rate control: pick the latent quantisation step that meets a target.

A trained decoder and its float latents leave one knob free: the step that
rounds the latents to integers before they are range-coded. A coarser step
costs fewer bits and more error. Given a target, latentpack searches a grid
of steps (quarter-octaves below the latents' standard deviation) by
bisection, assuming bits fall and PSNR falls as the step grows:

* ``--quality DB``: the coarsest step whose mean PSNR (on a sample of images,
  then confirmed on all of them) is at least DB;
* ``--max-size BYTES`` or ``--ratio N``: the finest step whose archive file,
  every byte of it, is at most BYTES (raw bytes / N);
* no target: lossy, the coarsest step within ``STEP_PSNR_LOSS`` dB of the
  float latents (`lossy_step`); lossless, the step with the fewest
  estimated bits, latents plus coded pixels (`lossless_step`).

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
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from latentpack.codec.entropy.latent_coding import CodedLatents, code_latents, dequantize, encode_latents, quantize_latents
from latentpack.codec.entropy.lossless import fixed_point_decoder, predict
from latentpack.codec.entropy.residual import ContextParams, count_table
from latentpack.codec.runtime.numpy_decoder import NumpyDecoder
from latentpack.codec.runtime.reconstruct import to_uint8
from latentpack.errors import OptionError
from latentpack.fs.folder import ImageFolder
from latentpack.formats import write_archive
from latentpack.formats.schema import ArchiveContents, DecoderWeights, Latents
from latentpack.metrics import psnr

__all__ = ["RateTarget", "RateChoice", "StepSample", "step_grid", "bisect_steps", "step_sample", "lossy_step",
           "lossless_step", "quality_index", "meet_quality", "fit_size", "refined_is_kept", "refined_choice", "STEP_SAMPLE",
           "STEP_PSNR_LOSS"]

#: ``assemble(coded, choice)``: the archive's contents at one coded step (measured, with its record).
Assemble = Callable[[CodedLatents, "RateChoice | None"], ArchiveContents]

#: Steps per octave of the grid, and how many octaves below the latents' std it reaches.
STEPS_PER_OCTAVE = 4
OCTAVES = 12
#: Images used to choose the latent step.
STEP_SAMPLE = 256
#: Lossy, no target: the coarsest step whose PSNR stays within this of unquantised latents.
STEP_PSNR_LOSS = 0.1


@dataclass(frozen=True)
class RateTarget:
    """One target: a mean PSNR in dB, or a file size (bytes, or raw bytes / ratio)."""

    psnr: float | None = None
    max_bytes: int | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.psnr, self.max_bytes, self.ratio) if v is not None]
        if len(given) > 1:
            raise OptionError("give one rate target: `quality`, `max_bytes` or `ratio`")
        if self.psnr is not None and not (math.isfinite(self.psnr) and self.psnr > 0):
            raise OptionError(f"`quality` must be a positive number of dB, got {self.psnr}")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise OptionError(f"`max_bytes` must be >= 1, got {self.max_bytes}")
        if self.ratio is not None and not (math.isfinite(self.ratio) and self.ratio > 0):
            raise OptionError(f"`ratio` must be a positive number, got {self.ratio}")

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
        """The record as ``/training/config`` stores it (``rate_control``)."""
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
    from latentpack.codec.entropy.latent_coding import MAX_SYMBOLS

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


@dataclass
class StepSample:
    """Up to `STEP_SAMPLE` images sharing the first image's size and latent shape, and their float latents."""

    indices: list[int]
    values: np.ndarray
    latent_shape: tuple[int, ...]


def step_sample(staged: ImageFolder, latents: Latents) -> StepSample:
    """The images a step is chosen on (equal latent shapes and image sizes: one batch)."""
    first = tuple(int(v) for v in latents.shapes[0])
    h0, w0 = staged.images.size(0)
    same = np.flatnonzero(np.all(np.asarray(latents.shapes) == np.array(first), axis=1)
                          & (staged.images.heights == h0) & (staged.images.widths == w0))
    indices = sorted(np.random.default_rng(0).permutation(same)[:STEP_SAMPLE].tolist())
    values = np.concatenate([latents.values[latents.offsets[i] : latents.offsets[i + 1]] for i in indices])
    return StepSample(indices, values, first)


def _sample_psnr(decoder: NumpyDecoder, values: np.ndarray, staged: ImageFolder, sample: StepSample) -> float:
    """Mean PSNR of working pixels over the sample, float decoder, latents ``values``."""
    h, w = staged.images[sample.indices[0]].height, staged.images[sample.indices[0]].width
    x_hat = to_uint8(decoder(values.reshape((len(sample.indices),) + sample.latent_shape)))[:, :h, :w, :]
    return float(np.mean([psnr(staged.working(i), x_hat[k]) for k, i in enumerate(sample.indices)]))


def _no_target_grid(latents: Latents) -> list[float]:
    std = float(np.std(latents.values)) if latents.values.size else 1.0
    std = std if std > 0 else 1.0
    return [std * 2.0**-k for k in range(0, 7)]


def lossy_step(staged: ImageFolder, decoder: NumpyDecoder, latents: Latents) -> float:
    """The coarsest of seven octave steps whose sample PSNR is within `STEP_PSNR_LOSS` dB of float latents."""
    candidates = _no_target_grid(latents)
    sample = step_sample(staged, latents)
    reference = _sample_psnr(decoder, sample.values, staged, sample)
    for step in reversed(candidates):  # coarsest first
        got = _sample_psnr(decoder, dequantize(quantize_latents(sample.values, step), step), staged, sample)
        if got >= reference - STEP_PSNR_LOSS:
            return step
    return candidates[-1]


def lossless_step(staged: ImageFolder, decoder_weights: DecoderWeights, latents: Latents) -> float:
    """The step with the fewest estimated bits per image: coded latents plus context-coded pixels (sample)."""
    candidates = _no_target_grid(latents)
    w = len(staged)
    sample = step_sample(staged, latents)
    n = len(sample.indices)
    best, best_bits = candidates[-1], np.inf
    images = [np.asarray(staged.working(i)) for i in sample.indices]
    params = ContextParams(16, 4)
    for step in candidates:
        q = quantize_latents(latents.values, step)
        latent_bits = encode_latents(q, latents.offsets, latents.shapes, step).stored_bits / w
        fp = fixed_point_decoder(decoder_weights, step)
        sub_offsets = np.arange(n + 1, dtype=np.int64) * int(np.prod(sample.latent_shape))
        sizes = np.array([[staged.images[i].height, staged.images[i].width, 1] for i in sample.indices])
        preds_by = predict(fp, quantize_latents(sample.values, step), sub_offsets,
                           np.array([sample.latent_shape] * n), sizes, range(n))
        counts = count_table(images, [preds_by[k] for k in range(n)], params).astype(np.float64)
        rows = counts.sum(axis=1, keepdims=True)
        nz = counts > 0
        pixel_bits = -(counts[nz] * np.log2(counts[nz] / np.broadcast_to(rows, counts.shape)[nz])).sum() / n
        if latent_bits + pixel_bits < best_bits:
            best, best_bits = step, latent_bits + pixel_bits
    return best


def quality_index(staged: ImageFolder, decoder: NumpyDecoder, latents: Latents, grid: list[float],
                  target: float) -> int | None:
    """The coarsest step of ``grid`` whose sample mean PSNR reaches ``target`` (None: none does)."""
    sample = step_sample(staged, latents)

    def reaches(step: float) -> bool:
        x = dequantize(quantize_latents(sample.values, step), step)
        return _sample_psnr(decoder, x, staged, sample) >= target

    return bisect_steps(grid, reaches, want_coarsest=True)


def meet_quality(assemble: Assemble, latents: Latents, grid: list[float], k: int | None,
                 target: float) -> tuple[ArchiveContents, RateChoice]:
    """Assemble at the sampled step; go finer while the mean over all images misses ``target``."""
    k = len(grid) - 1 if k is None else k
    while True:
        contents = assemble(code_latents(latents, grid[k]), None)
        got = float(contents.quality.mean_psnr)
        if got >= target or k == len(grid) - 1:
            choice = RateChoice("psnr", target, grid[k], got >= target, round(got, 3))
            contents.training["rate_control"] = choice.as_json()
            return contents, choice
        k += 1


def _written_size(probe: Path, contents: ArchiveContents) -> int:
    write_archive(probe, contents, force=True)
    return probe.stat().st_size


def _size_search(assemble: Assemble, latents: Latents, grid: list[float], budget: int,
                 probe: Path) -> tuple[ArchiveContents, RateChoice]:
    coded = [None] * len(grid)

    def coded_at(k: int) -> CodedLatents:
        coded[k] = coded[k] or code_latents(latents, grid[k])
        return coded[k]

    def candidate(k: int) -> tuple[ArchiveContents, RateChoice]:
        choice = RateChoice("bytes", budget, grid[k], True, None)
        return assemble(coded_at(k), choice), choice

    base = _written_size(probe, candidate(0)[0]) - -(-coded_at(0).stored_bits // 8)  # all but the latents
    k = bisect_steps(list(range(len(grid))), lambda j: base + -(-coded_at(int(j)).stored_bits // 8) <= budget,
                     want_coarsest=False)
    k = 0 if k is None else k
    while True:
        contents, choice = candidate(k)
        size = _written_size(probe, contents)
        if size <= budget:
            return contents, choice
        if k == 0:
            raise OptionError(
                f"the archive cannot be made {budget:,} bytes or smaller: at the coarsest latent step it takes "
                f"{size:,} bytes, of which the decoder takes {contents.decoder.stored_bits // 8:,} "
                f"(try a smaller --filters or -y, or --digest-bytes 4)")
        k -= 1


def fit_size(assemble: Assemble, latents: Latents, grid: list[float], budget: int) -> tuple[ArchiveContents, RateChoice]:
    """The finest step of ``grid`` whose archive file is at most ``budget`` bytes.

    The parts that do not depend on the step are measured once, from a probe
    written at the coarsest step; the step is then chosen from the latents'
    exact coded size, and every candidate archive is written to a temporary
    folder and measured before it is accepted.

    Raises:
        OptionError: even the coarsest step does not fit (names what takes the room).
    """
    with tempfile.TemporaryDirectory(prefix="latentpack-rate-") as tmp:
        return _size_search(assemble, latents, grid, budget, Path(tmp) / "probe.lpk")


def refined_is_kept(contents: ArchiveContents, refined: ArchiveContents, budget: int | None) -> bool:
    """Keep a refined decoder's archive: a higher mean PSNR over every image and, with a size target,
    its file (written to a temporary folder) still at most ``budget`` bytes."""
    better = float(refined.quality.mean_psnr) > float(contents.quality.mean_psnr)
    if better and budget is not None:
        with tempfile.TemporaryDirectory(prefix="latentpack-rate-") as tmp:
            better = _written_size(Path(tmp) / "probe.lpk", refined) <= budget
    return better


def refined_choice(choice: RateChoice, refined: ArchiveContents) -> RateChoice:
    """The record of a kept refinement: for a quality target, what the refined decoder reached."""
    if choice.target != "psnr":
        return choice
    got = float(refined.quality.mean_psnr)
    return RateChoice(choice.target, choice.value, choice.step, got >= choice.value, round(got, 3))
