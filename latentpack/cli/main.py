"""The ``latentpack`` command line: compress, extract, inspect, list, verify.

Commands parse their arguments, call the library and print; nothing else.
Data goes to stdout, progress and status to stderr. Exit codes: 0 success,
1 ``Error: ...`` for user errors, 2 usage errors.
"""
from __future__ import annotations

import math
import pathlib

import click

import latentpack
from latentpack.safenames import display_name
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
              help="Latents per image (mlp, dense) or latent channels (conv). Default: chosen from the image size.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training epochs. Default: about 24,000 steps (mlp) or 12,000 (dense, conv), at most 300 epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--arch", type=click.Choice(["auto", "mlp", "dense", "conv"]), default="auto", show_default=True,
              help="mlp (fully connected) or dense (conv layers into a dense bottleneck): one latent vector per equal-sized image; conv: a latent grid, any sizes.")
@click.option("--filters", type=click.IntRange(min=1), default=None, help="Decoder width. Default: from the size budget.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Same folder and seed give the same archive contents.")
@click.option("--lossless", is_flag=True,
              help="Also store the pixels the decoder misses: extract returns every image bit-exact.")
@click.option("--codes", type=click.Choice(["encoder", "index"]), default="encoder", show_default=True,
              help="index: image i's code is generated from i and not stored; only a decoder is trained.")
