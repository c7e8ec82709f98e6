"""The codec: design choices, and the numpy decoder against Keras."""
from __future__ import annotations

import numpy as np
import pytest

from latentpack.codec.design import design_codec
from latentpack.codec.runtime.numpy_decoder import NumpyDecoder
from latentpack.formats.decoder_spec import SpecError, validate_architecture


def test_auto_picks_by_size_and_folder() -> None:
    # equal small images: the fully connected design once its decoder fits the budget
    assert design_codec([(28, 28)] * 70_000, "L").arch == "mlp"
    assert design_codec([(28, 28)] * 10, "L").arch == "dense"  # too few images for any mlp width
    assert design_codec([(28, 28), (30, 20)], "RGB").arch == "conv"
    assert design_codec([(512, 768)] * 3, "RGB").arch == "conv"


def test_auto_keeps_its_choice_when_the_width_is_given() -> None:
    assert design_codec([(28, 28)] * 70_000, "L", filters=32).arch == "mlp"
    assert design_codec([(28, 28)] * 70_000, "L", filters=32).filters == 32


def test_mlp_width_follows_the_budget() -> None:
    for w in (10_000, 70_000):
        design = design_codec([(28, 28)] * w, "L", arch="mlp")
        assert design.decoder_scalars * 32 <= 0.1 * w * 28 * 28 * 8
    assert design_codec([(28, 28)] * 10_000, "L", arch="mlp").filters < design.filters
    assert design_codec([(28, 28)] * 70_000, "L", arch="mlp").latent_shape(28, 28) == (1, 1, 49)


def test_a_size_target_splits_its_bytes_between_decoder_and_latents() -> None:
    from latentpack.codec.design import SIZE_BITS_PER_LATENT, SIZE_DECODER_SHARE

    shapes = [(28, 28)] * 70_000
    default = design_codec(shapes, "L")
    assert design_codec(shapes, "L", byte_budget=10**9) == default  # plenty: nothing shrinks
    for per_image, weight_bytes in ((40, 4), (40, 2), (16, 2)):
        budget = 70_000 * per_image
        design = design_codec(shapes, "L", byte_budget=budget, weight_bytes=weight_bytes)
        decoder_bytes = design.decoder_scalars * weight_bytes
        assert design.arch == "mlp" and decoder_bytes <= SIZE_DECODER_SHARE * budget
        latent_bits = 70_000 * design.latent_dims * SIZE_BITS_PER_LATENT
        assert 2 <= design.latent_dims < default.latent_dims
        assert abs(decoder_bytes * 8 + latent_bits - budget * 8) <= 70_000 * SIZE_BITS_PER_LATENT  # one y of rounding
    # float16 weights buy a wider decoder for the same bytes
    assert (design_codec(shapes, "L", byte_budget=2_000_000, weight_bytes=2).filters
            > design_codec(shapes, "L", byte_budget=2_000_000, weight_bytes=4).filters)
    # a tighter budget never buys a wider decoder or more latents
    loose = design_codec(shapes, "L", byte_budget=2_800_000)
    tight = design_codec(shapes, "L", byte_budget=1_120_000)
    assert tight.filters <= loose.filters and tight.latent_dims <= loose.latent_dims


def test_a_size_target_keeps_what_the_user_gave() -> None:
    shapes = [(28, 28)] * 70_000
    assert design_codec(shapes, "L", byte_budget=1_000_000, filters=512).filters == 512
    assert design_codec(shapes, "L", byte_budget=1_000_000, latent_dims=40).latent_dims == 40
    # the convolutional design has no single y to plan: the budget leaves it alone
    mixed = [(28, 28), (30, 20)]
    assert design_codec(mixed, "RGB", byte_budget=1000) == design_codec(mixed, "RGB")
    with pytest.raises(ValueError, match="byte_budget"):
        design_codec(shapes, "L", byte_budget=0)
    with pytest.raises(ValueError, match="weight_bytes"):
        design_codec(shapes, "L", byte_budget=10, weight_bytes=3)


@pytest.mark.parametrize("arch", ["mlp", "dense"])
def test_vector_designs_refuse_mixed_sizes(arch) -> None:
    with pytest.raises(ValueError, match="arch"):
        design_codec([(28, 28), (10, 10)], "L", arch=arch)


def test_latent_dims_must_be_positive() -> None:
    with pytest.raises(ValueError, match="latent_dims"):
        design_codec([(8, 8)], "L", latent_dims=0)


