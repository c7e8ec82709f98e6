"""Mean PSNR at each budget of bytes per image: the bench's pca codec, the PCA anchor, and latentpack.

    python examples/rd_benchmark.py ../shared/datasets/mnist/t10k-images-idx3-ubyte.gz --limit 2000 --bytes 16 40 115
    python examples/rd_benchmark.py ../shared/datasets/mnist --split all --bytes 16 40 115 --latentpack
    python examples/rd_benchmark.py FOLDER --bytes 16 40 115

IDX_OR_FOLDER is a gzip'd IDX image file, the MNIST folder (its t10k, train
or both image files, by --split), or a folder of equal-sized images (sorted
names). The first --limit images are used. Rows:

- **pca**: `latentpack.bench.pca` through the bench harness: every byte of
  its one file counted (header, names, float16 mean and basis, count tables,
  range-coded stream); PSNR measured on the decoded PNGs.
- **anchor**: ``python ../shared/anchors/pca.py`` (``--anchor``) on the same
  pixels: float16 mean and basis counted, coefficients at their empirical
  entropy, count tables and names not counted. It reads 28x28 greyscale only.
- **latentpack** (``--latentpack``): ``latentpack compress --max-size
  budget*images`` on the same folder; the archive's size and the mean PSNR
  it records (``--latentpack-args`` adds options).

A row is a function ``(folder, bytes_per_image) -> (bytes_per_image, mean_psnr)``
in `ROWS`; add one there. The table is Markdown, headed by the command.
Times are not measured.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shlex
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from mnist_to_png import read_idx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latentpack.bench import make_codec, run_bench  # noqa: E402  (this checkout's latentpack)
from latentpack.bench.harness import select_images  # noqa: E402
from latentpack.fs.images import open_image  # noqa: E402

DEFAULT_ANCHOR = ROOT.parent / "shared" / "anchors" / "pca.py"
MNIST_FILES = {"test": ["t10k-images-idx3-ubyte.gz"], "train": ["train-images-idx3-ubyte.gz"],
               "all": ["train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"]}
LATENTPACK_ARGS: list[str] = []  # set from --latentpack-args

Point = tuple[float, float]  # (bytes per image, mean PSNR)


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def pca_point(folder: Path, bytes_per_image: float) -> Point:
    """The bench's pca codec at one budget: (bytes per image of its whole store, mean PSNR decoded)."""
    result = run_bench(folder, [make_codec("pca", bytes_per_image=bytes_per_image)], log=lambda m: None)
    (entry,) = result.entries
    if entry.error or entry.skipped:
        raise RuntimeError(f"pca at {bytes_per_image:g} B/image: {(entry.error or entry.skipped).splitlines()[-1]}")
    q = entry.quality
    return entry.bytes / len(result.names), float("inf") if q.mean_psnr is None else q.mean_psnr  # None: all exact


def latentpack_point(folder: Path, bytes_per_image: float) -> Point:
    """``latentpack compress --max-size`` at one budget: (archive bytes per image, its recorded mean PSNR)."""
    n = len(select_images(folder)[0])
    with tempfile.TemporaryDirectory(prefix="rd-latentpack-") as tmp:
        archive = Path(tmp) / "archive.lpk"
        argv = [sys.executable, "-m", "latentpack", "compress", str(folder), "-o", str(archive),
                "--max-size", str(int(bytes_per_image * n)), "--json", *LATENTPACK_ARGS]
        done = subprocess.run(argv, capture_output=True, text=True, env=_env())
        if done.returncode != 0:
            raise RuntimeError(f"latentpack at {bytes_per_image:g} B/image: {' '.join(done.stderr.strip().splitlines()[-1:])}")
        summary = json.loads(done.stdout)
        psnr = summary["quality"]["mean_psnr"]
        return archive.stat().st_size / n, float("inf") if psnr is None else float(psnr)  # None: all exact


#: The rows measured one budget at a time; the anchor runs once for every budget (`anchor_points`).
ROWS: dict[str, Callable[[Path, float], Point]] = {"pca": pca_point, "latentpack": latentpack_point}


def anchor_points(anchor: Path, pixels: np.ndarray, budgets: list[float]) -> dict[float, Point | None]:
    """Run the anchor on ``pixels`` (n, 28, 28) written as a temporary IDX file; its point for each budget."""
    with tempfile.TemporaryDirectory(prefix="rd-anchor-") as tmp:
        idx = Path(tmp) / "images-idx3-ubyte.gz"
        with gzip.open(idx, "wb", compresslevel=1) as fh:
            fh.write(struct.pack(">IIII", 0x803, len(pixels), 28, 28) + np.ascontiguousarray(pixels).tobytes())
        done = subprocess.run([sys.executable, str(anchor), str(idx), str(len(pixels)), *map(str, budgets)],
                              capture_output=True, text=True)
    if done.returncode != 0:  # e.g. fewer images than the components it tries
        raise RuntimeError(f"anchor failed: {' '.join(done.stderr.strip().splitlines()[-1:])}")
    found: dict[float, Point | None] = {b: None for b in budgets}
    pattern = r"budget ([\d.]+) B/img: mean PSNR ([\d.]+) dB .*= \(\d+, \d+, (?:np\.float64\()?([\d.]+)"
    for line in done.stdout.splitlines():
        m = re.search(pattern, line)
        if m:
            found[float(m[1])] = (float(m[3]), float(m[2]))
    return found


