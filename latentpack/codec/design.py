"""Choose an autoencoder for a folder: architecture, latent size, capacity.

Pure Python (no TensorFlow): the choice depends only on the images' shapes
and modes, so it is cheap to compute and to test. The decoder is described in
the archive's declarative format (`latentpack.formats.decoder_spec`); the
encoder is described the same way but never stored.

Three architectures:

* ``mlp``: every image has the same height and width. Fully connected layers
  map the flattened image to ``y`` latents and back; the cheapest per step on a
  CPU, and the default for small equal-sized images when its decoder fits the
  size budget::

      x -> Flatten -> Dense(H) -> Dense(H/2) -> Dense(y) -> y
      y -> Dense(H/2) -> Dense(H) -> Dense(h*w*c) -> Reshape -> Conv2D 1x1 (sigmoid) -> x_hat

* ``dense``: every image has the same height and width. Strided convolutions
  reduce the image, a Dense layer maps it to ``y`` latents; the decoder mirrors
  it::

      x -> [Conv2D s2]*d -> Flatten -> Dense(y) -> y
      y -> Dense -> Reshape(h0, w0, f) -> [Conv2DTranspose s2]*d -> Conv2D -> x_hat

* ``conv``: any sizes. Fully convolutional; the latent of an image is a grid
  of ``ceil(H/8) x ceil(W/8) x c`` values (the image is edge-padded to a
  multiple of 8 and the reconstruction cropped back)::

      x -> [Conv2D s2]*3 -> y (gh, gw, c) -> [Conv2DTranspose s2]*3 -> Conv2D -> x_hat
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from latentpack.formats.decoder_spec import ARCHITECTURE_TYPE, ARCHITECTURE_VERSION, OUTPUT_MODES, validate_architecture

__all__ = ["ARCHS", "VECTOR_ARCHS", "CONV_STRIDE", "SIZE_DECODER_SHARE", "SIZE_BITS_PER_LATENT", "CodecDesign", "design_codec"]

ARCHS = ("auto", "mlp", "dense", "conv")
#: Architectures with one latent vector per (equal-sized) image.
VECTOR_ARCHS = ("mlp", "dense")
#: Downsampling factor of the ``conv`` architecture (three stride-2 layers).
CONV_STRIDE = 8
#: ``auto`` picks ``dense`` for equal-sized images up to this many pixels.
DENSE_MAX_PIXELS = 96 * 96
#: Filter widths tried, largest first, when choosing decoder capacity (wider
#: decoders train too slowly on a CPU for the folders this tool targets).
FILTER_CHOICES = (16, 8)
#: Hidden widths ``H`` of the ``mlp`` architecture, widest first. 512 is the
#: widest worth its step time on 2 CPU cores (MNIST: about 17 ms per step of
#: 128 images, against about 87 ms for the 16-filter ``dense`` design).
MLP_WIDTHS = (512, 256, 128, 64)
#: The decoder may cost at most this fraction of the raw size.
DECODER_BUDGET = 0.10
#: With a file-size target: the decoder may take at most this share of what
#: the image metadata leaves of it (the rest goes to the latents).
SIZE_DECODER_SHARE = 0.35
#: With a file-size target: coded bits planned per latent scalar (at the step
#: that costs about 0.1 dB, a trained latent takes 5 to 8 bits).
SIZE_BITS_PER_LATENT = 6.0


@dataclass(frozen=True)
class CodecDesign:
    """An autoencoder chosen for a folder.

    Attributes:
        arch: ``"mlp"``, ``"dense"`` or ``"conv"``.
        mode: Working colour mode the model sees (``L``, ``LA``, ``RGB``, ``RGBA``).
        latent_dims: ``y`` for dense; latent channels ``c`` for conv.
        filters: Base convolution width (``mlp``: the hidden width ``H``).
        image_size: ``(height, width)`` for dense, ``None`` for conv.
        stride: Total downsampling factor of the encoder.
        encoder: Encoder description (same JSON shape as the decoder's).
        decoder: Decoder description, as stored in the archive.
    """

    arch: str
    mode: str
    latent_dims: int
    filters: int
    image_size: tuple[int, int] | None
    stride: int
    encoder: dict[str, Any]
    decoder: dict[str, Any]

    @property
    def channels(self) -> int:
        return OUTPUT_MODES[self.mode]

    @property
    def decoder_scalars(self) -> int:
        return validate_architecture(self.decoder).num_scalars

    @property
    def one_vector(self) -> bool:
        """True when every image has one latent vector (equal-sized images)."""
        return self.arch in VECTOR_ARCHS

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Shape of the latent tensor of an image of this size."""
        if self.one_vector:
            return (1, 1, self.latent_dims)
        s = self.stride
        return (-(-height // s), -(-width // s), self.latent_dims)


def _arch_doc(input_shape: list, mode: str, layers: list[dict]) -> dict[str, Any]:
    return {
        "type": ARCHITECTURE_TYPE,
        "version": ARCHITECTURE_VERSION,
        "input_shape": input_shape,
        "output_mode": mode,
        "layers": layers,
    }


def _conv(name: str, filters: int, kernel: int, stride: int, activation: str, transpose: bool = False) -> dict:
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


def _dense_pair(h: int, w: int, c: int, mode: str, y: int, f: int) -> tuple[dict, dict, int]:
    d = max(1, min(3, int(math.log2(max(1, min(h, w) // 4))) if min(h, w) >= 8 else 1))
    h0, w0 = -(-h // 2**d), -(-w // 2**d)
    enc = [_conv(f"g_a_conv{i}", f * (1 if i == 0 else 2), 3, 2, "relu") for i in range(d)]
    enc += [
        {"name": "g_a_flatten", "type": "Flatten", "config": {}},
        {"name": "g_a_dense", "type": "Dense", "config": {"units": y, "activation": "linear", "use_bias": True}},
        {"name": "g_a_latent", "type": "Reshape", "config": {"target_shape": [1, 1, y]}},
    ]
    dec = [
        {"name": "g_s_flatten", "type": "Flatten", "config": {}},
        {"name": "g_s_dense", "type": "Dense", "config": {"units": h0 * w0 * 2 * f, "activation": "relu", "use_bias": True}},
        {"name": "g_s_reshape", "type": "Reshape", "config": {"target_shape": [h0, w0, 2 * f]}},
    ]
    dec += [_conv(f"g_s_up{i}", f * (2 if i < d - 1 else 1), 4, 2, "relu", transpose=True) for i in range(d)]
    dec.append(_conv("g_s_out", c, 3, 1, "sigmoid"))
    return (
        _arch_doc([h, w, c], mode, enc),
        _arch_doc([1, 1, y], mode, dec),
        2**d,
    )


def _mlp_pair(h: int, w: int, c: int, mode: str, y: int, width: int) -> tuple[dict, dict]:
    def dense(name: str, units: int, activation: str) -> dict:
        return {"name": name, "type": "Dense", "config": {"units": units, "activation": activation, "use_bias": True}}

    half = max(1, width // 2)
    enc = [
        {"name": "g_a_flatten", "type": "Flatten", "config": {}},
        dense("g_a_dense0", width, "relu"),
        dense("g_a_dense1", half, "relu"),
        dense("g_a_dense2", y, "linear"),
        {"name": "g_a_latent", "type": "Reshape", "config": {"target_shape": [1, 1, y]}},
    ]
    dec = [
        {"name": "g_s_flatten", "type": "Flatten", "config": {}},
        dense("g_s_dense0", half, "relu"),
        dense("g_s_dense1", width, "relu"),
        dense("g_s_dense2", h * w * c, "linear"),
        {"name": "g_s_reshape", "type": "Reshape", "config": {"target_shape": [h, w, c]}},
        # A 1x1 convolution ends the decoder with weights, as the fixed-point
        # decoder of lossless archives requires (FORMAT.md); c*c + c weights.
        _conv("g_s_out", c, 1, 1, "sigmoid"),
    ]
    return _arch_doc([h, w, c], mode, enc), _arch_doc([1, 1, y], mode, dec)


def _conv_pair(c: int, mode: str, y: int, f: int) -> tuple[dict, dict]:
    enc = [_conv("g_a_conv0", f, 5, 2, "relu"), _conv("g_a_conv1", f, 5, 2, "relu"), _conv("g_a_conv2", y, 5, 2, "linear")]
    dec = [
        _conv("g_s_up0", f, 4, 2, "relu", transpose=True),
        _conv("g_s_up1", f, 4, 2, "relu", transpose=True),
        _conv("g_s_up2", f, 4, 2, "relu", transpose=True),
        _conv("g_s_out", c, 3, 1, "sigmoid"),
    ]
    return _arch_doc([None, None, c], mode, enc), _arch_doc([None, None, y], mode, dec)


def design_codec(
    shapes: Sequence[tuple[int, int]],
    mode: str,
    *,
    arch: str = "auto",
    latent_dims: int | None = None,
    filters: int | None = None,
    byte_budget: int | None = None,
    weight_bytes: int = 4,
) -> CodecDesign:
    """Choose architecture, latent size and decoder capacity for a folder.

    The decoder's cost is shared by all ``w`` images, so capacity grows with
    the folder: the widest width whose decoder costs at most
    ``DECODER_BUDGET`` of the raw size is taken (the narrowest when none
    fits). ``auto`` picks ``mlp`` for equal-sized images up to
    ``DENSE_MAX_PIXELS`` when one of its widths fits, else ``dense``; ``conv``
    for anything else.

    Args:
        shapes: ``(height, width)`` of every image.
        mode: Working colour mode (``L``, ``LA``, ``RGB`` or ``RGBA``).
        arch: ``auto``, ``mlp``, ``dense`` or ``conv``.
        latent_dims: ``y`` (mlp, dense) or latent channels (conv); None picks.
        filters: Base width (mlp: hidden width); None picks from the budget.
        byte_budget: With a file-size target (mlp and dense only): the bytes
            left for the decoder and the coded latents once the image
            metadata is paid. The decoder then also stays within
            ``SIZE_DECODER_SHARE`` of it, and ``y`` (unless given) is what
            the rest buys at ``SIZE_BITS_PER_LATENT`` bits per latent (at
            least 2, at most the default). A design that already fits is
            kept.
        weight_bytes: Bytes per stored decoder weight (4 float32, 2 float16).

    Returns:
        The design.

    Raises:
        ValueError: naming the argument that cannot be honoured.
    """
    if arch not in ARCHS:
        raise ValueError(f"`arch` must be one of {list(ARCHS)}, got {arch!r}")
    if not shapes:
        raise ValueError("`shapes` must not be empty")
    if latent_dims is not None and latent_dims < 1:
        raise ValueError(f"`latent_dims` must be >= 1, got {latent_dims}")
    if filters is not None and filters < 1:
        raise ValueError(f"`filters` must be >= 1, got {filters}")
    if byte_budget is not None and byte_budget < 1:
        raise ValueError(f"`byte_budget` must be >= 1, got {byte_budget}")
    if weight_bytes not in (2, 4):
        raise ValueError(f"`weight_bytes` must be 2 or 4, got {weight_bytes}")
    c = OUTPUT_MODES[mode]
    same = len(set(shapes)) == 1
    if arch in VECTOR_ARCHS and not same:
        raise ValueError(f"`arch` {arch} needs images of one size; this folder mixes sizes (use --arch conv)")
    x_bits = sum(h * w for h, w in shapes) * c * 8
    h, w = shapes[0]
    y_vector = latent_dims or max(4, min(256, round(h * w * c / 16)))

    def build(arch: str, f: int, y: int | None = None) -> CodecDesign:
        y = y or y_vector
        if arch == "mlp":
            enc, dec = _mlp_pair(h, w, c, mode, y, f)
            return CodecDesign("mlp", mode, y, f, (h, w), 1, enc, dec)
        if arch == "dense":
            enc, dec, stride = _dense_pair(h, w, c, mode, y, f)
            return CodecDesign("dense", mode, y, f, (h, w), stride, enc, dec)
        y = latent_dims or 4 * c
        enc, dec = _conv_pair(c, mode, y, f)
        return CodecDesign("conv", mode, y, f, None, CONV_STRIDE, enc, dec)

    def fits(design: CodecDesign) -> bool:
        return design.decoder_scalars * 32 <= DECODER_BUDGET * x_bits

    def widest(arch: str, max_decoder_bytes: float = math.inf) -> CodecDesign | None:
        for f in MLP_WIDTHS if arch == "mlp" else FILTER_CHOICES:
            candidate = build(arch, f)
            if fits(candidate) and candidate.decoder_scalars * weight_bytes <= max_decoder_bytes:
                return candidate
        return None

    if arch == "auto":
        if not (same and h * w <= DENSE_MAX_PIXELS):
            arch = "conv"
        else:
            # The fully connected design is the fastest to train on a CPU; when
            # no width of it fits the budget (a small folder), the
            # convolutional one reaches the same quality with fewer weights.
            arch = "mlp" if widest("mlp") else "dense"
    narrowest = MLP_WIDTHS[-1] if arch == "mlp" else FILTER_CHOICES[-1]
    design = build(arch, filters) if filters is not None else widest(arch) or build(arch, narrowest)
    if byte_budget is None or not design.one_vector or _planned_bytes(design, len(shapes), weight_bytes) <= byte_budget:
        return design
    # A size target the default does not meet: the decoder takes at most
    # SIZE_DECODER_SHARE of the bytes, y what the rest buys; what the caller gave stays.
    if filters is None:
        design = widest(arch, SIZE_DECODER_SHARE * byte_budget) or build(arch, narrowest)
    if latent_dims is None:
        left_bits = 8 * (byte_budget - design.decoder_scalars * weight_bytes)
        y = int(min(design.latent_dims, max(2, round(left_bits / (len(shapes) * SIZE_BITS_PER_LATENT)))))
        design = build(arch, design.filters, y)
    return design


def _planned_bytes(design: CodecDesign, w: int, weight_bytes: int) -> float:
    """Decoder plus ``w`` latent vectors at ``SIZE_BITS_PER_LATENT`` bits each."""
    return design.decoder_scalars * weight_bytes + w * design.latent_dims * SIZE_BITS_PER_LATENT / 8
