"""``UpSampling2D``: nearest-neighbour upsampling by an integer ``size`` (no weights)."""
from __future__ import annotations

from typing import Any

import numpy as np

from latentpack.layers.checks import MAX_STRIDE, Shape, SpecError, choice, pair
from latentpack.layers.registry import Checked, LayerType, register

__all__ = ["UpSampling2D"]


class UpSampling2D(LayerType):
    """``(h, w, c) -> (h * sh, w * sw, c)`` (``config``: ``size``, ``interpolation`` nearest)."""

    name = "UpSampling2D"
    config_keys = frozenset({"size", "interpolation"})

    def check(self, config: dict[str, Any], input_shape: Shape, where: str) -> Checked:
        cw = f"{where}/config"
        if len(input_shape) != 3:
            raise SpecError(where, f"UpSampling2D needs a (height, width, channels) input, got {list(input_shape)}")
        sh, sw = pair(config.get("size", 2), f"{cw}/size", 1, MAX_STRIDE)
        choice(config.get("interpolation", "nearest"), f"{cw}/interpolation", ("nearest",))
        h, w, c = input_shape
        out = (None if h is None else h * sh, None if w is None else w * sw, c)
        return Checked({"size": [sh, sw], "interpolation": "nearest"}, out)

    def forward(self, layer: Any, params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        sh, sw = layer.config["size"]
        return np.repeat(np.repeat(x, sh, axis=1), sw, axis=2)

    def keras_layer(self, layer: Any) -> Any:
        import keras

        return keras.layers.UpSampling2D(tuple(layer.config["size"]), interpolation="nearest", name=layer.name)


register(UpSampling2D())
