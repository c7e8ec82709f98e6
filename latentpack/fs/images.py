"""Image pixels: open safely, normalise modes, hash, and map back.

Every image is seen in three forms:

* the *original*: what Pillow opened, in its own mode (``1``, ``L``, ``P``, ...);
* the *natural* pixels: a uint8 (H, W, C) array in ``L``, ``LA``, ``RGB`` or
  ``RGBA`` that holds what the original shows (palettes looked up, bilevel
  widened, CMYK/YCbCr converted to RGB);
* the *working* pixels: natural pixels widened to the folder's working mode
  (the one mode the autoencoder sees).

Extraction walks back: working -> natural -> original mode (palette images
take the nearest colour of their stored palette). Numpy and Pillow only.

What a file carries besides its pixels: an EXIF orientation is applied when
the file is read (the picture is stored upright, as viewers show it, and
extracted upright with no EXIF); an ICC profile is not stored (the pixel
values are kept as they are, and extracted files carry no profile, so
viewers take them as sRGB); a file of several frames (animated GIF or WebP,
multi-page TIFF) is refused, naming it (``compress --skip-bad`` leaves it out
and records it).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps

from latentpack.fs.special import NotRegularFileError, open_regular

__all__ = [
    "ACCEPTED_FORMATS",
    "NATURAL_CHANNELS",
    "MODE_OF_CHANNELS",
    "OUTPUT_MODES",
    "ImageReadError",
    "OpenedImage",
    "open_image",
    "pixel_sha256",
    "to_working",
    "from_working",
    "natural_pixels",
    "natural_image",
]

#: Pillow formats accepted as input (a fixed list: no surprise plugins).
ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO")
#: The natural (and working) modes and their channels: the package's one table of them.
NATURAL_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
#: The natural mode of an (H, W, C) array with C channels.
MODE_OF_CHANNELS = {c: mode for mode, c in NATURAL_CHANNELS.items()}
#: Original modes read, and the natural mode each maps to (P is decided by its palette).
_NATURAL_OF = {"1": "L", "L": "L", "LA": "LA", "La": "LA", "RGB": "RGB", "RGBA": "RGBA", "RGBa": "RGBA",
               "CMYK": "RGB", "YCbCr": "RGB", "PA": "RGBA"}
#: The original modes extraction can produce (any other stored mode is refused, naming the image).
OUTPUT_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr"})
_OUTPUT_MODES = OUTPUT_MODES


#: The EXIF tag of the orientation: applied when a file is read, so that what is stored (and
#: extracted, with no EXIF) is the picture upright, as a viewer shows the original.
_ORIENTATION = 0x0112


class ImageReadError(ValueError):
    """An input file cannot be used as an image; the message says why."""


@dataclass
class OpenedImage:
    """An input image, decoded and normalised.

    Attributes:
        mode: The original Pillow mode (as extraction will write it back).
        format: The source format (``PNG``, ``JPEG``, ...).
        natural: uint8 (H, W, C) natural pixels.
        natural_mode: ``L``, ``LA``, ``RGB`` or ``RGBA``.
        palette: (256, 4) uint8 RGBA palette for mode ``P``, else None.
        sha256: Digest of the original pixels (see `pixel_sha256`).
        channels: Channels of the original mode (P and 1 count as 1).
    """

    mode: str
    format: str
    natural: np.ndarray
    natural_mode: str
    palette: np.ndarray | None
    sha256: bytes
    channels: int

    @property
    def height(self) -> int:
        return int(self.natural.shape[0])

    @property
    def width(self) -> int:
        return int(self.natural.shape[1])


def _rgba_palette(img: Image.Image) -> np.ndarray:
    """The palette of a ``P`` image as (256, 4) RGBA, transparency applied."""
    raw = img.getpalette("RGB") or []
    pal = np.zeros((256, 4), dtype=np.uint8)
    rgb = np.frombuffer(bytes(raw), dtype=np.uint8)[: 256 * 3].reshape(-1, 3)
    pal[: len(rgb), :3] = rgb
    pal[:, 3] = 255
    t = img.info.get("transparency")
    if isinstance(t, int) and 0 <= t < 256:
        pal[t, 3] = 0
    elif isinstance(t, (bytes, bytearray)):
        alphas = np.frombuffer(bytes(t), dtype=np.uint8)[:256]
        pal[: len(alphas), 3] = alphas
    return pal


def pixel_sha256(img: Image.Image, palette: np.ndarray | None = None) -> bytes:
    """sha256 over ``"{mode}:{width}x{height}:"``, the raw pixels and, for P, the RGBA palette.

    Args:
        img: The image in its original mode.
        palette: For mode ``P``, its (256, 4) RGBA palette.
    """
    h = hashlib.sha256(f"{img.mode}:{img.width}x{img.height}:".encode())
    h.update(img.tobytes())
    if img.mode == "P":
        h.update(np.ascontiguousarray(palette if palette is not None else _rgba_palette(img), dtype=np.uint8).tobytes())
    return h.digest()


def natural_pixels(img: Image.Image, palette: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The uint8 (H, W, C) natural pixels of an image and their mode."""
    if img.mode == "P":
        pal = palette if palette is not None else _rgba_palette(img)
        idx = np.asarray(img, dtype=np.uint8)
        rgba = pal[idx]
        if (pal[:, 3] == 255).all():
            return np.ascontiguousarray(rgba[..., :3]), "RGB"
        return rgba, "RGBA"
    natural = _NATURAL_OF.get(img.mode)
    if natural is None:
        raise ImageReadError(f"mode {img.mode} is not supported (16-bit and float images are not; convert to 8-bit)")
    if img.mode != natural:
        img = img.convert(natural)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr, natural


