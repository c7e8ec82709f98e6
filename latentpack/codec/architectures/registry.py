"""The architecture registry: one module per autoencoder design, listed once.

An architecture declares, in its own module, what latentpack needs to know
about it: whether every image gets one latent vector (equal-sized images),
the widths tried when choosing capacity, the latent size it picks by
default, how it is trained (whole images or patches, and about how many
optimiser steps) and the encoder/decoder descriptions it builds. The shared
planning (`latentpack.codec.design`), training (`latentpack.codec.keras.train`)
and the command line's ``--arch`` choices (`names`) ask this registry; nothing
else branches on an architecture's name. Pure Python.
"""
from __future__ import annotations

from typing import Any, ClassVar

from latentpack.formats.decoder_spec import ARCHITECTURE_TYPE, ARCHITECTURE_VERSION
from latentpack.layers.registry import Registry

__all__ = ["Architecture", "register", "get", "names", "description", "conv_layer", "dense_layer"]


class Architecture:
    """One autoencoder design (subclass it in a module of its own and `register` it).

    Attributes:
        name: The ``--arch`` value (``"mlp"``).
        one_vector: Every image has one latent vector ``(1, 1, y)`` (images of one size).
        widths: Capacity choices (the decoder's base width), widest first.
        target_steps: Optimiser steps `default_epochs` aims at.
        training_data: ``"images"`` (shuffled whole images) or ``"patches"``
            (random square patches of images of any size).
    """

    name: ClassVar[str]
    one_vector: ClassVar[bool] = True
    widths: ClassVar[tuple[int, ...]] = (16, 8)
    target_steps: ClassVar[int] = 12000
    training_data: ClassVar[str] = "images"

    def default_latent_dims(self, height: int, width: int, channels: int) -> int:
        """``y`` (or latent channels) when the caller gives none, for the first image's size."""
        return max(4, min(256, round(height * width * channels / 16)))

    def pair(self, height: int, width: int, channels: int, mode: str, y: int,
             width_choice: int) -> tuple[dict[str, Any], dict[str, Any], int]:
        """The encoder and decoder descriptions and the encoder's total downsampling factor."""
        raise NotImplementedError


_ARCHITECTURES: Registry[Architecture] = Registry("architecture")
#: Add an architecture (at the end of its module).
register = _ARCHITECTURES.register
#: The registered architecture called ``name``.
get = _ARCHITECTURES.get
#: The registered architectures, in the order ``--arch`` lists them (after ``auto``).
names = _ARCHITECTURES.names


def description(input_shape: list, mode: str, layers: list[dict]) -> dict[str, Any]:
    """A decoder (or encoder) description document around ``layers``."""
    return {
        "type": ARCHITECTURE_TYPE,
        "version": ARCHITECTURE_VERSION,
        "input_shape": input_shape,
        "output_mode": mode,
        "layers": layers,
    }


def conv_layer(name: str, filters: int, kernel: int, stride: int, activation: str, transpose: bool = False) -> dict:
    """A square, 'same'-padded ``Conv2D`` (or ``Conv2DTranspose``) layer entry with a bias."""
    return {
        "name": name,
        "type": "Conv2DTranspose" if transpose else "Conv2D",
        "config": {
            "filters": filters,
            "kernel_size": [kernel, kernel],
            "strides": [stride, stride],
            "padding": "same",
            "activation": activation,
            "use_bias": True,
        },
    }


def dense_layer(name: str, units: int, activation: str) -> dict:
    """A ``Dense`` layer entry with a bias."""
    return {"name": name, "type": "Dense", "config": {"units": units, "activation": activation, "use_bias": True}}
