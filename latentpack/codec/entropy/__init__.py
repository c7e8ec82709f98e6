"""Entropy coding: range coding from count tables, coded latents, lossless pixel residuals.

Numpy and constriction only (no TensorFlow).
"""
from __future__ import annotations

__all__: list[str] = []
