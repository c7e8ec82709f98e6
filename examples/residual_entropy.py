"""How many bits the lossless residual coder could save with richer contexts.

Lossless archives code each pixel with a count table chosen by a context
(`latentpack.codec.residual`): the decoder's prediction and the left and up
neighbours, bucketed. This script measures, on a folder and a lossy archive
of it, the empirical conditional entropy of the pixels under several context
shapes, plus the deflated size of each count table (what the archive would
have to store), in bits per pixel::

    python examples/residual_entropy.py ARCHIVE FOLDER [--limit N]

It is an upper bound on what a static-table coder can gain (the entropy is
measured on the same pixels the table is counted on), used to explain the
lossless figures in README.md. Equal-sized greyscale images only.
"""
from __future__ import annotations

import argparse
import zlib

import numpy as np
from PIL import Image

from latentpack.codec.runtime.reconstruct import iter_reconstructions, load_decoder
from latentpack.formats.reader import read_archive


def _shift(a: np.ndarray, di: int, dj: int) -> np.ndarray:
    """Neighbour (i - di, j - dj) of every pixel of (n, H, W) images, 0 outside."""
    out = np.zeros_like(a)
    h, w = a.shape[1:]
    out[:, max(di, 0): h + min(di, 0), max(dj, 0): w + min(dj, 0)] = a[:, max(-di, 0): h + min(-di, 0),
                                                                      max(-dj, 0): w + min(-dj, 0)]
    return out


def conditional_bits(x: np.ndarray, ctx: np.ndarray) -> tuple[float, float]:
    """(coded bits, deflated uint16 table bits) of x given ctx, both summed over all pixels."""
    _, inv = np.unique(ctx.ravel(), return_inverse=True)
    n = int(inv.max()) + 1
    counts = np.bincount(inv * 256 + x.ravel(), minlength=n * 256).reshape(n, 256)
    rows = np.broadcast_to(counts.sum(1, keepdims=True), counts.shape)
    nz = counts > 0
    data = float(-(counts[nz] * np.log2(counts[nz] / rows[nz])).sum())
    table = 8.0 * len(zlib.compress(np.minimum(counts, 65535).astype(np.uint16).tobytes(), 6))
    return data, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("archive")
    parser.add_argument("folder")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    args = parser.parse_args()
    contents = read_archive(args.archive)
    names = contents.images.names[: args.limit]
    indices = list(range(len(names)))
    first = np.asarray(Image.open(f"{args.folder}/{names[0]}").convert("L"))
    x = np.zeros((len(names), *first.shape), np.int64)
    pred = np.zeros_like(x)
    for i, working, _ in iter_reconstructions(load_decoder(contents.decoder), contents.latents, contents.images,
                                              indices):
        pred[i] = working[..., 0]
    for i, name in enumerate(names):
        x[i] = np.asarray(Image.open(f"{args.folder}/{name}").convert("L"))
    left, up, up_left, up_right = _shift(x, 0, 1), _shift(x, 1, 0), _shift(x, 1, 1), _shift(x, 1, -1)

    def b(v: np.ndarray, levels: int) -> np.ndarray:
        return (v * levels) >> 8

    shapes = {
        "neighbours only: left 8, up 8": b(left, 8) * 8 + b(up, 8),
        "neighbours only: left 8, up 8, up-left 4, up-right 4": ((b(left, 8) * 8 + b(up, 8)) * 4 + b(up_left, 4)) * 4
        + b(up_right, 4),
        "prediction 32, left 8, up 8": (b(pred, 32) * 8 + b(left, 8)) * 8 + b(up, 8),
        "prediction 64, left 8, up 8": (b(pred, 64) * 8 + b(left, 8)) * 8 + b(up, 8),
        "prediction 32, left 8, up 8, up-left 8": ((b(pred, 32) * 8 + b(left, 8)) * 8 + b(up, 8)) * 8 + b(up_left, 8),
        "prediction 32, left 8, up 8, up-left 4, up-right 4": (((b(pred, 32) * 8 + b(left, 8)) * 8 + b(up, 8)) * 4
                                                               + b(up_left, 4)) * 4 + b(up_right, 4),
        "prediction 32, left 16, up 16, up-left 4, up-right 4": (((b(pred, 32) * 16 + b(left, 16)) * 16 + b(up, 16))
                                                                 * 4 + b(up_left, 4)) * 4 + b(up_right, 4),
    }
    pixels = x.size
    print(f"{len(names):,} images, prediction from {args.archive} "
          f"(mean PSNR {contents.quality.mean_psnr:.2f} dB); bits per pixel:")
    print(f"{'context':62s} {'coded':>7s} {'table':>7s} {'total':>7s}")
    for label, ctx in shapes.items():
        data, table = conditional_bits(x, ctx)
        print(f"{label:62s} {data / pixels:7.4f} {table / pixels:7.4f} {(data + table) / pixels:7.4f}", flush=True)


if __name__ == "__main__":
    main()
