"""Write MNIST (the original IDX files in ../shared/datasets/mnist) as PNG files.

    python examples/mnist_to_png.py ../shared/datasets/mnist /tmp/mnist-png

writes 70,000 28x28 greyscale PNGs: train/<label>/<index>.png (60,000) and
test/<label>/<index>.png (10,000). The files are read at run time and never
copied into the project.
"""
from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def read_idx(path: Path) -> np.ndarray:
    """Read a gzip'd IDX file (images: magic 0x803, labels: 0x801)."""
    with gzip.open(path, "rb") as fh:
        magic, count = struct.unpack(">II", fh.read(8))
        if magic == 0x803:
            rows, cols = struct.unpack(">II", fh.read(8))
            return np.frombuffer(fh.read(count * rows * cols), dtype=np.uint8).reshape(count, rows, cols)
        if magic == 0x801:
            return np.frombuffer(fh.read(count), dtype=np.uint8)
        raise ValueError(f"{path}: unknown IDX magic {magic:#x}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mnist", type=Path, help="folder with the four *-ubyte.gz files")
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="write only the first N of each split")
    args = parser.parse_args()
    total = 0
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(args.mnist / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(args.mnist / f"{prefix}-labels-idx1-ubyte.gz")
        n = len(images) if args.limit is None else min(args.limit, len(images))
        for i in range(n):
            folder = args.out / split / str(int(labels[i]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], "L").save(folder / f"{i:05d}.png")
        total += n
    print(f"wrote {total} PNG files under {args.out}")


if __name__ == "__main__":
    main()
