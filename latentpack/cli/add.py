"""``latentpack add``: add images to an archive without retraining its model."""
from __future__ import annotations

import pathlib

import click

from latentpack.cli.format import db
from latentpack.cli.options import (
    QUIET,
    archive_argument,
    detail,
    echo,
    emit_json,
    force_option,
    json_option,
    note,
    progress_factory,
    user_errors,
    verbosity,
    verbosity_options,
)
from latentpack.fs.names import display_name

__all__ = ["add"]


@click.command()
@archive_argument
@click.argument("sources", nargs=-1, required=True,
                type=click.Path(path_type=pathlib.Path, exists=True))
@click.option("-o", "--output", type=click.Path(path_type=pathlib.Path, dir_okay=False), default=None,
              help="Write the grown archive here and leave ARCHIVE alone. Default: replace ARCHIVE (atomically: "
                   "the old archive or the new one, never a mix).")
@click.option("--prefix", default="", metavar="FOLDER",
              help="Store the new images' names under FOLDER (e.g. batch2), so they cannot clash with the "
                   "archive's.")
@click.option("--fit-steps", type=click.IntRange(min=1), default=None, metavar="N",
              help="Gradient steps fitting each new image's latents to the stored decoder. Default: 200.")
@click.option("--skip-bad", is_flag=True, help="Leave out files that cannot be used instead of failing.")
@force_option
@json_option
@verbosity_options
@user_errors
def add(archive, sources, output, prefix, fit_steps, skip_bad, force, as_json) -> None:
    """Add the images of SOURCES (folders and files) to ARCHIVE, without retraining.

    A folder's files are named relative to it, as compress names them; a file by its file name. Names
    already in the archive are refused. The new images must fit the archive's model: its mode (an L
    archive takes no colour), and for a decoder of one output size that size. Lossy and residual-lossless
    archives fit each new image's latents to the stored decoder (gradient steps, the decoder frozen) and
    store them at the archive's latent step; pixel-model archives code the new pixels under the stored
    model. Archives with generated codes (--codes index) cannot grow. inspect and list show the batches
    added."""
    from latentpack.fs.atomic import stale_temp_files
    from latentpack.ops.add import DEFAULT_FIT_STEPS, add_images

    stale = stale_temp_files(output or archive)
    if stale:
        note(f"Note: {len(stale)} temporary file(s) of an interrupted write to {output or archive} remain "
             f"(safe to delete once no other latentpack is writing it): "
             + ", ".join(display_name(p.name) for p in stale))
    result = add_images(archive, sources, output=output, force=force, prefix=prefix,
                        fit_steps=fit_steps or DEFAULT_FIT_STEPS, skip_bad=skip_bad, progress=progress_factory)
    for name, reason in result.skipped:
        note(f"Skipped {display_name(name)}: {reason}")
    detail("Timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()))
    if as_json:
        emit_json(result.as_json())
        return
    if verbosity() > QUIET:
        echo(f"Added {len(result.names):,} image(s) to {result.path} as batch {result.batch}: mean PSNR "
             f"{db(result.mean_psnr)} (the earlier images': {db(result.earlier_mean_psnr)}); "
             f"{result.bytes_before:,} -> {result.bytes_after:,} bytes")
