"""The in-memory model of a latentpack archive (format versions 1.0 to 1.5).

These small dataclasses are what `latentpack.codec` hands to
`latentpack.formats` and what the reader hands back. They hold plain Python
values and numpy arrays only; nothing here imports TensorFlow. How each one
is laid out on disk is declared once, by its element in
`latentpack.formats.elements` (docs/FORMAT.md is the contract). The header
and its arithmetic are `latentpack.formats.accounting`'s (re-exported here).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentpack.formats.accounting import Header, compute_header
from latentpack.formats.additions import Additions

__all__ = [
    "ENCODING_TYPE",
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "Header",
    "DecoderWeights",
    "ImageTable",
    "Latents",
    "QuantizedLatents",
    "IndexCodes",
    "LosslessResiduals",
    "PixelModelCoding",
    "Quality",
    "Additions",
    "ArchiveContents",
    "compute_header",
    "INDEX_CODE_GENERATOR",
    "WEIGHT_BITS",
    "WEIGHT_DTYPES",
]

#: Root attribute ``encoding-type`` of every latentpack archive.
ENCODING_TYPE = "latentpack-archive"
#: Newest format version this code writes (it writes the oldest version that
#: holds an archive's features: see `ArchiveContents.format_version`).
FORMAT_VERSION = "1.5"
#: Format versions this code reads (``(major, minor)`` tuples).
SUPPORTED_VERSIONS = ((1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (1, 5))
#: Bits one stored decoder weight takes, by storage dtype: float32, or (1.2) IEEE half precision.
WEIGHT_BITS = {"float32": 32, "float16": 16}
#: How decoder weights may be stored.
WEIGHT_DTYPES = tuple(WEIGHT_BITS)
#: The one rule that generates ``--codes index`` latents (see `latentpack.codec.index_codes`).
INDEX_CODE_GENERATOR = "splitmix64-sum4"


@dataclass
class DecoderWeights:
    """The decoder: a declarative description plus float32 weights.

    Attributes:
        architecture: The decoder description (a JSON-able dict; see
            `latentpack.formats.decoder_spec`).
        weights: ``{layer_name: [(weight_name, float32 array), ...]}`` in layer
            order; layers without weights are absent.
        weight_dtype: How the weights are stored: ``"float32"``, or (1.2)
            ``"float16"``, in which case every weight in ``weights`` is a
            float32 array holding float16 values exactly (see `as_stored`).
    """

    architecture: dict[str, Any]
    weights: dict[str, list[tuple[str, np.ndarray]]]
    weight_dtype: str = "float32"

    @property
    def architecture_json(self) -> str:
        return json.dumps(self.architecture, sort_keys=True)

    @property
    def num_scalars(self) -> int:
        return int(sum(a.size for ws in self.weights.values() for _, a in ws))

    @property
    def stored_bits(self) -> int:
        """Payload bits of the weights as stored (32 or 16 per scalar)."""
        return self.num_scalars * WEIGHT_BITS[self.weight_dtype]

    def as_stored(self, weight_dtype: str) -> DecoderWeights:
        """These weights as they will be stored and read back: rounded to `weight_dtype`, kept as float32.

        Rounding to float16 and back is exact on the way back, so the result
        is what a reader of the archive runs; measure quality with it.

        Args:
            weight_dtype: One of `WEIGHT_DTYPES`.

        Returns:
            A new `DecoderWeights` with ``weight_dtype`` set.

        Raises:
            ValueError: an unknown `weight_dtype`, or a weight that is not
                finite or outside float16's range (the message names its
                HDF5 path).
        """
        from latentpack.formats.elements.decoder import round_weights

        return round_weights(self, weight_dtype)


@dataclass
class ImageTable:
    """Per-image metadata, one row per image, in archive order.

    Attributes:
        names: Relative POSIX paths (UTF-8), unique.
        shapes: ``(w, 3)`` int32: height, width, channels of the original.
        modes: Pillow mode of each original (``L``, ``RGB``, ``P``, ...).
        formats: Pillow format of each source file (``PNG``, ``JPEG``, ...).
        sha256: ``(w, k)`` uint8 digests of the original pixels (see
            FORMAT.md for exactly what is hashed): ``k = 32`` in 1.0; in 1.1
            ``k`` may be 4, 8 or 16 (the digests' first bytes), in 1.4 also 2.
        palette_index: ``(w,)`` int32 row in ``palettes`` or -1.
        palettes: ``(n, 256, 4)`` uint8 RGBA palettes of ``P`` images.
        file_bytes: ``(w,)`` int64 size of each source file on disk; (1.4) -1
            where not recorded.
        sha256_all: (1.1) ``(32,)`` uint8 sha256 of the concatenated full
            32-byte digests of all images, in order; required when ``k < 32``.
    """

    names: list[str]
    shapes: np.ndarray
    modes: list[str]
    formats: list[str]
    sha256: np.ndarray
    palette_index: np.ndarray
    palettes: np.ndarray
    file_bytes: np.ndarray
    sha256_all: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class QuantizedLatents:
    """(1.1) Latents quantised to integers and range-coded.

    Latent ``q`` means ``q * step``. Symbol ``q - qmin`` of a latent whose
    channel (index along the last axis) is ``k`` is coded with row
    ``table_of_channel[k]`` of ``counts``; symbols are coded in the order
    (row, flat position) in one stream (docs/FORMAT.md, "Coded latents").

    Attributes:
        step: Quantisation step (positive, finite).
        qmin: Value of symbol 0.
        table_of_channel: ``(c,)`` int32 row of each channel.
        counts: ``(rows, K)`` uint16 counts.
        stream: ``(n,)`` uint32 range-coder words.
    """

    step: float
    qmin: int
    table_of_channel: np.ndarray
    counts: np.ndarray
    stream: np.ndarray

    @property
    def stored_bits(self) -> int:
        """Payload bits: stream, tables, channel map, step and qmin (as the coded-latents element counts them)."""
        from latentpack.formats.registry import element

        empty = np.zeros(0)
        return element("latents", "range-categorical").bits_of(Latents(empty, empty, empty, quantized=self))


@dataclass
class IndexCodes:
    """(1.1) Latents not stored: image ``i``'s code is generated from ``i`` (``--codes index``).

    Attributes:
        seed: Seed of the generator.
        step: Real value of one generated unit.
    """

    seed: int
    step: float


@dataclass
class PixelModelCoding:
    """(1.3) Every image's working pixels range-coded under a learned per-pixel model (``/pixels``).

    An archive with this element stores no decoder and no latents: the model
    predicts each sample from the samples already decoded around it
    (docs/FORMAT.md, "Pixel model"; `latentpack.codec.pixel_model`).

    Attributes:
        working_mode: ``L``, ``LA``, ``RGB`` or ``RGBA``: what the samples are.
        rows: Rows above a sample in its causal window.
        cols: Columns on each side of a sample in its window.
        channels: Samples per pixel (as ``working_mode`` has).
        components: Logistic components of the mixture.
        position: Whether the sample's position in its image is an input.
        hidden: ``(L,)`` int32 widths of the hidden layers.
        shifts: ``(L+1,)`` int32 fractional bits of each layer's kernel.
        kernels: int16, each layer's ``(inputs, outputs)`` kernel in C order, layer after layer.
        biases: int32, each layer's biases, layer after layer.
        order: ``(w,)`` int64 image indices in coding order (grouped by shape).
        block_bounds: ``(blocks+1,)`` int64 positions in ``order`` where each block starts.
        stream_offsets: ``(blocks+1,)`` int64 word offset of each block's stream.
        stream: ``(n,)`` uint32 range-coder words of all blocks.
        exception_index: ``(w,)`` int32 row in the exceptions, or -1.
        exception_offsets: ``(e+1,)`` int64 byte offset of each exception.
        exception_bytes: ``(m,)`` uint8 raw pixels (Pillow ``tobytes``) of the
            images that cannot be rebuilt from their working pixels.
        refinement: (1.5) The adaptive refinement on top of the mixture
            (``"node-context-counts"``), or None (1.3: the mixture alone).
    """

    working_mode: str
    rows: int
    cols: int
    channels: int
    components: int
    position: bool
    hidden: np.ndarray
    shifts: np.ndarray
    kernels: np.ndarray
    biases: np.ndarray
    order: np.ndarray
    block_bounds: np.ndarray
    stream_offsets: np.ndarray
    stream: np.ndarray
    exception_index: np.ndarray
    exception_offsets: np.ndarray
    exception_bytes: np.ndarray
    refinement: str | None = None

    @property
    def model_scalars(self) -> int:
        """Weights of the model (kernels and biases): its ``z`` is 32 bits each."""
        return int(np.size(self.kernels)) + int(np.size(self.biases))

    @property
    def model_bits(self) -> int:
        """Bits of the model as stored (16 per kernel entry, 32 per bias): the header's ``stored_decoder_bits``."""
        return 16 * int(np.size(self.kernels)) + 32 * int(np.size(self.biases))

    @property
    def residual_bits(self) -> int:
        """The header's ``residual_bits``: every other dataset of ``/pixels`` (as the pixels element counts them)."""
        from latentpack.formats.registry import element

        return element("pixels").bits_of(self)


@dataclass
class LosslessResiduals:
    """(1.1) What makes decoding exact: range-coded pixels given a fixed-point prediction.

    Attributes:
        act_bits: Fractional bits of the fixed-point activations.
        acc_bits: Fractional bits of the fixed-point accumulators.
        thresholds: ``(255,)`` int64 last-layer thresholds (non-decreasing).
        pred_levels: Buckets of the predicted value in a context.
        neighbour_levels: Buckets of each neighbour in a context.
        counts: ``(pred_levels * neighbour_levels**2, 256)`` uint16 counts.
        block_bounds: ``(blocks+1,)`` int64 image index where each block starts.
        stream_offsets: ``(blocks+1,)`` int64 word offset of each block's stream.
        stream: ``(n,)`` uint32 range-coder words of all blocks.
        exception_index: ``(w,)`` int32 row in the exceptions, or -1.
        exception_offsets: ``(e+1,)`` int64 byte offset of each exception.
        exception_bytes: ``(m,)`` uint8 raw pixels (Pillow ``tobytes``) of the
            images that cannot be rebuilt from their working pixels.
        refinement: (1.5) The adaptive refinement on top of the mixture
            (``"node-context-counts"``), or None (1.3: the mixture alone).
    """

    act_bits: int
    acc_bits: int
    thresholds: np.ndarray
    pred_levels: int
    neighbour_levels: int
    counts: np.ndarray
    block_bounds: np.ndarray
    stream_offsets: np.ndarray
    stream: np.ndarray
    exception_index: np.ndarray
    exception_offsets: np.ndarray
    exception_bytes: np.ndarray

    @property
    def stored_bits(self) -> int:
        """Payload bits: streams, tables, thresholds, block index and exceptions (as the lossless element counts them)."""
        from latentpack.formats.registry import element

        return element("lossless").bits_of(self)


@dataclass
class Latents:
    """One latent tensor per image, stored flat.

    Image ``i`` owns ``values[offsets[i]:offsets[i+1]]`` reshaped to
    ``shapes[i]`` (``(y,)`` padded as ``(1, 1, y)`` for the dense
    architecture, ``(gh, gw, c)`` for the convolutional one). In 1.1 the
    values may instead be ``quantized`` (coded) or generated (``index_codes``);
    ``values`` is then empty until the codec decodes them.
    """

    values: np.ndarray  # float32, (total,) or (0,) when quantized/generated
    offsets: np.ndarray  # int64, (w+1,)
    shapes: np.ndarray  # int32, (w, 3)
    quantized: QuantizedLatents | None = None
    index_codes: IndexCodes | None = None

    @property
    def coding(self) -> str:
        """``float32`` (1.0), ``range-categorical`` or ``index``."""
        if self.quantized is not None:
            return "range-categorical"
        if self.index_codes is not None:
            return "index"
        return "float32"

    def __len__(self) -> int:
        return int(len(self.offsets) - 1)

    def get(self, i: int) -> np.ndarray:
        s = self.shapes[i]
        return self.values[self.offsets[i] : self.offsets[i + 1]].reshape(int(s[0]), int(s[1]), int(s[2]))

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class Quality:
    """Reconstruction quality measured at compress time."""

    psnr: np.ndarray  # float64, (w,); inf where reconstruction is exact

    @property
    def mean_psnr(self) -> float:
        finite = self.psnr[np.isfinite(self.psnr)]
        if len(self.psnr) and len(finite) == 0:
            return float("inf")
        return float(np.mean(finite)) if len(finite) else float("nan")

    @property
    def min_psnr(self) -> float:
        return float(np.min(self.psnr)) if len(self.psnr) else float("nan")


@dataclass
class ArchiveContents:
    """Everything an archive holds, as written or as read back.

    ``decoder`` and ``latents`` are None exactly when ``pixels`` (1.3) is
    given: the pixel model alone codes the pixels. ``compact_metadata``
    (default) writes ``/images`` and ``/quality`` in their 1.4 layouts
    (names front-coded and deflated, shared columns stored once, PSNRs in
    64ths of a dB); False writes the 1.0 to 1.3 layouts, which older
    readers read (what the reader returns leaves it True). ``additions``
    (1.5) records the images added since the archive was written.
    """

    header: Header
    decoder: DecoderWeights | None
    latents: Latents | None
    images: ImageTable
    quality: Quality
    training: dict[str, Any] = field(default_factory=dict)
    writer: str = ""
    created: str = ""
    lossless: LosslessResiduals | None = None
    pixels: PixelModelCoding | None = None
    compact_metadata: bool = True
    additions: Additions | None = None

    @property
    def format_version(self) -> tuple[int, int]:
        """The format version writers write for these contents: the newest of their elements' layouts.

        Each element's layout is the oldest that holds it (1.4 for compact
        image metadata, 1.3 for a pixel model, 1.2 for float16 weights, 1.1 for coded or generated latents, lossless residuals,
        short digests or a stored-bits header, else 1.0).
        """
        from latentpack.formats.registry import elements, version_tuple

        return max(version_tuple(el.version(el.value(self))) for el in elements() if el.holds(self))
