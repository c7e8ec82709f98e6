"""``/latents`` holding float32 values (format 1.0's encoding, ``coding`` absent).

Image ``i`` owns ``values[offsets[i]:offsets[i+1]]`` reshaped to ``shapes[i]``.
The values are written a chunk of images at a time, reporting progress.
"""
from __future__ import annotations

from typing import Any, Mapping

import h5py
import numpy as np

from latentpack.formats import h5write
from latentpack.formats.elements.latents import LATENT_INDEX, LatentsBase
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.lazy import LazyArray
from latentpack.formats.registry import Context, Field, register
from latentpack.formats.schema import Latents

__all__ = ["FloatLatents", "check_latent_values", "check_finite_latents"]

#: Latent values are written in chunks of this many values at most.
CHUNK_VALUES = 1 << 16


def check_latent_values(values: np.ndarray | LazyArray, n_values: int) -> None:
    """The flat latent values are `n_values` long and finite (lazy ones: each slice when it is read)."""
    if len(values) != n_values:
        raise CorruptArchiveError(f"expected shape ({n_values},), got {tuple(values.shape)}", hdf5_path="/latents/values")
    if not isinstance(values, LazyArray):
        check_finite_latents(values)


def check_finite_latents(values: np.ndarray) -> None:
    """Latent values are finite."""
    if not np.all(np.isfinite(values)):
        raise CorruptArchiveError("latents must be finite (found NaN or infinity)", hdf5_path="/latents/values")


@register
class FloatLatents(LatentsBase, variant="float32", reads=("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"), header_bits=None):
    fields = (Field("values", np.float32, (None,), storage=h5write.CHECKED, reshape=(-1,), bulk=True), *LATENT_INDEX)

    def check_slice(self, name: str, values: np.ndarray) -> None:
        check_finite_latents(values)

    def n_values(self, obj: Latents) -> int:
        return len(obj.values)

    def archive_n_values(self, archive: Any) -> int:
        return archive._ds["/latents/values"].shape[0]

    def write(self, group: h5py.Group, obj: Latents, options: Mapping[str, Any]) -> None:
        total = len(obj.values)
        if total:
            values = h5write.create_chunked(group, "values", total, np.float32, CHUNK_VALUES)
        else:  # h5py picks a chunk shape (and an extendable layout) for an empty dataset
            values = h5write.write_dataset(group, "values", obj.values, h5write.CHECKED)
        w, step, progress = len(obj), options["progress_images"], options["progress"]
        for start in range(0, w, step):
            stop = min(start + step, w)
            lo, hi = int(obj.offsets[start]), int(obj.offsets[stop])
            if hi > lo:
                values[lo:hi] = obj.values[lo:hi]
            if progress is not None:
                progress(stop)
        for field in LATENT_INDEX:
            h5write.write_dataset(group, field.name, field.get(obj), field.storage)

    def check(self, obj: Latents, ctx: Context) -> None:
        super().check(obj, ctx)
        check_latent_values(obj.values, int(obj.offsets[-1]))

    def build(self, values: dict[str, Any], archive: Any) -> Latents:
        return Latents(values=values["values"], offsets=archive._offsets, shapes=archive._latent_shapes)
