"""Time ``latentpack add`` and compare the added images' quality and bytes with the archive's own.

    python examples/add_benchmark.py ARCHIVE NEW_FOLDER [--fit-steps N] [--refit FOLDER N]

Grows a copy of ARCHIVE (ARCHIVE is left alone) with the images of
NEW_FOLDER and prints: images added, wall time of the add, the fitting
time, the mean PSNR of the added images against that of the images the
archive was compressed with, and the stored latent bits per image of each.
With ``--refit FOLDER N`` it also adds N images spread over FOLDER (the
folder the archive was compressed from) under the prefix ``refit``, so the
same images' PSNR under fitted latents can be set against the encoder's.
Run it alone: its times are wall-clock.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from latentpack.formats import read_archive
from latentpack.ops.add import DEFAULT_FIT_STEPS, add_images


def _latent_bits(path: Path) -> int:
    return int(read_archive(path, ("header",)).header.stored_latent_bits or 0)


def _refit(archive: Path, folder: Path, n: int, steps: int, tmp: Path) -> None:
    """Fit the first `n` images of the compressed folder again and compare with their stored PSNRs."""
    every = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    files = every[:: max(1, len(every) // n)][:n]  # spread over the folder (every label of a digits folder)
    src = tmp / "refit-src"
    for p in files:
        dest = src / p.relative_to(folder)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest)
    out = tmp / "refit.lpk"
    result = add_images(archive, [src], output=out, prefix="refit", fit_steps=steps)
    contents = result.contents
    names = contents.images.names
    index = {name: i for i, name in enumerate(names)}
    pairs = [(contents.quality.psnr[index[name]], contents.quality.psnr[index[f"refit/{name}"]])
             for name in (p.relative_to(folder).as_posix() for p in files) if name in index]
    enc, fit = np.array(pairs).T
    print(f"same {len(pairs)} images: encoder {enc.mean():.2f} dB, fitted {fit.mean():.2f} dB "
          f"(fitted better for {int(np.sum(fit > enc))} of them)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archive", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--fit-steps", type=int, default=DEFAULT_FIT_STEPS)
    parser.add_argument("--refit", nargs=2, metavar=("FOLDER", "N"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.archive.parent) as tmp:
        grown = Path(tmp) / "grown.lpk"
        before_bits, w0 = _latent_bits(args.archive), len(read_archive(args.archive, ("images",)).images)
        t = time.perf_counter()
        result = add_images(args.archive, [args.new], output=grown, prefix="added", fit_steps=args.fit_steps)
        wall = time.perf_counter() - t
        n = len(result.names)
        after_bits = _latent_bits(grown)
        print(f"added {n:,} images to {w0:,} in {wall:.1f} s wall (fitting {result.timings.get('fit', 0):.1f} s, "
              f"{args.fit_steps} steps; load average {os.getloadavg()[0]:.1f})")
        print(f"mean PSNR: added {result.mean_psnr:.2f} dB, compressed {result.earlier_mean_psnr:.2f} dB")
        print(f"stored latent bits per image: added {(after_bits - before_bits) / n:.1f} (the whole stream re-coded), "
              f"compressed {before_bits / w0:.1f}")
        print(f"file: {result.bytes_before:,} -> {result.bytes_after:,} bytes "
              f"({(result.bytes_after - result.bytes_before) / n:.1f} bytes per added image)")
        if args.refit:
            _refit(args.archive, Path(args.refit[0]), int(args.refit[1]), args.fit_steps, Path(tmp))


if __name__ == "__main__":
    main()
