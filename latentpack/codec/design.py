"""Choose an autoencoder for a folder: architecture, latent size, capacity.

Pure Python (no TensorFlow): the choice depends only on the images' shapes
and modes, so it is cheap to compute and to test. The decoder is described in
the archive's declarative format (`latentpack.formats.decoder_spec`); the
encoder is described the same way but never stored.

The architectures (``mlp``, ``dense``, ``conv``) are modules of
`latentpack.codec.architectures`, each with its own layer diagram; this
module holds the planning they share: ``auto``'s pick, the decoder budget,
the width that fits and, with a size target, the latent size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

from latentpack.codec import architectures
from latentpack.errors import OptionError
from latentpack.formats.decoder_spec import OUTPUT_MODES, DecoderSpec, validate_architecture

__all__ = ["ARCHS", "SIZE_DECODER_SHARE", "SIZE_BITS_PER_LATENT", "CodecDesign", "design_codec"]

#: ``--arch`` values: ``auto`` and every registered architecture.
ARCHS = ("auto",) + architectures.names()
#: ``auto`` picks ``dense`` for equal-sized images up to this many pixels.
DENSE_MAX_PIXELS = 96 * 96
#: The decoder may cost at most this fraction of the raw size.
DECODER_BUDGET = 0.10
#: With a file-size target: the decoder may take at most this share of what
#: the image metadata leaves of it (the rest goes to the latents).
SIZE_DECODER_SHARE = 0.35
#: With a file-size target: coded bits planned per latent scalar (at the step
#: that costs about 0.1 dB, a trained latent takes 5 to 8 bits).
SIZE_BITS_PER_LATENT = 6.0
#: Rate-distortion training: ``y`` is this many times the default, up to `RD_MAX_LATENTS`.
RD_LATENT_FACTOR = 2
RD_MAX_LATENTS = 256
#: Estimating a rate-distortion archive before training (``--dry-run``): coded bits per latent
#: (the 70,000 MNIST digits at the default lambda: 477 bits for y=98).
RD_BITS_PER_LATENT = 4.9
#: A size target with rate-distortion training: ``y`` is at least the budget's latent bits over this.
RD_PLAN_BITS_PER_LATENT = 3.0


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

    @cached_property
    def decoder_spec(self) -> DecoderSpec:
        """The validated decoder description (validated once per design)."""
        return validate_architecture(self.decoder)

    @property
    def decoder_scalars(self) -> int:
        return self.decoder_spec.num_scalars

    @property
    def one_vector(self) -> bool:
        """True when every image has one latent vector (equal-sized images)."""
        return architectures.get(self.arch).one_vector

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Shape of the latent tensor of an image of this size."""
        if self.one_vector:
            return (1, 1, self.latent_dims)
        s = self.stride
        return (-(-height // s), -(-width // s), self.latent_dims)


def _check_arguments(shapes: Sequence[tuple[int, int]], arch: str, latent_dims: int | None, filters: int | None,
                     byte_budget: int | None, weight_bytes: int) -> None:
    if arch not in ARCHS:
        raise OptionError(f"`arch` must be one of {list(ARCHS)}, got {arch!r}")
    if not shapes:
        raise OptionError("`shapes` must not be empty")
    if latent_dims is not None and latent_dims < 1:
        raise OptionError(f"`latent_dims` must be >= 1, got {latent_dims}")
    if filters is not None and filters < 1:
        raise OptionError(f"`filters` must be >= 1, got {filters}")
    if byte_budget is not None and byte_budget < 1:
        raise OptionError(f"`byte_budget` must be >= 1, got {byte_budget}")
    if weight_bytes not in (2, 4):
        raise OptionError(f"`weight_bytes` must be 2 or 4, got {weight_bytes}")
    if arch != "auto" and architectures.get(arch).one_vector and len(set(shapes)) != 1:
        raise OptionError(f"`arch` {arch} needs images of one size; this folder mixes sizes (use --arch conv)")


@dataclass(frozen=True)
class _Planner:
    """Builds and sizes the designs of one folder (its first image's size, its mode, its raw bits)."""

    height: int
    width: int
    mode: str
    x_bits: int
    latent_dims: int | None
    weight_bytes: int

    def build(self, arch: str, width_choice: int, y: int | None = None) -> CodecDesign:
        """The design of ``arch`` at one width (``y``: latent size, default the architecture's)."""
        kind = architectures.get(arch)
        c = OUTPUT_MODES[self.mode]
        y = y or self.latent_dims or kind.default_latent_dims(self.height, self.width, c)
        enc, dec, stride = kind.pair(self.height, self.width, c, self.mode, y, width_choice)
        image_size = (self.height, self.width) if kind.one_vector else None
        return CodecDesign(arch, self.mode, y, width_choice, image_size, stride, enc, dec)

    def fits(self, design: CodecDesign) -> bool:
        return design.decoder_scalars * 32 <= DECODER_BUDGET * self.x_bits

    def widest(self, arch: str, max_decoder_bytes: float = math.inf) -> CodecDesign | None:
        """The widest design of ``arch`` within the decoder budget (and ``max_decoder_bytes``), if any."""
        for f in architectures.get(arch).widths:
            candidate = self.build(arch, f)
            if self.fits(candidate) and candidate.decoder_scalars * self.weight_bytes <= max_decoder_bytes:
                return candidate
        return None

    def narrowest(self, arch: str) -> CodecDesign:
        return self.build(arch, architectures.get(arch).widths[-1])


def design_codec(
    shapes: Sequence[tuple[int, int]],
    mode: str,
    *,
    arch: str = "auto",
    latent_dims: int | None = None,
    filters: int | None = None,
    byte_budget: int | None = None,
    weight_bytes: int = 4,
    rate_distortion: bool = False,
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
        arch: ``auto`` or a registered architecture (`latentpack.codec.architectures`).
        latent_dims: ``y`` (mlp, dense) or latent channels (conv); None picks.
        filters: Base width (mlp: hidden width); None picks from the budget.
        byte_budget: With a file-size target (one-vector architectures only):
            the bytes left for the decoder and the coded latents once the
            image metadata is paid. The decoder then also stays within
            ``SIZE_DECODER_SHARE`` of it, and ``y`` (unless given) is what
            the rest buys at ``SIZE_BITS_PER_LATENT`` bits per latent (at
            least 2, at most the default). A design that already fits is
            kept.
        weight_bytes: Bytes per stored decoder weight (4 float32, 2 float16).
        rate_distortion: The design is trained for rate and distortion
            (`latentpack.codec.rd`): ``y`` (unless given) is `RD_LATENT_FACTOR`
            times the architecture's default, at most `RD_MAX_LATENTS`, and a
            size target plans the decoder's share only (training spends the
            rate on the latents it needs; unused ones cost almost nothing).

    Returns:
        The design.

    Raises:
        OptionError: naming the argument that cannot be honoured.
    """
    _check_arguments(shapes, arch, latent_dims, filters, byte_budget, weight_bytes)
    same = len(set(shapes)) == 1
    h, w = shapes[0]
    x_bits = sum(a * b for a, b in shapes) * OUTPUT_MODES[mode] * 8
    plan = _Planner(h, w, mode, x_bits, latent_dims, weight_bytes)
    if arch == "auto":
        if not (same and h * w <= DENSE_MAX_PIXELS):
            arch = "conv"
        else:
            # The fully connected design is the fastest to train on a CPU; when
            # no width of it fits the budget (a small folder), the
            # convolutional one reaches the same quality with fewer weights.
            arch = "mlp" if plan.widest("mlp") else "dense"
    kind = architectures.get(arch)
    rd_plans_y = rate_distortion and latent_dims is None and kind.one_vector
    if rd_plans_y:
        base = kind.default_latent_dims(h, w, OUTPUT_MODES[mode])
        latent_dims = int(min(RD_MAX_LATENTS, max(8, RD_LATENT_FACTOR * base)))
        plan = _Planner(h, w, mode, x_bits, latent_dims, weight_bytes)
    design = plan.build(arch, filters) if filters is not None else plan.widest(arch) or plan.narrowest(arch)
    if byte_budget is not None and rd_plans_y:
        return _rd_sized(plan, design, arch, filters, len(shapes), byte_budget, weight_bytes)
    if byte_budget is None or not design.one_vector or _planned_bytes(design, len(shapes), weight_bytes) <= byte_budget:
        return design
    # A size target the default does not meet: the decoder takes at most
    # SIZE_DECODER_SHARE of the bytes, y what the rest buys; what the caller gave stays.
    if filters is None:
        design = plan.widest(arch, SIZE_DECODER_SHARE * byte_budget) or plan.narrowest(arch)
    if latent_dims is None and not rate_distortion:
        left_bits = 8 * (byte_budget - design.decoder_scalars * weight_bytes)
        y = int(min(design.latent_dims, max(2, round(left_bits / (len(shapes) * SIZE_BITS_PER_LATENT)))))
        design = plan.build(arch, design.filters, y)
    return design


def _rd_sized(plan: _Planner, design: CodecDesign, arch: str, filters: int | None, w: int, byte_budget: int,
              weight_bytes: int) -> CodecDesign:
    """A size target with rate-distortion training: the decoder within `SIZE_DECODER_SHARE` of the budget
    (unless ``filters`` is given), and ``y`` at least what the rest buys at `RD_PLAN_BITS_PER_LATENT` bits each:
    many latents coded coarsely beat a few coded finely."""
    if filters is None and design.decoder_scalars * weight_bytes > SIZE_DECODER_SHARE * byte_budget:
        design = plan.widest(arch, SIZE_DECODER_SHARE * byte_budget) or plan.narrowest(arch)
    left_bits = 8 * (byte_budget - design.decoder_scalars * weight_bytes)
    y = int(min(RD_MAX_LATENTS, round(left_bits / (w * RD_PLAN_BITS_PER_LATENT))))
    return plan.build(arch, design.filters, y) if y > design.latent_dims else design


def _planned_bytes(design: CodecDesign, w: int, weight_bytes: int) -> float:
    """Decoder plus ``w`` latent vectors at ``SIZE_BITS_PER_LATENT`` bits each."""
    return design.decoder_scalars * weight_bytes + w * design.latent_dims * SIZE_BITS_PER_LATENT / 8
