"""`CompressOptions`: every option of ``compress``, its default and its checks (pure Python).

`latentpack.ops.compress` runs a compression with one of these;
``compress_folder`` (and ``latentpack.compress``) take the same names as
keywords.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from latentpack.codec import rd
from latentpack.codec.design import ARCHS
from latentpack.codec.rate import RateTarget
from latentpack.errors import OptionError
from latentpack.formats.schema import WEIGHT_DTYPES
from latentpack.formats.validate import DIGEST_BYTES
from latentpack.ops.compress_pixels import LOSSLESS_CODERS, uses_pixel_model
from latentpack.progress import ProgressFactory

__all__ = ["CompressOptions", "DEFAULT_BATCH_SIZE", "CODES", "DEFAULT_DIGEST_BYTES", "DEFAULT_LOSSLESS_DIGEST_BYTES"]

DEFAULT_BATCH_SIZE = 128
#: Where latents come from: an encoder, or a rule applied to the image's index.
CODES = ("encoder", "index")
#: Stored bytes of each image's sha256 by default: 2 in lossy archives (format 1.4), whose images
#: are not expected to match them (they name the original, for a check against a folder); 4 in
#: lossless ones, whose every image is checked at extraction. Both keep /images/sha256_all over
#: all full digests (30 and 28 bytes less per image than full digests: on 28x28 digits the
#: difference between beating xz and not).
DEFAULT_DIGEST_BYTES = 2
DEFAULT_LOSSLESS_DIGEST_BYTES = 4


@dataclass(frozen=True)
class CompressOptions:
    """How to compress a folder (the keyword arguments of `compress_folder`).

    Attributes:
        latent_dims: ``y`` for mlp and dense, latent channels for conv; None picks.
        epochs: Training epochs; None picks about 24,000 (mlp) or 12,000
            optimiser steps.
        batch_size: Images (or patches) per training step.
        arch: ``auto`` or a registered architecture (``mlp``, ``dense``, ``conv``).
        filters: Decoder width; None picks from the size budget.
        seed: Random seed (same folder and seed give the same archive
            contents on the same machine).
        force: Replace an existing archive (never an input image: an
            existing file inside ``folder`` must be a latentpack archive).
        skip_bad: Leave out the files that cannot be used instead of
            failing; their names and reasons go into the archive's training
            record (``skipped``).
        lossless: Store every image bit-exact.
        lossless_coder: ``pixel`` (a learned per-pixel model), ``residual`` (an autoencoder's
            prediction plus residuals), ``auto``: ``pixel`` unless an autoencoder option is given.
        codes: ``encoder`` (train an encoder, store coded latents) or
            ``index`` (image i's code is generated from i and not stored;
            equal-sized images only).
        latent_step: Quantisation step of the latents; None: 1 with rate-distortion training, else chosen.
        digest_bytes: Bytes of each image's sha256 kept (2, 4, 8, 16 or 32; None: 4 if lossless, else 2;
            below 32 a digest of all full digests is kept too).
        quality: Target mean PSNR in dB: lambda is steered toward it, then the
            coarsest latent step that reaches it (see `latentpack.codec.rate`).
        max_bytes: Target file size: the finest latent step whose archive
            is at most this many bytes.
        ratio: Target ratio to the raw pixels (``max_bytes = raw / ratio``).
        weight_dtype: How the decoder weights are stored: ``float32``, or
            ``float16`` (half the bytes; format 1.2); None picks ``float16``
            for rate-distortion training or a size target, else ``float32``. The weights are rounded
            right after training, so the latent step, the lossless
            prediction and the recorded PSNR all use what ``extract`` runs.
        refine_steps: Steps of decoder refinement on the quantised latents
            once the step is chosen (``mlp`` and ``dense`` with an encoder);
            None: a tenth of the training steps; 0: none. The refined
            decoder is kept only if it lowers the folder's error.
        objective: ``rd`` (lossy default: train for rate plus lambda times
            distortion, see `latentpack.codec.rd`) or ``mse`` (pixel error
            alone, the step chosen afterwards).
        lmbda: Lambda of rate-distortion training (None: `latentpack.codec.rd.DEFAULT_LAMBDA`,
            or steered toward a quality or size target).
        progress: Optional ``progress(label, total)`` factory.

    Raises:
        OptionError: from `check`, naming the option that cannot work.
    """

    latent_dims: int | None = None
    epochs: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    arch: str = "auto"
    filters: int | None = None
    seed: int = 0
    force: bool = False
    skip_bad: bool = False
    lossless: bool = False
    codes: str = "encoder"
    latent_step: float | None = None
    digest_bytes: int | None = None
    quality: float | None = None
    max_bytes: int | None = None
    ratio: float | None = None
    weight_dtype: str | None = None
    refine_steps: int | None = None
    lossless_coder: str = "auto"
    objective: str = "rd"
    lmbda: float | None = None
    progress: ProgressFactory | None = None

    @property
    def rate_distortion(self) -> bool:
        """True when the autoencoder is trained for rate plus lambda times distortion (lossy, with an encoder)."""
        return self.objective == "rd" and self.codes == "encoder" and not self.lossless

    @property
    def rate_target(self) -> RateTarget:
        """The quality or size target (checked)."""
        return RateTarget(psnr=self.quality, max_bytes=self.max_bytes, ratio=self.ratio)

    @property
    def stored_weight_dtype(self) -> str:
        """``weight_dtype``, or its default: ``float16`` for rate-distortion training or a size target, else ``float32``."""
        if self.weight_dtype is not None:
            return self.weight_dtype
        # the decoder's bytes are part of the rate: float16 weights cost no measurable PSNR (README)
        target = self.rate_target
        return "float16" if self.rate_distortion or (target.active and target.psnr is None) else "float32"

    @property
    def stored_digest_bytes(self) -> int:
        """``digest_bytes``, or its default: `DEFAULT_LOSSLESS_DIGEST_BYTES` when lossless, else `DEFAULT_DIGEST_BYTES`."""
        if self.digest_bytes is not None:
            return self.digest_bytes
        return DEFAULT_LOSSLESS_DIGEST_BYTES if self.lossless else DEFAULT_DIGEST_BYTES

    def check(self) -> None:
        """Refuse option values that cannot work (the first one met, as `compress_folder` documents)."""
        if self.arch not in ARCHS:
            raise OptionError(f"`arch` must be one of {list(ARCHS)}, got {self.arch!r}")
        if self.batch_size < 1:
            raise OptionError(f"`batch_size` must be >= 1, got {self.batch_size}")
        if self.epochs is not None and self.epochs < 1:
            raise OptionError(f"`epochs` must be >= 1, got {self.epochs}")
        if self.codes not in CODES:
            raise OptionError(f"`codes` must be one of {list(CODES)}, got {self.codes!r}")
        if self.latent_step is not None and not (self.latent_step > 0 and np.isfinite(self.latent_step)):
            raise OptionError(f"`latent_step` must be a positive number, got {self.latent_step}")
        if self.stored_digest_bytes not in DIGEST_BYTES:
            raise OptionError(f"`digest_bytes` must be one of {list(DIGEST_BYTES)}, got {self.digest_bytes}")
        if self.refine_steps is not None and self.refine_steps < 0:
            raise OptionError(f"`refine_steps` must be >= 0, got {self.refine_steps}")
        if self.lossless_coder not in LOSSLESS_CODERS:
            raise OptionError(f"`lossless_coder` must be one of {list(LOSSLESS_CODERS)}, got {self.lossless_coder!r}")
        target = self.rate_target
        if self.stored_weight_dtype not in WEIGHT_DTYPES:
            raise OptionError(f"`weight_dtype` must be one of {list(WEIGHT_DTYPES)}, got {self.weight_dtype!r}")
        if target.active and (self.lossless or self.codes == "index" or self.latent_step is not None):
            raise OptionError("a rate target (quality, max_bytes, ratio) needs lossy coded latents: "
                              "not with `lossless`, `codes` index or `latent_step`")
        if self.objective not in rd.OBJECTIVES:
            raise OptionError(f"`objective` must be one of {list(rd.OBJECTIVES)}, got {self.objective!r}")
        if self.lmbda is not None:
            if not (math.isfinite(self.lmbda) and self.lmbda > 0):
                raise OptionError(f"`lmbda` must be a positive number, got {self.lmbda}")
            if not self.rate_distortion:
                raise OptionError("`lmbda` is for rate-distortion training: lossy, with an encoder, objective rd")
        uses_pixel_model(self)  # refuses the pixel coder with an autoencoder's options
