"""``latentpack inspect``: how an archive's size breaks down and whether it beats the raw images.

`print_summary` is also what ``compress`` prints when it is done.
"""
from __future__ import annotations

import math
import pathlib
from typing import TYPE_CHECKING

import click

from latentpack.cli.format import db, size, times
from latentpack.cli.options import archive_argument, echo, emit_json, json_option, user_errors, verbosity_options
from latentpack.fs.names import display_name

if TYPE_CHECKING:
    from latentpack.ops.inspect import ArchiveSummary

__all__ = ["inspect", "print_summary"]



@click.command()
@archive_argument
@json_option
@verbosity_options
@user_errors
def inspect(archive, as_json) -> None:
    """Show how ARCHIVE's size breaks down and whether it beats the raw images."""
    print_summary(archive, as_json)


def print_summary(archive: pathlib.Path, as_json: bool) -> None:
    """Print the `latentpack.ops.inspect.ArchiveSummary` of an archive, as a table or as JSON."""
    from latentpack.ops.inspect import archive_summary

    s = archive_summary(archive)
    if as_json:
        emit_json(s.as_json())
        return
    lines = _formula_lines(s) + _stored_lines(s) + _file_lines(s) + _record_lines(s) + _check_lines(s)
    echo("\n".join(lines))


def _bpp(value: float | None) -> str:
    """Bits per pixel, or ``no pixels`` (an archive of zero images)."""
    return "no pixels" if value is None else f"{value:.3f} bits/pixel"


def _check_lines(s: ArchiveSummary) -> list[str]:
    """What inspect checked of what extract needs, and what it left to verify."""
    lines = [f"checked            {item}" for item in s.checks.get("checked", [])]
    return lines + [f"not checked        {item}" for item in s.checks.get("skipped", [])]


def _formula_lines(s: ArchiveSummary) -> list[str]:
    """Both sides of z + w*y*32 < x and the verdict."""
    f = s.formula
    y = f["y"] if f["y"] is not None else f"varies ({f['latent_scalars']:,} in all)"
    verdict = (
        f"yes: z + w*y*32 < x, beats raw by {times(f['factor'])}"
        if f["beats_raw"]
        else f"no: z + w*y*32 >= x ({times(f['factor'])} of raw)"
    )
    lines = [
        f"archive            {s.archive}  (format {display_name(s.format_version)}, {display_name(s.writer)})",
        f"mode               {s.mode}",
        f"images (w)         {f['w']:,}",
        f"latents/image (y)  {y}",
        f"raw pixels (x)     {f['x_bits']:>16,} bits  {size(f['x_bits'] / 8)}",
        f"{f['model'] + ' (z)':<19}{f['z_bits']:>16,} bits  {size(f['z_bits'] / 8)}",
    ]
    st = s.stored
    if f["weight_dtype"] != "float32":
        lines.append(f"  {f['weight_dtype']} stored   {st['decoder_bits']:>16,} bits  {size(st['decoder_bits'] / 8)}"
                     f"  (weights stored as {f['weight_dtype']}{'' if f['weight_dtype'] != 'int16' else ', biases int32'}; "
                     "z counts 32 bits each)")
    return lines + [
        f"latents (w*y*32)   {f['latent_bits']:>16,} bits  {size(f['latent_bits'] / 8)}",
        f"z + w*y*32         {f['lhs_bits']:>16,} bits  {size(f['lhs_bits'] / 8)}",
        f"beats raw          {verdict}",
    ]


def _stored_lines(s: ArchiveSummary) -> list[str]:
    """The bits as stored (format 1.1 and later) and whether the decoder dominates."""
    st, f = s.stored, s.formula
    lines = []
    if st is not None:
        lines += [
            f"stored (as coded)  {st['latent_coding']}",
            f"  latents stored   {st['latent_bits']:>16,} bits  {size(st['latent_bits'] / 8)}"
            f"  ({st['latent_bits_per_image']:.1f} bits/image)",
            f"  residuals        {st['residual_bits']:>16,} bits  {size(st['residual_bits'] / 8)}",
            f"  total stored     {st['total_bits']:>16,} bits  {size(st['total_bits'] / 8)}"
            f"  ({_bpp(st['bits_per_pixel'])}, raw / stored = {times(st['factor'])})",
        ]
    if f["decoder_dominates"]:
        lines.append(
            f"note               the decoder dominates: {f['decoder_share']:.0%} of z + w*y*32 "
            "(more images would share its cost)"
        )
    return lines


