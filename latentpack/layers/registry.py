"""The decoder layer types: one module each, listed once here.

A layer type declares, in its own module, everything latentpack does with
it: the config keys and their checks plus the output-shape rule
(`LayerType.check`, used by `latentpack.formats.decoder_spec`), the numpy
forward pass (`latentpack.codec.runtime.numpy_decoder`), the integer-exact
forward pass (`latentpack.codec.runtime.fixedpoint`) and the Keras layer
(`latentpack.codec.keras.model`). Nothing else branches on a layer's type
name: every caller asks `get`.

Importing this package imports numpy only; `LayerType.keras_layer` imports
Keras inside the call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Generic, TypeVar

import numpy as np

from latentpack.layers.checks import Shape

__all__ = ["Checked", "LayerType", "Registry", "register", "get", "names"]

T = TypeVar("T")

#: ``matmul(a, b)``: how a forward pass multiplies two blocks (exact integers in fixed point).
MatMul = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Checked:
    """What a layer type's check gives: the normalised config, the output shape, the weights it needs."""

    config: dict[str, Any]
    output_shape: Shape
    weight_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()


class LayerType:
    """One decoder layer type (subclass it in a module of its own and `register` it).

    Attributes:
        name: The ``type`` string of the description (``"Dense"``).
        config_keys: The keys its ``config`` may have.
        fan_in_axes: Weighted types: the kernel axes summed into one output
            unit (bounds the fixed-point sums); None for weightless types.
    """

    name: ClassVar[str]
    config_keys: ClassVar[frozenset[str]] = frozenset()
    fan_in_axes: ClassVar[tuple[int, ...] | None] = None

    @property
    def weighted(self) -> bool:
        """True when the layer has a kernel (and so an accumulator in fixed point)."""
        return self.fan_in_axes is not None

    def check(self, config: dict[str, Any], input_shape: Shape, where: str) -> Checked:
        """Validate ``config`` (its keys already checked) for ``input_shape``.

        Args:
            config: The layer's raw config.
            input_shape: The shape it receives (``None`` for unknown dimensions).
            where: The layer's JSON location (``layers/3``); the config is at ``where + "/config"``.

        Raises:
            SpecError: naming the field at fault.
        """
        raise NotImplementedError

    def forward(self, layer: Any, params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """The float32 numpy forward pass (Keras' semantics) of a validated `LayerSpec`."""
        raise NotImplementedError

    def integer_forward(self, layer: Any, x: np.ndarray) -> np.ndarray:
        """A weightless layer's fixed-point pass on int64 activations (exact: reshapes and copies only)."""
        return self.forward(layer, {}, x)

    def accumulate(self, layer: Any, x: np.ndarray, kernel: np.ndarray, matmul: MatMul) -> np.ndarray:
        """A weighted layer's fixed-point pass: the int64 accumulator ``x * kernel`` (no bias, no activation)."""
        raise NotImplementedError(f"{self.name} has no weights")

    def keras_layer(self, layer: Any) -> Any:
        """The Keras layer of a validated `LayerSpec` (imports Keras)."""
        raise NotImplementedError


class Registry(Generic[T]):
    """Named entries, each added once, listed in the order they were added.

    Args:
        kind: What an entry is, for messages (``"layer type"``).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Add ``entry`` under its ``name`` (once)."""
        if entry.name in self._entries:
            raise RuntimeError(f"{self.kind} {entry.name!r} is registered twice")
        self._entries[entry.name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry called ``name`` (KeyError: callers validate names first, so a bug)."""
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """The names, in registration order (the order error messages and choices list them)."""
        return tuple(self._entries)


_LAYER_TYPES: Registry[LayerType] = Registry("layer type")
#: Add a layer type (at the end of its module).
register = _LAYER_TYPES.register
#: The registered layer type called ``name``.
get = _LAYER_TYPES.get
#: The registered type names, in the order the allowlist lists them.
names = _LAYER_TYPES.names
