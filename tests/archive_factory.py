"""Small synthetic `ArchiveContents` for tests (no TensorFlow, no images).

`make_contents` builds a consistent archive around one of two tiny decoders
that mirror the codec's two architectures:

* ``dense``: latents ``(1, 1, 4)`` -> Dense -> Reshape(7, 7, 2) ->
  Conv2DTranspose s2 -> Conv2D -> ``(14, 14, 1)``, mode ``L``;
* ``conv``: latents ``(gh, gw, 3)`` -> Conv2DTranspose s2 -> Conv2D ->
  ``(2*gh, 2*gw, 3)``, mode ``RGB``, images of varying sizes.

``make_contents(weight_dtype="float16")`` gives a 1.2 archive, and
`with_v11_features` adds coded (or generated) latents and short digests.

`read_damaged_copies` is the subprocess side of the corruption tests: it reads
damaged copies of an archive one by one and prints what became of each, so a
test can time out a read that hangs inside libhdf5.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from latentpack.codec.architectures.registry import conv_layer
from latentpack.formats import (
    ArchiveContents,
    ArchiveError,
    DecoderWeights,
    ImageTable,
    IndexCodes,
    Latents,
    Quality,
    compute_header,
    open_archive,
    read_archive,
    validate_architecture,
)

__all__ = ["dense_architecture", "conv_architecture", "make_contents", "with_v11_features", "assert_contents_equal",
           "read_damaged_copies"]


def dense_architecture(y: int = 4) -> dict[str, Any]:
    return {
        "type": "latentpack-decoder",
        "version": 1,
        "input_shape": [1, 1, y],
        "output_mode": "L",
        "layers": [
            {"name": "g_s_flatten", "type": "Flatten", "config": {}},
            {"name": "g_s_dense", "type": "Dense", "config": {"units": 98, "activation": "relu", "use_bias": True}},
            {"name": "g_s_reshape", "type": "Reshape", "config": {"target_shape": [7, 7, 2]}},
            conv_layer("g_s_up0", 2, 3, 2, "relu", transpose=True),
            conv_layer("g_s_out", 1, 3, 1, "sigmoid"),
        ],
    }


def conv_architecture(c: int = 3) -> dict[str, Any]:
    return {
        "type": "latentpack-decoder",
        "version": 1,
        "input_shape": [None, None, c],
        "output_mode": "RGB",
        "layers": [
            conv_layer("g_s_up0", 4, 4, 2, "relu", transpose=True),
            {"name": "g_s_nearest", "type": "UpSampling2D", "config": {"size": [1, 1], "interpolation": "nearest"}},
            conv_layer("g_s_out", 3, 3, 1, "sigmoid"),
        ],
    }


def make_contents(w: int = 3, arch: str = "dense", seed: int = 0, weight_dtype: str = "float32",
                  compact_metadata: bool = False) -> ArchiveContents:
    """A consistent synthetic archive of `w` images.

    Args:
        w: Number of images (0 allowed).
        arch: ``"dense"`` or ``"conv"``.
        seed: Seed of every random array.
        weight_dtype: ``"float32"``, or ``"float16"`` for weights rounded to
            half precision (a 1.2 archive).
        compact_metadata: Write ``/images`` and ``/quality`` in their 1.4
            layouts (the writer's default); False (here the default: the
            tests written before 1.4 test the 1.0 to 1.3 layouts, which every
            reader still reads) keeps the older ones.
    """
    rng = np.random.default_rng(seed)
    architecture = dense_architecture() if arch == "dense" else conv_architecture()
    spec = validate_architecture(architecture)
    weights = {
        layer.name: [(n, rng.standard_normal(shape).astype(np.float32)) for n, shape in layer.weight_shapes]
        for layer in spec.layers
        if layer.weight_shapes
    }
    if arch == "dense":
        image_shapes = [(14, 14, 1)] * w
        latent_shapes = [(1, 1, 4)] * w
        modes = ["P" if i == 1 else "L" for i in range(w)]
    else:
        image_shapes = [(4 + 2 * (i % 3), 6 + 2 * (i % 2), 3) for i in range(w)]
        latent_shapes = [(h // 2, wd // 2, 3) for h, wd, _ in image_shapes]
        modes = ["P" if i == 1 else "RGB" for i in range(w)]
    counts = np.array([int(np.prod(s)) for s in latent_shapes], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    values = rng.standard_normal(int(offsets[-1])).astype(np.float32)
    n_palettes = sum(m == "P" for m in modes)
    palette_index = np.full(w, -1, dtype=np.int32)
    palette_index[[i for i, m in enumerate(modes) if m == "P"]] = np.arange(n_palettes, dtype=np.int32)
    file_bytes = rng.integers(100, 5000, size=w).astype(np.int64)
    psnr = rng.uniform(20, 40, size=w)
    if w:
        psnr[0] = np.inf
    images = ImageTable(
        names=[f"img_{i:03d}.png" if i % 2 == 0 else f"sub dir/é_{i:03d}.png" for i in range(w)],
        shapes=np.array(image_shapes, dtype=np.int32).reshape(w, 3),
        modes=modes,
        formats=["PNG" if i % 3 else "JPEG" for i in range(w)],
        sha256=rng.integers(0, 256, size=(w, 32), dtype=np.uint8),
        palette_index=palette_index,
        palettes=rng.integers(0, 256, size=(n_palettes, 256, 4), dtype=np.uint8),
        file_bytes=file_bytes,
    )
    decoder = DecoderWeights(architecture, weights).as_stored(weight_dtype)
    x_bits = int(sum(h * wd * c for h, wd, c in image_shapes)) * 8
    header = compute_header(
        w=w, latent_counts=counts, x_bits=x_bits, decoder_scalars=decoder.num_scalars, folder_bytes=int(file_bytes.sum()),
        stored_decoder_bits=decoder.stored_bits if weight_dtype != "float32" else None,
    )
    return ArchiveContents(
        header=header,
        decoder=decoder,
        latents=Latents(values=values, offsets=offsets, shapes=np.array(latent_shapes, dtype=np.int32).reshape(w, 3)),
        images=images,
        quality=Quality(psnr=psnr),
        training={"arch": arch, "epochs": 3, "seed": seed, "loss": [0.5, 0.25, 0.125], "timings": {"fit_s": 1.5}},
        writer="latentpack 0.1.0",
        created="2024-01-02T03:04:05Z",
        compact_metadata=compact_metadata,
    )


def with_v11_features(contents: ArchiveContents, *, index: bool = False) -> ArchiveContents:
    """`contents` with coded latents (or, with `index`, generated ones) and 4-byte digests."""
    from latentpack.codec.entropy.latent_coding import encode_latents, quantize_latents  # numpy and constriction only

    lat = contents.latents
    if index:
        latents = Latents(np.zeros(0, np.float32), lat.offsets, lat.shapes, index_codes=IndexCodes(seed=3, step=2.0**-7))
        stored = 0
    else:
        q = quantize_latents(lat.values, 0.125)
        coded = encode_latents(q, lat.offsets, lat.shapes, 0.125)
        latents = Latents(np.zeros(0, np.float32), lat.offsets, lat.shapes, quantized=coded)
        stored = coded.stored_bits
    digests = contents.images.sha256
    images = dataclasses.replace(contents.images, sha256=digests[:, :4].copy(),
                                 sha256_all=np.frombuffer(hashlib.sha256(digests.tobytes()).digest(), np.uint8).copy())
    h = contents.header
    header = compute_header(w=h.w, latent_counts=lat.counts, x_bits=h.x_bits, decoder_scalars=h.z_bits // 32,
                            folder_bytes=h.folder_bytes, stored_latent_bits=stored,
                            stored_decoder_bits=h.stored_decoder_bits)
    return dataclasses.replace(contents, latents=latents, images=images, header=header)


def _same_array(a: np.ndarray, b: np.ndarray, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f"{what}: values differ"


def _same_decoder_and_latents(got: ArchiveContents, want: ArchiveContents) -> None:
    assert got.decoder.architecture == want.decoder.architecture
    assert got.decoder.weight_dtype == want.decoder.weight_dtype
    assert list(got.decoder.weights) == list(want.decoder.weights)
    for layer, pairs in want.decoder.weights.items():
        assert [n for n, _ in got.decoder.weights[layer]] == [n for n, _ in pairs]
        for (name, a), (_, b) in zip(got.decoder.weights[layer], pairs):
            _same_array(a, b, f"{layer}/{name}")
    for name in ("values", "offsets", "shapes"):
        _same_array(getattr(got.latents, name), getattr(want.latents, name), f"latents.{name}")


def assert_contents_equal(got: ArchiveContents, want: ArchiveContents) -> None:
    """Assert two `ArchiveContents` are identical, array by array."""
    assert got.header == want.header
    assert (got.pixels is None) == (want.pixels is None) and (got.decoder is None) == (want.decoder is None)
    if want.pixels is not None:  # 1.3: a pixel model in place of the decoder and the latents
        for f in dataclasses.fields(want.pixels):
            a, b = getattr(got.pixels, f.name), getattr(want.pixels, f.name)
            if isinstance(b, np.ndarray):
                _same_array(a, b, f"pixels.{f.name}")
            else:
                assert a == b and type(a) is type(b), f"pixels.{f.name}"
    else:
        _same_decoder_and_latents(got, want)
    for name in ("names", "modes", "formats"):
        assert list(getattr(got.images, name)) == list(getattr(want.images, name)), name
    for name in ("shapes", "sha256", "palette_index", "palettes", "file_bytes"):
        _same_array(getattr(got.images, name), getattr(want.images, name), f"images.{name}")
    _same_array(got.quality.psnr, want.quality.psnr, "quality.psnr")
    assert got.training == want.training
    assert got.writer == want.writer
    assert got.created == want.created


def read_damaged_copies(original: str, damages: str, scratch: str, start: int) -> None:
    """Read damaged copies of `original`, printing one line per copy to stdout.

    Args:
        original: A valid archive.
        damages: A JSON file: a list of ``[offset, hex bytes]``, each one copy
            of `original` with those bytes written at that offset.
        scratch: Where each damaged copy is written before it is read.
        start: Index of the first damage to apply (after a restart).

    Each line is ``INDEX OUTCOME [detail]``, OUTCOME being ``same`` (read in
    full, equal to the original), ``error`` (an `ArchiveError`), ``changed``
    (read in full but different: silent damage) or ``escaped`` (any other
    exception). A read that never ends prints no line for its index.
    """
    want = read_archive(original)
    data = Path(original).read_bytes()
    for index, (offset, patch) in enumerate(json.loads(Path(damages).read_text())[start:], start):
        damaged = bytearray(data)
        raw = bytes.fromhex(patch)
        damaged[offset : offset + len(raw)] = raw
        Path(scratch).write_bytes(bytes(damaged))
        try:
            with open_archive(scratch) as archive:
                archive.validate()
                archive.storage_breakdown()
                got = archive.contents()
            try:
                assert_contents_equal(got, want)
                line = "same"
            except AssertionError as err:
                line = f"changed {str(err).splitlines()[0] if str(err) else 'contents differ'}"
        except ArchiveError as err:
            line = f"error {type(err).__name__}"
        except Exception as err:  # what the test is looking for: an error outside the hierarchy
            line = f"escaped {type(err).__name__}: {err}"
        print(index, line.replace("\n", " ")[:300], flush=True)
    sys.stdout.flush()
