"""The pay-off accounting of an archive: `Header` and `compute_header`.

Both sides of ``z + w*y*32 < x`` and, from 1.1 on, the bits actually stored
(docs/FORMAT.md, "/header" and "The formula"). An archive with a pixel model
(1.3, ``/pixels``) has no decoder and no latents: its ``z`` is the model's
weights (32 bits each), its ``y`` is 0, and what it stores is the model
(``stored_decoder_bits``) and the coded pixels (``residual_bits``)::

    compute_header(w=w, latent_counts=np.zeros(w, np.int64), x_bits=x_bits,
                   decoder_scalars=coding.model_scalars, folder_bytes=folder_bytes,
                   stored_latent_bits=0, residual_bits=coding.residual_bits,
                   stored_decoder_bits=coding.model_bits)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Header", "compute_header"]


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
        z_bits: Decoder size: 32 bits per float32 decoder weight scalar (1.3,
            ``/pixels``: per weight of the pixel model).
        latent_bits: ``latent_scalars * 32`` (the ``w*y*32`` term).
        lhs_bits: ``z_bits + latent_bits``.
        beats_raw: ``lhs_bits < x_bits``, computed exactly with integers.
        folder_bytes: Size on disk of the source image files.
        stored_latent_bits: (1.1) Payload bits of the latents as actually
            stored (coded stream and tables; 0 for generated codes), or None.
        residual_bits: (1.1) Payload bits of the lossless residuals, or None.
        stored_bits: (1.1) ``z_bits + stored_latent_bits + residual_bits``
            (1.2: ``stored_decoder_bits`` in place of ``z_bits`` when recorded).
        beats_raw_stored: (1.1) ``stored_bits < x_bits``.
        stored_decoder_bits: (1.2) Bits of the decoder weights as stored (16
            per scalar for float16 weights; 1.3: the pixel model's
            `PixelModelCoding.model_bits`), or None: then ``z_bits``.
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
    stored_latent_bits: int | None = None
    residual_bits: int | None = None
    stored_bits: int | None = None
    beats_raw_stored: bool | None = None
    stored_decoder_bits: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The attributes as stored (the 1.1 and 1.2 ones only when recorded)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def compute_header(
    *,
    w: int,
    latent_counts: np.ndarray,
    x_bits: int,
    decoder_scalars: int,
    folder_bytes: int,
    stored_latent_bits: int | None = None,
    residual_bits: int | None = None,
    stored_decoder_bits: int | None = None,
) -> Header:
    """Build a `Header` from the counts, doing the formula's arithmetic once.

    Args:
        w: Number of images.
        latent_counts: Latent scalars of each image, shape ``(w,)``.
        x_bits: Raw size of all images in bits.
        decoder_scalars: Number of float32 scalars in the decoder weights.
        folder_bytes: Size on disk of the source files.
        stored_latent_bits: Bits of the latents as stored (1.1), or None
            for float32 latents (1.0).
        residual_bits: Bits of the lossless residuals (1.1), or None.
        stored_decoder_bits: Bits of the decoder weights as stored (1.2,
            float16 weights), or None for float32 weights.

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
    stored = None
    if stored_latent_bits is not None or residual_bits is not None or stored_decoder_bits is not None:
        stored_latent_bits = latent_bits if stored_latent_bits is None else int(stored_latent_bits)
        residual_bits = 0 if residual_bits is None else int(residual_bits)
        stored_decoder_bits = None if stored_decoder_bits is None else int(stored_decoder_bits)
        stored = (z_bits if stored_decoder_bits is None else stored_decoder_bits) + stored_latent_bits + residual_bits
    return Header(
        w=int(w), y=int(y), latent_scalars=total, x_bits=int(x_bits), z_bits=z_bits, latent_bits=latent_bits,
        lhs_bits=lhs, beats_raw=lhs < int(x_bits), folder_bytes=int(folder_bytes),
        stored_latent_bits=stored_latent_bits, residual_bits=residual_bits, stored_bits=stored,
        beats_raw_stored=None if stored is None else stored < int(x_bits), stored_decoder_bits=stored_decoder_bits,
    )
