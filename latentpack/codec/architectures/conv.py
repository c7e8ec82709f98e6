"""``conv``: fully convolutional, for images of any sizes.

The latent of an image is a grid of ``ceil(H/8) x ceil(W/8) x c`` values
(the image is edge-padded to a multiple of 8 and the reconstruction cropped
back); training runs on random square patches::

    x -> [Conv2D s2]*3 -> y (gh, gw, c) -> [Conv2DTranspose s2]*3 -> Conv2D -> x_hat
"""
from __future__ import annotations

from typing import Any

from latentpack.codec.architectures.registry import Architecture, conv_layer, description, register

__all__ = ["Conv", "CONV_STRIDE"]

#: Downsampling factor (three stride-2 layers).
CONV_STRIDE = 8


class Conv(Architecture):
    """The fully convolutional design (``latent_dims`` is the latent channel count)."""

    name = "conv"
    one_vector = False
    training_data = "patches"

    def default_latent_dims(self, height: int, width: int, channels: int) -> int:
        return 4 * channels

    def pair(self, height: int, width: int, channels: int, mode: str, y: int,
             width_choice: int) -> tuple[dict[str, Any], dict[str, Any], int]:
        c, f = channels, width_choice
        enc = [conv_layer("g_a_conv0", f, 5, 2, "relu"), conv_layer("g_a_conv1", f, 5, 2, "relu"),
               conv_layer("g_a_conv2", y, 5, 2, "linear")]
        dec = [
            conv_layer("g_s_up0", f, 4, 2, "relu", transpose=True),
            conv_layer("g_s_up1", f, 4, 2, "relu", transpose=True),
            conv_layer("g_s_up2", f, 4, 2, "relu", transpose=True),
            conv_layer("g_s_out", c, 3, 1, "sigmoid"),
        ]
        return description([None, None, c], mode, enc), description([None, None, y], mode, dec), CONV_STRIDE


register(Conv())