@click.option("--latent-step", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Quantisation step of the latents. Default: chosen (lossy: within 0.1 dB; lossless: fewest bits).")
@click.option("--digest-bytes", type=click.Choice(["4", "8", "16", "32"]), default="32", show_default=True,
              help="Bytes of each image's sha256 stored (below 32, a sha256 of all full digests is kept too).")
@click.option("--quality", type=click.FloatRange(min=0, min_open=True), default=None, metavar="DB",
              help="Target mean PSNR: the coarsest latent step that reaches it (lossy).")
@click.option("--max-size", "max_bytes", type=click.IntRange(min=1), default=None, metavar="BYTES",
              help="Target file size: plans y and the decoder width, then the finest latent step whose archive fits (lossy).")
@click.option("--ratio", type=click.FloatRange(min=0, min_open=True), default=None, metavar="N",
              help="Target ratio to the raw pixels: --max-size of raw bytes / N (lossy).")
@click.option("--weights", "weight_dtype", type=click.Choice(["float32", "float16"]), default=None,
              help="How the decoder weights are stored: float16 halves their bytes (quality is measured with them). "
                   "Default: float16 with --max-size/--ratio, else float32.")
@click.option("--refine-steps", type=click.IntRange(min=0), default=None, metavar="N",
              help="Fine-tune the decoder on the quantised latents (mlp, dense). Default: a tenth of the training "
                   "steps; 0: off. Kept only if it lowers the error.")
@click.option("--skip-bad", is_flag=True,
              help="Leave out files that cannot be used (recorded in the archive) instead of failing.")
@force_option
@json_option
@user_errors
def compress(folder, archive, latent_dims, epochs, batch_size, arch, filters, seed, lossless, codes, latent_step,
             digest_bytes, quality, max_bytes, ratio, weight_dtype, refine_steps, skip_bad, force, as_json) -> None:
    """Train an autoencoder on FOLDER and write its decoder and latents to an archive."""
    from latentpack.ops.compress import compress_folder
    from latentpack.formats.writer import stale_temp_files

    stale = stale_temp_files(archive)
    if stale:
        click.echo(f"Note: {len(stale)} temporary file(s) of an interrupted write to {archive} remain "
                   f"(safe to delete once no other latentpack is writing it): "
                   + ", ".join(display_name(p.name) for p in stale), err=True)
    result = compress_folder(
        folder, archive, latent_dims=latent_dims, epochs=epochs, batch_size=batch_size, arch=arch,
        filters=filters, seed=seed, force=force, lossless=lossless, codes=codes, latent_step=latent_step,
        digest_bytes=int(digest_bytes), skip_bad=skip_bad, quality=quality, max_bytes=max_bytes, ratio=ratio,
        weight_dtype=weight_dtype, refine_steps=refine_steps, progress=progress_factory,
    )
    _print_summary(result.path, as_json)
    rc = result.contents.training.get("rate_control")
    if rc and not rc["reached"]:
        click.echo(f"Warning: target mean PSNR {rc['value']:g} dB not reached: {rc['got']:.2f} dB at the finest "
                   "latent step (more epochs, a larger -y or --filters could reach it)", err=True)


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
    click.echo(f"Extracted {len(result)} image(s) to {outdir}", err=True)


@cli.command()
@archive_argument
@json_option
@user_errors
def inspect(archive, as_json) -> None:
    """Show how ARCHIVE's size breaks down and whether it beats the raw images."""
    _print_summary(archive, as_json)


@cli.command()
@archive_argument
@click.argument("folder", required=False, type=click.Path(path_type=pathlib.Path, file_okay=False, exists=True))
@json_option
@user_errors
def verify(archive, folder, as_json) -> None:
    """Decode every image of ARCHIVE and check it.

    Lossless archives: every image's sha256 must match the stored one. With
    FOLDER, each image is also compared with the file of the same name there
    (lossless: the same pixels; lossy: its PSNR is reported). Exits 1 on any
    mismatch or missing file.
    """
    from latentpack.verify import verify_archive

    report = verify_archive(archive, folder, progress=progress_factory)
    if as_json:
        emit_json(report.as_dict())
    else:
        for line in report.lines():
            click.echo(line)
    if not report.ok:
        raise click.ClickException(report.failure_summary())


@cli.command(name="list")
@archive_argument
@json_option
@user_errors
def list_(archive, as_json) -> None:
    """List the images in ARCHIVE: name, size, mode and PSNR."""
    from latentpack.summary import image_rows, skipped_files

    rows = image_rows(archive)
    skipped = skipped_files(archive)
    if skipped:
        click.echo(f"{len(skipped)} file(s) of the folder were skipped at compress time: "
                   + "; ".join(f"{display_name(s['name'])} ({s['reason']})" for s in skipped), err=True)
    if as_json:
        emit_json(rows)
        return
    names = [display_name(r["name"]) for r in rows]  # a stored name may hold terminal escapes
    width = max([len(n) for n in names] + [4])
    click.echo(f"{'name':<{width}}  {'size':>11}  {'mode':<5} {'format':<6} {'psnr':>10}")
    for name, r in zip(names, rows):
        size = f"{r['width']}x{r['height']}"
        click.echo(f"{name:<{width}}  {size:>11}  {r['mode']:<5} {r['format']:<6} {_db(r['psnr']):>10}")


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
        f"mode               {s['mode']}",
        f"images (w)         {f['w']:,}",
        f"latents/image (y)  {y}",
        f"raw pixels (x)     {f['x_bits']:>16,} bits  {_bytes(f['x_bits'] / 8)}",
        f"decoder (z)        {f['z_bits']:>16,} bits  {_bytes(f['z_bits'] / 8)}",
    ]
    st = s["stored"]
    if f["weight_dtype"] != "float32":
        lines.append(f"  {f['weight_dtype']} stored   {st['decoder_bits']:>16,} bits  {_bytes(st['decoder_bits'] / 8)}"
                     f"  (weights stored as {f['weight_dtype']}; z counts 32 bits each)")
    lines += [
        f"latents (w*y*32)   {f['latent_bits']:>16,} bits  {_bytes(f['latent_bits'] / 8)}",
        f"z + w*y*32         {f['lhs_bits']:>16,} bits  {_bytes(f['lhs_bits'] / 8)}",
        f"beats raw          {verdict}",
    ]
    if st is not None:
        lines += [
            f"stored (as coded)  {st['latent_coding']}",
            f"  latents stored   {st['latent_bits']:>16,} bits  {_bytes(st['latent_bits'] / 8)}"
            f"  ({st['latent_bits_per_image']:.1f} bits/image)",
            f"  residuals        {st['residual_bits']:>16,} bits  {_bytes(st['residual_bits'] / 8)}",
            f"  total stored     {st['total_bits']:>16,} bits  {_bytes(st['total_bits'] / 8)}"
            f"  ({st['bits_per_pixel']:.3f} bits/pixel, raw / stored = {_x(st['factor'])})",
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
    for key, label in (("decoder", "decoder weights"), ("latents", "latents"), ("lossless", "lossless residuals"),
                       ("images", "image metadata"), ("quality", "quality"), ("training", "training log"), ("overhead", "HDF5 overhead")):
        if key in bd:
            share = bd[key] / b["archive"] if b["archive"] else 0
            lines.append(f"  {label:<17}{_bytes(bd[key]):>12}  {share:6.1%}")
    lines += [
        f"ratio to raw       {_x(b['ratio_to_raw'])}  (raw {_bytes(b['raw'])} / file)",
        f"ratio to folder    {_x(b['ratio_to_folder'])}  (folder {_bytes(b['folder'])} on disk / file)",
        f"quality            mean PSNR {_db(q['mean_psnr'])}, worst {_db(q['min_psnr'])} "
        f"({display_name(q['worst_image'] or '')})",
    ]
    if q.get("prediction_mean_psnr") is not None and s["mode"] != "lossy":
        lines.append(f"prediction         mean PSNR {_db(q['prediction_mean_psnr'])} (what the residuals correct)")
    skipped = s["skipped"]
    lines.append(f"skipped files      {len(skipped)}" + (" (left out with --skip-bad):" if skipped else ""))
    lines += [f"  {display_name(item['name'])}: {item['reason']}" for item in skipped]
    rc = s.get("rate_control")
    if rc:
        goal = (f"mean PSNR >= {rc['value']:g} dB" if rc["target"] == "psnr" else f"file <= {rc['value']:,} bytes")
        got = f" ({_db(rc['got'])})" if rc["target"] == "psnr" and "got" in rc else ""
        lines.append(f"rate target        {goal}: {'reached' if rc['reached'] else 'NOT reached'}{got}")
    r = s.get("refine")
    if r:
        gain = 10 * math.log10(r["mse_before"] / r["mse_after"]) if r["mse_before"] > 0 and r["mse_after"] > 0 else 0.0
        lines.append(f"decoder refined    {r['steps']:,} steps on the quantised latents: "
                     + (f"error {gain:.2f} dB lower, kept" if r["kept"] else "no gain, not kept"))
    t = s["training"]
    if t:
        lines.append("model              " + ", ".join(f"{k}={v}" for k, v in t.items()))
    click.echo("\n".join(lines))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="latentpack")


from latentpack.cli.bench import bench  # noqa: E402  (the bench lives in its own module)

cli.add_command(bench)
