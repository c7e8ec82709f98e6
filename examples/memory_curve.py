"""Print how the peak memory of ``compress`` and ``extract`` grows with the number of images.

    python examples/memory_curve.py ../shared/datasets/mnist --sizes 5000,40000,200000 \\
        --workdir /tmp/memcurve [--epochs 1] [--keep]

Builds a pool of distinct 28x28 greyscale PNGs from the MNIST digits (the
IDX files in the given folder): the 70,000 digits as they are
(``v0/``), mirrored left to right (``v1/``), then shifted one pixel right
(``v2/``), ... as many as the largest size needs. Names look like
``v1/093/093412.png`` (17 characters). For each size N
the folder ``WORKDIR/wN`` holds hard links to the first N files of the pool
(no extra disk space), and then, each in a fresh process of its own:

* ``latentpack compress WORKDIR/wN -o WORKDIR/wN.lpk --epochs E --force``
* ``latentpack extract WORKDIR/wN.lpk -o WORKDIR/out-N --force`` (the
  output is removed afterwards)

Peak RSS is the kernel's ``ru_maxrss`` of that process (``os.wait4``); the
pool is built in a process of its own too, because Linux counts the parent's
resident memory at the moment of ``exec`` in the child's ``ru_maxrss``.
The table gives each size's peaks, their growth in KB (1,000 bytes) per
image relative to the smallest size, the wall times and the archive bytes.
``--compress-args`` adds options (a fixed design: ``--arch mlp --filters
512``, so that only the number of images changes). ``--epochs`` cuts training short: training streams batches from the
memory-mapped staging file, so memory does not depend on it (check it with
``--sizes 5000 --epochs 1`` against ``--epochs 4``).

A benchmark prints numbers; it asserts nothing. The images are made from the
dataset at run time and are never part of the project.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from extract_memory import peak_rss  # noqa: E402  (the same measurement: a fresh process, its ru_maxrss)

_MNIST_IMAGES = 70_000


def _variant(digits, v: int):
    """The v-th variant of the (n, 28, 28) digits: 0 as is, 1 mirrored, k >= 2 rolled k-1 pixels right."""
    import numpy as np

    if v == 0:
        return digits
    if v == 1:
        return digits[:, :, ::-1]
    return np.roll(digits, v - 1, axis=2)


def pool_name(k: int) -> str:
    """The name of the k-th image of the pool (variant, block of 1,000, index)."""
    return f"v{k // _MNIST_IMAGES}/{k // 1000:03d}/{k:06d}.png"


def build_pool(mnist: Path, pool: Path, count: int) -> None:
    """Write the first ``count`` images of the pool under ``pool`` (those already there are kept)."""
    import numpy as np
    from PIL import Image

    from mnist_to_png import read_idx  # numpy and Pillow: only in the process that builds the pool

    digits = np.concatenate([read_idx(mnist / "train-images-idx3-ubyte.gz"),
                             read_idx(mnist / "t10k-images-idx3-ubyte.gz")])
    for k in range(count):
        path = pool / pool_name(k)
        if path.exists():
            continue
        if k % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        v, i = divmod(k, _MNIST_IMAGES)
        Image.fromarray(np.ascontiguousarray(_variant(digits[i : i + 1], v)[0]), "L").save(path)


def link_folder(pool: Path, folder: Path, n: int) -> None:
    """``folder`` holds hard links to the first ``n`` images of the pool (rebuilt if its count differs)."""
    if folder.exists() and sum(len(f) for _, _, f in os.walk(folder)) == n:
        return
    shutil.rmtree(folder, ignore_errors=True)
    for k in range(n):
        target = folder / pool_name(k)
        if k % 1000 == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
        os.link(pool / pool_name(k), target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mnist", type=Path, help="folder with the four MNIST *-ubyte.gz files")
    ap.add_argument("--sizes", default="5000,40000,200000", help="image counts, comma-separated")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/memcurve"), help="where the folders go")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs of every compress (default 1)")
    ap.add_argument("--compress-args", default="", metavar="ARGS",
                    help="more compress options, e.g. \"--arch mlp --filters 512\": the default design widens "
                    "with the folder (mlp H=64 at 5,000 digits, H=512 at 40,000), which changes memory too")
    ap.add_argument("--keep", action="store_true", help="keep the folders and archives afterwards")
    ap.add_argument("--build", type=int, help=argparse.SUPPRESS)  # internal: write the pool's first N images
    args = ap.parse_args()
    pool = args.workdir / "pool"
    if args.build is not None:
        build_pool(args.mnist, pool, args.build)
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, __file__, str(args.mnist), "--workdir", str(args.workdir),
                    "--build", str(sizes[-1])], check=True)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"compress with --epochs {args.epochs} {args.compress_args}; KB = 1,000 bytes, growth relative to {sizes[0]:,} images")
    head = (f"{'images':>8} {'compress MiB':>13} {'KB/image':>9} {'extract MiB':>12} {'KB/image':>9} "
            f"{'compress s':>11} {'extract s':>10} {'archive bytes':>14}")
    print(head, flush=True)
    first = None
    try:
        for n in sizes:
            folder, archive, out = args.workdir / f"w{n}", args.workdir / f"w{n}.lpk", args.workdir / f"out-{n}"
            link_folder(pool, folder, n)
            c_rss, c_s = peak_rss(["compress", str(folder), "-o", str(archive), "--epochs", str(args.epochs),
                                  *shlex.split(args.compress_args), "--force", "-q"])
            shutil.rmtree(out, ignore_errors=True)
            e_rss, e_s = peak_rss(["extract", str(archive), "-o", str(out), "-q"])
            shutil.rmtree(out, ignore_errors=True)
            first = first or (n, c_rss, e_rss)
            grow = [("" if n == first[0] else f"{(rss - base) * 1.048576 / (n - first[0]) * 1000:.2f}")
                    for rss, base in ((c_rss, first[1]), (e_rss, first[2]))]
            print(f"{n:>8,} {c_rss:>13.1f} {grow[0]:>9} {e_rss:>12.1f} {grow[1]:>9} {c_s:>11.1f} {e_s:>10.1f} "
                  f"{archive.stat().st_size:>14,}", flush=True)
            if not args.keep:
                archive.unlink()
    finally:
        if not args.keep:
            for n in sizes:
                shutil.rmtree(args.workdir / f"w{n}", ignore_errors=True)


if __name__ == "__main__":
    main()
