"""Lossless archives against the anchors on the same images, every byte counted.

    python examples/lossless_benchmark.py FOLDER [--digest-bytes 4] [-- more compress options]

Compresses FOLDER with ``latentpack compress --lossless`` (the pixel model unless the
options say otherwise), extracts and verifies it, and prints, in bits per pixel of the
raw images (height x width x channels samples, 8 bits each):

* the archive (the whole file) and its parts (``inspect --json``), compress and
  extract wall times;
* ``xz -9e`` of the raw pixels (all images' samples concatenated);
* the context-count anchor of ../shared/anchors/context_counts.py (4-neighbour
  adaptive counts, ideal code length, nothing stored), for greyscale folders of
  equal-sized images.

Run it alone on the machine: the times are wall-clock.
"""
from __future__ import annotations

import argparse
import json
import lzma
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from latentpack.fs.images import natural_pixels

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors"


def raw_images(folder: Path) -> list[np.ndarray]:
    """Every image's pixels in its natural mode (what the archive's x counts), in name order."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    out = []
    for path in files:
        with Image.open(path) as img:
            pixels, _ = natural_pixels(img)
        out.append(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    return out


def count_anchor(images: list[np.ndarray]) -> float | None:
    """The context-count anchor's bits per pixel, or None when it does not apply."""
    if not ANCHORS.is_dir() or any(x.ndim != 2 or x.shape != images[0].shape for x in images):
        return None
    sys.path.insert(0, str(ANCHORS))
    import context_counts  # noqa: E402

    return float(context_counts.code_length(np.stack(images)))


def run(args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "latentpack", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"latentpack {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return time.perf_counter() - t, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--digest-bytes", default="32")
    parser.add_argument("extra", nargs="*", help="more compress options (after --)")
    a = parser.parse_args()
    images = raw_images(a.folder)
    samples = sum(x.size for x in images)
    pixels = sum(x.shape[0] * x.shape[1] for x in images)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "a.lpk"
        t_c, _ = run(["compress", str(a.folder), "-o", str(archive), "--lossless", "--digest-bytes", a.digest_bytes,
                      *a.extra])
        t_x, _ = run(["extract", str(archive), "-o", str(Path(tmp) / "out")])
        run(["verify", str(archive), str(a.folder)])
        info = json.loads(run(["inspect", str(archive), "--json"])[1])
        size = archive.stat().st_size
        shutil.rmtree(Path(tmp) / "out")
    xz = len(lzma.compress(b"".join(x.tobytes() for x in images), preset=9 | lzma.PRESET_EXTREME))
    print(f"{a.folder}: {len(images):,} images, {pixels:,} pixels, {samples:,} samples")
    print(f"  latentpack --lossless --digest-bytes {a.digest_bytes} {' '.join(a.extra)}: {size:,} bytes, "
          f"{size * 8 / samples:.3f} bits/sample ({size * 8 / pixels:.3f} bits/pixel); "
          f"compress {t_c:.0f} s, extract {t_x:.0f} s (verified bit-exact)")
    for key, n in info["bytes"]["breakdown"].items():
        if key != "file":
            print(f"    {key:<10} {n:>12,} bytes  {n * 8 / samples:.3f} bits/sample")
    print(f"  xz -9e of the raw samples: {xz:,} bytes, {xz * 8 / samples:.3f} bits/sample")
    anchor = count_anchor(images)
    if anchor is not None:
        print(f"  context-count anchor (ideal, nothing stored): {anchor:.3f} bits/sample")


if __name__ == "__main__":
    main()