def load_images(source: Path, split: str, limit: int | None) -> tuple[np.ndarray | None, Path | None]:
    """(n, 28, 28) pixels from IDX files, or (None, folder) for a folder of images."""
    if source.is_dir() and not (source / MNIST_FILES["test"][0]).is_file():
        return None, source
    files = [source / f for f in MNIST_FILES[split]] if source.is_dir() else [source]
    pixels = np.concatenate([read_idx(f) for f in files])
    return pixels[:limit], None


def write_folder(pixels: np.ndarray, folder: Path) -> Path:
    """The digits as greyscale PNGs ``00000.png``, ... (names that sort in order)."""
    folder.mkdir(parents=True)
    for i, a in enumerate(pixels):
        Image.fromarray(a, "L").save(folder / f"{i:05d}.png")
    return folder


def folder_pixels(folder: Path, limit: int | None, staged: Path) -> tuple[Path, np.ndarray | None]:
    """A folder's first ``limit`` images (symlinked under ``staged`` when cut), and their pixels if 28x28 greyscale."""
    images, _ = select_images(folder, limit)
    naturals = [open_image(p).natural for _, p, _ in images]
    if limit is not None:
        for name, path, _ in images:
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.realpath(path), staged / name)
        folder = staged
    digits = all(a.shape == (28, 28, 1) for a in naturals)
    return folder, np.stack([a[..., 0] for a in naturals]) if digits and naturals else None


def _measure(row: Callable[[Path, float], Point], folder: Path, budget: float, notes: list[str]) -> Point | None:
    """One row's point, or None with a note when it cannot be made (a budget latentpack cannot meet)."""
    try:
        return row(folder, budget)
    except RuntimeError as exc:
        notes.append(str(exc).splitlines()[-1])
        return None


def _cell(point: Point | None) -> str:
    if point is None:
        return "-"
    return f"{point[0]:.1f} B, " + (f"{point[1]:.2f} dB" if np.isfinite(point[1]) else "exact")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, metavar="IDX_OR_FOLDER")
    parser.add_argument("--bytes", type=float, nargs="+", default=[16, 40, 115], help="budgets, bytes per image")
    parser.add_argument("--limit", type=int, default=None, help="the first N images only")
    parser.add_argument("--split", choices=sorted(MNIST_FILES), default="test", help="which MNIST images (a folder)")
    parser.add_argument("--anchor", type=Path, default=DEFAULT_ANCHOR, help="the PCA anchor script")
    parser.add_argument("--latentpack", action="store_true", help="add latentpack compress --max-size rows")
    parser.add_argument("--latentpack-args", default="", help="more options for latentpack compress (one string)")
    args = parser.parse_args()
    LATENTPACK_ARGS[:] = shlex.split(args.latentpack_args)
    rows = ["pca"] + (["latentpack"] if args.latentpack else [])
    with tempfile.TemporaryDirectory(prefix="rd-benchmark-") as tmp:
        pixels, folder = load_images(args.source, args.split, args.limit)
        if folder is None:
            folder = write_folder(pixels, Path(tmp) / "images")
        else:
            folder, pixels = folder_pixels(folder, args.limit, Path(tmp) / "images")
        n = len(select_images(folder)[0])
        notes: list[str] = []
        measured = {name: {b: _measure(ROWS[name], folder, b, notes) for b in args.bytes} for name in rows}
        if pixels is None or not args.anchor.is_file():
            notes.append(f"anchor not run: {'needs 28x28 greyscale images' if pixels is None else f'no {args.anchor}'}")
        else:
            try:
                measured["anchor"] = anchor_points(args.anchor, pixels, args.bytes)
            except RuntimeError as exc:
                notes.append(str(exc))
    print(f"$ python examples/rd_benchmark.py {shlex.join(sys.argv[1:])}")
    print(f"{n:,} images; cells: bytes per image (all counted; anchor: no tables or names), mean PSNR\n")
    names = [r for r in ("pca", "anchor", "latentpack") if r in measured]
    print("| budget (B/image) | " + " | ".join(names) + (" | pca - anchor |" if "anchor" in measured else " |"))
    print("| ---: |" + " ---: |" * (len(names) + ("anchor" in measured)))
    for b in args.bytes:
        cells = [_cell(measured[r][b]) for r in names]
        if "anchor" in measured:
            a, p = measured["anchor"][b], measured["pca"][b]
            cells.append("-" if a is None or p is None else f"{p[1] - a[1]:+.2f} dB")
        print(f"| {b:g} | " + " | ".join(cells) + " |")
    for note in notes:
        print(f"\nnote: {note}")


if __name__ == "__main__":
    main()
