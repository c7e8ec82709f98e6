"""Build Keras models from latentpack's declarative layer descriptions.

The same JSON description that the archive stores (and that
`latentpack.codec.runtime.numpy_decoder` runs) is turned into Keras layers here, so
the trained decoder and the stored one cannot drift apart. This module imports
Keras; only training (``compress``) uses it.

    x -> g_a (encoder) -> y -> g_s (decoder) -> x_hat
"""
from __future__ import annotations

from typing import Any

import numpy as np

from latentpack import layers
from latentpack.codec import quiet_tensorflow
from latentpack.formats.decoder_spec import DecoderSpec, validate_architecture
from latentpack.formats.schema import DecoderWeights

quiet_tensorflow()
import keras  # noqa: E402

__all__ = ["build_model", "build_autoencoder", "export_decoder", "load_decoder_weights", "Autoencoder",
           "compile_built"]


def compile_built(model: keras.Model, optimizer: keras.optimizers.Optimizer, loss: Any = None) -> keras.Model:
    """``model.compile(optimizer, loss)``, then the optimizer's variables made at once.

    An optimizer left to make them inside the first traced training step makes
    TensorFlow trace that step twice (about two seconds a training on 2 cores,
    whatever the folder's size); made here, one trace serves the whole run.
    Their values are the same zeros either way.
    """
    model.compile(optimizer=optimizer, **({"loss": loss} if loss is not None else {}))
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model


def build_model(arch: dict[str, Any], name: str, *, image_output: bool = True) -> keras.Model:
    """Build a functional Keras model from a layer description.

    Args:
        arch: A description accepted by `validate_architecture`.
        name: The model's name.
        image_output: False for an encoder (its output is the latent).
    """
    spec = validate_architecture(arch, image_output=image_output)
    inputs = keras.Input(shape=spec.input_shape, name=f"{name}_input")
    x = inputs
    for layer in spec.layers:
        x = layers.get(layer.type).keras_layer(layer)(x)
    return keras.Model(inputs, x, name=name)


class Autoencoder:
    """Encoder and decoder trained end to end on mean squared error.

        x -> g_a -> y -> g_s -> x_hat,   loss = mean((x - x_hat)^2)
    """

    def __init__(self, encoder_arch: dict[str, Any], decoder_arch: dict[str, Any]):
        self.decoder_arch = decoder_arch
        self.encoder = build_model(encoder_arch, "g_a", image_output=False)
        self.decoder = build_model(decoder_arch, "g_s")
        x = keras.Input(shape=self.encoder.input_shape[1:], name="x")
        x_hat = self.decoder(self.encoder(x))
        self.model = keras.Model(x, x_hat, name="autoencoder")


def build_autoencoder(encoder_arch: dict[str, Any], decoder_arch: dict[str, Any]) -> Autoencoder:
    """Build the encoder, the decoder and the model that chains them."""
    return Autoencoder(encoder_arch, decoder_arch)


def export_decoder(decoder: keras.Model, arch: dict[str, Any]) -> DecoderWeights:
    """Take a trained Keras decoder's float32 weights, named as the description says.

    Args:
        decoder: Model built by `build_model` from ``arch``.
        arch: Its description.

    Returns:
        The `DecoderWeights` to store.
    """
    spec: DecoderSpec = validate_architecture(arch)
    weights: dict[str, list[tuple[str, np.ndarray]]] = {}
    for layer in spec.layers:
        if not layer.weight_shapes:
            continue
        values = decoder.get_layer(layer.name).get_weights()
        if len(values) != len(layer.weight_shapes):
            raise ValueError(f"layer {layer.name}: expected {len(layer.weight_shapes)} weights, got {len(values)}")
        pairs = []
        for (wname, shape), value in zip(layer.weight_shapes, values):
            value = np.asarray(value, dtype=np.float32)
            if value.shape != shape:
                raise ValueError(f"layer {layer.name}/{wname}: expected shape {shape}, got {value.shape}")
            pairs.append((wname, value))
        weights[layer.name] = pairs
    return DecoderWeights(architecture=arch, weights=weights)


def load_decoder_weights(decoder: keras.Model, weights: DecoderWeights) -> None:
    """Set a Keras decoder's weights from stored ones (the inverse of `export_decoder`)."""
    for name, pairs in weights.weights.items():
        decoder.get_layer(name).set_weights([np.asarray(a, np.float32) for _, a in pairs])
