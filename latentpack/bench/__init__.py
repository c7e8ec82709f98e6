"""``latentpack bench``: latentpack against the codecs a user would reach for.

    base.py           the `Codec` interface and what its subclasses share
    codecs.py         the baselines (PNG, WebP, JPEG,
                      AVIF, JPEG XL, xz/zstd of raw pixels, latentpack itself)
    pca.py            PCA, the linear-autoencoder baseline (numpy, range-coded, every byte counted)
    worker.py         runs one encode or decode in a child process
    harness.py        runs the codecs on a folder and measures each
    report.py         table, JSON and rate-distortion plot
    contact_sheet.py  originals beside their reconstructions
    machine.py        the machine and versions a run used

Importing this package never imports TensorFlow; only a latentpack encode,
in its own child process, does.
"""
from __future__ import annotations

from latentpack.bench.base import Codec
from latentpack.bench.codecs import CODECS, DEFAULT_QUALITIES, default_params, make_codec
from latentpack.bench.harness import BenchError, BenchResult, Entry, run_bench

__all__ = ["CODECS", "DEFAULT_QUALITIES", "Codec", "default_params", "make_codec",
           "BenchError", "BenchResult", "Entry", "run_bench"]
