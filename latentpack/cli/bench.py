"""``latentpack bench``: compress one folder with latentpack and the usual baselines."""
from __future__ import annotations

import json
import pathlib
import shlex
import sys

import click

from latentpack.bench.base import Codec
from latentpack.bench.codecs import CODECS, DEFAULT_QUALITIES, default_params, make_codec
from latentpack.cli.options import (
    arch_option,
    batch_size_option,
    epochs_option,
    filters_option,
    note,
    seed_option,
    user_errors,
    verbosity_options,
)
from latentpack.errors import LatentpackError

__all__ = ["bench"]

_LOSSY_BASELINES = [name for name, cls in CODECS.items() if not cls.lossless and not name.startswith("latentpack")]


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        values = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"expected integers >= 1, got {value!r}")
    return values


def _codec_list(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in CODECS]
    if unknown or not names:
        raise click.BadParameter(f"unknown codec(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(CODECS)}")
    return list(dict.fromkeys(names))


def _codecs(names: list[str], rates: list[int] | None, qualities: list[int], latentpack_params: dict) -> list[Codec]:
    codecs: list[Codec] = []
    for name in names:
        if name == "latentpack":
            codecs += [make_codec(name, latent_dims=y, **latentpack_params) for y in (rates or [None])]
        elif name == "latentpack-lossless":  # one run: its size depends little on y, which it may choose
            codecs.append(make_codec(name, **latentpack_params))
        else:
            codecs += [make_codec(name, **p) for p in default_params(name, tuple(qualities))]
    return codecs


def _command_line(ctx: click.Context) -> str:
    """The command as typed; rebuilt from the options given when called from Python."""
    if sys.argv[1:2] == ["bench"]:
        return shlex.join(["latentpack", *sys.argv[1:]])
    words = ["latentpack", "bench", str(ctx.params["folder"])]
    for param in ctx.command.params:
        if param.name != "folder" and ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE:
            value = ctx.params[param.name]
            value = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            words += [param.opts[0], value]
    return shlex.join(words)


@click.command()
@click.argument("folder", type=click.Path(path_type=pathlib.Path, file_okay=False, exists=True))
@click.option("--codecs", "codec_names", default=",".join(CODECS), show_default=True, callback=_codec_list,
              help="Comma-separated codecs to run.")
@click.option("--rates", "--latent-dims", "rates", callback=_int_list, default=None,
              help="latentpack's -y values, comma-separated (e.g. 8,16,32). Default: one run, y chosen by latentpack.")
@epochs_option("latentpack training epochs (default: its own).")
@arch_option("latentpack architecture.")
@filters_option("latentpack decoder width.")
@batch_size_option("latentpack batch size.")
@click.option("--qualities", callback=_int_list, default=",".join(map(str, DEFAULT_QUALITIES)), show_default=True,
              help=f"Quality settings of the lossy baselines ({', '.join(_LOSSY_BASELINES)}).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Bench the first N images (sorted by name).")
@seed_option("latentpack's seed and the contact sheet's choice of images.")
@click.option("--json", "json_out", type=click.Path(path_type=pathlib.Path, dir_okay=False, allow_dash=True),
              default=None, help="Write the results as JSON to this file ('-': stdout, the table then goes to stderr).")
@click.option("--plot", type=click.Path(path_type=pathlib.Path, dir_okay=False), default=None,
              help="Write a rate-distortion plot (bits/pixel against PSNR) as PNG (needs matplotlib).")
@click.option("--contact-sheet", "sheet", type=click.Path(path_type=pathlib.Path, dir_okay=False), default=None,
              help="Write a PNG of a few originals beside latentpack's reconstructions at each rate.")
@click.option("--sample", type=click.IntRange(min=1), default=6, show_default=True,
              help="Images on the contact sheet.")
@click.option("--crop", type=click.IntRange(min=8), default=128, show_default=True,
              help="Larger images show one CROP x CROP window on the contact sheet.")
@click.option("--workdir", type=click.Path(path_type=pathlib.Path, file_okay=False), default=None,
              help="Keep every codec's output here (an empty or new folder). Default: a temporary folder.")
@verbosity_options
@user_errors
def bench(folder, codec_names, rates, epochs, arch, filters, batch_size, qualities, limit, seed,
          json_out, plot, sheet, sample, crop, workdir) -> None:
    """Compress FOLDER with latentpack and with the usual baselines, and compare them.

    For each codec and setting: total bytes written, bits per pixel, mean and
    worst PSNR, compress and extract wall time and peak memory (each in a
    process of its own). Baselines: PNG, WebP (lossy and lossless), JPEG, AVIF
    (Pillow); JPEG XL (cjxl), xz -9 and zstd -19 of the raw pixels when those
    programs are installed (skipped with a note when not); PCA, a linear
    autoencoder with every byte counted, on equal-sized images (a quality q is
    a budget of q/50 bits per pixel).
    """
    from latentpack.bench.harness import run_bench

    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.ClickException("--plot needs matplotlib: pip install 'latentpack[bench]'") from None
    params = {"epochs": epochs, "arch": arch, "filters": filters, "batch_size": batch_size, "seed": seed}
    codecs = _codecs(codec_names, rates, qualities, params)
    if sheet is not None and not any(c.name == "latentpack" for c in codecs):
        raise click.UsageError("--contact-sheet shows latentpack's reconstructions: include latentpack in --codecs")

    def log(message: str) -> None:
        note(message)

    try:
        result = run_bench(folder, codecs, limit=limit, workdir=workdir, sample=sample if sheet else 0, seed=seed,
                           log=log)
    except (LatentpackError, OSError) as exc:  # as plain text, not user_errors' "strerror: file"
        raise click.ClickException(str(exc)) from None

    options = {"codecs": codec_names, "rates": rates, "epochs": epochs, "arch": arch, "filters": filters,
               "batch_size": batch_size, "qualities": qualities, "limit": limit, "seed": seed}
    _write_outputs(result, options, json_out, plot, sheet, crop, seed, log)


def _write_outputs(result, options: dict, json_out: pathlib.Path | None, plot: pathlib.Path | None,
                   sheet: pathlib.Path | None, crop: int, seed: int, log) -> None:
    """Print the table and write the JSON, the plot and the contact sheet asked for; exit 1 if a codec run failed."""
    from latentpack.bench.machine import machine_info
    from latentpack.bench.report import format_table, plot_rate_distortion, result_json

    command = _command_line(click.get_current_context())
    data = result_json(result, machine=machine_info(), command=command, options=options)
    table = f"$ {command}\n{format_table(result)}"
    if json_out is not None and str(json_out) == "-":
        click.echo(table, err=True)
        click.echo(json.dumps(data, indent=2, allow_nan=False))
    else:
        click.echo(table)
        if json_out is not None:
            json_out.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
            log(f"wrote {json_out}")
    if plot is not None:
        plot_rate_distortion(result, plot)
        log(f"wrote {plot}")
    if sheet is not None:
        from latentpack.bench.contact_sheet import contact_sheet

        try:
            contact_sheet(result, sheet, crop=crop, seed=seed)
            log(f"wrote {sheet}")
        except ValueError as exc:
            log(f"no contact sheet: {exc}")
    failed = [e for e in result.entries if e.error]
    if failed:
        shown = "; ".join(f"{e.name} {e.setting}: {e.error.splitlines()[0] if e.error else ''}" for e in failed)
        raise click.ClickException(f"{len(failed)} codec run(s) failed: {shown}")
