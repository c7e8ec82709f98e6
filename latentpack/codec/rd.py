"""Planning a rate-distortion training: lambda, what it is steered toward, and the step grid after it.

Pure Python (no TensorFlow). Rate-distortion training
(`latentpack.codec.keras.rate_distortion`) minimises
``bits / n + lambda * MSE`` (pixels in [0, 1], ``n`` samples per image), so
lambda is the exchange rate between a bit per sample and the squared error:

* no target: ``lambda`` is `DEFAULT_LAMBDA` (or ``--lambda``), held fixed;
* ``--quality DB``: lambda starts at `lambda_for_psnr` and is steered toward
  a training PSNR of DB + `PSNR_MARGIN` (rounding costs a little of what the
  noisy training sees), then the step is searched as before;
* ``--max-size``/``--ratio``: the bytes left after the decoder and the image
  metadata give a rate in bits per sample; lambda is steered toward
  `RATE_MARGIN` of it, and the step search then keeps the file within the
  budget (it is never exceeded).

Latents are trained in units of the step, so the archive codes them at step
1; `rd_step_grid` is the grid rate control searches around it.
"""
from __future__ import annotations

import math

__all__ = ["DEFAULT_LAMBDA", "lambda_for_psnr", "steering_target", "rd_step_grid", "PSNR_MARGIN", "RATE_MARGIN",
           "OBJECTIVES"]

#: ``--objective``: rate-distortion training (the lossy default), or pixel error alone.
OBJECTIVES = ("rd", "mse")
#: Lambda without a target: 28.4 dB mean PSNR on the 70,000 MNIST digits (README, "Results on MNIST").
DEFAULT_LAMBDA = 2000.0
#: A quality target is steered this many dB above it (rounding the latents costs about this).
PSNR_MARGIN = 0.3
#: A size target is steered to this fraction of the rate it leaves (tables, rounding, headroom).
RATE_MARGIN = 0.95
#: Reference point of `lambda_for_psnr`: lambda 1000 gave a training PSNR near 27 dB on MNIST.
_REF_LAMBDA, _REF_PSNR = 1000.0, 27.0


def lambda_for_psnr(psnr_db: float) -> float:
    """A first lambda for a PSNR target: lambda grows as 1/MSE (ten times per 10 dB)."""
    return _REF_LAMBDA * 10.0 ** ((psnr_db - _REF_PSNR) / 10.0)


def steering_target(*, psnr: float | None = None, latent_bytes: float | None = None,
                    samples: int | None = None) -> tuple[str, float] | None:
    """What lambda is steered toward: ``("psnr", dB)``, ``("bits_per_sample", b)``, or None (held fixed).

    Args:
        psnr: A quality target in dB.
        latent_bytes: With a size target: the bytes the coded latents may take.
        samples: The folder's pixel samples (``x_bits / 8``).
    """
    if psnr is not None:
        return ("psnr", float(psnr) + PSNR_MARGIN)
    if latent_bytes is not None:
        if not samples or samples < 1:
            raise ValueError(f"`samples` must be >= 1 with `latent_bytes`, got {samples!r}")
        return ("bits_per_sample", max(1e-4, RATE_MARGIN * 8.0 * max(latent_bytes, 0.0) / samples))
    return None


def rd_step_grid(latent_max: float | None = None, *, coarsest: float = 16.0, finest: float = 0.25,
                 per_octave: int = 4) -> list[float]:
    """Steps around the trained step 1, coarsest first (quarter octaves from ``coarsest`` to ``finest``).

    With ``latent_max``, steps so fine that a latent would be clipped to the
    coder's alphabet are left out (as in `latentpack.codec.rate.step_grid`).
    """
    from latentpack.codec.entropy.latent_coding import MAX_SYMBOLS

    top, bottom = round(math.log2(coarsest) * per_octave), round(math.log2(finest) * per_octave)
    grid = [2.0 ** (k / per_octave) for k in range(top, bottom - 1, -1)]
    if latent_max is not None and math.isfinite(latent_max) and latent_max > 0:
        limit = latent_max / (MAX_SYMBOLS // 2 - 1)
        grid = [g for g in grid if g >= limit] or grid[:1]
    return grid
