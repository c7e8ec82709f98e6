"""What every encoding of ``/latents`` shares: the per-image index (offsets and shapes).

Image ``i``'s latent has ``offsets[i+1] - offsets[i]`` scalars, shaped
``shapes[i]`` (``(1, 1, y)`` for a dense decoder, ``(gh, gw, c)`` for a
convolutional one). The encodings (`latents_float`, `latents_coded`,
`latents_index`) share the ``latents`` encoding type and are told apart by
the group's ``coding`` attribute (absent: float32).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from latentpack.formats import h5write
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.h5checks import MAX_EXPANSION
from latentpack.formats.registry import Context, Element, Field
from latentpack.formats.schema import Latents
from latentpack.formats.validate import check_latent_index

__all__ = ["LATENT_INDEX", "LatentsBase"]

#: The index datasets of every latents encoding (not counted in its stored bits).
LATENT_INDEX = (
    Field("offsets", np.int64, lambda s: (s["w"] + 1,), storage=h5write.PACKED, counted=False),
    Field("shapes", np.int32, ("w", 3), storage=h5write.PACKED, reshape=(-1, 3), counted=False),
)


class LatentsBase(Element):
    """A latents encoding: the shared index, checked against the decoder's input shape."""

    encoding_type = part = "latents"
    label = "latents"
    display = 1
    header_bits = "stored_latent_bits"

    def holds(self, contents: Any) -> bool:
        return contents.latents is not None and contents.latents.coding == self.variant

    def n_values(self, obj: Latents) -> int:
        """How many latent scalars `obj` describes."""
        return int(obj.offsets[-1]) if len(obj.offsets) else 0

    def archive_n_values(self, archive: Any) -> int:
        """How many latent scalars the open archive declares, refusing more than its size can code."""
        offsets = archive._offsets
        n_values = int(offsets[-1]) if len(offsets) == archive.header.w + 1 else 0
        limit = MAX_EXPANSION * os.path.getsize(archive.path) + (1 << 20)
        if n_values > limit:
            raise CorruptArchiveError(f"declares {n_values} latents, more than this file can code ({limit})",
                                      hdf5_path="/latents/offsets")
        return n_values

    def check(self, obj: Latents, ctx: Context) -> None:
        check_latent_index(obj.offsets, obj.shapes, self.n_values(obj), ctx.w, ctx.spec)
        ctx.latent_shapes = obj.shapes
        ctx.sizes["latent_counts"] = np.diff(obj.offsets)

    def opened(self, archive: Any, attrs: dict[str, Any]) -> None:
        with archive._at("/latents"):
            archive._offsets = archive._read("/latents/offsets", np.int64)
            archive._latent_shapes = archive._read("/latents/shapes", np.int32)
            check_latent_index(archive._offsets, archive._latent_shapes, self.archive_n_values(archive),
                               archive.header.w, archive.spec)
        archive._ctx.latent_shapes = archive._latent_shapes
        archive._ctx.sizes["latent_counts"] = np.diff(archive._offsets)
