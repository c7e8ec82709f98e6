"""Print the Markdown of docs/BENCHMARKS.md's tables from saved `latentpack bench --json` files.

    python examples/bench_markdown.py results docs/bench/mnist.json
    python examples/bench_markdown.py memory docs/bench/memory-1000.json docs/bench/memory-10000.json ...

``results``: the codec table, latentpack's compress phases, and extraction
throughput against WebP. ``memory``: peak RSS of compress and extract of each
latentpack entry, one row per file (run on 1,000, 10,000, 70,000 images).
A report prints numbers; it measures nothing itself.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from latentpack.bench.report import markdown_table


def results(path: Path) -> None:
    data = json.loads(path.read_text())
    m = data["machine"]
    print(f"Command: `{data['command']}`  ")
    print(f"Machine: {m.get('cpu')}, {m.get('cpus_usable')} cores, {m.get('memory_gib')} GiB, Python {m.get('python')}, "
          + ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items()) + "  ")
    print(f"Images: {data['images']:,}, pixels: {data['pixels']:,}\n")
    print(markdown_table(data))
    print()
    for note in data.get("notes", []):
        print(f"* {note}")
    print("\nlatentpack's compress time by phase (seconds):\n")
    print("| setting | " + " | ".join(["read", "train", "encode", "code latents", "measure", "code pixels", "check",
                                         "write"]) + " |")
    print("| --- |" + " ---: |" * 8)
    for e in data["entries"]:
        phases = (e.get("details") or {}).get("compress_phases_s")
        if e["name"].startswith("latentpack") and phases:
            cols = ["read", "train", "encode", "code_latents", "measure", "code_pixels", "check", "write"]
            print(f"| {e['name']} {e['setting']} | " + " | ".join(
                f"{phases[c]:.1f}" if c in phases else "" for c in cols) + " |")
    speed = data.get("extract_speed_vs_webp") or []
    if speed:
        print("\nExtraction throughput against WebP (same run, both write PNG files):\n")
        print("| latentpack | images/s | WebP | images/s | ratio |")
        print("| --- | ---: | --- | ---: | ---: |")
        for s in speed:
            print(f"| {s['latentpack']} | {s['latentpack_images_per_s']:,} | {s['webp']} | {s['webp_images_per_s']:,} "
                  f"| {s['ratio']:.2f} |")


def memory(paths: list[Path]) -> None:
    print("| images | entry | compress peak RSS MB | extract peak RSS MB | compress s | extract s |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for path in paths:
        data = json.loads(path.read_text())
        for e in data["entries"]:
            if e["skipped"] or e["error"]:
                continue
            print(f"| {data['images']:,} | {e['name']} {e['setting']} | {e['compress_peak_rss_mb']:.0f} "
                  f"| {e['extract_peak_rss_mb']:.0f} | {e['compress_s']:.1f} | {e['extract_s']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["results", "memory"])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    if args.kind == "results":
        for path in args.files:
            results(path)
    else:
        memory(args.files)


if __name__ == "__main__":
    main()
