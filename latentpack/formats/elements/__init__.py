"""The archive's elements, one module each; importing this package registers them.

The order of the imports below is the reading order (the header first: its
``w`` sizes the rest; the decoder before the latents: its input shape checks
them; the images before the pixel model: their shapes check its blocks). To
add an element: write one module with an `Element` subclass under
`latentpack.formats.registry.register`, and import it here.
"""
from __future__ import annotations

from latentpack.formats.elements import header  # noqa: F401
from latentpack.formats.elements import decoder  # noqa: F401
from latentpack.formats.elements import latents_float  # noqa: F401
from latentpack.formats.elements import latents_coded  # noqa: F401
from latentpack.formats.elements import latents_index  # noqa: F401
from latentpack.formats.elements import images  # noqa: F401
from latentpack.formats.elements import images_compact  # noqa: F401
from latentpack.formats.elements import quality  # noqa: F401
from latentpack.formats.elements import training  # noqa: F401
from latentpack.formats.elements import lossless  # noqa: F401
from latentpack.formats.elements import pixels  # noqa: F401
from latentpack.formats.elements import additions  # noqa: F401

__all__: list[str] = []