def _file_lines(s: ArchiveSummary) -> list[str]:
    """The file's bytes part by part, its ratios and the quality."""
    b, q = s.bytes, s.quality
    bd = b["breakdown"]
    lines = [f"file on disk       {size(b['archive'])}  ({_bpp(b['bits_per_pixel'])})"]
    from latentpack.formats.registry import breakdown_parts

    for key, label in [*breakdown_parts(), ("overhead", "HDF5 overhead")]:
        if key in bd:
            share = bd[key] / b["archive"] if b["archive"] else 0
            lines.append(f"  {label:<17}{size(bd[key]):>12}  {share:6.1%}")
    lines += [
        f"ratio to raw       {times(b['ratio_to_raw'])}  (raw {size(b['raw'])} / file)",
        f"ratio to folder    {times(b['ratio_to_folder'])}  (folder {size(b['folder'])} on disk / file)",
        _quality_line(q),
        *_addition_lines(s),
    ]
    if q.get("prediction_mean_psnr") is not None and s.mode != "lossy":
        lines.append(f"prediction         mean PSNR {db(q['prediction_mean_psnr'])} (what the residuals correct)")
    return lines


def _addition_lines(s: ArchiveSummary) -> list[str]:
    """(1.5) The batches ``add`` appended, one line each, and how many images came with the archive."""
    if not s.additions:
        return []
    added = sum(b["images"] for b in s.additions)
    lines = [f"added images       {added:,} in {len(s.additions)} batch(es) since compress "
             f"({s.additions[0]['first']:,} compressed)"]
    return lines + [f"  batch {b['batch']:<11}{b['images']:,} image(s) on {display_name(b['created'])}, mean PSNR "
                    f"{db(b['mean_psnr'])} ({display_name(b['writer'])})" for b in s.additions]


def _quality_line(q: dict) -> str:
    """Mean and worst PSNR, naming the worst image; for an exact archive, that every image is exact."""
    worst = q["min_psnr"]
    if worst is not None and math.isinf(worst):  # every image decodes bit-exact: no image is "worst"
        return "quality            exact: every image decodes to its very pixels (checked against its sha256)"
    return (f"quality            mean PSNR {db(q['mean_psnr'])}, worst {db(worst)} "
            f"({display_name(q['worst_image'] or '')})")


def _record_lines(s: ArchiveSummary) -> list[str]:
    """What compress recorded: skipped files, the rate target, the refinement, the model."""
    skipped = s.skipped
    lines = [f"skipped files      {len(skipped)}" + (" (left out with --skip-bad):" if skipped else "")]
    lines += [f"  {display_name(item['name'])}: {display_name(item['reason'])}" for item in skipped]
    rc = s.rate_control
    if rc:
        goal = (f"mean PSNR >= {rc['value']:g} dB" if rc["target"] == "psnr" else f"file <= {rc['value']:,} bytes")
        got = f" ({db(rc['got'])})" if rc["target"] == "psnr" and "got" in rc else ""
        lines.append(f"rate target        {goal}: {'reached' if rc['reached'] else 'NOT reached'}{got}")
    r = s.refine
    if r:
        gain = 10 * math.log10(r["mse_before"] / r["mse_after"]) if r["mse_before"] > 0 and r["mse_after"] > 0 else 0.0
        lines.append(f"decoder refined    {r['steps']:,} steps on the quantised latents: "
                     + (f"error {gain:.2f} dB lower, kept" if r["kept"] else "no gain, not kept"))
    t = s.training
    if t:
        lines.append("model              " + ", ".join(f"{k}={display_name(v)}" for k, v in t.items()))
    return lines
