"""``/decoder``: the decoder's declarative description (JSON) and one dataset per weight.

Layouts: 1.0 stores float32 weights; 1.2 may store them as float16 (read
back as float32, exactly). The weights' names and shapes come from the
description (`latentpack.formats.decoder_spec`), so they are not declared
as fields: ``layers/<layer>/<weight>`` with a ``weight_names`` attribute per
layer group.
"""
from __future__ import annotations

from typing import Any, Mapping

import h5py
import numpy as np

from latentpack.formats import h5write, layout
from latentpack.formats.decoder_spec import DecoderSpec, SpecError, validate_architecture
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.h5checks import STR, attr_strs, get_node
from latentpack.formats.registry import Context, Element, Field, register, version_text
from latentpack.formats.schema import WEIGHT_BITS, WEIGHT_DTYPES, DecoderWeights

__all__ = ["DecoderElement", "check_architecture", "check_weights", "round_weights"]


def _fail(path: str, reason: str) -> CorruptArchiveError:
    return CorruptArchiveError(reason, hdf5_path=path)


def check_architecture(architecture: Any) -> DecoderSpec:
    """Validate the decoder description (see `validate_architecture`)."""
    try:
        return validate_architecture(architecture)
    except SpecError as err:
        raise _fail("/decoder/architecture", f"invalid decoder description: {err}") from None


def check_weights(decoder: DecoderWeights, spec: DecoderSpec) -> None:
    """Every layer with weights has exactly the inferred float32 finite weights, in order.

    Weights stored as float16 (1.2) are float32 arrays in memory that hold
    float16 values exactly, so what is written is what was measured.
    """
    if decoder.weight_dtype not in WEIGHT_DTYPES:
        raise _fail("/decoder", f"weight dtype must be one of {list(WEIGHT_DTYPES)}, got {decoder.weight_dtype!r}")
    expected = [layer for layer in spec.layers if layer.weight_shapes]
    names = list(decoder.weights)
    if names != [layer.name for layer in expected]:
        raise _fail("/decoder", f"expected layer_names {[layer.name for layer in expected]}, got {names}")
    for layer in expected:
        base = f"/decoder/layers/{layer.name}"
        got = decoder.weights[layer.name]
        want_names = [n for n, _ in layer.weight_shapes]
        got_names = [n for n, _ in got]
        if got_names != want_names:
            raise _fail(base, f"expected weight_names {want_names}, got {got_names}")
        for (wname, shape), (_, arr) in zip(layer.weight_shapes, got):
            path = f"{base}/{wname}"
            layout.expect(path, np.asarray(arr), np.float32, shape)
            if not np.all(np.isfinite(arr)):
                raise _fail(path, "weights must be finite (found NaN or infinity)")
            if decoder.weight_dtype == "float16":
                with np.errstate(over="ignore"):
                    exact = np.asarray(arr).astype(np.float16).astype(np.float32) == arr
                if not np.all(exact):
                    raise _fail(path, "weights to be stored as float16 must hold float16 values "
                                      "(round them first with DecoderWeights.as_stored)")


