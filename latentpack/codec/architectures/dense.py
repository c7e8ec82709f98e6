"""``dense``: strided convolutions and one Dense layer for equal-sized images; the decoder mirrors it::

    x -> [Conv2D s2]*d -> Flatten -> Dense(y) -> y
    y -> Dense -> Reshape(h0, w0, f) -> [Conv2DTranspose s2]*d -> Conv2D -> x_hat
"""
from __future__ import annotations

import math
from typing import Any

from latentpack.codec.architectures.registry import Architecture, conv_layer, description, dense_layer, register

__all__ = ["Dense"]


class Dense(Architecture):
    """The convolutional design with one latent vector per image (``filters`` is the base width ``f``)."""

    name = "dense"  # the defaults of `Architecture`: one vector, widths (16, 8), 12,000 steps on whole images

    def pair(self, height: int, width: int, channels: int, mode: str, y: int,
             width_choice: int) -> tuple[dict[str, Any], dict[str, Any], int]:
        h, w, c, f = height, width, channels, width_choice
        d = max(1, min(3, int(math.log2(max(1, min(h, w) // 4))) if min(h, w) >= 8 else 1))
        h0, w0 = -(-h // 2**d), -(-w // 2**d)
        enc = [conv_layer(f"g_a_conv{i}", f * (1 if i == 0 else 2), 3, 2, "relu") for i in range(d)]
        enc += [
            {"name": "g_a_flatten", "type": "Flatten", "config": {}},
            {"name": "g_a_dense", "type": "Dense", "config": {"units": y, "activation": "linear", "use_bias": True}},
            {"name": "g_a_latent", "type": "Reshape", "config": {"target_shape": [1, 1, y]}},
        ]
        dec = [
            {"name": "g_s_flatten", "type": "Flatten", "config": {}},
            dense_layer("g_s_dense", h0 * w0 * 2 * f, "relu"),
            {"name": "g_s_reshape", "type": "Reshape", "config": {"target_shape": [h0, w0, 2 * f]}},
        ]
        dec += [conv_layer(f"g_s_up{i}", f * (2 if i < d - 1 else 1), 4, 2, "relu", transpose=True) for i in range(d)]
        dec.append(conv_layer("g_s_out", c, 3, 1, "sigmoid"))
        return description([h, w, c], mode, enc), description([1, 1, y], mode, dec), 2**d


register(Dense())
