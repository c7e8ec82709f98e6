"""``latentpack extract``: write an archive's images to a folder, or one image to stdout."""
from __future__ import annotations

import pathlib
import sys

import click

from latentpack.cli.options import archive_argument, force_option, note, progress_factory, user_errors, verbosity_options

__all__ = ["extract", "ShardType"]


class ShardType(click.ParamType):
    """``--shard I/N``: two integers, 1 <= I <= N; anything else is a usage error (exit 2)."""

    name = "I/N"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from latentpack.errors import OptionError
        from latentpack.ops.extract import parse_shard

        try:
            return parse_shard(str(value))
        except OptionError as err:
            self.fail(str(err), param, ctx)


@click.command()
@archive_argument
@click.argument("names", nargs=-1)
@click.option("-o", "--output", "outdir", required=True,
              type=click.Path(path_type=pathlib.Path, file_okay=False, allow_dash=True),
              help="Folder to write the images into (created if missing); - writes the one image NAME selects "
                   "to stdout.")
@click.option("--format", "file_format", type=click.Choice(["auto", "png", "original"]), default="auto",
              show_default=True,
              help="auto: reconstructions of JPEG and WebP sources as PNG (not degraded by a second lossy "
                   "encoding), others in their source format; png: all PNG; original: the source format (JPEG "
                   "and WebP at quality 95). Files keep their stored names. Lossless archives are always exact.")
@click.option("--shard", type=ShardType(), default=None, metavar="I/N",
              help="Write only the I-th of N slices of the selected images (I counted from 1, as split -n I/N): "
                   "contiguous in archive order, disjoint, sizes within one image; the N shards together are "
                   "the whole extraction (one machine each).")
@force_option
@verbosity_options
@user_errors
def extract(archive, names, outdir, force, file_format, shard) -> None:
    """Write the images of ARCHIVE (all, or those NAMES select) under OUTDIR.

    Each NAME is a stored name, a shell-style pattern ('0468*.png', 'train/[0-4]*'; quote it from the
    shell) or a folder prefix ('train' selects everything under train/). A NAME that selects nothing is an
    error. With -o -, exactly one NAME, selecting exactly one image, which is written to stdout. With
    --shard I/N, the selection (NAMES, or every image) is cut into N slices and only the I-th is written.
    """
    if str(outdir) == "-":
        if shard is not None:
            raise click.UsageError("--shard writes a slice of the images to a folder, not to stdout (-o -)")
        return _to_stdout(archive, names, file_format)
    from latentpack.ops.extract import extract_archive

    result = extract_archive(archive, outdir, names, force=force, progress=progress_factory, file_format=file_format,
                             shard=shard)
    part = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    note(f"Extracted {len(result)} image(s) to {outdir}{part}")


def _to_stdout(archive: pathlib.Path, names: tuple[str, ...], file_format: str) -> None:
    """``-o -``: one image's file bytes on stdout (refused on a terminal)."""
    from latentpack.ops.extract import extract_to_stream

    if len(names) != 1:
        raise click.UsageError(f"-o - writes exactly one image: give one NAME (got {len(names)})")
    stdout = sys.stdout.buffer
    if stdout.isatty():
        raise click.UsageError("-o - would write binary image data to a terminal: redirect stdout to a file or pipe")
    written = extract_to_stream(archive, names[0], stdout, file_format=file_format)
    note(f"Extracted {written} to stdout")
