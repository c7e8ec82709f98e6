"""latentpack: a folder of images as one HDF5 archive of a decoder and latents."""
from __future__ import annotations

__version__ = "0.1.0"