def round_weights(decoder: DecoderWeights, weight_dtype: str) -> DecoderWeights:
    """`DecoderWeights.as_stored`: the weights rounded to `weight_dtype`, kept as float32."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"`weight_dtype` must be one of {list(WEIGHT_DTYPES)}, got {weight_dtype!r}")
    weights: dict[str, list[tuple[str, np.ndarray]]] = {}
    for layer, pairs in decoder.weights.items():
        weights[layer] = []
        for name, value in pairs:
            arr = np.asarray(value, dtype=np.float32)
            if weight_dtype == "float16":
                with np.errstate(over="ignore"):
                    arr = arr.astype(np.float16).astype(np.float32)
                if not np.all(np.isfinite(arr)):
                    biggest = float(np.max(np.abs(np.asarray(value, dtype=np.float64))))
                    raise ValueError(
                        f"/decoder/layers/{layer}/{name}: cannot be stored as float16: a value is not finite or "
                        f"beyond its range (largest |value| {biggest:.6g}, float16 holds up to 65504); "
                        "store float32 weights"
                    )
            weights[layer].append((name, arr))
    return DecoderWeights(decoder.architecture, weights, weight_dtype)


@register
class DecoderElement(
    Element, encoding_type="decoder", label="decoder weights", reads=("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"), display=0,
    header_bits="stored_decoder_bits",
):
    fields = (
        Field("layer_names", STR, (None,), attr=True),
        Field("architecture", STR, (), storage=h5write.TEXT),
    )

    def version(self, obj: DecoderWeights) -> str:
        return "1.2" if obj.weight_dtype != "float32" else "1.0"

    def bits_of(self, obj: DecoderWeights) -> int | None:
        return obj.stored_bits if obj.weight_dtype != "float32" else None

    def archive_bits(self, archive: Any) -> int | None:
        if archive.weight_dtype == "float32":
            return None
        return archive.spec.num_scalars * WEIGHT_BITS[archive.weight_dtype]

    def normalise(self, obj: DecoderWeights) -> DecoderWeights:
        weights: dict[str, list[tuple[str, np.ndarray]]] = {}
        for name, ws in obj.weights.items():
            pairs = []
            for item in ws:
                if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                    raise ValueError(f"`contents.decoder.weights[{name!r}]` must hold (name, array) pairs, got {item!r:.80}")
                pairs.append((item[0], layout.floats(f"contents.decoder.weights[{name!r}]", item[1], np.float32)))
            weights[str(name)] = pairs
        return DecoderWeights(obj.architecture, weights, obj.weight_dtype)

    def write(self, group: h5py.Group, obj: DecoderWeights, options: Mapping[str, Any]) -> None:
        h5write.write_attr(group, "layer_names", list(obj.weights), STR)
        h5write.write_text(group, "architecture", h5write.to_json(obj.architecture))
        layers = group.create_group("layers")
        for name, ws in obj.weights.items():
            lg = layers.create_group(name)
            h5write.write_attr(lg, "weight_names", [n for n, _ in ws], STR)
            for wname, arr in ws:
                # float16: exact, check_weights has seen that the values are float16 values
                h5write.write_dataset(lg, wname, arr.astype(obj.weight_dtype), h5write.CHECKED)

    def check(self, obj: DecoderWeights, ctx: Context) -> None:
        if ctx.spec is None:
            ctx.spec = check_architecture(obj.architecture)
            ctx.sizes["channels"] = int(ctx.spec.input_shape[-1])
            ctx.sizes["decoder_scalars"] = ctx.spec.num_scalars
        check_weights(obj, ctx.spec)

    def opened(self, archive: Any, attrs: dict[str, Any]) -> None:
        with archive._at("/decoder/architecture"):
            architecture = layout.parse_json(archive._read("/decoder/architecture", STR), "/decoder/architecture")
            archive._architecture = architecture
            archive._spec = archive._ctx.spec = check_architecture(architecture)
            archive._ctx.sizes["channels"] = int(archive._spec.input_shape[-1])
            archive._ctx.sizes["decoder_scalars"] = archive._spec.num_scalars
        layers = [layer for layer in archive._spec.layers if layer.weight_shapes]
        want = [layer.name for layer in layers]
        if attrs["layer_names"] != want:
            raise _fail("/decoder", f"attribute layer_names: expected {want}, got {attrs['layer_names']}")
        version = archive._versions["decoder"]
        dtypes: list[np.dtype] = []
        for layer in layers:
            base = f"/decoder/layers/{layer.name}"
            with archive._at(base):
                got = attr_strs(get_node(archive._file, base, h5py.Group), base, "weight_names")
                want = [name for name, _ in layer.weight_shapes]
                if got != want:
                    raise _fail(base, f"attribute weight_names: expected {want}, got {got}")
            for name, shape in layer.weight_shapes:
                path = f"{base}/{name}"
                with archive._at(path):
                    dtype = _weight_dtype(get_node(archive._file, path, h5py.Dataset).dtype, path, version)
                if dtypes and dtype not in dtypes:
                    raise _fail(path, f"expected dtype {dtypes[0].name} like the decoder's other weights, got {dtype.name}")
                dtypes.append(dtype)
                archive._dataset(path, dtype, shape)
        archive.weight_dtype = dtypes[0].name if dtypes else "float32"

    def build(self, values: dict[str, Any], archive: Any) -> DecoderWeights:
        weights = {}
        for layer in archive._spec.layers:
            if layer.weight_shapes:
                base = f"/decoder/layers/{layer.name}"
                weights[layer.name] = [(n, archive._read(f"{base}/{n}", np.float32)) for n, _ in layer.weight_shapes]
        return DecoderWeights(archive._architecture, weights, archive.weight_dtype)


def _weight_dtype(got: np.dtype, path: str, version: tuple[int, int]) -> np.dtype:
    """The dtype a weight dataset is read as: float32, or float16 in a 1.2 layout."""
    if got.kind != "f" or got.itemsize != 2:
        return np.dtype(np.float32)  # `checked_dataset` refuses any other dtype, expected versus got
    if version < (1, 2):
        raise _fail(path, f"float16 weights need format 1.2, the file says {version_text(version)}")
    return np.dtype(np.float16)

