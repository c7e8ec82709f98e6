"""The click command line (thin: parse, call, print)."""
from __future__ import annotations

from latentpack.cli.main import cli, main

__all__ = ["cli", "main"]
