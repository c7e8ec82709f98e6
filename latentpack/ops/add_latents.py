"""The new images' latents for ``latentpack add``: shaped for the stored decoder, started, fitted, rounded.

    new image (H, W) -> its latent shape: the decoder's input (mlp, dense: one size, the decoder's output)
                        or the grid whose output covers it (conv: ceil(H / factor))
                     -> a start: the latents of the nearest of up to `START_CANDIDATES` old images
                        (decoded with numpy), or the old latents' per-channel mean (grids)
                     -> fitted to the frozen decoder (`latentpack.codec.keras.fit_latents`, TensorFlow)
                     -> q = rint(z / step) at the archive's step (coded latents), or float32 as they are

The old images' latents are decoded once (`resolve_latents`) and never changed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from latentpack.codec.entropy.latent_coding import dequantize, quantize_latents
from latentpack.codec.runtime.reconstruct import ResolvedLatents, load_decoder
from latentpack.errors import OptionError
from latentpack.formats.decoder_spec import DecoderSpec, SpecError, layer_shapes
from latentpack.formats.schema import ArchiveContents, Latents
from latentpack.formats.validate import decoder_input
from latentpack.fs.folder import ImageFolder
from latentpack.fs.names import display_name
from latentpack.progress import ProgressFactory

__all__ = ["FittedLatents", "latent_shapes_for", "start_latents", "fit_new_latents", "START_CANDIDATES"]

#: Old images whose decoded latents are compared with each new image to choose its start.
START_CANDIDATES = 1024


@dataclass
class FittedLatents:
    """The new images' latents.

    Attributes:
        latents: Float32 values (``q * step`` when coded), offsets and shapes, new images only.
        q: Flat int32 integer latents (coded archives), else None.
        seconds: Time spent fitting.
        steps: Gradient steps taken per image.
    """

    latents: Latents
    q: np.ndarray | None
    seconds: float
    steps: int


def _full_input(spec: DecoderSpec) -> tuple:
    return (1,) * (3 - len(spec.input_shape)) + tuple(spec.input_shape)


def _output_of(spec: DecoderSpec, shape: tuple[int, int, int]) -> tuple[int, int]:
    out = layer_shapes(spec, decoder_input(spec, shape))[-1]
    return int(out[0]), int(out[1])


def latent_shapes_for(spec: DecoderSpec, staged: ImageFolder, archive: str) -> np.ndarray:
    """``(n, 3)`` int32 latent shape of each new image, refusing an image the decoder cannot make.

    Raises:
        OptionError: a fixed-size decoder whose output is not the image's size, naming both.
    """
    full = _full_input(spec)
    out = np.empty((len(staged), 3), dtype=np.int32)
    if None not in full:
        oh, ow = _output_of(spec, full)
        for i, im in enumerate(staged.images):
            if (im.height, im.width) != (oh, ow):
                raise OptionError(f"{archive}: image {display_name(im.name)!r} is {im.width}x{im.height}; this "
                                  f"archive's decoder makes {ow}x{oh} images (resize it, or compress a new archive)")
            out[i] = full
        return out
    c = int(full[2])
    fixed = [int(d) if d is not None else 1 for d in full[:2]]
    fh, fw = _output_of(spec, (fixed[0], fixed[1], c))
    for i, im in enumerate(staged.images):
        gh = fixed[0] if full[0] is not None else max(1, math.ceil(im.height / fh))
        gw = fixed[1] if full[1] is not None else max(1, math.ceil(im.width / fw))
        try:
            oh, ow = _output_of(spec, (gh, gw, c))
        except SpecError as err:
            raise OptionError(f"{archive}: image {display_name(im.name)!r} does not fit the decoder ({err})") from None
        if oh < im.height or ow < im.width:
            raise OptionError(f"{archive}: image {display_name(im.name)!r} is {im.width}x{im.height}, larger than "
                              f"this archive's decoder can make")
        out[i] = (gh, gw, c)
    return out


def _offsets(shapes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(shapes.astype(np.int64).prod(axis=1))]).astype(np.int64)


def start_latents(contents: ArchiveContents, old: ResolvedLatents, staged: ImageFolder, shapes: np.ndarray,
                  rows: list[int]) -> np.ndarray:
    """``(len(rows), *shape)`` float32 starts for new images ``rows`` (all of one latent shape).

    One latent vector per image: the latents of the old image whose decoding
    is nearest (of up to `START_CANDIDATES`, evenly spaced). A latent grid:
    the old latents' mean of each channel.
    """
    shape = tuple(int(d) for d in shapes[rows[0]])
    lat = old.latents
    w0 = len(lat)
    same = [i for i in range(w0) if tuple(int(d) for d in lat.shapes[i]) == shape]
    if shape[:2] != (1, 1) or not same:
        c = shape[2]
        mean = lat.values.reshape(-1, c).mean(axis=0) if lat.values.size else np.zeros(c, np.float32)
        return np.broadcast_to(mean.astype(np.float32), (len(rows), *shape)).copy()
    pick = np.asarray(same)[np.linspace(0, len(same) - 1, min(len(same), START_CANDIDATES)).astype(int)]
    z = np.stack([lat.get(int(i)) for i in pick]).astype(np.float32)
    x_hat = load_decoder(contents.decoder)(z)
    im = staged.images[rows[0]]
    cand = x_hat[:, : im.height, : im.width, :].reshape(len(pick), -1).astype(np.float64)
    new = np.stack([staged.working(i) for i in rows]).reshape(len(rows), -1).astype(np.float64) / 255.0
    dist = (new ** 2).sum(1)[:, None] - 2 * new @ cand.T + (cand ** 2).sum(1)[None, :]
    return z[np.argmin(dist, axis=1)]


def _lambda(training: dict) -> float | None:
    """The archive's rate-distortion lambda (its training record), or None (trained on the pixel error alone)."""
    rd = training.get("rate_distortion") if training.get("objective") == "rd" else None
    value = rd.get("lambda") if isinstance(rd, dict) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _scales(latents: Latents, c: int) -> tuple[float, ...]:
    """Each channel's mean absolute old latent: the Laplace scale the rate term charges fitted latents by."""
    if not latents.values.size or latents.values.size % c:
        return (1.0,) * c
    return tuple(float(v) for v in np.abs(latents.values.reshape(-1, c)).mean(axis=0))


