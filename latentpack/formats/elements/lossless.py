"""``/lossless`` (1.1, optional): range-coded pixels given a fixed-point prediction, so decoding is exact.

Stored bits: every dataset (streams, tables, thresholds, block index and
exceptions) at its dtype's width.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from latentpack.formats import h5write
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.registry import STR, Context, Element, Field, register
from latentpack.formats.schema import LosslessResiduals
from latentpack.formats.validate import check_blocks, check_exceptions

__all__ = ["Lossless", "check_lossless", "check_index_shapes"]

_LEVELS = {"pred_levels": 256, "neighbour_levels": 16}
_BITS = ("act_bits", "acc_bits")


def _fail(path: str, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


def _contexts(sizes: dict[str, Any]) -> tuple:
    return (sizes["pred_levels"] * sizes["neighbour_levels"] ** 2, 256)


def _data(name: str, dtype: Any, shape: Any = (None,), reshape: tuple | None = (-1,)) -> Field:
    return Field(name, dtype, shape, since="1.1", storage=h5write.PACKED_IF_ANY, reshape=reshape)


def _int(name: str) -> Field:
    return Field(name, np.int64, attr=True, since="1.1")


def check_lossless(ll: LosslessResiduals, w: int) -> None:
    """The lossless group's block index, streams and exceptions agree (dtypes and shapes checked before)."""
    base = "/lossless"
    if np.any(np.diff(ll.thresholds) < 0):
        raise _fail(f"{base}/thresholds", "must be non-decreasing")
    check_blocks(base, ll.block_bounds, ll.stream_offsets, len(ll.stream), w)
    check_exceptions(base, ll.exception_index, ll.exception_offsets, ll.exception_bytes)


def check_index_shapes(archive: Any, base: str) -> None:
    """Before reading data: ``base/stream_offsets`` has as many entries as ``base/block_bounds``."""
    if archive._ds[f"{base}/stream_offsets"].shape != archive._ds[f"{base}/block_bounds"].shape:
        raise _fail(f"{base}/stream_offsets", f"expected as many entries as {base}/block_bounds")


@register
class Lossless(
    Element, encoding_type="lossless", label="lossless residuals", reads=("1.1", "1.2", "1.3", "1.4", "1.5"), since="1.1",
    optional=True, display=2, header_bits="residual_bits",
):
    fields = (
        Field("predictor", STR, attr=True, since="1.1", const="fixed-point"),
        *(_int(name) for name in ("act_bits", "acc_bits", "pred_levels", "neighbour_levels")),
        _data("thresholds", np.int64, (255,)),
        _data("counts", np.uint16, _contexts, reshape=None),
        _data("block_bounds", np.int64),
        _data("stream_offsets", np.int64),
        _data("exception_index", np.int32, ("w",)),
        _data("exception_offsets", np.int64),
        _data("exception_bytes", np.uint8),
        Field("stream", np.uint32, (None,), since="1.1", storage=h5write.CHECKED_IF_ANY, reshape=(-1,), bulk=True),
    )

    def normalise(self, obj: LosslessResiduals) -> LosslessResiduals:
        out = super().normalise(obj)
        for name in (*_BITS, *_LEVELS):
            setattr(out, name, int(getattr(out, name)))
        return out

    def opened_attrs(self, attrs: dict[str, Any], version: tuple[int, int]) -> None:
        for name, hi in _LEVELS.items():
            if not 1 <= attrs[name] <= hi:
                raise _fail("/lossless", f"attribute {name}: out of range, got {attrs[name]}")

    def opened(self, archive: Any, attrs: dict[str, Any]) -> None:
        check_index_shapes(archive, self.path)

    def check_scalars(self, obj: LosslessResiduals, ctx: Context) -> None:
        for name, hi in _LEVELS.items():
            value = getattr(obj, name)
            if not isinstance(value, int) or not 1 <= value <= hi or value & (value - 1):
                raise _fail("/lossless", f"attribute {name}: expected a power of two in [1, {hi}], got {value!r}")
        for name in _BITS:
            value = getattr(obj, name)
            if not isinstance(value, int) or not 0 <= value <= 48:
                raise _fail("/lossless", f"attribute {name}: expected an integer in [0, 48], got {value!r}")

    def check(self, obj: LosslessResiduals, ctx: Context) -> None:
        check_lossless(obj, ctx.w)

    def build(self, values: dict[str, Any], archive: Any) -> LosslessResiduals:
        return LosslessResiduals(**{f.name: values[f.name] for f in self.fields if f.const is None})
