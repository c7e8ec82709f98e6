"""``latentpack extract``: write an archive's images to a folder."""
from __future__ import annotations

import pathlib

import click

from latentpack.cli.options import archive_argument, echo, force_option, progress_factory, user_errors

__all__ = ["extract"]


@click.command()
@archive_argument
@click.argument("names", nargs=-1)
@click.option("-o", "--output", "outdir", required=True, type=click.Path(path_type=pathlib.Path, file_okay=False),
              help="Folder to write the images into (created if missing).")
@force_option
@user_errors
def extract(archive, names, outdir, force) -> None:
    """Write the images of ARCHIVE (all, or the NAMES given) under OUTDIR."""
    from latentpack.ops.extract import extract_archive

    result = extract_archive(archive, outdir, names, force=force, progress=progress_factory)
    echo(f"Extracted {len(result)} image(s) to {outdir}", err=True)
