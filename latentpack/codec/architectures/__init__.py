"""Autoencoder architectures: a registry and one module per design (pure Python).

Adding an architecture: write ``latentpack/codec/architectures/NAME.py`` with
an `Architecture` subclass (its pair builder and training facts) and add its
module to `_MODULES` below; ``--arch NAME`` then works everywhere.
"""
from __future__ import annotations

import importlib

from latentpack.codec.architectures.registry import Architecture, get, names, register

__all__ = ["Architecture", "get", "names", "register"]

#: The architecture modules, in the order ``--arch`` lists them; each registers its design.
_MODULES = ("mlp", "dense", "conv")

for _module in _MODULES:
    importlib.import_module(f"latentpack.codec.architectures.{_module}")
