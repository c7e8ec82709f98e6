"""What one random access ``latentpack.open(a)[i]`` costs: time and bytes read, against reading it all.

    python examples/random_access.py ARCHIVE [ARCHIVE ...] [--samples 30]
    python examples/random_access.py SRC.lpk --tile 200000 --tiled BIG.lpk [--float32]   # build a larger one

For each archive it prints, in this process (numpy and h5py warm after the
first archive):

* open: ``latentpack.open`` (header, decoder, tables, names, latent index);
* first: the first ``a[i]`` (coded latents: the whole latent stream is
  decoded once here, as the format codes all images in one stream);
* random: the median of ``--samples`` further ``a[i]`` at random positions;
* whole read: what reading the image cost before random access (the whole
  archive read and checked, then image i decoded: ``read_archive`` +
  ``iter_images``), once.

Bytes are the bytes this process read from files during the step
(``rchar`` of /proc/self/io: every read and pread, HDF5 metadata included,
whether or not the page cache held them; HDF5's own chunk cache, 1 MiB per
dataset, serves repeated reads of a chunk without a read). Everything is
imported and run once first, on the first archive.

``--tile N`` writes ``--tiled``: N images, SRC's repeated (names
``copyK/...``), the same decoder, latents re-coded (``--float32``: stored as
float32 values, 1.0's encoding), so an access can be measured at N images.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def rchar() -> int:
    """Bytes read by this process so far (read and pread system calls, any file)."""
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def _rchar_cost() -> int:
    """What reading /proc/self/io itself adds to ``rchar`` (subtracted from every count)."""
    a = rchar()
    return rchar() - a


def measured(action):
    """``(result, seconds, bytes read)`` of one call."""
    b0, t0 = rchar(), time.perf_counter()
    out = action()
    return out, time.perf_counter() - t0, rchar() - b0 - _RCHAR_COST


def warm_up(path: Path) -> None:
    """Import and run everything once (modules, numpy and h5py start-up), so the figures are the access's."""
    import latentpack
    from latentpack.codec.decode import iter_images
    from latentpack.formats import read_archive

    with latentpack.open(path) as a:
        a[0]
    next(iter_images(read_archive(path), [0]))


def measure(path: Path, samples: int, seed: int) -> dict:
    import latentpack
    from latentpack.codec.decode import iter_images
    from latentpack.formats import read_archive

    rng = np.random.default_rng(seed)
    a, t_open, b_open = measured(lambda: latentpack.open(path))
    w = len(a)
    first = int(rng.integers(w))
    _, t_first, b_first = measured(lambda: a[first])
    times, sizes = [], []
    for i in rng.integers(w, size=samples):
        _, t, b = measured(lambda: a[int(i)])
        times.append(t)
        sizes.append(b)
    coding = a._decoding.latents.coding if a._decoding.latents is not None else "pixels"
    a.close()

    def whole():
        contents = read_archive(path)
        return next(iter_images(contents, [first]))

    _, t_whole, b_whole = measured(whole)
    return {"archive": str(path), "w": w, "coding": coding, "file_bytes": path.stat().st_size,
            "open_s": t_open, "open_bytes": b_open, "first_s": t_first, "first_bytes": b_first,
            "random_s": statistics.median(times), "random_bytes": int(statistics.median(sizes)),
            "random_max_bytes": max(sizes), "whole_s": t_whole, "whole_bytes": b_whole}


def tile(src: Path, dst: Path, count: int, as_float: bool) -> None:
    """Write `dst`: `count` images, `src`'s repeated, same decoder, latents re-coded (or float32)."""
    from latentpack.codec.entropy.latent_coding import dequantize, encode_latents
    from latentpack.codec.runtime.reconstruct import integer_latents
    from latentpack.formats import ArchiveContents, ImageTable, Latents, Quality, compute_header, read_archive
    from latentpack.formats.writer import write_archive

    c = read_archive(src)
    lat, table, h = c.latents, c.images, c.header
    q, step = integer_latents(lat)
    copies = -(-count // len(table))
    shapes = np.tile(lat.shapes, (copies, 1))[:count]
    offsets = np.concatenate([[0], np.cumsum(np.tile(np.diff(lat.offsets), copies)[:count])]).astype(np.int64)
    q = np.tile(q, copies)[: offsets[-1]]
    if as_float:
        latents, stored = Latents(values=dequantize(q, step), offsets=offsets, shapes=shapes), None
    else:
        coded = encode_latents(q, offsets, shapes, step)
        latents = Latents(values=np.zeros(0, np.float32), offsets=offsets, shapes=shapes, quantized=coded)
        stored = coded.stored_bits
    names = [f"copy{k}/{n}" for k in range(copies) for n in table.names][:count]

    def rows(a: np.ndarray) -> np.ndarray:
        return np.tile(a, (copies,) + (1,) * (a.ndim - 1))[:count]

    images = ImageTable(names=names, shapes=rows(table.shapes), modes=(list(table.modes) * copies)[:count],
                        formats=(list(table.formats) * copies)[:count], sha256=rows(table.sha256),
                        palette_index=rows(table.palette_index), palettes=table.palettes,
                        file_bytes=rows(table.file_bytes), sha256_all=table.sha256_all)
    header = compute_header(w=count, latent_counts=np.diff(offsets), x_bits=h.x_bits * count // len(table),
                            decoder_scalars=c.decoder.num_scalars, folder_bytes=h.folder_bytes * count // len(table),
                            stored_latent_bits=stored,
                            stored_decoder_bits=c.decoder.stored_bits if c.decoder.weight_dtype != "float32" else None)
    write_archive(dst, ArchiveContents(header=header, decoder=c.decoder, latents=latents, images=images,
                                       quality=Quality(psnr=rows(c.quality.psnr)), training=c.training),
                  force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("archives", nargs="+", type=Path)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile", type=int, default=0, help="write --tiled: N images, the first archive's repeated")
    parser.add_argument("--tiled", type=Path)
    parser.add_argument("--float32", action="store_true", help="--tile: store float32 latent values")
    args = parser.parse_args()
    if args.tile:
        t = time.perf_counter()
        tile(args.archives[0], args.tiled, args.tile, args.float32)
        print(f"wrote {args.tiled} ({args.tiled.stat().st_size:,} bytes) in {time.perf_counter() - t:.1f} s")
        return
    print(f"{'archive':28} {'w':>8} {'latents':>18} {'open':>16} {'first a[i]':>18} {'random a[i] (median)':>22} "
          f"{'whole read + a[i]':>20}")
    warm_up(args.archives[0])
    for path in args.archives:
        r = measure(path, args.samples, args.seed)
        print(f"{path.name:28} {r['w']:>8,} {r['coding']:>18} "
              f"{r['open_s'] * 1e3:7.1f} ms {r['open_bytes'] / 1024:5.0f} KiB "
              f"{r['first_s'] * 1e3:8.1f} ms {r['first_bytes'] / 1024:5.0f} KiB "
              f"{r['random_s'] * 1e3:9.2f} ms {r['random_bytes'] / 1024:7.1f} KiB "
              f"{r['whole_s'] * 1e3:8.0f} ms {r['whole_bytes'] / 1024:6.0f} KiB")
        print(f"{'':28} file {r['file_bytes']:,} bytes; largest random access read {r['random_max_bytes']:,} bytes")


_RCHAR_COST = _rchar_cost()

if __name__ == "__main__":
    main()
