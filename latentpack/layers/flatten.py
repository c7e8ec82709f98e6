"""``Flatten``: a fully known input to one vector per example (no weights, no config)."""
from __future__ import annotations

from typing import Any

import numpy as np

from latentpack.layers.checks import Shape, SpecError, size
from latentpack.layers.registry import Checked, LayerType, register

__all__ = ["Flatten"]


class Flatten(LayerType):
    """``(d1, d2, ...) -> (d1 * d2 * ...)``."""

    name = "Flatten"

    def check(self, config: dict[str, Any], input_shape: Shape, where: str) -> Checked:
        n = size(input_shape)
        if n is None:
            raise SpecError(where, "Flatten needs a fully known input shape")
        return Checked({}, (n,))

    def forward(self, layer: Any, params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def keras_layer(self, layer: Any) -> Any:
        import keras

        return keras.layers.Flatten(name=layer.name)


register(Flatten())
