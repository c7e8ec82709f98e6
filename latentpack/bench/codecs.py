"""The codecs the bench compares: one subclass of `latentpack.bench.base.Codec` each.

Every codec turns a folder of images into a *store* (a folder holding
whatever it writes: one archive, one file per image, one compressed tar) and
turns the store back into a *restored* folder of image files::

    folder -> encode -> store/ (bytes counted) -> decode -> restored/
           -> compare with the folder's natural pixels (PSNR)

The harness runs `Codec.encode` and `Codec.decode` in a child process (see
`latentpack.bench.worker`), so the wall time and peak memory measured are
those of one codec alone. A new baseline is a few lines: subclass `Codec`
(or `PillowCodec` for a per-image Pillow format), set `name`, implement
`encode` and `decode`, and add it to `CODECS`.

Encoders start from each image's *natural* pixels (`latentpack.fs.images`), the
same pixels the quality is measured against; per-image decoders write the
restored image as PNG, which is what ``latentpack extract`` writes for PNG
input, so extraction is compared like for like.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from latentpack.bench.base import Codec, natural_image_of, store_target, stored_files
from latentpack.bench.pca import PcaCodec
from latentpack.fs.folder import scan_folder
from latentpack.fs.images import open_image

__all__ = [
    "PillowCodec",
    "PngCodec",
    "WebpCodec",
    "WebpLosslessCodec",
    "JpegCodec",
    "AvifCodec",
    "JxlCodec",
    "JxlLosslessCodec",
    "TarCodec",
    "XzCodec",
    "ZstdCodec",
    "LatentpackCodec",
    "LatentpackLosslessCodec",
    "PcaCodec",
    "CODECS",
    "DEFAULT_QUALITIES",
    "make_codec",
    "default_params",
]

#: Quality settings of the lossy baselines when none are given.
DEFAULT_QUALITIES = (10, 30, 50, 70, 90)


class PillowCodec(Codec):
    """A per-image format written and read by Pillow: one file per image."""

    format: ClassVar[str]
    suffix: ClassVar[str]

    def save_options(self) -> dict[str, Any]:
        """Keyword arguments for `PIL.Image.Image.save`."""
        return dict(self.params)

    def prepare(self, image: Image.Image) -> Image.Image:
        """Convert an image to a mode the format stores (default: unchanged)."""
        return image

    def encode(self, folder: Path, store: Path) -> None:
        options = self.save_options()
        for rel, path in scan_folder(folder):
            self.prepare(natural_image_of(path)).save(store_target(store, rel + self.suffix), self.format, **options)

    def decode(self, store: Path, restored: Path) -> None:
        for name, path in stored_files(store, self.suffix):
            with Image.open(path) as image:
                image.load()
                image.save(store_target(restored, name + self.restored_suffix), "PNG")


class PngCodec(PillowCodec):
    """PNG, ``optimize=True`` (lossless)."""

    name = "png"
    lossless = True
    format = "PNG"
    suffix = ".png"

    def save_options(self) -> dict[str, Any]:
        return {"optimize": True}


class WebpCodec(PillowCodec):
    """WebP lossy (libwebp through Pillow), ``method=6``."""

    name = "webp"
    format = "WEBP"
    suffix = ".webp"

    def save_options(self) -> dict[str, Any]:
        return {"quality": self.params.get("quality", 75), "method": 6}


class WebpLosslessCodec(PillowCodec):
    """WebP lossless, maximum effort (``quality=100, method=6``)."""

    name = "webp-lossless"
    lossless = True
    format = "WEBP"
    suffix = ".webp"

    def save_options(self) -> dict[str, Any]:
        return {"lossless": True, "quality": 100, "method": 6, "exact": True}


class JpegCodec(PillowCodec):
    """JPEG (libjpeg through Pillow); alpha is dropped."""

    name = "jpeg"
    format = "JPEG"
    suffix = ".jpg"

    def save_options(self) -> dict[str, Any]:
        return {"quality": self.params.get("quality", 75), "optimize": True}

    def prepare(self, image: Image.Image) -> Image.Image:
        without_alpha = {"LA": "L", "RGBA": "RGB"}.get(image.mode)
        return image.convert(without_alpha) if without_alpha else image


class AvifCodec(PillowCodec):
    """AVIF (libavif through Pillow), default speed."""

    name = "avif"
    format = "AVIF"
    suffix = ".avif"

    def save_options(self) -> dict[str, Any]:
        return {"quality": self.params.get("quality", 75)}


class JxlCodec(Codec):
    """JPEG XL through the reference ``cjxl`` / ``djxl`` programs, one file per image."""

    name = "jxl"
    programs = ("cjxl", "djxl")
    suffix = ".jxl"

    def cjxl_options(self) -> list[str]:
        """Options for ``cjxl`` (quality remapped by cjxl to a distance)."""
        return ["-q", str(self.params.get("quality", 75))]

    def encode(self, folder: Path, store: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="latentpack-jxl-") as tmp:
            source = Path(tmp) / "in.png"
            for rel, path in scan_folder(folder):
                natural_image_of(path).save(source, "PNG", compress_level=0)
                _run([shutil.which("cjxl") or "cjxl", str(source), str(store_target(store, rel + self.suffix)),
                      *self.cjxl_options()])

    def decode(self, store: Path, restored: Path) -> None:
        for name, path in stored_files(store, self.suffix):
            _run([shutil.which("djxl") or "djxl", str(path), str(store_target(restored, name + self.restored_suffix))])


class JxlLosslessCodec(JxlCodec):
    """JPEG XL lossless (``cjxl -d 0``)."""

    name = "jxl-lossless"
    lossless = True

    def cjxl_options(self) -> list[str]:
        return ["-d", "0"]


def _run(argv: list[str]) -> None:
    """Run a program; its output is shown only if it fails."""
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout.decode(errors='replace')[-2000:]}")


class TarCodec(Codec):
    """The raw pixels (one ``.npy`` per image) in a tar piped through a compressor.

        folder -> natural pixels -> .npy members -> tar -> compressor -> pixels.tar.<ext>
    """

    lossless = True
    restored_suffix = ".npy"
    compress_argv: ClassVar[tuple[str, ...]]
    decompress_argv: ClassVar[tuple[str, ...]]
    ext: ClassVar[str]

    def encode(self, folder: Path, store: Path) -> None:
        with open(store / f"pixels.tar.{self.ext}", "wb") as out:
            proc = subprocess.Popen([shutil.which(self.programs[0]) or self.programs[0], *self.compress_argv],
                                    stdin=subprocess.PIPE, stdout=out)
            try:
                with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for rel, path in scan_folder(folder):
                        buf = io.BytesIO()
                        np.save(buf, open_image(path).natural, allow_pickle=False)
                        info = tarfile.TarInfo(rel + ".npy")
                        info.size = buf.tell()
                        info.mode = 0o644
                        buf.seek(0)
                        tar.addfile(info, buf)
            finally:
                proc.stdin.close()
                code = proc.wait()
        if code != 0:
            raise RuntimeError(f"{self.programs[0]} failed with exit status {code}")

    def decode(self, store: Path, restored: Path) -> None:
        proc = subprocess.Popen([shutil.which(self.programs[0]) or self.programs[0], *self.decompress_argv,
                                 str(store / f"pixels.tar.{self.ext}")], stdout=subprocess.PIPE)
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    data = tar.extractfile(member).read()
                    store_target(restored, member.name).write_bytes(data)
            while proc.stdout.read(1 << 16):  # the tar's end padding: unread, the program dies of SIGPIPE
                pass
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            raise RuntimeError(f"{self.programs[0]} -d failed with exit status {code}")


class XzCodec(TarCodec):
    """``xz -9`` of a tar of the raw pixels."""

    name = "xz"
    programs = ("xz",)
    compress_argv = ("-9", "-c")
    decompress_argv = ("-d", "-c")
    ext = "xz"


class ZstdCodec(TarCodec):
    """``zstd -19`` of a tar of the raw pixels."""

    name = "zstd"
    programs = ("zstd",)
    compress_argv = ("-19", "-q", "-c")
    decompress_argv = ("-d", "-q", "-c")
    ext = "zst"


class LatentpackCodec(Codec):
    """latentpack itself: ``compress`` to one archive, ``extract`` it back.

    Parameters are those of `latentpack.ops.compress.compress_folder`
    (``latent_dims``, ``epochs``, ``arch``, ``filters``, ``batch_size``,
    ``seed``). The extracted files keep their names and formats, so the
    restored file of an image is its own name.
    """

    name = "latentpack"
    restored_suffix = ""
    archive_name = "archive.lpk"

    @property
    def setting(self) -> str:
        shown = {k: v for k, v in self.params.items() if k in ("latent_dims", "epochs", "arch", "filters")}
        y = shown.pop("latent_dims", "auto")
        return ", ".join([f"y={y}", *(f"{k}={v}" for k, v in shown.items() if v != "auto")])

    def encode(self, folder: Path, store: Path) -> dict[str, Any]:
        """Compress; returns the design chosen and the time of each phase (read, train, ...)."""
        from latentpack.ops.compress import compress_folder

        result = compress_folder(folder, store / self.archive_name, **self.params)
        training = result.contents.training
        facts = {k: training.get(k) for k in ("arch", "working_mode", "latent_dims", "filters", "epochs", "batch_size", "seed")}
        facts["compress_phases_s"] = {k: round(v, 4) for k, v in result.timings.items()}
        return facts

    def decode(self, store: Path, restored: Path) -> None:
        from latentpack.ops.extract import extract_archive

        extract_archive(store / self.archive_name, restored)


class LatentpackLosslessCodec(LatentpackCodec):
    """latentpack's lossless mode (``compress --lossless``), where this latentpack has one."""

    name = "latentpack-lossless"
    lossless = True

    def __init__(self, **params: Any):
        # the worker process rebuilds the codec from its params, which already say lossless
        super().__init__(**{**params, "lossless": True})

    @property
    def setting(self) -> str:
        return "lossless, " + super().setting

    def missing(self) -> str | None:
        import inspect

        from latentpack.ops.compress import compress_folder

        if "lossless" not in inspect.signature(compress_folder).parameters:
            return "this latentpack has no lossless mode yet"
        return None


#: Every codec the bench knows, by name, in report order.
CODECS: dict[str, type[Codec]] = {
    cls.name: cls
    for cls in (LatentpackCodec, LatentpackLosslessCodec, PngCodec, WebpLosslessCodec, JxlLosslessCodec, XzCodec, ZstdCodec,
                WebpCodec, JpegCodec, AvifCodec, JxlCodec, PcaCodec)
}


def make_codec(name: str, **params: Any) -> Codec:
    """The codec called ``name`` with a setting.

    Raises:
        ValueError: ``name`` is not a known codec.
    """
    try:
        cls = CODECS[name]
    except KeyError:
        raise ValueError(f"`name` must be one of {', '.join(CODECS)}, got {name!r}") from None
    return cls(**params)


def default_params(name: str, qualities: tuple[int, ...] = DEFAULT_QUALITIES) -> list[dict[str, Any]]:
    """The settings a baseline is run at: each quality if lossy (pca: quality / 50 bpp), one run if lossless."""
    cls = CODECS[name]
    if cls.lossless or issubclass(cls, LatentpackCodec):
        return [{}]
    if issubclass(cls, PcaCodec):
        return [{"bpp": q / 50} for q in qualities]
    return [{"quality": q} for q in qualities]