def natural_image(natural: np.ndarray) -> Image.Image:
    """A Pillow image of uint8 (H, W, C) natural pixels (mode L, LA, RGB or RGBA from C)."""
    c = natural.shape[2]
    return Image.fromarray(np.ascontiguousarray(natural if c > 1 else natural[..., 0]), MODE_OF_CHANNELS[c])


def open_image(path: Path | BinaryIO) -> OpenedImage:
    """Open, fully decode and normalise one image file (a path, or an open binary file).

    Pillow's decompression-bomb check stays on (its warning is an error) and
    truncated files are refused (never ``ImageFile.LOAD_TRUNCATED_IMAGES``).
    A path that is not a regular file (a FIFO, socket or device) is refused
    without being opened in a way that could block (`latentpack.fs.special`).

    Raises:
        ImageReadError: with the reason (not an image, truncated, unsupported mode,
            not a regular file, ...).
    """
    lenient = ImageFile.LOAD_TRUNCATED_IMAGES  # another library may have set it; never for our reads
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings(), _source(path) as source:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=ACCEPTED_FORMATS) as img:
                frames = getattr(img, "n_frames", 1)
                if frames > 1:  # stored as its first frame it would be lost without a word: refused
                    raise ImageReadError(f"has {frames} frames (an animation or a multi-page file); latentpack "
                                         "stores one picture per file and would keep only the first")
                img.load()
                fmt = img.format or "unknown"
                img = ImageOps.exif_transpose(img) if _ORIENTATION in img.getexif() else img.copy()
    except ImageReadError:
        raise
    except NotRegularFileError as exc:
        raise ImageReadError(f"is {exc.kind}, not a regular file (not read)") from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(f"not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"too many pixels (decompression bomb limit): {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"cannot be decoded: {exc}") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    if img.width < 1 or img.height < 1:
        raise ImageReadError("has no pixels")
    if img.mode not in _OUTPUT_MODES and img.mode not in _NATURAL_OF:
        raise ImageReadError(f"mode {img.mode} is not supported (16-bit and float images are not; convert to 8-bit)")
    if img.mode in ("PA", "La", "RGBa"):  # premultiplied or palette+alpha: keep as plain alpha modes
        img = img.convert("LA" if img.mode == "La" else "RGBA")
    palette = _rgba_palette(img) if img.mode == "P" else None
    natural, natural_mode = natural_pixels(img, palette)
    return OpenedImage(
        mode=img.mode,
        format=fmt,
        natural=natural,
        natural_mode=natural_mode,
        palette=palette,
        sha256=pixel_sha256(img, palette),
        channels=len(img.getbands()),
    )


def _source(path: Path | BinaryIO) -> contextlib.AbstractContextManager[BinaryIO]:
    """An open binary file for `open_image`: a path opened with `open_regular` (closed after), a file as is."""
    if isinstance(path, (str, os.PathLike)):
        return open_regular(path)
    return contextlib.nullcontext(path)


def to_working(natural: np.ndarray, natural_mode: str, working_mode: str) -> np.ndarray:
    """Widen natural pixels to the working mode (grey replicated, opaque alpha added)."""
    color = working_mode.startswith("RGB")
    alpha = working_mode.endswith("A")
    c = natural.shape[2]
    has_alpha = natural_mode.endswith("A")
    base = natural[..., : c - 1] if has_alpha else natural
    if color and base.shape[2] == 1:
        base = np.repeat(base, 3, axis=2)
    if not alpha:
        return np.ascontiguousarray(base)
    a = natural[..., c - 1 :] if has_alpha else np.full(base.shape[:2] + (1,), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([base, a], axis=2))


def from_working(working: np.ndarray, working_mode: str, mode: str, palette: np.ndarray | None = None) -> Image.Image:
    """Map working pixels back to an image in its original mode.

    Args:
        working: uint8 (H, W, C) in ``working_mode``.
        working_mode: The model's mode.
        mode: The original mode to produce.
        palette: (256, 4) RGBA palette for mode ``P``.
    """
    arr = working if working.shape[2] > 1 else working[..., 0]
    img = Image.fromarray(np.ascontiguousarray(arr), working_mode)
    if mode == "P":
        if palette is None:
            raise ValueError("`palette` is required for mode P")
        rgba = np.asarray(img.convert("RGBA"), dtype=np.int32)
        pal = palette.astype(np.int32)
        use_alpha = not (pal[:, 3] == 255).all()
        channels = 4 if use_alpha else 3
        flat = rgba[..., :channels].reshape(-1, channels)
        idx = np.empty(len(flat), dtype=np.uint8)
        for start in range(0, len(flat), 65536):
            block = flat[start : start + 65536]
            d = ((block[:, None, :] - pal[None, :, :channels]) ** 2).sum(axis=2)
            idx[start : start + 65536] = d.argmin(axis=1)
        out = Image.fromarray(idx.reshape(rgba.shape[:2]), "P")
        out.putpalette(palette[:, :3].tobytes(), "RGB")
        if use_alpha:
            out.info["transparency"] = palette[:, 3].tobytes()
        return out
    if mode == "1":
        return img.convert("L").convert("1", dither=Image.Dither.NONE)
    return img if img.mode == mode else img.convert(mode)
