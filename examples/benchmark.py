"""Print an archive's numbers: bits/pixel over all its bytes, bytes/image, PSNR, decode time.

    python examples/benchmark.py ARCHIVE [--lossy-copy OUT.lpk]

With ``--lossy-copy``, a lossless archive is also written without its
``/lossless`` group (same decoder, same coded latents; the PSNR of each image
is measured with the float decoder) and measured the same way: the lossy
operating point that the lossless run paid for.

A benchmark prints numbers; it asserts nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import h5py
import numpy as np


def group_bytes(path: Path) -> dict[str, int]:
    """Stored bytes of every top-level group's datasets (after HDF5 compression)."""
    out: dict[str, int] = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                top = name.split("/")[0]
                out[top] = out.get(top, 0) + int(obj.id.get_storage_size())
        f.visititems(visit)
    return out


def measure(path: Path) -> None:
    from latentpack.codec.decode import iter_images
    from latentpack.formats import read_archive

    t = time.perf_counter()
    contents = read_archive(path)
    n = 0
    for _ in iter_images(contents):  # lossless: every digest is checked
        n += 1
    seconds = time.perf_counter() - t
    shapes = contents.images.shapes.astype(np.int64)
    pixels = int((shapes[:, 0] * shapes[:, 1]).sum())
    size = path.stat().st_size
    h = contents.header
    q = contents.quality
    print(f"archive          {path}")
    print(f"mode             {'lossless' if contents.lossless is not None else 'lossy'}, latents {contents.latents.coding}")
    print(f"images           {h.w:,} ({pixels:,} pixels)")
    print(f"file             {size:,} bytes = {8 * size / pixels:.4f} bits/pixel = {size / h.w:.2f} bytes/image")
    for group, b in sorted(group_bytes(path).items(), key=lambda kv: -kv[1]):
        print(f"  {group:<14} {b:>12,} bytes  {8 * b / pixels:.4f} bits/pixel")
    print(f"  {'(hdf5 rest)':<14} {size - sum(group_bytes(path).values()):>12,} bytes")
    if h.stored_bits is not None:
        print(f"header stored    z {h.z_bits:,} + latents {h.stored_latent_bits:,} + residuals {h.residual_bits:,}"
              f" = {h.stored_bits:,} bits ({h.stored_bits / pixels:.4f} bits/pixel)")
    print(f"header seed      z + w*y*32 = {h.lhs_bits:,} bits < x = {h.x_bits:,}: {h.beats_raw}")
    print(f"quality          mean PSNR {q.mean_psnr:.2f} dB, min {q.min_psnr:.2f} dB"
          + (f" (prediction {contents.training.get('prediction_mean_psnr', float('nan')):.2f} dB)"
             if contents.lossless is not None else ""))
    print(f"decode all       {seconds:.1f} s ({n} images{', digests checked' if contents.lossless is not None else ''})")
    print(f"compress timings {contents.training.get('timings')}")


def lossy_copy(path: Path, out: Path) -> None:
    """Write ``path`` without its lossless group, with float-decoder PSNRs measured against the exact images."""
    from latentpack.codec.decode import iter_images
    from latentpack.codec.runtime.reconstruct import iter_reconstructions, load_decoder
    from latentpack.formats import Quality, read_archive, write_archive
    from latentpack.formats.schema import compute_header
    from latentpack.fs.images import natural_pixels
    from latentpack.metrics import psnr

    c = read_archive(path)
    if c.lossless is None:
        sys.exit(f"{path} is not lossless")
    exact = {i: natural_pixels(img)[0] for i, img, _, _ in iter_images(c)}
    values = np.empty(len(c.images))
    for i, _, img in iter_reconstructions(load_decoder(c.decoder), c.latents, c.images):
        recon = natural_pixels(img, None)[0]
        values[i] = psnr(exact[i], recon[..., : exact[i].shape[2]])
    h = c.header
    header = compute_header(w=h.w, latent_counts=c.latents.counts, x_bits=h.x_bits, decoder_scalars=h.z_bits // 32,
                            folder_bytes=h.folder_bytes, stored_latent_bits=h.stored_latent_bits)
    lossy = dataclasses.replace(c, header=header, lossless=None, quality=Quality(psnr=np.round(values * 64) / 64),
                                writer="", created="")
    write_archive(out, lossy, force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--lossy-copy", type=Path, default=None)
    args = parser.parse_args()
    print(f"$ python examples/benchmark.py {' '.join(sys.argv[1:])}")
    measure(args.archive)
    if args.lossy_copy:
        lossy_copy(args.archive, args.lossy_copy)
        print()
        measure(args.lossy_copy)


if __name__ == "__main__":
    main()
