"""``/latents`` quantised to integers and range-coded (1.1, ``coding="range-categorical"``).

Latent ``q`` means ``q * step``; symbol ``q - qmin`` of a latent in channel
``k`` is coded with row ``table_of_channel[k]`` of ``counts``, all in one
stream (docs/FORMAT.md, "Coded latents"). Stored bits: the stream, the
tables, the channel map, ``step`` and ``qmin``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from latentpack.formats import h5write
from latentpack.formats.elements.latents import LATENT_INDEX, LatentsBase
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.registry import STR, Context, Field, register
from latentpack.formats.schema import Latents, QuantizedLatents
from latentpack.formats.validate import MAX_LATENT_SYMBOLS, check_step

__all__ = ["CodedLatents"]

_Q = "quantized."


def _fail(path: str, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


@register
class CodedLatents(LatentsBase, variant="range-categorical", reads=("1.1", "1.2", "1.3", "1.4", "1.5")):
    fields = (
        Field("coding", STR, attr=True, since="1.1", const="range-categorical"),
        Field("step", np.float64, attr=True, since="1.1", member=_Q + "step", counted=True),
        Field("qmin", np.int64, attr=True, since="1.1", member=_Q + "qmin", counted=True),
        Field("table_of_channel", np.int32, ("channels",), since="1.1", member=_Q + "table_of_channel",
              storage=h5write.PACKED_IF_ANY, reshape=(-1,)),
        Field("counts", np.uint16, (None, None), since="1.1", member=_Q + "counts", storage=h5write.PACKED_IF_ANY),
        Field("stream", np.uint32, (None,), since="1.1", member=_Q + "stream", storage=h5write.CHECKED_IF_ANY,
              reshape=(-1,), bulk=True),
        *LATENT_INDEX,
    )

    def normalise(self, obj: Latents) -> Latents:
        out = super().normalise(obj)
        out.quantized.step, out.quantized.qmin = float(out.quantized.step), int(out.quantized.qmin)
        return out

    def check_scalars(self, obj: Latents, ctx: Context) -> None:
        q = obj.quantized
        check_step("/latents", q.step)
        if not isinstance(q.qmin, int) or abs(q.qmin) > MAX_LATENT_SYMBOLS:
            raise _fail("/latents", f"attribute qmin: expected an integer in [-{MAX_LATENT_SYMBOLS}, "
                                    f"{MAX_LATENT_SYMBOLS}], got {q.qmin!r}")

    def check(self, obj: Latents, ctx: Context) -> None:
        q, channels = obj.quantized, ctx.sizes["channels"]
        rows, k = q.counts.shape
        if not 1 <= rows <= max(channels, 1) or not 1 <= k <= MAX_LATENT_SYMBOLS:
            raise _fail("/latents/counts", f"expected 1..{max(channels, 1)} rows of 1..{MAX_LATENT_SYMBOLS} counts, "
                                           f"got {q.counts.shape}")
        if channels and (q.table_of_channel.min() < 0 or q.table_of_channel.max() >= rows):
            raise _fail("/latents/table_of_channel", f"entries must be rows of /latents/counts (0..{rows - 1})")
        super().check(obj, ctx)

    def opened(self, archive: Any, attrs: dict[str, Any]) -> None:
        c = int(archive.spec.input_shape[-1])
        rows, k = archive._ds["/latents/counts"].shape
        if not 1 <= rows <= c or not 1 <= k <= MAX_LATENT_SYMBOLS:
            raise _fail("/latents/counts", f"expected 1..{c} rows of 1..{MAX_LATENT_SYMBOLS} counts, got {(rows, k)}")
        super().opened(archive, attrs)

    def build(self, values: dict[str, Any], archive: Any) -> Latents:
        q = QuantizedLatents(step=values["step"], qmin=values["qmin"], table_of_channel=values["table_of_channel"],
                             counts=values["counts"], stream=values["stream"])
        return Latents(values=np.zeros(0, np.float32), offsets=archive._offsets, shapes=archive._latent_shapes,
                       quantized=q)
