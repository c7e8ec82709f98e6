"""The operations a user runs, one module each: compress, extract, verify, inspect.

Each composes the codec's stages and the file-system layer; the command line
and the public API (`latentpack.open`, `latentpack.compress`) call them.
"""
from __future__ import annotations
