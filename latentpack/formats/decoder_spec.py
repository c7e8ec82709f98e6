"""The declarative decoder description: an allowlist of layers, checked.

An archive never stores code. Its decoder is a JSON document naming layers
from the small allowlist below with their configs; `validate_architecture`
checks every field and infers every layer's output shape and the exact shapes
of the weights it needs, so a reader can reject a bad description before any
weight is read or any layer is run. The numpy runtime
(`latentpack.codec.numpy_decoder`) and the Keras builder
(`latentpack.codec.model`) both follow this one description.

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
from typing import Any, Callable, Dict, List, Tuple

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
LAYER_TYPES = ("Flatten", "Dense", "Reshape", "Conv2D", "Conv2DTranspose", "UpSampling2D")
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")
#: Working colour modes a decoder may produce, with their channel counts.
OUTPUT_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
#: Upper bounds that keep a hostile description from asking for huge tensors.
MAX_UNITS = 1 << 24
MAX_FILTERS = 4096
MAX_KERNEL = 15
MAX_STRIDE = 8
MAX_LAYERS = 64

Shape = tuple  # of int | None


class SpecError(ValueError):
    """The decoder description is not what FORMAT.md allows.

    Attributes:
        where: JSON-pointer-like location of the fault (``layers/3/config``).
    """

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where


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


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(where, f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise SpecError(where, f"must be in [{lo}, {hi}], got {value}")
    return value


def _pair(value: Any, where: str, lo: int, hi: int) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SpecError(where, f"must be an integer or a pair of integers, got {value!r}")
    return (_int(value[0], where, lo, hi), _int(value[1], where, lo, hi))


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpecError(where, f"must be one of {list(allowed)}, got {value!r}")
    return value


def _shape(value: Any, where: str) -> Shape:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 3:
        raise SpecError(where, f"must be a list of 1 to 3 dimensions, got {value!r}")
    dims = []
    for i, d in enumerate(value):
        dims.append(None if d is None else _int(d, f"{where}/{i}", 1, MAX_UNITS))
    return tuple(dims)


def _config_keys(config: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise SpecError(where, f"must be an object, got {type(config).__name__}")
    unknown = set(config) - allowed
    if unknown:
        raise SpecError(where, f"unknown keys {sorted(unknown)}; allowed {sorted(allowed)}")
    return config


def _size(shape: Shape) -> int | None:
    n = 1
    for d in shape:
        if d is None:
            return None
        n *= d
    return n


def _conv_out(n: int | None, k: int, s: int, padding: str, transpose: bool) -> int | None:
    if n is None:
        return None
    if transpose:
        return n * s if padding == "same" else n * s + max(k - s, 0)
    if padding == "same":
        return -(-n // s)
    out = (n - k) // s + 1
    return out


#: What a layer type's rule returns: its normalised config, output shape and weights' (name, shape).
_Rule = Tuple[Dict[str, Any], Shape, List[Tuple[str, Tuple[int, ...]]]]


def _use_bias(cfg: dict, cw: str) -> bool:
    use_bias = cfg.get("use_bias", True)
    if not isinstance(use_bias, bool):
        raise SpecError(f"{cw}/use_bias", "must be a boolean")
    return use_bias


def _flatten(cfg: dict, cw: str, where: str, input_shape: Shape, ltype: str) -> _Rule:
    _config_keys(cfg, cw, set())
    size = _size(input_shape)
    if size is None:
        raise SpecError(where, "Flatten needs a fully known input shape")
    return {}, (size,), []


def _dense(cfg: dict, cw: str, where: str, input_shape: Shape, ltype: str) -> _Rule:
    _config_keys(cfg, cw, {"units", "activation", "use_bias"})
    units = _int(cfg.get("units"), f"{cw}/units", 1, MAX_UNITS)
    act = _choice(cfg.get("activation", "linear"), f"{cw}/activation", ACTIVATIONS)
    use_bias = _use_bias(cfg, cw)
    fan_in = input_shape[-1]
    if fan_in is None:
        raise SpecError(where, "Dense needs a known last input dimension")
    if fan_in * units > MAX_UNITS:
        raise SpecError(where, f"kernel of {fan_in}x{units} exceeds {MAX_UNITS} scalars")
    weights = [("kernel", (fan_in, units))] + ([("bias", (units,))] if use_bias else [])
    return {"units": units, "activation": act, "use_bias": use_bias}, tuple(input_shape[:-1]) + (units,), weights


def _reshape(cfg: dict, cw: str, where: str, input_shape: Shape, ltype: str) -> _Rule:
    _config_keys(cfg, cw, {"target_shape"})
    target = _shape(cfg.get("target_shape"), f"{cw}/target_shape")
    if None in target:
        raise SpecError(f"{cw}/target_shape", "must not contain null")
    if _size(input_shape) != _size(target):
        raise SpecError(where, f"cannot reshape {list(input_shape)} into {list(target)}")
    return {"target_shape": list(target)}, target, []


def _conv(cfg: dict, cw: str, where: str, input_shape: Shape, ltype: str) -> _Rule:
    _config_keys(cfg, cw, {"filters", "kernel_size", "strides", "padding", "activation", "use_bias"})
    if len(input_shape) != 3:
        raise SpecError(where, f"{ltype} needs a (height, width, channels) input, got {list(input_shape)}")
    cin = input_shape[2]
    if cin is None:
        raise SpecError(where, f"{ltype} needs a known channel count")
    filters = _int(cfg.get("filters"), f"{cw}/filters", 1, MAX_FILTERS)
    kh, kw = _pair(cfg.get("kernel_size"), f"{cw}/kernel_size", 1, MAX_KERNEL)
    sh, sw = _pair(cfg.get("strides", 1), f"{cw}/strides", 1, MAX_STRIDE)
    padding = _choice(cfg.get("padding", "same"), f"{cw}/padding", ("same", "valid"))
    act = _choice(cfg.get("activation", "linear"), f"{cw}/activation", ACTIVATIONS)
    use_bias = _use_bias(cfg, cw)
    transpose = ltype == "Conv2DTranspose"
    if transpose and padding != "same":
        raise SpecError(f"{cw}/padding", "Conv2DTranspose supports only 'same'")
    kernel = (kh, kw, filters, cin) if transpose else (kh, kw, cin, filters)
    weights = [("kernel", kernel)] + ([("bias", (filters,))] if use_bias else [])
    h = _conv_out(input_shape[0], kh, sh, padding, transpose)
    w = _conv_out(input_shape[1], kw, sw, padding, transpose)
    if (h is not None and h < 1) or (w is not None and w < 1):
        raise SpecError(where, f"input {list(input_shape)} is too small for the kernel")
    config = {"filters": filters, "kernel_size": [kh, kw], "strides": [sh, sw], "padding": padding,
              "activation": act, "use_bias": use_bias}
    return config, (h, w, filters), weights


def _upsampling(cfg: dict, cw: str, where: str, input_shape: Shape, ltype: str) -> _Rule:
    _config_keys(cfg, cw, {"size", "interpolation"})
    if len(input_shape) != 3:
        raise SpecError(where, f"UpSampling2D needs a (height, width, channels) input, got {list(input_shape)}")
    sh, sw = _pair(cfg.get("size", 2), f"{cw}/size", 1, MAX_STRIDE)
    _choice(cfg.get("interpolation", "nearest"), f"{cw}/interpolation", ("nearest",))
    h, w, c = input_shape
    return {"size": [sh, sw], "interpolation": "nearest"}, (None if h is None else h * sh,
                                                            None if w is None else w * sw, c), []


#: Each layer type's rule (the allowlist `LAYER_TYPES`, one function each).
_RULES: Dict[str, Callable[..., _Rule]] = {
    "Flatten": _flatten, "Dense": _dense, "Reshape": _reshape, "Conv2D": _conv, "Conv2DTranspose": _conv,
    "UpSampling2D": _upsampling,
}


def _layer(index: int, raw: Any, input_shape: Shape) -> LayerSpec:
    where = f"layers/{index}"
    if not isinstance(raw, dict):
        raise SpecError(where, "must be an object")
    extra = set(raw) - {"name", "type", "config"}
    if extra:
        raise SpecError(where, f"unknown keys {sorted(extra)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name or len(name) > 64 or not all(c.isalnum() or c in "_-" for c in name):
        raise SpecError(f"{where}/name", f"must be 1-64 characters [A-Za-z0-9_-], got {name!r}")
    ltype = _choice(raw.get("type"), f"{where}/type", LAYER_TYPES)
    config, out, weights = _RULES[ltype](raw.get("config", {}), f"{where}/config", where, input_shape, ltype)
    for d in out:
        if d is not None and d > MAX_UNITS:
            raise SpecError(where, f"output dimension {d} exceeds {MAX_UNITS}")
    return LayerSpec(name, ltype, config, tuple(input_shape), tuple(out), tuple(weights))


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
    input_shape = _shape(arch.get("input_shape"), "input_shape")
    if input_shape[-1] is None:
        raise SpecError("input_shape", "the last (channel) dimension must be known")
    mode = _choice(arch.get("output_mode"), "output_mode", tuple(OUTPUT_MODES))
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
