"""``latentpack list``: the images of an archive, one row each."""
from __future__ import annotations

import click

from latentpack.cli.format import db
from latentpack.cli.options import archive_argument, echo, emit_json, json_option, note, user_errors, verbosity_options
from latentpack.fs.names import display_name

__all__ = ["list_"]


@click.command(name="list")
@archive_argument
@json_option
@verbosity_options
@user_errors
def list_(archive, as_json) -> None:
    """List the images in ARCHIVE: name, size, mode and PSNR; in an archive that grew, the batch that added
    each image (add), "-" for those compressed with it."""
    from latentpack.ops.inspect import image_rows, skipped_files

    rows = image_rows(archive)
    skipped = skipped_files(archive)
    if skipped:
        note(f"{len(skipped)} file(s) of the folder were skipped at compress time: "
             + "; ".join(f"{display_name(s['name'])} ({display_name(s['reason'])})" for s in skipped))
    if as_json:
        emit_json(rows)
        return
    names = [display_name(r["name"]) for r in rows]  # a stored name may hold terminal escapes (so may any string)
    width = max([len(n) for n in names] + [4])
    grew = any(r["batch"] is not None for r in rows)
    added = f"  {'added':>5}" if grew else ""
    echo(f"{'name':<{width}}  {'size':>11}  {'mode':<5} {'format':<6} {'psnr':>10}{added}")
    for name, r in zip(names, rows):
        size = f"{r['width']}x{r['height']}"
        mode, fmt = display_name(r["mode"]), display_name(r["format"])
        batch = (f"  {'-' if r['batch'] is None else r['batch']:>5}") if grew else ""
        echo(f"{name:<{width}}  {size:>11}  {mode:<5} {fmt:<6} {db(r['psnr']):>10}{batch}")
