"""Measure what ``extract --format`` costs and keeps: bytes written and PSNR against the source files.

    python tools/extract_formats.py --jpeg examples/digits /tmp/digits-jpeg   # JPEG (quality 90) copies
    latentpack compress /tmp/digits-jpeg -o /tmp/digits-jpeg.lpk --epochs 40
    python tools/extract_formats.py FOLDER ARCHIVE

For each choice (auto, png, original): extracts ARCHIVE into a temporary
folder and prints the bytes written and the mean PSNR of the written files
against FOLDER's files (what the user had) and against the reconstruction
(what the archive holds: a lossless write of it is infinitely close).
"""
from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import latentpack  # noqa: E402
from latentpack.metrics import psnr  # noqa: E402


def _mean(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "exact"
    return f"{np.mean(finite):.2f} dB" + ("" if len(finite) == len(values) else f" ({len(values) - len(finite)} exact)")


def main(folder: Path, archive: Path) -> None:
    print(f"$ python tools/extract_formats.py {folder} {archive}")
    print(f"{'--format':<10} {'bytes written':>14} {'vs source files':>18} {'vs reconstruction':>20}")
    with latentpack.open(archive) as a, tempfile.TemporaryDirectory() as tmp:
        for choice in ("auto", "png", "original"):
            out = Path(tmp) / choice
            subprocess.run([sys.executable, "-m", "latentpack", "extract", str(archive), "-o", str(out), "-q",
                            "--format", choice], check=True)
            written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
            to_source, to_recon = [], []
            for name in a.names:
                got = np.asarray(Image.open(out / name).convert("RGB"))
                to_source.append(psnr(np.asarray(Image.open(folder / name).convert("RGB")), got))
                recon = np.asarray(Image.fromarray(a[name]).convert("RGB"))
                to_recon.append(psnr(recon, got))
            print(f"{choice:<10} {written:>14,} {_mean(to_source):>18} {_mean(to_recon):>20}")
    print(f"archive {archive.stat().st_size:,} bytes; source folder "
          f"{sum(p.stat().st_size for p in folder.rglob('*') if p.is_file()):,} bytes")


def jpeg_copies(source: Path, target: Path, quality: int = 90) -> None:
    """Write every image under ``source`` as a JPEG of that quality under ``target`` (same relative names, .jpg)."""
    for path in sorted(source.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            out = (target / path.relative_to(source)).with_suffix(".jpg")
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.open(path).convert("RGB" if Image.open(path).mode not in ("L", "RGB") else Image.open(path).mode
                                     ).save(out, quality=quality)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--jpeg":
        jpeg_copies(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 3:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
