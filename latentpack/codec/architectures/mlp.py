"""``mlp``: fully connected layers for equal-sized images; the cheapest per step on a CPU::

    x -> Flatten -> Dense(H) -> Dense(H/2) -> Dense(y) -> y
    y -> Dense(H/2) -> Dense(H) -> Dense(h*w*c) -> Reshape -> Conv2D 1x1 (sigmoid) -> x_hat
"""
from __future__ import annotations

from typing import Any

from latentpack.codec.architectures.registry import Architecture, conv_layer, dense_layer, description, register

__all__ = ["Mlp", "MLP_WIDTHS"]

#: Hidden widths ``H``, widest first. 512 is the widest worth its step time on
#: 2 CPU cores (MNIST: about 17 ms per step of 128 images, against about 87 ms
#: for the 16-filter ``dense`` design).
MLP_WIDTHS = (512, 256, 128, 64)


class Mlp(Architecture):
    """The fully connected design (``filters`` is the hidden width ``H``)."""

    name = "mlp"
    widths = MLP_WIDTHS
    #: A step costs about a fifth of a ``dense`` or ``conv`` step on a CPU, so it gets more of them.
    target_steps = 24000

    def pair(self, height: int, width: int, channels: int, mode: str, y: int,
             width_choice: int) -> tuple[dict[str, Any], dict[str, Any], int]:
        h, w, c = height, width, channels
        half = max(1, width_choice // 2)
        enc = [
            {"name": "g_a_flatten", "type": "Flatten", "config": {}},
            dense_layer("g_a_dense0", width_choice, "relu"),
            dense_layer("g_a_dense1", half, "relu"),
            dense_layer("g_a_dense2", y, "linear"),
            {"name": "g_a_latent", "type": "Reshape", "config": {"target_shape": [1, 1, y]}},
        ]
        dec = [
            {"name": "g_s_flatten", "type": "Flatten", "config": {}},
            dense_layer("g_s_dense0", half, "relu"),
            dense_layer("g_s_dense1", width_choice, "relu"),
            dense_layer("g_s_dense2", h * w * c, "linear"),
            {"name": "g_s_reshape", "type": "Reshape", "config": {"target_shape": [h, w, c]}},
            # A 1x1 convolution ends the decoder with weights, as the fixed-point
            # decoder of lossless archives requires (FORMAT.md); c*c + c weights.
            conv_layer("g_s_out", c, 1, 1, "sigmoid"),
        ]
        return description([h, w, c], mode, enc), description([1, 1, y], mode, dec), 1


register(Mlp())
