"""Pixels: opening, mode normalisation, hashing, and the way back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentpack.fs.images import NATURAL_CHANNELS, ImageReadError, from_working, natural_pixels, open_image, pixel_sha256, to_working

NATURAL = {"1": "L", "L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "P": "RGB"}
WORKING = ["L", "LA", "RGB", "RGBA"]
# A working mode always holds the image's colour and alpha.
PAIRS = [
    (mode, work)
    for mode, nat in NATURAL.items()
    for work in WORKING
    if (work.startswith("RGB") or not nat.startswith("RGB")) and (work.endswith("A") or not nat.endswith("A"))
]


def _make(mode: str, rng: np.random.Generator) -> Image.Image:
    arr = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    if mode == "P":
        return Image.fromarray(arr[..., :3], "RGB").quantize(8)
    if mode == "1":
        return Image.fromarray(arr[..., 0] > 127)
    channels = NATURAL_CHANNELS[mode]
    return Image.fromarray(arr[..., :channels].squeeze(), mode)


@pytest.mark.parametrize("mode, working", PAIRS)
def test_working_round_trip_is_exact(tmp_path: Path, mode: str, working: str) -> None:
    img = _make(mode, np.random.default_rng(0))
    img.save(tmp_path / "x.png")
    opened = open_image(tmp_path / "x.png")
    assert opened.natural_mode == NATURAL[mode]
    work = to_working(opened.natural, opened.natural_mode, working)
    back = from_working(work, working, opened.mode, opened.palette)
    assert back.mode == opened.mode
    assert back.size == (opened.width, opened.height)
    assert pixel_sha256(back, opened.palette) == opened.sha256


def test_sha256_depends_on_pixels_mode_and_size() -> None:
    a = Image.new("L", (4, 4), 7)
    assert pixel_sha256(a) != pixel_sha256(Image.new("L", (4, 4), 8))
    assert pixel_sha256(a) != pixel_sha256(Image.new("L", (2, 8), 7))
    assert pixel_sha256(a) != pixel_sha256(a.convert("RGB"))


def test_palette_transparency_gives_rgba_natural() -> None:
    img = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4), "P")
    img.putpalette(bytes(range(48)))
    img.info["transparency"] = 3
    natural, mode = natural_pixels(img)
    assert mode == "RGBA"
    assert natural[0, 3, 3] == 0 and natural[0, 0, 3] == 255


@pytest.mark.parametrize(
    "payload, reason",
    [(b"", "not an image"), (b"hello, world", "not an image"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "image")],
)
def test_bad_files_raise_image_read_error(tmp_path: Path, payload: bytes, reason: str) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(payload)
    with pytest.raises(ImageReadError, match=reason):
        open_image(path)


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), "L").save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cannot be decoded"):
        open_image(tmp_path / "b.png")


def test_sixteen_bit_image_is_refused_by_name(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(ImageReadError, match="16-bit"):
        open_image(tmp_path / "deep.png")
