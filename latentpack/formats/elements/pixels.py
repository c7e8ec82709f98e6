"""``/pixels`` (1.3, optional): every image's working pixels range-coded under a learned per-pixel model.

(1.5) The ``refinement`` attribute names adaptive counts the coder puts on
top of the mixture (nothing more is stored); without it the mixture alone
codes, as in 1.3.

An archive with it stores no ``/decoder`` and no ``/latents`` (it replaces
them) and no ``/lossless`` (it excludes it): the integer network alone
predicts each sample from the samples decoded before it (docs/FORMAT.md,
"Pixel model"; the runtime is `latentpack.codec.pixel_model`, which this
module never imports).

The header counts the network as the decoder (``z_bits`` = 32 per weight,
``stored_decoder_bits`` = 16 per kernel entry + 32 per bias) and no latents
(``y = 0``, ``stored_latent_bits = 0``); ``residual_bits`` is every other
dataset of the group at its dtype's width (`PixelModelCoding.residual_bits`).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from latentpack.formats import h5write
from latentpack.formats.elements.lossless import check_index_shapes
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.registry import BOOL, STR, Context, Element, Field, register
from latentpack.formats.schema import PixelModelCoding
from latentpack.formats.validate import check_blocks, check_exceptions

__all__ = ["Pixels", "TABLES_SHA256", "REFINEMENTS", "WORKING_MODES", "feature_count", "layer_sizes", "check_pixels"]

#: sha256 of the model's three lookup tables (docs/FORMAT.md; `latentpack.codec.pixel_model.luts.table_digest`).
TABLES_SHA256 = "d4b43d0c51ecc20ef1e6f62aef92caafcabd3b172ef628b5ebdcf3c42d96d94a"
#: Samples per pixel of each working mode.
WORKING_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
#: Limits of the model's shape: window rows and columns, components, hidden layers and their widths, shifts.
MAX_WINDOW, MAX_COMPONENTS, MAX_LAYERS, MAX_WIDTH, MAX_SHIFT = 8, 16, 8, 1024, 30
#: (1.5) Adaptive refinements a reader knows (docs/FORMAT.md, "Adaptive refinement").
REFINEMENTS = ("node-context-counts",)
#: Most inputs per sample: the row hash has this many multipliers (docs/FORMAT.md, "Coding order").
MAX_INPUTS = 512

_BASE = "/pixels"
_MODEL = ("kernels", "biases")


def _fail(path: str, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


def feature_count(rows: int, cols: int, channels: int, position: bool) -> int:
    """Inputs per sample: the causal window's samples of every channel, then (several channels) the earlier
    channels of this pixel and a one-hot of the channel, then (`position`) the row and column."""
    n = (rows * (2 * cols + 1) + cols) * channels
    if channels > 1:
        n += (channels - 1) + channels
    return n + (2 if position else 0)


def layer_sizes(attrs: Mapping[str, Any], hidden: Any) -> tuple[int, int]:
    """``(kernel entries, biases)`` of the layer chain from the input count through `hidden` to 3 * components."""
    dims = [feature_count(attrs["rows"], attrs["cols"], attrs["channels"], attrs["position"]),
            *(int(h) for h in hidden), 3 * attrs["components"]]
    return sum(a * b for a, b in zip(dims[:-1], dims[1:])), sum(dims[1:])


def _check_attrs(attrs: Mapping[str, Any]) -> None:
    mode = attrs["working_mode"]
    if mode not in WORKING_MODES:
        raise _fail(_BASE, f"attribute working_mode: expected one of {list(WORKING_MODES)}, got {mode!r}")
    if attrs["channels"] != WORKING_MODES[mode]:
        raise _fail(_BASE, f"attribute channels: expected {WORKING_MODES[mode]} (working_mode {mode}), "
                           f"got {attrs['channels']}")
    rows, cols = attrs["rows"], attrs["cols"]
    if not (0 <= rows <= MAX_WINDOW and 0 <= cols <= MAX_WINDOW and rows + cols >= 1):
        raise _fail(_BASE, f"attributes rows, cols: expected 0..{MAX_WINDOW} each and rows + cols >= 1, "
                           f"got {rows}, {cols}")
    if not 1 <= attrs["components"] <= MAX_COMPONENTS:
        raise _fail(_BASE, f"attribute components: expected 1..{MAX_COMPONENTS}, got {attrs['components']}")
    refinement = attrs.get("refinement")
    if refinement is not None:
        if refinement not in REFINEMENTS:
            raise _fail(_BASE, f"attribute refinement: expected one of {list(REFINEMENTS)}, got {refinement!r} "
                               "(written by a newer latentpack?)")
        if rows < 1 or cols < 1:
            raise _fail(_BASE, f"attribute refinement: needs rows and cols >= 1 (its context is W, N, NW, NE), "
                               f"got {rows}, {cols}")
    inputs = feature_count(rows, cols, attrs["channels"], attrs["position"])
    if inputs > MAX_INPUTS:
        raise _fail(_BASE, f"attributes rows, cols, channels, position: {inputs} inputs per sample, more than the "
                           f"{MAX_INPUTS} the row hash covers")


def _check_network(attrs: Mapping[str, Any], hidden: np.ndarray, n_shifts: int, n_kernels: int,
                   n_biases: int) -> None:
    """Hidden widths, the number of shifts and the kernels' and biases' sizes agree with the attributes."""
    if not 1 <= len(hidden) <= MAX_LAYERS:
        raise _fail(f"{_BASE}/hidden", f"expected 1 to {MAX_LAYERS} hidden layers, got {len(hidden)}")
    if np.any((hidden < 1) | (hidden > MAX_WIDTH)):
        raise _fail(f"{_BASE}/hidden", f"widths must be in 1..{MAX_WIDTH}, got {hidden.tolist()}")
    if n_shifts != len(hidden) + 1:
        raise _fail(f"{_BASE}/shifts", f"expected {len(hidden) + 1} entries (one per layer), got {n_shifts}")
    kernels, biases = layer_sizes(attrs, hidden)
    if n_kernels != kernels:
        raise _fail(f"{_BASE}/kernels", f"expected {kernels} entries (the layers' kernels), got {n_kernels}")
    if n_biases != biases:
        raise _fail(f"{_BASE}/biases", f"expected {biases} entries (the layers' biases), got {n_biases}")


def _check_blocks_share_shapes(order: np.ndarray, bounds: np.ndarray, shapes: np.ndarray) -> None:
    """Every image of a block has the same height and width (``/images/shapes``; the channels there are the
    original's, and every image's working pixels have ``channels``)."""
    if len(order) < 2:
        return
    s = shapes[order, :2]
    change = np.nonzero(np.any(s[1:] != s[:-1], axis=1))[0] + 1
    inside = change[~np.isin(change, bounds)]
    if len(inside):
        p = int(inside[0])
        b = int(np.searchsorted(bounds, p, side="right")) - 1
        i, j = int(order[p - 1]), int(order[p])
        raise _fail(f"{_BASE}/block_bounds", f"block {b}: images {i} and {j} are {shapes[i, 0]}x{shapes[i, 1]} and "
                                            f"{shapes[j, 0]}x{shapes[j, 1]} (the images of a block share one size)")


def check_pixels(px: PixelModelCoding, w: int, image_shapes: np.ndarray | None) -> None:
    """Every rule of ``/pixels`` on its values (dtypes and shapes checked before).

    Args:
        px: The element's value.
        w: Number of images.
        image_shapes: ``/images/shapes``, or None when not known (then blocks' shapes are not checked).
    """
    attrs = {f.name: f.get(px) for f in Pixels.fields if f.attr}
    _check_attrs(attrs)
    _check_network(attrs, px.hidden, len(px.shifts), px.kernels.size, px.biases.size)
    if np.any((px.shifts < 0) | (px.shifts > MAX_SHIFT)):
        raise _fail(f"{_BASE}/shifts", f"entries must be in 0..{MAX_SHIFT}, got {px.shifts.tolist()}")
    if not np.array_equal(np.sort(px.order), np.arange(w)):
        raise _fail(f"{_BASE}/order", f"must be a permutation of 0..{w - 1}")
    check_blocks(_BASE, px.block_bounds, px.stream_offsets, len(px.stream), w)
    check_exceptions(_BASE, px.exception_index, px.exception_offsets, px.exception_bytes)
    if image_shapes is not None:
        _check_blocks_share_shapes(px.order, px.block_bounds, image_shapes)


def _int(name: str) -> Field:
    return Field(name, np.int64, attr=True, since="1.3")


def _data(name: str, dtype: Any, shape: Any = (None,), counted: bool | None = None) -> Field:
    return Field(name, dtype, shape, since="1.3", storage=h5write.PACKED_IF_ANY, reshape=(-1,), counted=counted)


@register
class Pixels(
    Element, encoding_type="pixels", label="pixel model and coded pixels", reads=("1.3", "1.4", "1.5"), since="1.3",
    optional=True, display=0, header_bits="residual_bits", replaces=("decoder", "latents"), excludes=("lossless",),
):
    fields = (
        Field("coding", STR, attr=True, since="1.3", const="logistic-mixture"),
        Field("tables", STR, attr=True, since="1.3", const=TABLES_SHA256),
        Field("working_mode", STR, attr=True, since="1.3"),
        *(_int(name) for name in ("rows", "cols", "channels", "components")),
        Field("position", BOOL, attr=True, since="1.3"),
        _data("hidden", np.int32),
        _data("shifts", np.int32),
        *(_data(name, dtype, counted=False) for name, dtype in zip(_MODEL, (np.int16, np.int32))),
        _data("order", np.int64, ("w",)),
        _data("block_bounds", np.int64),
        _data("stream_offsets", np.int64),
        Field("stream", np.uint32, (None,), since="1.3", storage=h5write.CHECKED_IF_ANY, reshape=(-1,), bulk=True),
        _data("exception_index", np.int32, ("w",)),
        _data("exception_offsets", np.int64),
        _data("exception_bytes", np.uint8),
        Field("refinement", STR, attr=True, since="1.5", required=False),
    )

    def model_terms(self, sizes: Mapping[str, int]) -> dict[str, int]:
        """What the header counts of the network, from its kernels' and biases' entries."""
        fields = {f.name: f for f in self.fields if f.name in _MODEL}
        return {"decoder_scalars": sum(int(sizes[n]) for n in _MODEL),
                "stored_decoder_bits": sum(fields[n].bits * int(sizes[n]) for n in _MODEL)}

    def _account(self, ctx: Context, sizes: Mapping[str, int]) -> None:
        terms = self.model_terms(sizes)
        ctx.sizes["decoder_scalars"] = terms["decoder_scalars"]
        ctx.sizes["latent_counts"] = np.zeros(ctx.w, np.int64)
        ctx.bits["stored_decoder_bits"] = terms["stored_decoder_bits"]
        ctx.bits["stored_latent_bits"] = 0

    def normalise(self, obj: PixelModelCoding) -> PixelModelCoding:
        if not isinstance(obj, PixelModelCoding):
            raise ValueError(f"`contents.pixels` must be a PixelModelCoding, got {type(obj).__name__}")
        out = super().normalise(obj)
        for name in ("rows", "cols", "channels", "components"):
            value = getattr(out, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"`contents.pixels.{name}` must be an integer, got {value!r}")
            setattr(out, name, int(value))
        out.position, out.working_mode = bool(out.position), str(out.working_mode)
        return out

    def check_scalars(self, obj: PixelModelCoding, ctx: Context) -> None:
        _check_attrs(self.sizes_of(obj))

    def check(self, obj: PixelModelCoding, ctx: Context) -> None:
        check_pixels(obj, ctx.w, ctx.image_shapes)
        self._account(ctx, {n: np.size(getattr(obj, n)) for n in _MODEL})

    def opened_attrs(self, attrs: dict[str, Any], version: tuple[int, int]) -> None:
        _check_attrs(attrs)

    def opened(self, archive: Any, attrs: dict[str, Any]) -> None:
        """Before any large data: the network's sizes from the (at most 8) hidden widths; the block index's shapes."""
        ds = {name: archive._ds[f"{_BASE}/{name}"] for name in ("hidden", "shifts", *_MODEL)}
        n = {name: int(d.shape[0]) for name, d in ds.items()}
        if not 1 <= n["hidden"] <= MAX_LAYERS:
            raise _fail(f"{_BASE}/hidden", f"expected 1 to {MAX_LAYERS} hidden layers, got {n['hidden']}")
        hidden = archive._read(f"{_BASE}/hidden", np.int32)
        _check_network(attrs, hidden, n["shifts"], n["kernels"], n["biases"])
        check_index_shapes(archive, _BASE)
        if archive._ctx.image_shapes is None:
            archive._ctx.image_shapes = archive._elements["images"].image_shapes(archive)
        self._account(archive._ctx, n)

    def build(self, values: dict[str, Any], archive: Any) -> PixelModelCoding:
        return PixelModelCoding(**{f.name: values.get(f.name) for f in self.fields if f.const is None})
