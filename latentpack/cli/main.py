"""The ``latentpack`` command line: compress, extract, inspect, list.

Commands parse their arguments, call the library and print; nothing else.
Data goes to stdout, progress and status to stderr. Exit codes: 0 success,
1 ``Error: ...`` for user errors, 2 usage errors.
"""
from __future__ import annotations

import math
import pathlib

import click

import latentpack
from latentpack.cli.options import (
    archive_argument,
    emit_json,
    force_option,
    json_option,
    progress_factory,
    user_errors,
)

__all__ = ["cli"]


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"


def _db(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return "exact" if math.isinf(v) else f"{v:.2f} dB"


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(latentpack.__version__, prog_name="latentpack")
def cli() -> None:
    """Pack a folder of images into one HDF5 archive: a decoder plus one latent vector per image.

    The archive pays off when z + w*y*32 < x (decoder bits + latent bits < raw bits).
    """


@cli.command()
@click.argument("folder", type=click.Path(path_type=pathlib.Path, file_okay=False, exists=True))
@click.option("-o", "--output", "archive", required=True, type=click.Path(path_type=pathlib.Path, dir_okay=False),
              help="Archive to write.")
@click.option("-y", "--latent-dims", type=click.IntRange(min=1), default=None,
              help="Latents per image (dense) or latent channels (conv). Default: chosen from the image size.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs. Default: about 12,000 steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--arch", type=click.Choice(["auto", "dense", "conv"]), default="auto", show_default=True,
              help="dense: one latent vector per equal-sized image; conv: a latent grid, any sizes.")
@click.option("--filters", type=click.IntRange(min=1), default=None, help="Decoder width. Default: from the size budget.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same folder and seed give the same archive contents.")
@force_option
@json_option
@user_errors
def compress(folder, archive, latent_dims, epochs, batch_size, arch, filters, seed, force, as_json) -> None:
    """Train an autoencoder on FOLDER and write its decoder and latents to an archive."""
    from latentpack.codec.compress import compress_folder

    result = compress_folder(
        folder, archive, latent_dims=latent_dims, epochs=epochs, batch_size=batch_size, arch=arch,
        filters=filters, seed=seed, force=force, progress=progress_factory,
    )
    _print_summary(result.path, as_json)


@cli.command()
@archive_argument
@click.argument("names", nargs=-1)
@click.option("-o", "--output", "outdir", required=True, type=click.Path(path_type=pathlib.Path, file_okay=False),
              help="Folder to write the images into (created if missing).")
@force_option
@user_errors
def extract(archive, names, outdir, force) -> None:
    """Write the images of ARCHIVE (all, or the NAMES given) under OUTDIR."""
    from latentpack.codec.extract import extract_archive

    result = extract_archive(archive, outdir, names, force=force, progress=progress_factory)
    click.echo(f"Extracted {len(result.paths)} image(s) to {outdir}", err=True)


@cli.command()
@archive_argument
@json_option
@user_errors
def inspect(archive, as_json) -> None:
    """Show how ARCHIVE's size breaks down and whether it beats the raw images."""
    _print_summary(archive, as_json)


@cli.command(name="list")
@archive_argument
@json_option
@user_errors
def list_(archive, as_json) -> None:
    """List the images in ARCHIVE: name, size, mode and PSNR."""
    from latentpack.summary import image_rows

    rows = image_rows(archive)
    if as_json:
        emit_json(rows)
        return
    width = max([len(r["name"]) for r in rows] + [4])
    click.echo(f"{'name':<{width}}  {'size':>11}  {'mode':<5} {'format':<6} {'psnr':>10}")
    for r in rows:
        size = f"{r['width']}x{r['height']}"
        click.echo(f"{r['name']:<{width}}  {size:>11}  {r['mode']:<5} {r['format']:<6} {_db(r['psnr']):>10}")


def _print_summary(archive: pathlib.Path, as_json: bool) -> None:
    from latentpack.summary import archive_summary

    s = archive_summary(archive)
    if as_json:
        emit_json(s)
        return
    f, b, q = s["formula"], s["bytes"], s["quality"]
    y = f["y"] if f["y"] is not None else f"varies ({f['latent_scalars']:,} in all)"
    verdict = (
        f"yes: z + w*y*32 < x, beats raw by {_x(f['factor'])}"
        if f["beats_raw"]
        else f"no: z + w*y*32 >= x ({_x(f['factor'])} of raw)"
    )
    lines = [
        f"archive            {s['archive']}  (format {s['format_version']}, {s['writer']})",
        f"images (w)         {f['w']:,}",
        f"latents/image (y)  {y}",
        f"raw pixels (x)     {f['x_bits']:>16,} bits  {_bytes(f['x_bits'] / 8)}",
        f"decoder (z)        {f['z_bits']:>16,} bits  {_bytes(f['z_bits'] / 8)}",
        f"latents (w*y*32)   {f['latent_bits']:>16,} bits  {_bytes(f['latent_bits'] / 8)}",
        f"z + w*y*32         {f['lhs_bits']:>16,} bits  {_bytes(f['lhs_bits'] / 8)}",
        f"beats raw          {verdict}",
    ]
    if f["decoder_dominates"]:
        lines.append(
            f"note               the decoder dominates: {f['decoder_share']:.0%} of z + w*y*32 "
            "(more images would share its cost)"
        )
    bd = b["breakdown"]
    lines += [
        f"file on disk       {_bytes(b['archive'])}  ({b['bits_per_pixel']:.3f} bits/pixel)",
    ]
    for key, label in (("decoder", "decoder weights"), ("latents", "latents"), ("images", "image metadata"),
                       ("quality", "quality"), ("training", "training log"), ("overhead", "HDF5 overhead")):
        if key in bd:
            share = bd[key] / b["archive"] if b["archive"] else 0
            lines.append(f"  {label:<17}{_bytes(bd[key]):>12}  {share:6.1%}")
    lines += [
        f"ratio to raw       {_x(b['ratio_to_raw'])}  (raw {_bytes(b['raw'])} / file)",
        f"ratio to folder    {_x(b['ratio_to_folder'])}  (folder {_bytes(b['folder'])} on disk / file)",
        f"quality            mean PSNR {_db(q['mean_psnr'])}, worst {_db(q['min_psnr'])} ({q['worst_image']})",
    ]
    t = s["training"]
    if t:
        lines.append("model              " + ", ".join(f"{k}={v}" for k, v in t.items()))
    click.echo("\n".join(lines))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="latentpack")


from latentpack.cli.bench import bench  # noqa: E402  (the bench lives in its own module)

cli.add_command(bench)
