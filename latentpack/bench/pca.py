"""PCA, a linear autoencoder, as a bench baseline: numpy only, every byte counted.

::

    images (n, d) uint8 -> mean mu and basis V (k, d), both stored float16
      -> c = (x - mu) @ V.T -> q = rint(c / step), one step for every component
      -> one count table per component (latentpack's integer tables) -> one range-coded stream
    stream -> q -> x_hat = clip(rint(q * step @ V + mu), 0, 255)

For a budget of bytes per image the encoder searches the number of
components k and the step, as ``../shared/anchors/pca.py`` does (on a finer
grid of steps), and keeps the pair with the best mean PSNR whose whole file
fits: header, names, mean, basis, count tables and stream
(`latentpack.bench.pca_file`), all of it counted by the bench.

Images must share one size; modes are widened to one working mode (grey
replicated, opaque alpha added), as latentpack does. The decoder writes each
image back as PNG in that mode.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from latentpack.bench.base import Codec, store_target
from latentpack.bench.pca_file import HEADER, component_counts, pack_names, read_pca, reconstruct, table_bytes, write_pca
from latentpack.fs.folder import scan_folder
from latentpack.fs.images import ACCEPTED_FORMATS, natural_image, open_image, to_working

__all__ = ["PcaCodec", "PcaChoice", "fit_pca", "choose_rate_point", "STORE_NAME", "COMPONENTS", "STEPS", "MAX_FIT"]

STORE_NAME = "pca.bin"
#: Components tried (those up to the folder's rank): the anchor's, plus a few small ones.
COMPONENTS = (0, 1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384)
#: Steps tried: the anchor's (4 to 256, about 1.5 apart) and 1 to 2048 in factors of 2**(1/4).
STEPS = tuple(sorted({4.0, 6.0, 12.0, 24.0, 48.0, 96.0, 192.0} | {float(f"{2 ** (i / 4):.4g}") for i in range(45)}))
#: The largest matrix eigen-decomposed (covariance or Gram): min(images, values per image).
MAX_FIT = 8192
_ROWS = 4096  # images handled at once where an (n, d) float64 temporary would grow with the folder


@dataclass
class PcaChoice:
    """One rate point: components, step, and what the search measured for it."""

    k: int
    step: float
    estimated_bytes: int
    psnr: float


def _load(folder: Path) -> tuple[list[str], np.ndarray, tuple[int, int, int]]:
    """Names, (n, d) uint8 working pixels and (height, width, channels) of a folder's images."""
    names, naturals, modes = [], [], []
    for rel, path in scan_folder(folder):
        opened = open_image(path)
        names.append(rel)
        naturals.append(opened.natural)
        modes.append(opened.natural_mode)
    if not names:
        raise ValueError(f"{folder} holds no images")
    working = ("RGB" if any(m.startswith("RGB") for m in modes) else "L") + ("A" if any(m.endswith("A") for m in modes)
                                                                             else "")
    x = np.stack([to_working(a, m, working).reshape(-1) for a, m in zip(naturals, modes)])
    h, w = naturals[0].shape[:2]
    return names, x, (h, w, x.shape[1] // (h * w))


def _rows(n: int) -> Iterator[slice]:
    for a in range(0, n, _ROWS):
        yield slice(a, min(a + _ROWS, n))


def fit_pca(x: np.ndarray, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top ``k_max`` principal axes of (n, d) pixels, float64.

    Eigen-decomposes the smaller of the covariance (d, d) and Gram (n, n)
    matrices, built a block of images at a time.
    """
    n, d = x.shape
    mu = x.mean(axis=0, dtype=np.float64)
    k_max = min(k_max, n, d)
    if k_max == 0:
        return mu, np.zeros((0, d))
    if d <= n:
        cov = np.zeros((d, d))
        for s in _rows(n):
            xc = x[s] - mu
            cov += xc.T @ xc
        _, vecs = np.linalg.eigh(cov)
        return mu, vecs[:, ::-1][:, :k_max].T.copy()
    gram = np.zeros((n, n))
    for cols in _rows(d):
        xc = x[:, cols] - mu[cols]
        gram += xc @ xc.T
    vals, vecs = np.linalg.eigh(gram)
    vals, vecs = vals[::-1][:k_max], vecs[:, ::-1][:, :k_max]
    keep = vals > 1e-9 * max(float(vals[0]), 1e-300)
    vals, vecs = vals[keep], vecs[:, keep]
    axes = np.zeros((len(vals), d))
    for cols in _rows(d):
        axes[:, cols] = (vecs.T @ (x[:, cols] - mu[cols])) / np.sqrt(vals)[:, None]
    return mu, axes


def _float16(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float16).astype(np.float64)


def _coefficients(x: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(n, k) float64 coefficients of the images on a (float16-rounded) basis."""
    out = np.empty((len(x), len(basis)))
    for s in _rows(len(x)):
        out[s] = (x[s] - mean) @ basis.T
    return out


def _rate_by_component(c: np.ndarray, step: float) -> np.ndarray:
    """Estimated bytes of each component's stream (its entropy) and table (varints) at ``step``."""
    q = np.rint(c / step).astype(np.int64)
    qmin, tables = component_counts(q)
    out = np.empty(q.shape[1])
    n = len(q)
    for j, counts in enumerate(tables):
        seen = np.bincount(q[:, j] - qmin[j])
        seen = seen[seen > 0]
        out[j] = -(seen * np.log2(seen / n)).sum() / 8 + table_bytes(qmin[j], counts)
    return out


def _mean_psnr(x: np.ndarray, c: np.ndarray, basis: np.ndarray, mean: np.ndarray, step: float) -> float:
    """Mean PSNR of the images decoded from coefficients ``c`` quantised at ``step`` (as the anchor measures it)."""
    total = 0.0
    for s in _rows(len(x)):
        x_hat = np.clip(np.rint(np.rint(c[s] / step) * step @ basis + mean), 0, 255)
        mse = ((x_hat - x[s]) ** 2).mean(axis=1)
        total += float(np.sum(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))
    return total / len(x)


def choose_rate_point(x: np.ndarray, mean: np.ndarray, axes: np.ndarray, budget: float, fixed: int) -> PcaChoice:
    """The (k, step) with the best mean PSNR whose estimated file fits ``budget`` bytes in all.

    For each k the finest step that fits is measured (a coarser one only
    loses quality); when nothing fits, the smallest file (the mean alone).

    Args:
        x: (n, d) uint8 pixels.
        mean: (d,) float16-rounded mean.
        axes: (k_max, d) principal axes, float64.
        budget: Bytes allowed for the whole file.
        fixed: Bytes that do not depend on k or step (header, names, mean).
    """
    n, d = x.shape
    basis = _float16(axes)
    c = _coefficients(x, mean, basis)
    # cumulative[i, k]: estimated bytes of the first k components' streams and tables at STEPS[i]
    cumulative = np.zeros((len(STEPS), len(basis) + 1))
    if len(basis):
        cumulative[:, 1:] = np.cumsum([_rate_by_component(c, s) for s in STEPS], axis=1)
    best: PcaChoice | None = None
    for k in sorted({k for k in COMPONENTS if k <= len(basis)} | {len(basis)}):  # and every axis, on small folders
        sizes = fixed + 2 * k * d + cumulative[:, k] + 8  # + the stream's last words
        fits = np.flatnonzero(sizes <= budget)
        if k == 0 or len(fits):
            i = int(fits[0]) if len(fits) else 0
            psnr = _mean_psnr(x, c[:, :k], basis[:k], mean, STEPS[i])
            if best is None or psnr > best.psnr or best.estimated_bytes > budget:
                best = PcaChoice(k, float(STEPS[i]), int(np.ceil(sizes[i])), psnr)
    return best


class PcaCodec(Codec):
    """PCA at one rate point: ``bytes_per_image`` (or ``bpp``), the budget of the whole file per image.

    The bench's ``--qualities`` sweep runs it at ``quality / 50`` bits per
    pixel (quality 50: 1 bpp). Folders of images of different sizes are
    declined (the bench shows it as skipped).
    """

    name = "pca"

    @property
    def setting(self) -> str:
        if "bytes_per_image" in self.params:
            return f"<= {self.params['bytes_per_image']:g} B/image"
        return f"<= {self.params.get('bpp', 1.0):g} bpp"

    def declines(self, folder: Path) -> str | None:
        """Images of more than one size, too many images of too many values, or a budget below the mean's bytes."""
        sizes: set[tuple[int, int]] = set()
        count = bands = 0
        for _, path in scan_folder(folder):
            try:
                with Image.open(path, formats=ACCEPTED_FORMATS) as image:
                    sizes.add(image.size)
                    bands = max(bands, 4 if image.mode.startswith("P") else len(image.getbands()))
            except (OSError, SyntaxError, ValueError):  # not an image: the harness leaves it out too
                continue
            count += 1
            if len(sizes) > 1:
                shown = " and ".join(f"{w}x{h}" for w, h in sorted(sizes))
                return f"needs images of one size (this folder has {shown})"
        (w, h), = sizes or {(0, 0)}
        if min(count, w * h * bands) > MAX_FIT:
            return f"{count:,} images of {w * h * bands:,} values: more than PCA fits here (--limit {MAX_FIT})"
        budget, mean_bytes = self.budget_bytes(count, w * h), 2 * w * h * bands
        if count and budget < mean_bytes:
            return f"a budget of {budget:,.0f} bytes in all is less than the float16 mean alone ({mean_bytes:,} bytes)"
        return None

    def budget_bytes(self, n: int, pixels_per_image: int) -> float:
        """Bytes allowed for the whole file of ``n`` images."""
        per_image = self.params.get("bytes_per_image")
        if per_image is None:
            per_image = self.params.get("bpp", 1.0) * pixels_per_image / 8
        return float(per_image) * n

    def encode(self, folder: Path, store: Path) -> dict[str, Any]:
        """Fit, choose (k, step) for the budget, write ``pca.bin``; returns the choice and the bytes by part."""
        names, x, shape = _load(folder)
        n, d = x.shape
        mean, axes = fit_pca(x, max(COMPONENTS))
        mean = _float16(mean)
        budget = self.budget_bytes(n, shape[0] * shape[1])
        choice = choose_rate_point(x, mean, axes, budget, HEADER.size + len(pack_names(names)) + 2 * d)
        basis = _float16(axes[: choice.k])
        c = _coefficients(x, mean, basis)
        steps = [s for s in STEPS if s >= choice.step]
        for step in steps:  # the estimate is nearly always right; if not, the next coarser step
            data, parts = write_pca(names, shape, mean, basis, step, np.rint(c / step).astype(np.int64))
            if len(data) <= budget:
                break
        store_target(store, STORE_NAME).write_bytes(data)
        return {"k": choice.k, "step": step, "budget_bytes": round(budget), "bytes": len(data),
                "bytes_per_image": round(len(data) / n, 3), "budget_met": len(data) <= budget,
                "estimated_bytes": choice.estimated_bytes, "search_step": choice.step,
                "search_mean_psnr": round(choice.psnr, 3),
                "bytes_by_part": parts}

    def decode(self, store: Path, restored: Path) -> None:
        names, (h, w, ch), mean, basis, step, q = read_pca((store / STORE_NAME).read_bytes())
        for name, pixels in zip(names, reconstruct(q, step, basis, mean)):
            natural_image(pixels.reshape(h, w, ch)).save(store_target(restored, name + self.restored_suffix), "PNG")
