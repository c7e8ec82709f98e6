"""``/header``: both sides of the pay-off inequality ``z + w*y*32 < x``, as attributes.

Layouts: 1.0 (the seed's float32 accounting); 1.1 adds the stored-bits
attributes (all four or none); 1.2 adds ``stored_decoder_bits`` (float16
weights). The header is checked last, against the stored bits every other
element reports (`Element.header_bits`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.registry import BOOL, Context, Element, Field, register
from latentpack.formats.schema import Header, compute_header
from latentpack.formats.validate import MAX_IMAGES

__all__ = ["HeaderElement", "STORED_ATTRS", "check_header"]

#: 1.1 header attributes: all present or all absent.
STORED_ATTRS = ("stored_latent_bits", "residual_bits", "stored_bits", "beats_raw_stored")
_BOOLS = ("beats_raw", "beats_raw_stored")


def _int(name: str, since: str = "1.0") -> Field:
    return Field(name, np.int64, attr=True, since=since, required=since == "1.0", too_new="error")


def _fail(reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path="/header")


@register
class HeaderElement(
    Element, encoding_type="header", label="header", reads=("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"), display=-1, summary=True
):
    fields = (
        *(_int(name) for name in ("w", "y", "latent_scalars", "x_bits", "z_bits", "latent_bits", "lhs_bits")),
        Field("beats_raw", BOOL, attr=True),
        _int("folder_bytes"),
        *(_int(name, "1.1") for name in ("stored_latent_bits", "residual_bits", "stored_bits")),
        Field("beats_raw_stored", BOOL, attr=True, since="1.1", required=False, too_new="error"),
        _int("stored_decoder_bits", "1.2"),
    )

    def normalise(self, obj: Any) -> Header:
        if not isinstance(obj, Header):
            raise ValueError(f"`contents.header` must be a Header, got {type(obj).__name__}")
        return obj

    def opened_attrs(self, attrs: dict[str, Any], version: tuple[int, int]) -> None:
        present = [n for n in STORED_ATTRS if n in attrs]
        if (present or "stored_decoder_bits" in attrs) and len(present) != len(STORED_ATTRS):
            missing = [n for n in STORED_ATTRS if n not in present]
            raise _fail(f"attribute {missing[0]} is missing (the stored-bits attributes come together)")
        if not 0 <= attrs["w"] <= MAX_IMAGES:
            raise _fail(f"attribute w: expected 0 to {MAX_IMAGES} images, got {attrs['w']}")

    def holds(self, contents: Any) -> bool:
        return True  # every archive has one; `normalise` refuses what is not a Header

    def opened(self, archive: Any, attrs: dict[str, Any]) -> None:
        header = archive._header = archive._cache["header"] = self.build(attrs, archive)
        archive._ctx.w = archive._ctx.sizes["w"] = header.w
        archive._ctx.header = header

    def build(self, values: dict[str, Any], archive: Any) -> Header:
        return Header(**values)

    def check(self, obj: Header, ctx: Context) -> None:
        check_header(obj, w=ctx.w, latent_counts=ctx.sizes["latent_counts"],
                     decoder_scalars=ctx.sizes["decoder_scalars"],
                     **{name: ctx.bits.get(name) for name in ("stored_latent_bits", "residual_bits",
                                                              "stored_decoder_bits")})


def check_header(
    header: Header,
    *,
    w: int,
    latent_counts: np.ndarray,
    decoder_scalars: int,
    stored_latent_bits: int | None = None,
    residual_bits: int | None = None,
    stored_decoder_bits: int | None = None,
) -> None:
    """The header's counts and arithmetic agree with the data they summarise.

    ``x_bits`` and ``folder_bytes`` describe the source folder and cannot be
    recomputed from the archive; they must be non-negative and ``beats_raw``
    must be ``lhs_bits < x_bits``. The stored-bits attributes (1.1, and
    ``stored_decoder_bits`` in 1.2), present exactly when something is stored
    in fewer bits than the seed's float32 accounting, must match
    ``stored_latent_bits``, ``residual_bits`` and ``stored_decoder_bits`` as
    computed from the stored datasets' sizes and dtypes.
    """
    for name, value in header.as_dict().items():
        want_bool = name in _BOOLS
        if isinstance(value, (bool, np.bool_)) != want_bool or not isinstance(value, (int, np.integer, np.bool_)):
            raise _fail(f"attribute {name}: expected {'a bool' if want_bool else 'an integer'}, got {value!r}")
    if header.x_bits < 0 or header.folder_bytes < 0:
        raise _fail(f"x_bits and folder_bytes must be >= 0, got {header.x_bits} and {header.folder_bytes}")
    want = compute_header(
        w=w, latent_counts=latent_counts, x_bits=header.x_bits, decoder_scalars=decoder_scalars,
        folder_bytes=header.folder_bytes, stored_latent_bits=stored_latent_bits, residual_bits=residual_bits,
        stored_decoder_bits=stored_decoder_bits,
    )
    if (header.stored_bits is None) != (want.stored_bits is None):
        raise _fail("attribute stored_bits: present exactly when the latents are coded, residuals stored, "
                    "the weights float16 or the pixels coded under a pixel model")
    if (header.stored_decoder_bits is None) != (want.stored_decoder_bits is None):
        raise _fail("attribute stored_decoder_bits: present exactly when the weights are float16 or a pixel "
                    "model's")
    for name, value in dataclasses.asdict(want).items():
        got = getattr(header, name)
        if bool(got != value):
            raise _fail(f"attribute {name}: expected {value!r} (recomputed from the data), got {got!r}")
