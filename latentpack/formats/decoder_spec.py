"""The declarative decoder description: an allowlist of layers, checked.

An archive never stores code. Its decoder is a JSON document naming layers
from the small allowlist of `latentpack.layers` with their configs; `validate_architecture`
checks every field and infers every layer's output shape and the exact shapes
of the weights it needs, so a reader can reject a bad description before any
weight is read or any layer is run. Each layer type checks its own config
(`latentpack.layers`); the numpy runtime (`latentpack.codec.runtime`) and
the Keras builder (`latentpack.codec.keras.model`) follow this one description.

Example::

    {"type": "latentpack-decoder", "version": 1,
     "input_shape": [1, 1, 32], "output_mode": "L",
     "layers": [
       {"name": "dense", "type": "Dense", "config": {"units": 1568, "activation": "relu"}},
       {"name": "reshape", "type": "Reshape", "config": {"target_shape": [7, 7, 32]}},
       {"name": "up1", "type": "Conv2DTranspose",
        "config": {"filters": 16, "kernel_size": 4, "strides": 2, "activation": "relu"}},
       ...]}

Spatial dimensions may be ``null`` (fully convolutional decoders).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latentpack import layers
from latentpack.layers.activations import ACTIVATIONS
from latentpack.layers.checks import MAX_UNITS, Shape, SpecError, choice, config_keys, dims

__all__ = [
    "ARCHITECTURE_TYPE",
    "ARCHITECTURE_VERSION",
    "LAYER_TYPES",
    "ACTIVATIONS",
    "OUTPUT_MODES",
    "MAX_UNITS",
    "LayerSpec",
    "DecoderSpec",
    "SpecError",
    "validate_architecture",
    "layer_shapes",
]

ARCHITECTURE_TYPE = "latentpack-decoder"
ARCHITECTURE_VERSION = 1
#: The allowlisted layer types (`latentpack.layers`, one module each).
LAYER_TYPES = layers.names()
#: Working colour modes a decoder may produce, with their channel counts.
OUTPUT_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
MAX_LAYERS = 64


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer: its type, normalised config and shapes."""

    name: str
    type: str
    config: dict[str, Any]
    input_shape: Shape
    output_shape: Shape
    weight_shapes: tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True)
class DecoderSpec:
    """A validated decoder description."""

    input_shape: Shape
    output_shape: Shape
    output_mode: str
    layers: tuple[LayerSpec, ...]

    @property
    def num_scalars(self) -> int:
        n = 0
        for layer in self.layers:
            for _, shape in layer.weight_shapes:
                size = 1
                for d in shape:
                    size *= d
                n += size
        return n


def _layer(index: int, raw: Any, input_shape: Shape) -> LayerSpec:
    """Check one layer (the common fields here, its config by its type's module) and infer its shapes."""
    where = f"layers/{index}"
    if not isinstance(raw, dict):
        raise SpecError(where, "must be an object")
    extra = set(raw) - {"name", "type", "config"}
    if extra:
        raise SpecError(where, f"unknown keys {sorted(extra)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name or len(name) > 64 or not all(c.isalnum() or c in "_-" for c in name):
        raise SpecError(f"{where}/name", f"must be 1-64 characters [A-Za-z0-9_-], got {name!r}")
    ltype = layers.get(choice(raw.get("type"), f"{where}/type", LAYER_TYPES))
    cfg = config_keys(raw.get("config", {}), f"{where}/config", ltype.config_keys)
    checked = ltype.check(cfg, input_shape, where)
    for d in checked.output_shape:
        if d is not None and d > MAX_UNITS:
            raise SpecError(where, f"output dimension {d} exceeds {MAX_UNITS}")
    return LayerSpec(name, ltype.name, checked.config, tuple(input_shape), tuple(checked.output_shape),
                     checked.weight_shapes)


def validate_architecture(arch: Any, *, image_output: bool = True) -> DecoderSpec:
    """Check a decoder description and infer every shape.

    Args:
        arch: The parsed JSON description.
        image_output: Require the last layer to produce an image with the
            channels of ``output_mode`` (False for encoder descriptions).

    Returns:
        The validated `DecoderSpec`.

    Raises:
        SpecError: naming the field at fault.
    """
    if not isinstance(arch, dict):
        raise SpecError("", "the decoder description must be a JSON object")
    extra = set(arch) - {"type", "version", "input_shape", "output_mode", "layers"}
    if extra:
        raise SpecError("", f"unknown keys {sorted(extra)}")
    if arch.get("type") != ARCHITECTURE_TYPE:
        raise SpecError("type", f"must be {ARCHITECTURE_TYPE!r}, got {arch.get('type')!r}")
    if arch.get("version") != ARCHITECTURE_VERSION:
        raise SpecError("version", f"must be {ARCHITECTURE_VERSION}, got {arch.get('version')!r}")
    input_shape = dims(arch.get("input_shape"), "input_shape")
    if input_shape[-1] is None:
        raise SpecError("input_shape", "the last (channel) dimension must be known")
    mode = choice(arch.get("output_mode"), "output_mode", tuple(OUTPUT_MODES))
    raw_layers = arch.get("layers")
    if not isinstance(raw_layers, list) or not 1 <= len(raw_layers) <= MAX_LAYERS:
        raise SpecError("layers", f"must be a list of 1 to {MAX_LAYERS} layers")
    layers = []
    shape: Shape = input_shape
    names = set()
    for i, raw in enumerate(raw_layers):
        layer = _layer(i, raw, shape)
        if layer.name in names:
            raise SpecError(f"layers/{i}/name", f"duplicate layer name {layer.name!r}")
        names.add(layer.name)
        layers.append(layer)
        shape = layer.output_shape
    if image_output and (len(shape) != 3 or shape[2] != OUTPUT_MODES[mode]):
        raise SpecError(
            "layers", f"the last layer must output (height, width, {OUTPUT_MODES[mode]}) for mode {mode}, got {list(shape)}"
        )
    return DecoderSpec(input_shape, shape, mode, tuple(layers))


def layer_shapes(spec: DecoderSpec, input_shape: Shape) -> list[Shape]:
    """The output shape of every layer for one concrete input (``null`` dimensions filled in).

    Args:
        spec: A validated description.
        input_shape: The input, with the rank and known dimensions of
            ``spec.input_shape``.

    Raises:
        SpecError: the input does not fit the description.
    """
    shape: Shape = tuple(input_shape)
    shapes = []
    for i, layer in enumerate(spec.layers):
        shape = _layer(i, {"name": layer.name, "type": layer.type, "config": layer.config}, shape).output_shape
        shapes.append(shape)
    return shapes
