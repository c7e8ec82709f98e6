"""latentpack: a folder of images as one HDF5 archive of a decoder and latents.

    import latentpack
    with latentpack.open("photos.lpk") as a:
        first = a[0]                       # numpy pixels, as extract writes them
    latentpack.compress("photos/", "photos.lpk", epochs=20)
    latentpack.add("photos.lpk", "more-photos/")   # no retraining

`open`, `compress` and `Archive` are imported on first use, so that
``import latentpack`` (and ``latentpack.__version__``) imports neither h5py
nor TensorFlow; reading an archive never imports TensorFlow.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

__all__ = ["__version__", "open", "compress", "add", "Archive", "tf_dataset", "LatentpackError", "OptionError"]

#: Public names and the module each is imported from when first used.
_LAZY = {
    "open": "latentpack.api",
    "compress": "latentpack.api",
    "add": "latentpack.api",
    "Archive": "latentpack.api",
    "tf_dataset": "latentpack.feed",
    "LatentpackError": "latentpack.errors",
    "OptionError": "latentpack.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'latentpack' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
