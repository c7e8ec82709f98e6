"""Training from an archive: images/s of shuffled uint8 batches, against reading the PNG folder with Pillow.

    python examples/archive_throughput.py ARCHIVE FOLDER [--images 20000] [--batch 64] [--rounds 2] [--tf]

FOLDER holds the files the archive was made from (its stored names are
paths under FOLDER). Each round, in this one process, serves the same
``--images`` images (a random subset, the same for every reader) in a new
shuffled order, ``--batch`` at a time, as uint8 arrays ``(b, h, w, c)``:

* pillow: ``np.stack([np.asarray(Image.open(f)) for f in batch])`` over the files;
* archive: ``latentpack.open(ARCHIVE).training_batches(batch, shuffle=True)``
  (numpy decoder, one call per batch);
* tf.data (``--tf``): ``latentpack.tf_dataset`` iterated eagerly (TensorFlow
  imported before timing).

The readers alternate within each round, so a change of load on the machine
hits them alike; the best round of each is printed with the ratio
archive / pillow. Opening the archive (and, for coded latents, decoding the
latent stream once) is timed apart: ``setup``.
"""
from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import numpy as np
from PIL import Image


def pillow_epoch(files: list[Path], order: np.ndarray, batch: int) -> int:
    n = 0
    for k in range(0, len(order), batch):
        x = np.stack([np.asarray(Image.open(files[i])) for i in order[k : k + batch]])
        x = x[..., None] if x.ndim == 3 else x  # greyscale: (b, h, w, 1), as the archive's batches
        n += len(x)
    return n


def consume(batches) -> int:
    return sum(len(np.asarray(x)) for x in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tf", action="store_true", help="also time latentpack.tf_dataset")
    args = parser.parse_args()

    import latentpack

    t = time.perf_counter()
    a = latentpack.open(args.archive)
    a[0]  # coded latents: the stream is decoded here, once
    setup = time.perf_counter() - t
    rng = np.random.default_rng(args.seed)
    names = sorted(rng.choice(a.names, size=min(args.images, len(a)), replace=False).tolist())
    files = [args.folder / n for n in names]
    batches = a.training_batches(args.batch, shuffle=True, seed=args.seed, names=names)
    readers = {"pillow": lambda r: pillow_epoch(files, np.random.default_rng((args.seed, r)).permutation(len(files)),
                                                args.batch),
               "archive": lambda r: consume(batches)}
    if args.tf:
        importlib.import_module("tensorflow")  # imported before timing

        dataset = a.to_tf_dataset(args.batch, shuffle=True, seed=args.seed, names=names)
        readers["tf.data"] = lambda r: consume(dataset)
    best: dict[str, float] = {}
    print(f"{len(names):,} images of {args.archive.name}, batches of {args.batch}, {args.rounds} rounds; "
          f"setup (open, first image) {setup:.2f} s")
    for r in range(args.rounds):
        for label, run in readers.items():
            t = time.perf_counter()
            n = run(r)
            rate = n / (time.perf_counter() - t)
            best[label] = max(best.get(label, 0.0), rate)
            print(f"  round {r + 1} {label:8} {rate:10,.0f} images/s")
    for label, rate in best.items():
        print(f"best {label:8} {rate:10,.0f} images/s   ratio to pillow {rate / best['pillow']:.2f}")
    a.close()


if __name__ == "__main__":
    main()
