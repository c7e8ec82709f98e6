"""Render the default example folder: digits drawn with Pillow.

Each image is a 28x28 greyscale PNG of one digit in Pillow's built-in font,
at a random size, stroke width, angle and position (seeded, so the folder is
the same on every run). The project ships the result in examples/digits/;
run this script to make it again or to make a bigger one:

    python examples/make_digits.py examples/digits --count 2000 --seed 0
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def render_digit(digit: int, rng: np.random.Generator, size: int = 28) -> Image.Image:
    """One digit, white on black, randomly sized, thickened, rotated and shifted."""
    canvas = 96
    font = ImageFont.load_default(size=int(rng.integers(40, 64)))
    img = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(img)
    stroke = int(rng.integers(0, 5))
    draw.text((canvas / 2, canvas / 2), str(digit), fill=255, font=font, anchor="mm",
              stroke_width=stroke, stroke_fill=255)
    img = img.rotate(float(rng.uniform(-35, 35)), resample=Image.Resampling.BICUBIC)
    box = img.getbbox() or (0, 0, canvas, canvas)
    glyph = img.crop(box)
    scale = 20 / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))),
                         Image.Resampling.LANCZOS)
    out = Image.new("L", (size, size), 0)
    dx = int(rng.integers(-2, 3)) + (size - glyph.width) // 2
    dy = int(rng.integers(-2, 3)) + (size - glyph.height) // 2
    out.paste(glyph, (dx, dy))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for i in range(args.count):
        digit = i % 10
        sub = args.folder / str(digit)
        sub.mkdir(parents=True, exist_ok=True)
        render_digit(digit, rng).save(sub / f"{i:05d}.png", optimize=True)
    print(f"wrote {args.count} digits under {args.folder}")


if __name__ == "__main__":
    main()
