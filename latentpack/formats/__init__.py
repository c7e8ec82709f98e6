"""The latentpack archive: one HDF5 file holding a decoder and the latents, or (1.3) a pixel model.

This package is the format's reference implementation (docs/FORMAT.md is
the contract). It needs h5py and numpy only; it never imports TensorFlow::

    ArchiveContents -> write_archive(path) -> NAME.h5 -> open_archive / read_archive
                                                           -> ArchiveContents

Each element of an archive (header, decoder, each latents encoding, images,
quality, training, lossless, pixels) is one module in `latentpack.formats.elements`
that declares its datasets and attributes once and registers itself in
`latentpack.formats.registry`; the reader, the writer and the checks walk
those declarations.
"""
from __future__ import annotations

from latentpack.formats.decoder_spec import DecoderSpec, LayerSpec, SpecError, validate_architecture
from latentpack.formats.errors import ArchiveError, CorruptArchiveError, NotAnArchiveError, UnsupportedVersionError
from latentpack.formats.reader import Archive, open_archive, read_archive, read_header
from latentpack.formats.schema import (
    ENCODING_TYPE,
    FORMAT_VERSION,
    SUPPORTED_VERSIONS,
    WEIGHT_DTYPES,
    ArchiveContents,
    DecoderWeights,
    Header,
    ImageTable,
    IndexCodes,
    Latents,
    LosslessResiduals,
    PixelModelCoding,
    Quality,
    QuantizedLatents,
    compute_header,
)
from latentpack.formats.writer import write_archive

__all__ = [
    "ENCODING_TYPE",
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "WEIGHT_DTYPES",
    "Header",
    "DecoderWeights",
    "ImageTable",
    "Latents",
    "QuantizedLatents",
    "IndexCodes",
    "LosslessResiduals",
    "PixelModelCoding",
    "Quality",
    "ArchiveContents",
    "compute_header",
    "DecoderSpec",
    "LayerSpec",
    "SpecError",
    "validate_architecture",
    "ArchiveError",
    "NotAnArchiveError",
    "UnsupportedVersionError",
    "CorruptArchiveError",
    "Archive",
    "open_archive",
    "read_archive",
    "read_header",
    "write_archive",
]
