"""Run a stored decoder with numpy alone (no TensorFlow).

The archive describes its decoder declaratively (see
`latentpack.formats.decoder_spec`); this module executes that description
layer by layer with numpy, each layer by its type's forward pass
(`latentpack.layers`, Keras' semantics). `extract`, `inspect` and `list` use it, so they start fast and a
stored file can never run code.

    latents (B, gh, gw, c) -> [Dense | Reshape | Conv2D | Conv2DTranspose
                               | UpSampling2D]* -> x_hat in [0, 1]
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from latentpack import layers
from latentpack.formats.decoder_spec import DecoderSpec

__all__ = ["NumpyDecoder"]


class NumpyDecoder:
    """A validated decoder description plus its weights, runnable with numpy.

    Args:
        spec: The validated description.
        weights: ``{layer_name: {weight_name: array}}``; shapes must match the
            spec (the archive reader has checked them).
    """

    def __init__(self, spec: DecoderSpec, weights: Mapping[str, Mapping[str, np.ndarray]]):
        self.spec = spec
        self._weights: dict[str, dict[str, np.ndarray]] = {}
        for layer in spec.layers:
            got = weights.get(layer.name, {})
            params = {}
            for wname, shape in layer.weight_shapes:
                if wname not in got:
                    raise ValueError(f"`weights` lacks {layer.name}/{wname}")
                arr = np.asarray(got[wname], dtype=np.float32)
                if arr.shape != shape:
                    raise ValueError(f"`weights` {layer.name}/{wname}: expected shape {shape}, got {arr.shape}")
                params[wname] = arr
            self._weights[layer.name] = params

    @property
    def input_shape(self) -> tuple:
        return self.spec.input_shape

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        """Decode a batch of latents to x_hat in [0, 1].

        Args:
            latents: Shape ``(B,) + input_shape`` (spatial dims may vary where
                the description leaves them ``None``).

        Returns:
            x_hat of shape (B, H, W, C), float32.
        """
        x = np.asarray(latents, dtype=np.float32)
        expected = self.spec.input_shape
        if x.ndim != len(expected) + 1 or any(e is not None and e != g for e, g in zip(expected, x.shape[1:])):
            raise ValueError(f"`latents` must have shape (B, {list(expected)}), got {x.shape}")
        for layer in self.spec.layers:
            x = layers.get(layer.type).forward(layer, self._weights[layer.name], x)
        return x
