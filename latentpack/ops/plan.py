"""Plan a compression before paying for it: ``compress --dry-run``, and the plan line ``compress`` prints.

    folder -> check every file (nothing staged)                         latentpack.fs.folder.check_folder
           -> design: arch, y, width (pixel model: width, steps)         latentpack.codec.design
           -> epochs and steps (TensorFlow from here on)                 latentpack.codec.keras.train
           -> time a handful of steps on this machine (and of refinement's)  latentpack.codec.keras.timing
           -> time encoding and measuring a sample of images (and the learned density's refit)
           -> estimates: training time, the stages after it, archive size

Nothing is written. The estimate of the archive's size is a plan, not a
measurement: decoder bytes as stored, `SIZE_BITS_PER_LATENT` bits per coded
latent (the lossy step costs about 0.1 dB; trained latents take 5 to 8 bits),
and the image metadata (`latentpack.codec.assemble.metadata_estimate`); a size
target is its own estimate; a lossless archive's pixel code is not estimated.
"""
from __future__ import annotations

import importlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentpack.codec.assemble import metadata_estimate
from latentpack.codec.design import RD_BITS_PER_LATENT, SIZE_BITS_PER_LATENT, CodecDesign, design_codec
from latentpack.fs.folder import ImageFolder, check_folder, check_output_path
from latentpack.fs.images import NATURAL_CHANNELS
from latentpack.progress import ProgressFactory, null_progress

__all__ = ["CompressPlan", "design_for", "autoencoder_plan", "pixel_plan", "plan_compression", "report",
           "report_plan"]

#: The logger every stage reports to (the command line shows INFO by default, DEBUG with -v).
report = logging.getLogger("latentpack")


