"""Print the peak resident memory of ``latentpack extract`` at several archive sizes.

    python examples/extract_memory.py ARCHIVE [--sizes 1000,10000,70000] [--workdir DIR]

For each size N, the first N images of ARCHIVE (a lossy archive with full
32-byte digests) are written to ``DIR/first-N.lpk`` (same decoder; the
latents re-coded from the decoded integers, so the images are the same; a
size of at least the archive's image count copies the archive), then
``latentpack extract`` runs in a process of its own and its peak RSS (the
kernel's ``ru_maxrss`` for that process) and wall time are printed, with the
growth per image between consecutive sizes. Each size is extracted into a
fresh folder, removed afterwards. The cutting runs in a process of its own
too: Linux counts the parent's resident memory at the moment of ``exec`` in
the child's ``ru_maxrss``, so the measuring parent stays small.

A benchmark prints numbers; it asserts nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def first_images(archive: Path, n: int, out: Path) -> Path:
    """Write the first ``n`` images of a lossy archive to ``out``."""
    import numpy as np

    from latentpack.codec.entropy.latent_coding import encode_latents
    from latentpack.codec.runtime.reconstruct import integer_latents
    from latentpack.formats import Latents, Quality, compute_header, read_archive, write_archive

    c = read_archive(archive)
    w = len(c.images)
    if c.lossless is not None:
        raise SystemExit(f"{archive}: a lossless archive cannot be cut here (its residuals are coded in blocks)")
    if c.images.sha256.shape[1] != 32:
        raise SystemExit(f"{archive}: its digests are cut, so sha256_all of a part cannot be computed")
    if n >= w:
        shutil.copyfile(archive, out)
        return out
    t = c.images
    images = dataclasses.replace(
        t, names=t.names[:n], shapes=t.shapes[:n], modes=t.modes[:n], formats=t.formats[:n],
        sha256=t.sha256[:n], palette_index=t.palette_index[:n], file_bytes=t.file_bytes[:n],
    )
    offsets = c.latents.offsets[: n + 1]
    shapes = c.latents.shapes[:n]
    ints = integer_latents(c.latents)
    if ints is None:
        latents = Latents(values=c.latents.values[: offsets[-1]], offsets=offsets, shapes=shapes)
    else:
        coded = encode_latents(ints[0][: offsets[-1]], offsets, shapes, ints[1])
        latents = Latents(values=np.zeros(0, np.float32), offsets=offsets, shapes=shapes, quantized=coded)
    h = c.header
    header = compute_header(
        w=n,
        latent_counts=np.diff(offsets),
        x_bits=int(np.sum(np.prod(images.shapes.astype(np.int64), axis=1))) * 8,
        decoder_scalars=c.decoder.num_scalars,
        folder_bytes=int(images.file_bytes.sum()),
        stored_latent_bits=None if latents.quantized is None else latents.quantized.stored_bits,
        residual_bits=h.residual_bits,
        stored_decoder_bits=h.stored_decoder_bits,
    )
    part = dataclasses.replace(c, header=header, latents=latents, images=images,
                               quality=Quality(psnr=c.quality.psnr[:n]))
    return write_archive(out, part, force=True)


def measure(archive: Path, outdir: Path) -> tuple[float, float]:
    """Peak RSS (MB) and wall seconds of ``latentpack extract archive -o outdir`` in its own process."""
    return peak_rss(["extract", str(archive), "-o", str(outdir)])


def peak_rss(args: list[str]) -> tuple[float, float]:
    """Peak RSS (MiB: the kernel's ``ru_maxrss`` of that process) and wall seconds of ``latentpack ARGS``."""
    cmd = [sys.executable, "-m", "latentpack", *args]
    with tempfile.TemporaryFile() as log:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log.read().decode(errors='replace')}")
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archive", type=Path)
    ap.add_argument("--sizes", default="1000,10000,70000", help="image counts, comma-separated")
    ap.add_argument("--workdir", type=Path, help="keep the cut archives here (default: a temporary folder)")
    ap.add_argument("--cut", type=Path, help=argparse.SUPPRESS)  # internal: write the first --sizes images here
    args = ap.parse_args()
    if args.cut is not None:
        first_images(args.archive, int(args.sizes), args.cut)
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="extract-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{'images':>8} {'peak RSS MB':>12} {'extract s':>10} {'KB/image since previous':>24}")
    previous = None
    try:
        for n in sizes:
            part = work / f"first-{n}.lpk"
            subprocess.run([sys.executable, __file__, str(args.archive), "--sizes", str(n), "--cut", str(part)], check=True)
            out = work / f"out-{n}"
            shutil.rmtree(out, ignore_errors=True)
            rss, seconds = measure(part, out)
            shutil.rmtree(out, ignore_errors=True)
            growth = "" if previous is None else f"{(rss - previous[1]) * 1024 / (n - previous[0]):.3f}"
            print(f"{n:>8,} {rss:>12.1f} {seconds:>10.1f} {growth:>24}", flush=True)
            previous = (n, rss)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