def fit_new_latents(contents: ArchiveContents, old: ResolvedLatents, staged: ImageFolder, spec: DecoderSpec,
                    archive: str, steps: int, progress: ProgressFactory) -> FittedLatents:
    """Fit every new image's latents to the stored decoder, grouped by image and latent shape; round them."""
    import time

    shapes = latent_shapes_for(spec, staged, archive)  # refused before TensorFlow loads
    from latentpack.codec.keras.fit_latents import FitSettings, LatentFitter  # TensorFlow loads here

    offsets = _offsets(shapes)
    values = np.empty(int(offsets[-1]), dtype=np.float32)
    step = old.step if old.q is not None else None
    spread = float(np.std(old.latents.values)) if old.latents.values.size else 1.0
    settings = FitSettings(steps=steps, learning_rate=0.1 * max(spread, step or 0.0, 1e-3), step=step,
                           lmbda=_lambda(contents.training), scales=_scales(old.latents, int(shapes[0][2])))
    groups: dict[tuple, list[int]] = {}
    for i, im in enumerate(staged.images):
        groups.setdefault((im.height, im.width, *(int(d) for d in shapes[i])), []).append(i)
    t = time.perf_counter()
    fitter = LatentFitter(contents.decoder)
    with progress("Fitting latents", len(staged) * settings.steps) as bar:
        for rows in groups.values():
            start = start_latents(contents, old, staged, shapes, rows)
            z = fitter.fit(np.stack([staged.working(i) for i in rows]), start, settings, on_step=bar.update)
            for k, i in enumerate(rows):
                values[offsets[i] : offsets[i + 1]] = z[k].reshape(-1)
    seconds = time.perf_counter() - t
    q = None
    if step is not None:
        q = quantize_latents(values, step)
        values = dequantize(q, step)
    return FittedLatents(Latents(values=values, offsets=offsets, shapes=shapes), q, seconds, settings.steps)
