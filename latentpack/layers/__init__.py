"""Decoder layer types: a registry and one module per type (numpy only).

Adding a layer type: write ``latentpack/layers/NAME.py`` with a `LayerType`
subclass (config keys and checks, shape rule, numpy and fixed-point passes,
Keras builder) and add its module to `_MODULES` below.
"""
from __future__ import annotations

import importlib

from latentpack.layers.registry import Checked, LayerType, get, names, register

__all__ = ["Checked", "LayerType", "get", "names", "register"]

#: The layer modules, in the order the allowlist lists them; each registers its type.
_MODULES = ("flatten", "dense", "reshape", "conv2d", "conv2d_transpose", "upsampling2d")

for _module in _MODULES:
    importlib.import_module(f"latentpack.layers.{_module}")
