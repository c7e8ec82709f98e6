"""``Reshape``: to a fully known ``target_shape`` of the same size (no weights)."""
from __future__ import annotations

from typing import Any

import numpy as np

from latentpack.layers.checks import Shape, SpecError, dims, size
from latentpack.layers.registry import Checked, LayerType, register

__all__ = ["Reshape"]


class Reshape(LayerType):
    """``input -> target_shape`` (``config``: ``target_shape``)."""

    name = "Reshape"
    config_keys = frozenset({"target_shape"})

    def check(self, config: dict[str, Any], input_shape: Shape, where: str) -> Checked:
        cw = f"{where}/config"
        target = dims(config.get("target_shape"), f"{cw}/target_shape")
        if None in target:
            raise SpecError(f"{cw}/target_shape", "must not contain null")
        if size(input_shape) != size(target):
            raise SpecError(where, f"cannot reshape {list(input_shape)} into {list(target)}")
        return Checked({"target_shape": list(target)}, target)

    def forward(self, layer: Any, params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        return x.reshape((x.shape[0],) + tuple(layer.config["target_shape"]))

    def keras_layer(self, layer: Any) -> Any:
        import keras

        return keras.layers.Reshape(tuple(layer.config["target_shape"]), name=layer.name)


register(Reshape())
