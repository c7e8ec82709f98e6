"""Shared fixtures: small synthetic image folders made on the fly."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# compress checkpoints under $XDG_CACHE_HOME: the tests' go to a folder of their own, one per test process
# (never the user's cache, and two processes compressing the same folder never share a checkpoint)
_CACHE = tempfile.mkdtemp(prefix="latentpack-tests-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one test process per usable core, at most 4 (each imports TensorFlow)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def gradient_image(rng: np.random.Generator, size: int = 16) -> Image.Image:
    """An easy image: a smooth ramp with a random direction and brightness."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    a, b = rng.uniform(-1, 1, 2)
    base = rng.uniform(60, 190)
    arr = base + 60 * (a * xx + b * yy)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


def ramp_folder(folder: Path, count: int, seed: int, prefix: str = "img") -> Path:
    """Create ``folder`` holding ``count`` 16x16 greyscale ramps named ``{prefix}{i:03d}.png``."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        gradient_image(rng).save(folder / f"{prefix}{i:03d}.png")
    return folder


@pytest.fixture
def easy_folder(tmp_path: Path) -> Path:
    """48 greyscale 16x16 ramps in two subfolders."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "easy"
    for i in range(48):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        gradient_image(rng).save(sub / f"img{i:02d}.png")
    return folder


def make_mixed_folder(folder: Path, seed: int = 2) -> Path:
    """Create ``folder`` with mixed sizes and modes: L, LA, RGB, RGBA, P (with transparency), 1, JPEG, nested."""
    rng = np.random.default_rng(seed)
    (folder / "nested" / "deeper").mkdir(parents=True)

    def noise(h, w, c):
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)

    Image.fromarray(noise(20, 30, 3), "RGB").save(folder / "rgb.png")
    Image.fromarray(noise(16, 16, 1)[..., 0], "L").save(folder / "nested" / "grey.png")
    Image.fromarray(noise(9, 13, 4), "RGBA").save(folder / "nested" / "deeper" / "rgba.png")
    Image.fromarray(noise(11, 7, 2), "LA").save(folder / "la.png")
    p = Image.fromarray(noise(12, 12, 3), "RGB").quantize(16)
    p.info["transparency"] = 0
    p.save(folder / "palette.png", transparency=0)
    Image.fromarray(noise(10, 10, 1)[..., 0] > 128).save(folder / "bilevel.png")
    Image.fromarray(noise(24, 17, 3), "RGB").save(folder / "photo.jpg", quality=90)
    Image.fromarray(noise(1, 1, 3), "RGB").save(folder / "tiny.png")
    (folder / ".hidden.png").write_bytes(b"not even an image")
    return folder


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """Mixed sizes and modes: L, LA, RGB, RGBA, P (with transparency), 1, JPEG, nested."""
    return make_mixed_folder(tmp_path / "mixed")
