"""``latentpack compress``: train on a folder and write its archive."""
from __future__ import annotations

import contextlib
import os
import pathlib

import click

from latentpack.cli.inspect import print_summary
from latentpack.cli.options import (
    arch_option,
    batch_size_option,
    emit_json,
    epochs_option,
    filters_option,
    QUIET,
    VERBOSE,
    detail,
    echo,
    force_option,
    json_option,
    note,
    progress_factory,
    seed_option,
    user_errors,
    verbosity,
    verbosity_options,
)
from latentpack.fs.names import display_name

__all__ = ["compress"]


def _rate_options(func):
    """The rate options: --quality, --max-size, --ratio, --weights, --objective and --lambda."""
    for option in reversed([
        click.option("--quality", type=click.FloatRange(min=0, min_open=True), default=None, metavar="DB",
            help="Target mean PSNR (lossy): lambda is steered toward it in training, then the coarsest latent "
            "step that reaches it."),
        click.option("--max-size", "max_bytes", type=click.IntRange(min=1), default=None, metavar="BYTES",
            help="Target file size: plans y and the decoder width, then the finest latent step whose archive fits (lossy)."),
        click.option("--ratio", type=click.FloatRange(min=0, min_open=True), default=None, metavar="N",
            help="Target ratio to the raw pixels: --max-size of raw bytes / N (lossy)."),
        click.option("--weights", "weight_dtype", type=click.Choice(["float32", "float16"]), default=None,
            help="How the decoder weights are stored: float16 halves their bytes (quality is measured with them). "
            "Default: float16 when lossy with an encoder or with --max-size/--ratio, else float32."),
        click.option("--objective", type=click.Choice(["rd", "mse"]), default="rd", show_default=True,
            help="rd: train for the latents' coded bits plus lambda times the pixel error (lossy); "
            "mse: for the pixel error alone, the latent step chosen afterwards."),
        click.option("--lambda", "lmbda", type=click.FloatRange(min=0, min_open=True), default=None, metavar="L",
            help="Rate-distortion trade-off: higher is sharper and larger. Default: 2000 (28.4 dB on the "
            "MNIST digits), or steered toward --quality, --max-size or --ratio."),
    ]):
        func = option(func)
    return func


@click.command()
@click.argument("folder", type=click.Path(path_type=pathlib.Path, file_okay=False, exists=True))
@click.option("-o", "--output", "archive", required=True, type=click.Path(path_type=pathlib.Path, dir_okay=False),
              help="Archive to write.")
@click.option("-y", "--latent-dims", type=click.IntRange(min=1), default=None,
              help="Latents per image (mlp, dense) or latent channels (conv). Default: chosen from the image size.")
@epochs_option("Training epochs. Default: about 24,000 steps (mlp) or 12,000 (dense, conv), at most 300 epochs.")
@batch_size_option()
@arch_option("mlp (fully connected) or dense (conv layers into a dense bottleneck): one latent vector per "
             "equal-sized image; conv: a latent grid, any sizes.")
@filters_option("Decoder width. Default: from the size budget.")
@seed_option("Same folder and seed give the same archive contents.")
@click.option("--lossless", is_flag=True,
              help="Store every image bit-exact (see --lossless-coder): extract returns the very pixels.")
@click.option("--lossless-coder", type=click.Choice(["auto", "pixel", "residual"]), default="auto", show_default=True,
              help="pixel: a learned per-pixel model alone codes the images (no autoencoder); residual: the "
                   "autoencoder's prediction plus coded residuals; auto: pixel unless -y, --arch, --filters, "
                   "--codes or --latent-step ask for an autoencoder.")
@click.option("--codes", type=click.Choice(["encoder", "index"]), default="encoder", show_default=True,
              help="index: image i's code is generated from i and not stored; only a decoder is trained.")
@click.option("--latent-step", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Quantisation step of the latents. Default: 1 with --objective rd (what training assumed); "
                   "else chosen (lossy: within 0.1 dB; lossless: fewest bits).")
@click.option("--digest-bytes", type=click.Choice(["2", "4", "8", "16", "32"]), default=None,
              help="Bytes of each image's sha256 stored (below 32, a sha256 of all full digests is kept too). "
                   "Default: 4 with --lossless (every image is checked when extracted), else 2.")
@_rate_options
@click.option("--refine-steps", type=click.IntRange(min=0), default=None, metavar="N",
              help="Fine-tune the decoder on the quantised latents (mlp, dense). Default: a tenth of the training "
                   "steps; 0: off. Kept only if it lowers the error.")
@click.option("--skip-bad", is_flag=True,
              help="Leave out files that cannot be used (recorded in the archive) instead of failing.")
@click.option("--resume", is_flag=True,
              help="Checkpoint training (under --work-dir, default the XDG cache) and continue an interrupted "
                   "run of the same command from its last checkpoint: the same archive as an uninterrupted run.")
@click.option("--work-dir", type=click.Path(path_type=pathlib.Path, file_okay=False), default=None,
              help="Where training checkpoints go (written only with this option or --resume; removed once the "
                   "archive is written). Default with --resume: $XDG_CACHE_HOME/latentpack/checkpoints.")
@click.option("--dry-run", is_flag=True,
              help="Check the folder, print the design it would train and estimate the training time (from a "
                   "few timed steps) and the archive's size; write nothing.")
