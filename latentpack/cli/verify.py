"""``latentpack verify``: decode every image of an archive and check it."""
from __future__ import annotations

import pathlib

import click

from latentpack.cli.options import archive_argument, echo, emit_json, json_option, progress_factory, user_errors, verbosity_options

__all__ = ["verify"]


@click.command()
@archive_argument
@click.argument("folder", required=False, type=click.Path(path_type=pathlib.Path, file_okay=False, exists=True))
@json_option
@verbosity_options
@user_errors
def verify(archive, folder, as_json) -> None:
    """Decode every image of ARCHIVE and check it.

    Lossless archives: every image's sha256 must match the stored one. With
    FOLDER, each image is also compared with the file of the same name there
    (lossless: the same pixels; lossy: its PSNR is reported). Exits 1 on any
    mismatch or missing file.
    """
    from latentpack.ops.verify import verify_archive

    report = verify_archive(archive, folder, progress=progress_factory)
    if as_json:
        emit_json(report.as_dict())
    else:
        for line in report.lines():
            echo(line)
    if not report.ok:
        raise click.ClickException(report.failure_summary())