@dataclass
class CompressPlan:
    """What a compression would train and what it should cost.

    Attributes:
        coder: ``autoencoder`` or ``pixel-model``.
        arch: ``mlp``, ``dense``, ``conv`` or ``pixel-model``.
        latent_dims: y (latent channels for conv; 0 for the pixel model).
        filters: The decoder's (or pixel model's hidden) width.
        decoder_bytes: The decoder's (or pixel model's) weights as stored.
        weight_dtype: How they are stored.
        epochs: Passes over the data.
        steps: Optimiser steps of training (``epochs`` x steps per epoch).
        batch: What one step sees (``128 images``, ``8,192 samples``).
        refine_steps: Steps of decoder refinement after training (0: none).
        w: Images.
        raw_bytes: Their raw size (height x width x channels).
        folder_bytes: The files' size on disk.
        skipped: Bad files left out with ``--skip-bad``.
        estimated_bytes: The archive's planned size (None: not estimated).
        check_seconds: Time the check of the folder took (dry run).
        seconds_per_step: Measured on this machine (dry run).
        timed_steps: Steps timed.
        device: What trained them (``CPU (x86_64)``, ``GPU:0 (...)``).
        startup_seconds: TensorFlow's start-up, measured (compress pays it too).
        setup_seconds: Training's set-up (building the graph, starting the data), measured.
        refine_seconds: Refinement (its steps, its set-up, the folder's error before and after), planned
            from timed steps and a timed sample.
        after_seconds: Encoding every image (after rate-distortion training, with the learned density's
            refit: `predicted_bits`) and measuring quality (once per archive assembled: more than once
            with a size or quality target), planned from a timed sample.
        layers: The decoder's layers, one short text each (``-v``).
    """

    coder: str
    arch: str
    latent_dims: int
    filters: int
    decoder_bytes: int
    weight_dtype: str
    epochs: int
    steps: int
    batch: str
    refine_steps: int
    w: int
    raw_bytes: int
    folder_bytes: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    estimated_bytes: int | None = None
    check_seconds: float | None = None
    seconds_per_step: float | None = None
    timed_steps: int = 0
    device: str | None = None
    startup_seconds: float = 0.0
    setup_seconds: float = 0.0
    refine_seconds: float = 0.0
    after_seconds: float = 0.0
    layers: list[str] = field(default_factory=list)

    @property
    def training_seconds(self) -> float | None:
        """Training at the timed rate, with its set-up (None before timing)."""
        if self.seconds_per_step is None:
            return None
        return self.seconds_per_step * self.steps + self.setup_seconds

    @property
    def total_seconds(self) -> float | None:
        """Training, refinement, encoding and measuring, TensorFlow's start-up and reading the folder
        (checked and staged: about twice the check)."""
        if self.training_seconds is None:
            return None
        return (self.training_seconds + self.refine_seconds + self.after_seconds + self.startup_seconds
                + 2 * (self.check_seconds or 0.0))

    def line(self) -> str:
        """The one plan line ``compress`` prints before it trains."""
        refine = f", then {self.refine_steps:,} refinement steps" if self.refine_steps else ""
        if self.coder == "pixel-model":
            what = f"Plan: pixel model (lossless), width {self.filters}"
        else:
            what = f"Plan: {self.arch}, y={self.latent_dims}, width {self.filters}"
        return (f"{what}, decoder {self.decoder_bytes:,} bytes ({self.weight_dtype}), {self.epochs:,} epochs = "
                f"{self.steps:,} steps of {self.batch}{refine}; {self.w:,} images")

    def detail_lines(self) -> list[str]:
        """What ``-v`` adds to the plan: the decoder's layers and the data's sizes."""
        lines = [f"Decoder: {' -> '.join(self.layers)}"] if self.layers else []
        return lines + [f"Data: {self.w:,} images, raw {self.raw_bytes:,} bytes, folder {self.folder_bytes:,} bytes"
                        + (f", {len(self.skipped)} skipped" if self.skipped else "")]

    def estimate_lines(self) -> list[str]:
        """What ``--dry-run`` adds: the timed rate, the training time and the archive's size."""
        lines = []
        if self.seconds_per_step is not None:
            lines.append(f"Timed: {self.seconds_per_step * 1000:.1f} ms per step over {self.timed_steps} steps "
                         f"on {self.device}")
            after = self.refine_seconds + self.after_seconds
            then = (f", then about {duration(after)} for {'refinement, ' if self.refine_seconds else ''}"
                    "encoding and measuring") if after else ""
            lines.append(f"Estimate: training about {duration(self.training_seconds)}{then}, in all about "
                         f"{duration(self.total_seconds)} (checking the folder took {duration(self.check_seconds)}, "
                         f"TensorFlow's start-up {duration(self.startup_seconds)})")
        if self.estimated_bytes is None:
            lines.append("Estimate: archive size not estimated (a lossless code depends on the pixels); "
                         f"raw {self.raw_bytes:,} bytes, folder {self.folder_bytes:,} bytes")
        else:
            lines.append(f"Estimate: archive about {self.estimated_bytes:,} bytes "
                         f"({self.raw_bytes / max(self.estimated_bytes, 1):.1f}x smaller than the raw "
                         f"{self.raw_bytes:,} bytes; folder {self.folder_bytes:,} bytes)")
        return lines

    def as_json(self) -> dict[str, Any]:
        """The plan as plain JSON-ready values (``compress --dry-run --json``)."""
        out = asdict(self)
        out["skipped"] = [{"name": n, "reason": r} for n, r in self.skipped]
        out["training_seconds"] = self.training_seconds
        out["total_seconds"] = self.total_seconds
        return out


def duration(seconds: float | None) -> str:
    """``3 min 05 s``, ``42 s``, ``1.2 s`` or ``n/a``."""
    if seconds is None:
        return "n/a"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def report_plan(plan: CompressPlan) -> None:
    """Log the plan line (INFO: what compress prints before training) and its details (DEBUG: ``-v``)."""
    report.info(plan.line())
    for line in plan.detail_lines():
        report.debug(line)


def _layer_text(layer: dict[str, Any]) -> str:
    """``Dense(784, relu)``, ``Conv2DTranspose(16, 4x4, /2, relu)``, ``Reshape(7x7x16)``."""
    c = layer.get("config", {})
    parts = [str(c[k]) for k in ("units", "filters") if k in c]
    if "kernel_size" in c:
        parts.append("x".join(map(str, c["kernel_size"])))
    if any(v != 1 for v in c.get("strides", [1])):
        parts.append("/" + "x".join(map(str, c["strides"])))
    if "target_shape" in c:
        parts.append("x".join(map(str, c["target_shape"])))
    if c.get("activation") not in (None, "linear"):
        parts.append(str(c["activation"]))
    return f"{layer.get('type')}({', '.join(parts)})" if parts else str(layer.get("type"))