@force_option
@json_option
@verbosity_options
@user_errors
def compress(folder, archive, as_json, digest_bytes, dry_run, resume, work_dir, **options) -> None:
    """Train a model on FOLDER and write an archive of it: an autoencoder's decoder and latents (lossy), or
    with --lossless a learned per-pixel model and the pixels it codes.

    The plan (design, y, width, decoder bytes, steps and epochs) is printed before training; --dry-run
    prints it with the estimates and stops there."""
    from latentpack.fs.atomic import stale_temp_files

    digest_bytes = None if digest_bytes is None else int(digest_bytes)
    if dry_run:
        return _dry_run(folder, archive, as_json, digest_bytes, options)
    from latentpack.ops.compress import compress_folder

    if stale := stale_temp_files(archive):
        note(f"Note: {len(stale)} temporary file(s) of an interrupted write to {archive} remain "
             f"(safe to delete once no other latentpack is writing it): "
             + ", ".join(display_name(p.name) for p in stale))
    with _checkpoints(resume, work_dir):
        result = compress_folder(folder, archive, digest_bytes=digest_bytes, progress=progress_factory, **options)
    if result.contents is None:  # TF_CONFIG: a worker other than the chief trained its shard, wrote nothing
        return _other_worker_done(result, archive, as_json)
    if as_json:  # the summary inspect --json prints, plus the guard rails' warnings (latentpack.ops.guard_rails)
        from latentpack.ops.guard_rails import warnings_json
        from latentpack.ops.inspect import archive_summary

        emit_json({**archive_summary(result.path).as_json(), "warnings": warnings_json(result.warnings)})
    elif verbosity() > QUIET:
        print_summary(result.path, as_json)
    _verbose_record(result)
    for warning in result.warnings:
        note(f"Warning: {warning}")
    rc = result.contents.training.get("rate_control")
    if rc and not rc["reached"]:
        note(f"Warning: target mean PSNR {rc['value']:g} dB not reached: {rc['got']:.2f} dB at the finest "
             "latent step (more epochs, a larger -y or --filters could reach it)")


def _other_worker_done(result, archive: pathlib.Path, as_json: bool) -> None:
    """The one line a TF_CONFIG worker other than the chief prints: what it did, and that it wrote nothing
    (with --json, also ``{"written": false, "worker": k, "workers": n, ...}`` on stdout)."""
    trained = "train" in result.timings
    if as_json:
        emit_json({"written": False, "archive": str(archive), "worker": result.worker.rank,
                   "workers": result.worker.workers, "trained": trained})
    did = ("trained its shard of the folder" if trained
           else "nothing to train here (the lossless pixel model trains on the chief alone)")
    note(f"{result.worker.describe().capitalize()} (TF_CONFIG): {did}, wrote nothing; "
         f"the chief (worker 0) writes {display_name(str(archive))}")


def _refuse_checkpoints_on_a_cluster(resume: bool, work_dir: pathlib.Path | None) -> None:
    """--resume/--work-dir checkpoint one process's training: not a cluster's (usage error, exit 2)."""
    from latentpack.codec.cluster import cluster_role

    role = cluster_role()
    if (resume or work_dir is not None) and role is not None and role.workers > 1:
        raise click.UsageError("--resume and --work-dir cannot be used with a TF_CONFIG cluster of "
                               f"{role.workers} workers (training checkpoints are for one process)")


@contextlib.contextmanager
def _checkpoints(resume: bool, work_dir: pathlib.Path | None):
    """``--resume``/``--work-dir``: checkpoint training; drop the checkpoints once the archive is written."""
    _refuse_checkpoints_on_a_cluster(resume, work_dir)
    if not resume and work_dir is None:
        yield
        return
    from latentpack.codec.keras import checkpoint

    seconds = float(os.environ.get("LATENTPACK_CHECKPOINT_SECONDS", checkpoint.SAVE_SECONDS))
    store = checkpoint.CheckpointStore(work_dir or checkpoint.default_root(), resume, seconds)
    try:
        with checkpoint.activate(store):
            yield
    except KeyboardInterrupt:
        if any(folder.exists() for folder in store.used):
            note(f"Training checkpoint kept under {store.root}: the same command with --resume continues it")
        raise
    store.remove()


def _dry_run(folder, archive, as_json: bool, digest_bytes: int | None, options: dict) -> None:
    """``--dry-run``: the plan and its estimates, on stdout; nothing written."""
    from latentpack.ops.compress import CompressOptions
    from latentpack.ops.plan import plan_compression

    plan = plan_compression(folder, archive, CompressOptions(digest_bytes=digest_bytes, **options),
                            progress=progress_factory)
    if as_json:
        emit_json(plan.as_json())
        return
    for name, reason in plan.skipped:
        echo(f"skipped: {name}: {reason}")
    echo("\n".join([plan.line(), *(plan.detail_lines() if verbosity() >= VERBOSE else []), *plan.estimate_lines()]))


def _verbose_record(result) -> None:
    """``-v``: each stage's time and what rate control decided (from the training record)."""
    t = result.contents.training
    timings = {**t.get("timings", {}), **result.timings}
    detail("Timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    if t.get("latent_step") is not None:
        detail(f"Latent step: {t['latent_step']:.6g} (prediction mean PSNR {t.get('prediction_mean_psnr')})")
    if t.get("rate_control"):
        detail("Rate control: " + ", ".join(f"{k}={v}" for k, v in t["rate_control"].items()))
    if t.get("refine"):
        detail("Refinement: " + ", ".join(f"{k}={v}" for k, v in t["refine"].items()))
    if t.get("device"):
        detail(f"Trained on: {t['device']}")
