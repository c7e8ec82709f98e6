"""``/latents`` not stored but generated from each image's index (1.1, ``coding="index"``, ``--codes index``).

Image ``i``'s code comes from the ``splitmix64-sum4`` generator seeded with
``seed`` (see `latentpack.codec.index_codes`), in units of ``step``. Stored
bits: none.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from latentpack.formats.elements.latents import LATENT_INDEX, LatentsBase
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.registry import STR, Context, Field, register
from latentpack.formats.schema import INDEX_CODE_GENERATOR, IndexCodes, Latents
from latentpack.formats.validate import check_step

__all__ = ["IndexLatents", "check_index_codes"]


def check_index_codes(codes: IndexCodes) -> None:
    """(1.1) Generated codes: a seed in [0, 2**63) and a positive step."""
    if not isinstance(codes.seed, int) or not 0 <= codes.seed < 1 << 63:
        raise CorruptArchiveError(f"attribute seed: expected an integer in [0, 2**63), got {codes.seed!r}",
                                  hdf5_path="/latents")
    check_step("/latents", codes.step)


@register
class IndexLatents(LatentsBase, variant="index", reads=("1.1", "1.2", "1.3", "1.4", "1.5")):
    fields = (
        Field("coding", STR, attr=True, since="1.1", const="index"),
        Field("generator", STR, attr=True, since="1.1", const=INDEX_CODE_GENERATOR),
        Field("seed", np.int64, attr=True, since="1.1", member="index_codes.seed"),
        Field("step", np.float64, attr=True, since="1.1", member="index_codes.step"),
        *LATENT_INDEX,
    )

    def check_scalars(self, obj: Latents, ctx: Context) -> None:
        check_index_codes(obj.index_codes)

    def build(self, values: dict[str, Any], archive: Any) -> Latents:
        codes = IndexCodes(seed=values["seed"], step=values["step"])
        return Latents(values=np.zeros(0, np.float32), offsets=archive._offsets, shapes=archive._latent_shapes,
                       index_codes=codes)