def design_for(folder: ImageFolder, options: Any) -> CodecDesign:
    """The autoencoder a folder gets with these compress options (planned for a size target)."""
    budget = options.rate_target.byte_budget(folder.x_bits // 8)
    return design_codec(
        folder.images.sizes(), folder.working_mode,
        arch=options.arch, latent_dims=options.latent_dims, filters=options.filters,
        byte_budget=None if budget is None else max(1, budget - metadata_estimate(len(folder), options.stored_digest_bytes)),
        weight_bytes=2 if options.stored_weight_dtype == "float16" else 4, rate_distortion=options.rate_distortion,
    )


def _latent_estimate(folder: ImageFolder, design: CodecDesign, options: Any) -> int | None:
    """Planned bytes of the archive (None for lossless residuals, whose size depends on the pixels)."""
    budget = options.rate_target.byte_budget(folder.x_bits // 8)
    if budget is not None:
        return budget
    if options.lossless:
        return None
    scalars = 0 if options.codes == "index" else sum(math.prod(design.latent_shape(h, w))
                                                     for h, w in folder.images.sizes())
    weight_bytes = 2 if options.stored_weight_dtype == "float16" else 4
    bits = RD_BITS_PER_LATENT if options.rate_distortion else SIZE_BITS_PER_LATENT
    return int(design.decoder_scalars * weight_bytes + scalars * bits / 8
               + metadata_estimate(len(folder), options.stored_digest_bytes))


def autoencoder_plan(folder: ImageFolder, options: Any, design: CodecDesign) -> CompressPlan:
    """The plan of an autoencoder's training (imports TensorFlow: the step counts are the trainer's own)."""
    from latentpack.codec.keras import train

    steps_per_epoch = train._steps_per_epoch(folder, design, options.batch_size)  # the trainer's own count
    epochs = options.epochs or train.default_epochs(folder, design, options.batch_size)
    refines = options.codes == "encoder" and design.one_vector and options.refine_steps != 0
    refine = (options.refine_steps or train.default_refine_steps(epochs, steps_per_epoch)) if refines else 0
    refine = train.refine_epochs(refine, steps_per_epoch) * steps_per_epoch if refine else 0  # whole passes run
    unit = "patches" if not design.one_vector else "images"
    weight_bytes = 2 if options.stored_weight_dtype == "float16" else 4
    return CompressPlan(
        "autoencoder", design.arch, design.latent_dims, design.filters, design.decoder_scalars * weight_bytes,
        options.stored_weight_dtype, epochs, epochs * steps_per_epoch, f"{options.batch_size} {unit}", refine,
        len(folder), folder.x_bits // 8, folder.folder_bytes, list(folder.skipped),
        _latent_estimate(folder, design, options), layers=[_layer_text(x) for x in design.decoder["layers"]],
    )


def pixel_plan(folder: ImageFolder, options: Any) -> tuple[CompressPlan, Any]:
    """The pixel model's plan and its spec (`latentpack.codec.pixel_model.train.plan_pixel_model`)."""
    from latentpack.codec.pixel_model import train

    channels = NATURAL_CHANNELS[folder.working_mode]
    samples = int(np.sum(folder.images.heights * folder.images.widths)) * channels
    spec, steps = train.plan_pixel_model(channels, samples, epochs=options.epochs)
    dims = [spec.inputs, *spec.hidden, spec.outputs]
    stored = sum(a * b * 2 + b * 4 for a, b in zip(dims[:-1], dims[1:]))  # int16 kernels, int32 biases
    plan = CompressPlan(
        "pixel-model", "pixel-model", 0, spec.hidden[0], stored, "int16", options.epochs or train.DEFAULT_EPOCHS,
        steps, f"{train.BATCH_SAMPLES:,} samples", 0, len(folder), folder.x_bits // 8, folder.folder_bytes,
        list(folder.skipped), None, layers=[f"Dense({w}, relu)" for w in spec.hidden] + [f"Dense({spec.outputs})"],
    )
    return plan, spec


def plan_compression(folder: str | os.PathLike, archive: str | os.PathLike, options: Any, *,
                     progress: ProgressFactory | None = None, time_steps: bool = True) -> CompressPlan:
    """What `latentpack.ops.compress.compress` would do with these options, and its cost; writes nothing.

    Every file is checked as compress checks it (every bad one listed), the
    archive's path is checked as compress checks it, the design is chosen,
    and (``time_steps``) a handful of training steps are timed on this
    machine. TensorFlow is imported only after the folder has been checked.

    Raises:
        As `latentpack.ops.compress.compress` before it trains.
    """
    from latentpack.ops.compress_pixels import uses_pixel_model

    options.check()
    folder, archive = Path(folder), Path(archive)
    check_output_path(folder, archive, options.force)
    t = time.perf_counter()
    checked = check_folder(folder, exclude=[archive], progress=progress or null_progress, skip_bad=options.skip_bad)
    check_seconds = time.perf_counter() - t
    t = time.perf_counter()
    if uses_pixel_model(options):
        plan, spec = pixel_plan(checked, options)
    else:
        design = design_for(checked, options)
        plan = autoencoder_plan(checked, options, design)
    plan_seconds = time.perf_counter() - t  # the trainer's import, TensorFlow's start-up
    plan.check_seconds = check_seconds
    if time_steps:
        t = time.perf_counter()
        importlib.import_module("latentpack.codec.keras.timing")  # TensorFlow: its start-up is part of the cost

        plan.startup_seconds = time.perf_counter() - t + plan_seconds
        _time(plan, checked, options, spec if plan.coder == "pixel-model" else design)
    return plan


def _time(plan: CompressPlan, folder: ImageFolder, options: Any, design: Any) -> None:
    """Fill in the plan's timed rate: a handful of steps of exactly what compress would train."""
    from latentpack.codec.keras import timing

    if plan.coder == "pixel-model":
        from latentpack.codec.pixel_model.train import BATCH_SAMPLES

        measured = timing.time_pixel_model_steps(design, batch_samples=BATCH_SAMPLES, seed=options.seed)
    else:
        measured = timing.time_training_steps(folder, design, batch_size=options.batch_size,
                                              steps_per_epoch=plan.steps // plan.epochs,
                                              codes=options.codes == "index", rate_distortion=options.rate_distortion,
                                              seed=options.seed)
        _time_after(plan, folder, options, design)
    plan.seconds_per_step, plan.timed_steps, plan.device = measured.seconds_per_step, measured.steps, measured.device
    plan.setup_seconds = measured.setup_seconds


def _time_after(plan: CompressPlan, folder: ImageFolder, options: Any, design: Any) -> None:
    """Plan refinement, encoding and measuring from timed refinement steps and a timed sample of images."""
    from latentpack.codec.keras import timing

    w = plan.w
    if options.codes == "index":  # nothing to encode; the archive is measured once
        plan.after_seconds = w * timing.time_after_training(folder, design, seed=options.seed).measure
        return
    after = timing.time_after_training(folder, design, seed=options.seed)
    passes = 3 if options.rate_target.active else 1  # a target: a probe, the chosen step, the refined decoder
    plan.after_seconds = w * (after.encode + passes * after.measure)
    if options.rate_distortion:  # the learned density's refit to the rounded latents (what it predicts they cost)
        vectors = sum(math.prod(design.latent_shape(h, x)[:2]) for h, x in folder.images.sizes())
        plan.after_seconds += timing.time_density_refit(design, vectors, seed=options.seed)
    if plan.refine_steps:
        refine = timing.time_training_steps(folder, design, batch_size=options.batch_size,
                                            steps_per_epoch=plan.steps // plan.epochs, codes=True, seed=options.seed)
        plan.refine_seconds = (refine.seconds_per_step * plan.refine_steps + refine.setup_seconds
                               + 2 * w * after.decode_keras)
