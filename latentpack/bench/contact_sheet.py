"""A contact sheet: a few originals beside their reconstructions at each rate.

    rows: sampled images          columns: original | entry 1 | entry 2 | ...
    large images -> one crop (same place in every column); small -> enlarged

Pillow only. The sample and the crop positions come from a seed, so a sheet
can be made again exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from latentpack.bench.harness import BenchResult, Entry

__all__ = ["contact_sheet"]

_LABEL_HEIGHT = 30
_GAP = 4


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) natural pixels as RGB (alpha composited over white)."""
    c = pixels.shape[2]
    base = pixels[..., :3] if c >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    if c in (2, 4):
        a = pixels[..., -1:].astype(np.float64) / 255.0
        base = np.rint(base * a + 255.0 * (1 - a)).astype(np.uint8)
    return np.ascontiguousarray(base)


def _tile(pixels: np.ndarray, box: tuple[int, int, int, int], scale: int) -> Image.Image:
    top, left, h, w = box
    image = Image.fromarray(_rgb(pixels[top : top + h, left : left + w]), "RGB")
    return image.resize((w * scale, h * scale), Image.Resampling.NEAREST) if scale > 1 else image


def _labels(entry: Entry) -> tuple[str, str]:
    """Two caption lines: the codec and setting; bits per pixel and mean PSNR."""
    first = entry.setting if entry.name == "latentpack" else f"{entry.name} {entry.setting}"
    q = entry.quality
    quality = "" if q is None else ", lossless" if q.lossless else f", {q.mean_psnr:.1f} dB"
    return first, (f"{entry.bpp:.3f} bpp" if entry.bpp is not None else "") + quality


def contact_sheet(
    result: BenchResult,
    path: str | Path,
    *,
    entries: Sequence[Entry] | None = None,
    crop: int = 128,
    min_tile: int = 84,
    seed: int = 0,
) -> Path:
    """Write a contact sheet of the sampled images (``run_bench(sample=k)``) as PNG.

    Args:
        result: A bench result whose entries kept the sampled reconstructions.
        path: The PNG to write.
        entries: Columns after the original (default: every latentpack entry).
        crop: Larger images show one ``crop`` x ``crop`` window.
        min_tile: Smaller images are enlarged (nearest neighbour) to at least this.
        seed: Chooses the crop windows.

    Raises:
        ValueError: no sampled images, or no entry kept them.
    """
    rows = sorted(result.originals)
    if entries is None:
        entries = [e for e in result.entries if e.name == "latentpack"]
    entries = [e for e in entries if e.samples]
    if not rows or not entries:
        raise ValueError("no sampled reconstructions to show (run the bench with a sample and a latentpack entry)")
    rng = np.random.default_rng(seed)
    boxes, scales = {}, {}
    for i in rows:
        h, w = result.originals[i].shape[:2]
        ch, cw = min(h, crop), min(w, crop)
        boxes[i] = (int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw)
        scales[i] = max(1, -(-min_tile // max(ch, cw)))
    labels = [("original", "")] + [_labels(e) for e in entries]
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(int(probe.textlength(t, font=font)) for pair in labels for t in pair)
    cell_w = max(max(boxes[i][3] * scales[i] for i in rows), text_w)
    cell_h = max(boxes[i][2] * scales[i] for i in rows)
    width = len(labels) * (cell_w + _GAP) + _GAP
    height = _LABEL_HEIGHT + len(rows) * (cell_h + _GAP) + _GAP
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (first, second) in enumerate(labels):
        x = _GAP + c * (cell_w + _GAP)
        draw.text((x, 2), first, fill="black", font=font)
        draw.text((x, 15), second, fill="black", font=font)
    for r, i in enumerate(rows):
        y = _LABEL_HEIGHT + r * (cell_h + _GAP)
        sources = [result.originals[i]] + [e.samples[i] for e in entries]
        for c, pixels in enumerate(sources):
            sheet.paste(_tile(pixels, boxes[i], scales[i]), (_GAP + c * (cell_w + _GAP), y))
    path = Path(path)
    sheet.save(path, "PNG", optimize=True)
    return path
