"""``Dense``: ``x @ kernel + bias`` on the last axis, then an activation."""
from __future__ import annotations

from typing import Any

import numpy as np

from latentpack.layers.activations import ACTIVATIONS, activate
from latentpack.layers.checks import MAX_UNITS, Shape, SpecError, boolean, choice, integer
from latentpack.layers.registry import Checked, LayerType, MatMul, register

__all__ = ["Dense"]


class Dense(LayerType):
    """``(..., n) -> (..., units)`` (``config``: ``units``, ``activation``, ``use_bias``)."""

    name = "Dense"
    config_keys = frozenset({"units", "activation", "use_bias"})
    fan_in_axes = (0,)

    def check(self, config: dict[str, Any], input_shape: Shape, where: str) -> Checked:
        cw = f"{where}/config"
        units = integer(config.get("units"), f"{cw}/units", 1, MAX_UNITS)
        act = choice(config.get("activation", "linear"), f"{cw}/activation", ACTIVATIONS)
        use_bias = boolean(config.get("use_bias", True), f"{cw}/use_bias")
        fan_in = input_shape[-1]
        if fan_in is None:
            raise SpecError(where, "Dense needs a known last input dimension")
        if fan_in * units > MAX_UNITS:
            raise SpecError(where, f"kernel of {fan_in}x{units} exceeds {MAX_UNITS} scalars")
        weights = [("kernel", (fan_in, units))] + ([("bias", (units,))] if use_bias else [])
        config = {"units": units, "activation": act, "use_bias": use_bias}
        return Checked(config, tuple(input_shape[:-1]) + (units,), tuple(weights))

    def forward(self, layer: Any, params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        out = x @ params["kernel"]
        if "bias" in params:
            out += params["bias"]
        return activate(out.astype(np.float32, copy=False), layer.config["activation"])

    def accumulate(self, layer: Any, x: np.ndarray, kernel: np.ndarray, matmul: MatMul) -> np.ndarray:
        return matmul(x, kernel)

    def keras_layer(self, layer: Any) -> Any:
        import keras

        cfg = layer.config
        return keras.layers.Dense(cfg["units"], activation=cfg["activation"], use_bias=cfg["use_bias"], name=layer.name)


register(Dense())
