"""``/additions`` (1.5, optional): the batches of images added after the archive was written.

``latentpack add`` appends images to an archive without retraining; each
run is one *batch*. The group records where each batch starts in the image
table, when and by what it was added, and each batch's sha256 of its full
digests (a lossy archive cannot recover the full digests of the images it
was written with, so `/images/sha256_all` keeps covering those only)::

    rows 0 .. first[0]-1            the images the archive was written with
    rows first[k] .. first[k+1]-1   batch k (the last batch runs to row w-1)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from latentpack.formats import h5write
from latentpack.formats.additions import Additions
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.registry import STR, Context, Element, Field, register
from latentpack.formats.validate import MAX_IMAGES

__all__ = ["AdditionsElement", "check_additions"]


def _fail(path: str, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


def check_additions(additions: Additions, w: int) -> None:
    """The batches' rows lie inside the image table, in order, none empty; one entry of each list per batch.

    Raises:
        CorruptArchiveError: naming the dataset at fault.
    """
    base = "/additions"
    b = additions.batches
    for name in ("created", "writer"):
        values = getattr(additions, name)
        if len(values) != b:
            raise _fail(f"{base}/{name}", f"expected {b} entries (one per batch), got {len(values)}")
        if any(not v for v in values):
            raise _fail(f"{base}/{name}", "entries must not be empty")
    first = np.asarray(additions.first, dtype=np.int64)
    if b and not 1 <= int(first[0]):
        raise _fail(f"{base}/first", f"entry 0 must be >= 1 (the archive's own images come first), got {int(first[0])}")
    if np.any(np.diff(first) <= 0):
        raise _fail(f"{base}/first", "must be increasing (no batch is empty)")
    if b and int(first[-1]) >= w:
        raise _fail(f"{base}/first", f"entry {b - 1} must be below the number of images {w}, got {int(first[-1])}")


@register
class AdditionsElement(Element, encoding_type="additions", label="additions", reads=("1.5",), since="1.5",
                       optional=True, display=6):
    fields = (
        Field("batches", np.int64, attr=True, since="1.5"),
        Field("first", np.int64, ("batches",), since="1.5", storage=h5write.PACKED),
        Field("created", STR, ("batches",), since="1.5", storage=h5write.PACKED),
        Field("writer", STR, ("batches",), since="1.5", storage=h5write.PACKED),
        Field("sha256_all", np.uint8, ("batches", 32), since="1.5", storage=h5write.CHECKED, reshape=(-1, 32)),
    )

    def version(self, obj: Additions) -> str:
        return "1.5"

    def opened_attrs(self, attrs: dict[str, Any], version: tuple[int, int]) -> None:
        if not 1 <= attrs["batches"] <= MAX_IMAGES:
            raise _fail(self.path, f"attribute batches: expected 1 to {MAX_IMAGES}, got {attrs['batches']}")

    def check_scalars(self, obj: Additions, ctx: Context) -> None:
        if obj.batches < 1:
            raise _fail(self.path, "attribute batches: an /additions group records at least one batch")

    def check(self, obj: Additions, ctx: Context) -> None:
        check_additions(obj, ctx.w)

    def build(self, values: dict[str, Any], archive: Any) -> Additions:
        return Additions(first=values["first"], created=values["created"], writer=values["writer"],
                         sha256_all=values["sha256_all"])
