"""A bench's results as a table, as JSON for scripts, and as a rate-distortion plot.

JSON holds one entry per (codec, setting): ``name``, ``setting``, ``bytes``,
``bpp``, ``mean_psnr``, ``min_psnr`` (both null and ``"lossless": true``
when every image came back exact), ``compress_s``, ``extract_s``,
``compress_peak_rss_mb``, ``extract_peak_rss_mb``, plus the machine and the
command line. The plot is bits per pixel against mean PSNR, one curve per
codec (matplotlib, imported only when a plot is asked for).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from latentpack.bench.harness import BenchResult, Entry

__all__ = ["entry_json", "result_json", "extract_speed", "format_table", "markdown_table", "plot_rate_distortion"]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def entry_json(entry: Entry) -> dict[str, Any]:
    """One entry as a JSON-able dict."""
    q, c, x = entry.quality, entry.compress, entry.extract
    return {
        "name": entry.name,
        "setting": entry.setting,
        "params": entry.params,
        "bytes": entry.bytes,
        "files": entry.files,
        "bpp": _round(entry.bpp, 5),
        "mean_psnr": _round(q.mean_psnr, 3) if q else None,
        "min_psnr": _round(q.min_psnr, 3) if q else None,
        "worst_image": q.worst_image if q else None,
        "exact_images": q.exact_images if q else None,
        "lossless": q.lossless if q else None,
        "compress_s": _round(c.wall_s, 3) if c else None,
        "extract_s": _round(x.wall_s, 3) if x else None,
        "compress_peak_rss_mb": _round(c.peak_rss_mb, 1) if c else None,
        "extract_peak_rss_mb": _round(x.peak_rss_mb, 1) if x else None,
        "extract_images_per_s": _round(entry.extract_images_per_s, 1),
        "details": entry.details,
        "store": entry.store,
        "skipped": entry.skipped,
        "error": entry.error,
    }


def extract_speed(result: BenchResult) -> list[dict[str, Any]]:
    """Extraction throughput of each latentpack entry over that of WebP, same run.

    The WebP entry compared is the lossy one with the median quality (WebP
    decoding speed hardly depends on it); both restore the same PNG files.
    """
    done = [e for e in result.entries if e.extract_images_per_s]
    webp = [e for e in done if e.name == "webp"]
    if not webp:
        return []
    ref = sorted(webp, key=lambda e: e.params.get("quality", 0))[len(webp) // 2]
    return [
        {
            "latentpack": e.setting,
            "latentpack_images_per_s": _round(e.extract_images_per_s, 1),
            "webp": ref.setting,
            "webp_images_per_s": _round(ref.extract_images_per_s, 1),
            "ratio": _round(e.extract_images_per_s / ref.extract_images_per_s, 3),
        }
        for e in done
        if e.name == "latentpack"
    ]


def result_json(result: BenchResult, *, machine: dict[str, Any], command: str,
                options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole run as a JSON-able dict (strict JSON: no NaN or infinity)."""
    return {
        "command": command,
        "options": options or {},
        "machine": machine,
        "folder": result.folder,
        "images": len(result.names),
        "pixels": result.pixels,
        "notes": result.notes,
        "entries": [entry_json(e) for e in result.entries],
        "extract_speed_vs_webp": extract_speed(result),
        "workdir": result.workdir,
    }


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_table(result: BenchResult) -> str:
    """The results as a plain-text table, then latentpack's time by phase and extraction speed."""
    header = ["codec", "setting", "bytes", "bpp", "mean PSNR", "min PSNR", "compress s", "extract s",
              "comp RSS MB", "extr RSS MB", "extr img/s"]
    rows: list[list[str] | tuple[str, str, str]] = []
    for e in result.entries:
        if e.skipped or e.error:
            rows.append((e.name, e.setting, f"skipped: {e.skipped}" if e.skipped else "failed (see the JSON's error)"))
            continue
        q = e.quality
        rows.append([
            e.name, e.setting, f"{e.bytes:,}", f"{e.bpp:.3f}",
            "lossless" if q.lossless else f"{q.mean_psnr:.2f}",
            "lossless" if q.lossless else f"{q.min_psnr:.2f}",
            f"{e.compress.wall_s:.2f}", f"{e.extract.wall_s:.2f}",
            f"{e.compress.peak_rss_mb:.0f}", f"{e.extract.peak_rss_mb:.0f}",
            _fmt(e.extract_images_per_s, ",.0f"),
        ])
    # A skipped or failed row is (codec, setting, note): it sets the first two widths only.
    widths = [max(len(r[i]) for r in [header, *rows] if isinstance(r, list) or i < 2) for i in range(len(header))]

    def line(cells: list[str] | tuple[str, str, str]) -> str:
        if isinstance(cells, tuple):
            return f"{cells[0].ljust(widths[0])}  {cells[1].ljust(widths[1])}  {cells[2]}"
        return "  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()

    lines = [f"{len(result.names):,} image(s), {result.pixels:,} pixels, from {result.folder}",
             line(header), line(["-" * w for w in widths])]
    lines += [line(r) for r in rows]
    for e in result.entries:
        phases = e.details.get("compress_phases_s")
        if phases:
            shown = ", ".join(f"{k} {v:.2f}s" for k, v in phases.items())
            lines.append(f"latentpack {e.setting}: compress by phase: {shown} "
                         f"(the rest of {e.compress.wall_s:.2f}s is start-up and TensorFlow import)")
    for s in extract_speed(result):
        lines.append(f"extraction: latentpack {s['latentpack']} {s['latentpack_images_per_s']:,} images/s, "
                     f"webp {s['webp']} {s['webp_images_per_s']:,} images/s: ratio {s['ratio']:.2f}")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def plot_rate_distortion(result: BenchResult, path: str | Path, title: str | None = None) -> None:
    """Write a PNG of bits per pixel against mean PSNR, one curve per codec.

    Lossless entries have no PSNR; they are drawn as vertical dotted lines at
    their bits per pixel.

    Raises:
        ImportError: matplotlib is not installed (``pip install latentpack[bench]``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(8.5, 4.8), dpi=100)
    families: dict[str, list[Entry]] = {}
    for e in result.entries:
        if e.quality is not None and e.bpp is not None:
            families.setdefault(e.name, []).append(e)
    markers = "os^Dv<>ph*"
    for k, (name, entries) in enumerate(families.items()):
        lossy = sorted((e for e in entries if not e.quality.lossless), key=lambda e: e.bpp)
        exact = [e for e in entries if e.quality.lossless]
        style = {"linewidth": 2.5, "color": "black"} if name == "latentpack" else {"color": f"C{k % 10}"}
        if lossy:
            ax.plot([e.bpp for e in lossy], [e.quality.mean_psnr for e in lossy], marker=markers[k % len(markers)],
                    label=name, **style)
        for e in exact:
            ax.axvline(e.bpp, linestyle=(0, (1, 1 + k % 3)), color=f"C{k % 10}", label=f"{name} (lossless)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([m * 10.0**e for e in range(-3, 4) for m in (1, 2, 5)]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("bits per pixel (whole output, log scale)")
    ax.set_ylabel("mean PSNR (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or f"{len(result.names):,} images from {Path(result.folder).name}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown_table(data: dict[str, Any]) -> str:
    """A bench's JSON (`result_json`) as a Markdown table, for docs/BENCHMARKS.md."""
    lines = [
        "| codec | setting | bytes | bpp | mean PSNR (dB) | min PSNR (dB) | compress s | extract s "
        "| compress RSS MB | extract RSS MB | extract images/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in data["entries"]:
        if e["skipped"] or e["error"]:
            lines.append(f"| {e['name']} | {e['setting']} | {'skipped: ' + e['skipped'] if e['skipped'] else 'failed'} "
                         "| | | | | | | | |")
            continue
        exact = "lossless" if e["lossless"] else None
        lines.append(
            f"| {e['name']} | {e['setting']} | {e['bytes']:,} | {e['bpp']:.3f} "
            f"| {exact or format(e['mean_psnr'], '.2f')} | {exact or format(e['min_psnr'], '.2f')} "
            f"| {e['compress_s']:.1f} | {e['extract_s']:.1f} | {e['compress_peak_rss_mb']:.0f} "
            f"| {e['extract_peak_rss_mb']:.0f} | {e['extract_images_per_s']:,.0f} |"
        )
    return "\n".join(lines)
