"""The in-memory model of a latentpack archive (format version 1.0).

These small dataclasses are what `latentpack.codec` hands to
`latentpack.formats` and what the reader hands back. They hold plain Python
values and numpy arrays only; nothing here imports TensorFlow.

Layout on disk (docs/FORMAT.md is the contract)::

    /                 encoding-type="latentpack-archive", encoding-version="1.0"
    /header           the accounting: w, x, y, z, both sides of z + w*y*32 < x
    /decoder          architecture (JSON) + layers/<name>/<weight> float32
    /latents          values (float32, flat), offsets (int64), shapes (int32)
    /images           names, shapes, modes, formats, sha256, palettes
    /quality          psnr per image
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ENCODING_TYPE",
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "Header",
    "DecoderWeights",
    "ImageTable",
    "Latents",
    "Quality",
    "ArchiveContents",
    "compute_header",
]

#: Root attribute ``encoding-type`` of every latentpack archive.
ENCODING_TYPE = "latentpack-archive"
#: Format version this code writes.
FORMAT_VERSION = "1.0"
#: Format versions this code reads (``(major, minor)`` tuples).
SUPPORTED_VERSIONS = ((1, 0),)


@dataclass(frozen=True)
class Header:
    """Both sides of the pay-off inequality ``z + w*y*32 < x``.

    Attributes:
        w: Number of images.
        y: Latent scalars per image when every image has the same count,
            else ``-1`` (see ``latent_scalars``).
        latent_scalars: Total number of latent scalars over all images
            (``w*y`` when ``y >= 0``).
        x_bits: Raw size of all images: height*width*channels*8 summed.
        z_bits: Decoder size: 32 bits per float32 decoder weight scalar.
        latent_bits: ``latent_scalars * 32`` (the ``w*y*32`` term).
        lhs_bits: ``z_bits + latent_bits``.
        beats_raw: ``lhs_bits < x_bits``, computed exactly with integers.
        folder_bytes: Size on disk of the source image files.
    """

    w: int
    y: int
    latent_scalars: int
    x_bits: int
    z_bits: int
    latent_bits: int
    lhs_bits: int
    beats_raw: bool
    folder_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compute_header(
    *, w: int, latent_counts: np.ndarray, x_bits: int, decoder_scalars: int, folder_bytes: int
) -> Header:
    """Build a `Header` from the counts, doing the formula's arithmetic once.

    Args:
        w: Number of images.
        latent_counts: Latent scalars of each image, shape ``(w,)``.
        x_bits: Raw size of all images in bits.
        decoder_scalars: Number of float32 scalars in the decoder weights.
        folder_bytes: Size on disk of the source files.

    Returns:
        The header, with ``beats_raw`` computed exactly with Python integers.
    """
    counts = [int(c) for c in np.asarray(latent_counts).reshape(-1)]
    if len(counts) != w:
        raise ValueError(f"`latent_counts` must have {w} entries, got {len(counts)}")
    total = sum(counts)
    y = counts[0] if counts and all(c == counts[0] for c in counts) else -1
    z_bits = int(decoder_scalars) * 32
    latent_bits = total * 32
    lhs = z_bits + latent_bits
    return Header(
        w=int(w),
        y=int(y),
        latent_scalars=total,
        x_bits=int(x_bits),
        z_bits=z_bits,
        latent_bits=latent_bits,
        lhs_bits=lhs,
        beats_raw=lhs < int(x_bits),
        folder_bytes=int(folder_bytes),
    )


@dataclass
class DecoderWeights:
    """The decoder: a declarative description plus float32 weights.

    Attributes:
        architecture: The decoder description (a JSON-able dict; see
            `latentpack.formats.decoder_spec`).
        weights: ``{layer_name: [(weight_name, float32 array), ...]}`` in layer
            order; layers without weights are absent.
    """

    architecture: dict[str, Any]
    weights: dict[str, list[tuple[str, np.ndarray]]]

    @property
    def architecture_json(self) -> str:
        return json.dumps(self.architecture, sort_keys=True)

    @property
    def num_scalars(self) -> int:
        return int(sum(a.size for ws in self.weights.values() for _, a in ws))


@dataclass
class ImageTable:
    """Per-image metadata, one row per image, in archive order.

    Attributes:
        names: Relative POSIX paths (UTF-8), unique.
        shapes: ``(w, 3)`` int32: height, width, channels of the original.
        modes: Pillow mode of each original (``L``, ``RGB``, ``P``, ...).
        formats: Pillow format of each source file (``PNG``, ``JPEG``, ...).
        sha256: ``(w, 32)`` uint8 digests of the original pixels (see
            FORMAT.md for exactly what is hashed).
        palette_index: ``(w,)`` int32 row in ``palettes`` or -1.
        palettes: ``(n, 256, 4)`` uint8 RGBA palettes of ``P`` images.
        file_bytes: ``(w,)`` int64 size of each source file on disk.
    """

    names: list[str]
    shapes: np.ndarray
    modes: list[str]
    formats: list[str]
    sha256: np.ndarray
    palette_index: np.ndarray
    palettes: np.ndarray
    file_bytes: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class Latents:
    """One latent tensor per image, stored flat.

    Image ``i`` owns ``values[offsets[i]:offsets[i+1]]`` reshaped to
    ``shapes[i]`` (``(y,)`` padded as ``(1, 1, y)`` for the dense
    architecture, ``(gh, gw, c)`` for the convolutional one).
    """

    values: np.ndarray  # float32, (total,)
    offsets: np.ndarray  # int64, (w+1,)
    shapes: np.ndarray  # int32, (w, 3)

    def __len__(self) -> int:
        return int(len(self.offsets) - 1)

    def get(self, i: int) -> np.ndarray:
        s = self.shapes[i]
        return self.values[self.offsets[i] : self.offsets[i + 1]].reshape(int(s[0]), int(s[1]), int(s[2]))

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class Quality:
    """Reconstruction quality measured at compress time."""

    psnr: np.ndarray  # float64, (w,); inf where reconstruction is exact

    @property
    def mean_psnr(self) -> float:
        finite = self.psnr[np.isfinite(self.psnr)]
        if len(self.psnr) and len(finite) == 0:
            return float("inf")
        return float(np.mean(finite)) if len(finite) else float("nan")

    @property
    def min_psnr(self) -> float:
        return float(np.min(self.psnr)) if len(self.psnr) else float("nan")


@dataclass
class ArchiveContents:
    """Everything an archive holds, as written or as read back."""

    header: Header
    decoder: DecoderWeights
    latents: Latents
    images: ImageTable
    quality: Quality
    training: dict[str, Any] = field(default_factory=dict)
    writer: str = ""
    created: str = ""
