"""Bytes per image of an archive's ``/images`` and ``/quality``: the 1.3 layouts against 1.4's.

    python examples/metadata_size.py 70000
    python examples/metadata_size.py 10000 --columns

builds the image table of N MNIST-style images (``train/00000.png`` ... then
``test/00000.png`` ..., six to one as MNIST has them; 28x28 mode L PNG), with
what a lossy archive records of each: a sha256 digest (of random pixels), a
file size (drawn around MNIST's PNG sizes, 275 +- 47 bytes; or one size for
all; or, 1.4, not recorded: -1) and a PSNR (drawn around 25 +- 2.5 dB,
rounded to 1/64 dB as ``compress`` records it). No training: it writes the table with the formats
writer beside a tiny decoder and float32 latents, as tests/archive_factory.py
does, and counts every HDF5 byte of the two groups (object headers, indexes,
attributes, data: `latentpack.formats.footprint.group_bytes`).

Each row is one layout and digest length; ``--columns`` adds what each
dataset of the 1.4 ``/images`` and ``/quality`` costs. The draws are seeded,
so the figures are the same on every run.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import tempfile
from pathlib import Path

import numpy as np

from latentpack.codec.architectures.registry import conv_layer
from latentpack.formats import (ArchiveContents, DecoderWeights, ImageTable, Latents, Quality, compute_header,
                                validate_architecture, write_archive)
from latentpack.formats.footprint import group_bytes, object_bytes

#: How the file sizes are drawn: around MNIST's PNG sizes, all one size, or not recorded (-1, 1.4).
FILE_SIZES = ("png", "one", "none")
#: (label, layout, digest bytes, file sizes)
ROWS = (
    ("1.3 layout, 32-byte digests (1.3's lossy default)", False, 32, "png"),
    ("1.3 layout, 4-byte digests", False, 4, "png"),
    ("1.4 layout, 4-byte digests (lossless default)", True, 4, "png"),
    ("1.4 layout, 2-byte digests (lossy default)", True, 2, "png"),
    ("1.4 layout, 2-byte digests, every file one size", True, 2, "one"),
    ("1.4 layout, 2-byte digests, file sizes not recorded", True, 2, "none"),
)


def mnist_names(n: int) -> list[str]:
    """``train/00000.png`` ... then ``test/00000.png`` ...: six train names to one test name."""
    train = round(n * 6 / 7)
    return [f"train/{i:05d}.png" for i in range(train)] + [f"test/{i:05d}.png" for i in range(n - train)]


def _decoder() -> DecoderWeights:
    """A tiny decoder from 4 latents to 28x28x1 (its weights are random: nothing is decoded here)."""
    architecture = {
        "type": "latentpack-decoder", "version": 1, "input_shape": [1, 1, 4], "output_mode": "L",
        "layers": [
            {"name": "g_s_flatten", "type": "Flatten", "config": {}},
            {"name": "g_s_dense", "type": "Dense", "config": {"units": 98, "activation": "relu", "use_bias": True}},
            {"name": "g_s_reshape", "type": "Reshape", "config": {"target_shape": [7, 7, 2]}},
            conv_layer("g_s_up0", 2, 3, 2, "relu", transpose=True),
            conv_layer("g_s_up1", 2, 3, 2, "relu", transpose=True),
            conv_layer("g_s_out", 1, 3, 1, "sigmoid"),
        ],
    }
    rng = np.random.default_rng(0)
    spec = validate_architecture(architecture)
    weights = {layer.name: [(name, rng.standard_normal(shape).astype(np.float32)) for name, shape in layer.weight_shapes]
               for layer in spec.layers if layer.weight_shapes}
    return DecoderWeights(architecture, weights)


def mnist_contents(n: int, digest_bytes: int = 2, file_sizes: str = "png", seed: int = 0) -> ArchiveContents:
    """The archive contents of `n` MNIST-style images (see the module docstring; `file_sizes`: `FILE_SIZES`)."""
    rng = np.random.default_rng(seed)
    full = np.stack([np.frombuffer(hashlib.sha256(rng.bytes(16)).digest(), np.uint8) for _ in range(n)]) if n else \
        np.zeros((0, 32), np.uint8)
    sizes = np.clip(np.rint(rng.normal(275, 47, n)), 67, None)
    if file_sizes != "png":
        sizes = np.full(n, 275 if file_sizes == "one" else -1)
    table = ImageTable(
        names=mnist_names(n), shapes=np.tile(np.array([28, 28, 1], np.int32), (n, 1)), modes=["L"] * n,
        formats=["PNG"] * n, sha256=full[:, :digest_bytes].copy(), palette_index=np.full(n, -1, np.int32),
        palettes=np.zeros((0, 256, 4), np.uint8), file_bytes=sizes.astype(np.int64),
        sha256_all=None if digest_bytes == 32 else np.frombuffer(hashlib.sha256(full.tobytes()).digest(), np.uint8),
    )
    decoder = _decoder()
    counts = np.full(n, 4, np.int64)
    header = compute_header(w=n, latent_counts=counts, x_bits=n * 28 * 28 * 8, decoder_scalars=decoder.num_scalars,
                            folder_bytes=int(np.clip(sizes, 0, None).sum()))
    latents = Latents(values=rng.standard_normal(4 * n).astype(np.float32),
                      offsets=np.arange(0, 4 * n + 1, 4, dtype=np.int64), shapes=np.tile(np.array([1, 1, 4], np.int32),
                                                                                      (n, 1)))
    return ArchiveContents(header=header, decoder=decoder, latents=latents, images=table,
                           quality=Quality(psnr=np.round(np.clip(rng.normal(25, 2.5, n), 5, 60) * 64) / 64), training={"note": "no training"})


def columns(path: Path) -> dict[str, int]:
    """Bytes of each dataset of ``/images`` and ``/quality``, and of each group itself."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for group in ("images", "quality"):
            out[f"/{group} (group, attributes)"] = object_bytes(f[group])
            for name, ds in f[group].items():
                out[f"/{group}/{name}"] = object_bytes(ds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, help="number of images")
    parser.add_argument("--columns", action="store_true", help="also the bytes of each 1.4 dataset")
    args = parser.parse_args()
    print(f"# python examples/metadata_size.py {args.n}{' --columns' if args.columns else ''}")
    print(f"{'layout':<52} {'/images':>9} {'/quality':>9} {'B/image':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.lpk"
        for label, compact, k, file_sizes in ROWS:
            contents = dataclasses.replace(mnist_contents(args.n, k, file_sizes), compact_metadata=compact)
            write_archive(path, contents, force=True)
            sizes = group_bytes(path)
            images, quality = sizes["images"], sizes["quality"]
            print(f"{label:<52} {images:>9,} {quality:>9,} {(images + quality) / max(args.n, 1):>8.2f}")
            if args.columns and compact and k == 2 and file_sizes == "png":
                for name, size in columns(path).items():
                    print(f"    {name:<48} {size:>9,} {size / max(args.n, 1):>8.3f}")


if __name__ == "__main__":
    main()
