"""The bench's one abstract class, `Codec`, and the helpers its subclasses share.

    folder -> encode -> store/ (bytes counted) -> decode -> restored/

A new baseline subclasses `Codec` (or `latentpack.bench.codecs.PillowCodec`),
sets `name`, implements `encode` and `decode`, and is added to
`latentpack.bench.codecs.CODECS`.
"""
from __future__ import annotations

import abc
import shutil
from pathlib import Path
from typing import Any, ClassVar, Iterator

from PIL import Image

from latentpack.fs.folder import scan_folder
from latentpack.fs.images import natural_image, open_image
from latentpack.fs.names import safe_target

__all__ = ["Codec", "store_target", "natural_image_of", "stored_files"]


class Codec(abc.ABC):
    """One way of storing a folder of images, measured by the bench harness.

        folder -> encode -> store/ -> decode -> restored/

    Attributes:
        name: The codec's name on the command line and in reports.
        lossless: Whether the codec claims to be lossless (the harness checks).
        programs: External programs it needs; missing ones skip the codec.
        restored_suffix: Appended to an image's name to find its restored file.
        params: The setting, as keyword parameters (e.g. ``{"quality": 50}``).
    """

    name: ClassVar[str]
    lossless: ClassVar[bool] = False
    programs: ClassVar[tuple[str, ...]] = ()
    restored_suffix: ClassVar[str] = ".png"

    def __init__(self, **params: Any):
        self.params = {k: v for k, v in params.items() if v is not None}

    @property
    def setting(self) -> str:
        """The setting in words (``q=50``, ``y=16, epochs=5``, ``lossless``)."""
        if not self.params:
            return "lossless" if self.lossless else "default"
        short = {"quality": "q", "latent_dims": "y"}
        return ", ".join(f"{short.get(k, k)}={v}" for k, v in self.params.items())

    def missing(self) -> str | None:
        """Why this codec cannot run here (a program not installed), or None."""
        absent = [p for p in self.programs if shutil.which(p) is None]
        return f"{', '.join(absent)} not installed" if absent else None

    def declines(self, folder: Path) -> str | None:
        """Why this codec does not apply to the images under ``folder`` (e.g. sizes differ), or None."""
        return None

    @abc.abstractmethod
    def encode(self, folder: Path, store: Path) -> dict[str, Any] | None:
        """Compress every image under ``folder`` into the (empty) folder ``store``.

        Returns:
            Optional facts for the report (JSON-able), e.g. time by phase.
        """

    @abc.abstractmethod
    def decode(self, store: Path, restored: Path) -> None:
        """Write every image held in ``store`` under ``restored`` as ``<name><restored_suffix>``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.setting})"


def store_target(root: Path, rel: str) -> Path:
    """``root/rel``, checked to stay under ``root``, parent folders created."""
    path = safe_target(root, rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def natural_image_of(path: Path) -> Image.Image:
    """An image's natural pixels (L, LA, RGB or RGBA) as a Pillow image."""
    return natural_image(open_image(path).natural)


def stored_files(store: Path, suffix: str) -> Iterator[tuple[str, Path]]:
    """(image name, stored file) for every ``*<suffix>`` file in a store."""
    for rel, path in scan_folder(store):
        if rel.endswith(suffix):
            yield rel[: -len(suffix)], path