def test_capacity_grows_with_the_folder() -> None:
    small = design_codec([(28, 28)] * 50, "L", latent_dims=16)
    large = design_codec([(28, 28)] * 50_000, "L", latent_dims=16)
    assert small.filters < large.filters
    x_bits = 50_000 * 28 * 28 * 8
    assert large.decoder_scalars * 32 <= 0.1 * x_bits


@pytest.mark.parametrize(
    "shapes, mode, arch, grid",
    [
        ([(28, 28)], "L", "dense", None),
        ([(30, 41)], "RGBA", "dense", None),
        ([(12, 10)], "RGB", "mlp", None),
        ([(40, 50), (13, 9)], "RGB", "conv", (3, 4)),
        ([(16, 16)], "LA", "conv", (2, 2)),
    ],
)
def test_numpy_decoder_matches_keras(shapes, mode, arch, grid) -> None:
    from latentpack.codec.keras.model import build_autoencoder, export_decoder

    design = design_codec(shapes, mode, arch=arch, filters=8, latent_dims=6)
    ae = build_autoencoder(design.encoder, design.decoder)
    rng = np.random.default_rng(0)
    for layer in ae.decoder.layers:  # non-zero biases too, so bias handling is tested
        layer.set_weights([w + rng.normal(0, 0.05, w.shape).astype("float32") for w in layer.get_weights()])
    stored = export_decoder(ae.decoder, design.decoder)
    numpy_decoder = NumpyDecoder(validate_architecture(design.decoder), {k: dict(v) for k, v in stored.weights.items()})
    shape = (1, 1, 6) if grid is None else grid + (6,)
    z = rng.normal(size=(5,) + shape).astype("float32")
    expected = np.asarray(ae.decoder(z))
    got = numpy_decoder(z)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-5


def test_validate_architecture_rejects_layers_outside_the_allowlist() -> None:
    arch = design_codec([(28, 28)], "L").decoder
    arch["layers"][1] = {"name": "evil", "type": "Lambda", "config": {"function": "os.system('x')"}}
    with pytest.raises(SpecError, match="layers/1/type"):
        validate_architecture(arch)


def test_validate_architecture_rejects_unknown_config_keys() -> None:
    arch = design_codec([(28, 28)], "L").decoder
    arch["layers"][1]["config"]["kernel_initializer"] = "zeros"
    with pytest.raises(SpecError, match="unknown keys"):
        validate_architecture(arch)


def test_registries_list_the_layer_types_and_architectures() -> None:
    """The allowlist and ``--arch`` come from the registries, in their documented order."""
    from latentpack import layers
    from latentpack.codec import architectures
    from latentpack.codec.design import ARCHS
    from latentpack.formats.decoder_spec import LAYER_TYPES

    assert LAYER_TYPES == layers.names() == ("Flatten", "Dense", "Reshape", "Conv2D", "Conv2DTranspose", "UpSampling2D")
    assert architectures.names() == ("mlp", "dense", "conv") and ARCHS == ("auto",) + architectures.names()
    assert [layers.get(n).weighted for n in LAYER_TYPES] == [False, True, False, True, True, False]
    assert {architectures.get(n).training_data for n in architectures.names()} == {"images", "patches"}


def test_the_layer_registry_imports_no_tensorflow() -> None:
    import subprocess
    import sys

    code = ("import sys, latentpack.layers, latentpack.formats, latentpack.codec.architectures, "
            "latentpack.codec.runtime.fixedpoint; assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_option_errors_are_latentpack_errors() -> None:
    from latentpack.errors import OptionError
    from latentpack.ops.compress import CompressOptions

    with pytest.raises(OptionError, match="`arch` must be one of"):
        design_codec([(8, 8)], "L", arch="resnet")
    with pytest.raises(OptionError, match="`refine_steps` must be >= 0"):
        CompressOptions(refine_steps=-1).check()
    with pytest.raises(OptionError, match="needs lossy coded latents"):
        CompressOptions(quality=30.0, lossless=True).check()
    assert CompressOptions(max_bytes=10_000).stored_weight_dtype == "float16"
    assert CompressOptions(quality=30.0).stored_weight_dtype == "float16"  # rate-distortion training: the decoder is rate
    assert CompressOptions(quality=30.0, objective="mse").stored_weight_dtype == "float32"
    assert CompressOptions(lossless=True, lossless_coder="residual").stored_weight_dtype == "float32"
