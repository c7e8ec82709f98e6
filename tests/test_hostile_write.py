"""Hostile file systems and inputs, round two (issue 13): races while extracting, what files carry.

Race-free extraction: while thousands of tiny files are written under
``OUT/sub``, a thread keeps swapping ``OUT/sub`` for a symlink to another
folder (and back). No write may ever land in the symlink's target; a run
either completes into the real folder or stops with `OutputChangedError` and
leaves no file behind.

No silent loss: a file of several frames is refused (skipped and recorded
with ``--skip-bad``); an EXIF orientation is applied (stored and extracted
upright); an ICC profile is dropped while the pixel values stay exact.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

sys.path.insert(0, str(Path(__file__).parent))

from security_cases import swap_races  # noqa: E402

from latentpack.cli import cli  # noqa: E402
from latentpack.fs.held import OutputChangedError  # noqa: E402
from latentpack.fs.images import ImageReadError, open_image  # noqa: E402
from latentpack.fs.output import OutputFolder, check_targets  # noqa: E402

FILES = 3000
RUNS = 6


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_a_folder_swapped_for_a_symlink_never_redirects_a_write(tmp_path):
    report = swap_races(RUNS, FILES, tmp_path)  # even runs swap and swap back, odd ones swap once
    assert report.unexpected == []
    assert report.through_symlink == 0  # never a write through the symlink
    assert report.left_behind == 0  # a stopped run removed every file it wrote
    assert report.completed + report.stopped == RUNS
    assert report.stopped >= 1 and report.swaps >= RUNS  # the race was really run


def test_extract_stops_cleanly_when_its_folder_is_swapped(tmp_path, monkeypatch):
    """Through the command: one Error: line naming the folder, exit 1, nothing left, nothing outside."""
    sys.path.insert(0, str(Path(__file__).parent))
    from archive_factory import make_contents

    from latentpack.formats import write_archive
    from latentpack.fs import held

    contents = make_contents(w=3)
    contents.images.names[:] = ["sub/a.png", "sub/b.png", "sub/c.png"]
    archive = write_archive(tmp_path / "a.lpk", contents, force=True)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    real_write = held.HeldTree.write

    def write_then_swap(self, name, data, mode):  # the attacker strikes right after the first file
        real_write(self, name, data, mode)
        if not (out / "sub.real").exists():
            os.rename(out / "sub", out / "sub.real")
            os.symlink(elsewhere, out / "sub")

    monkeypatch.setattr(held.HeldTree, "write", write_then_swap)
    result = invoke("extract", archive, "-o", out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {out / 'sub'}: was swapped while extracting")
    assert os.listdir(elsewhere) == [] and _files(out) == []


def _files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, fs in os.walk(root) for f in fs]  # os.walk follows no symlink


# -- no silent loss: several frames, EXIF orientation, ICC profiles ------------------------------------

TINY = ["--epochs", "1", "-y", "2", "--filters", "2", "--batch-size", "4"]


def _frames(path: Path, fmt: str) -> None:
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (0, 128, 255)]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])


@pytest.mark.parametrize("fmt,suffix", [("GIF", "gif"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_a_file_of_several_frames_is_refused_naming_its_frames(tmp_path, fmt, suffix):
    path = tmp_path / f"anim.{suffix}"
    _frames(path, fmt)
    with pytest.raises(ImageReadError, match="has 3 frames"):
        open_image(path)


def test_compress_refuses_an_animation_or_skips_and_records_it(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for v in (10, 200):
        Image.fromarray(np.full((8, 8), v, np.uint8), "L").save(folder / f"still{v}.png")
    _frames(folder / "anim.gif", "GIF")
    refused = invoke("compress", folder, "-o", tmp_path / "a.lpk", *TINY)
    assert refused.exit_code == 1 and "anim.gif" in refused.output and "has 3 frames" in refused.output
    assert not (tmp_path / "a.lpk").exists()
    result = invoke("compress", folder, "-o", tmp_path / "a.lpk", "--skip-bad", *TINY)
    assert result.exit_code == 0, result.output
    listed = invoke("list", tmp_path / "a.lpk")
    assert "anim.gif" not in listed.stdout and "anim.gif (has 3 frames" in listed.stderr, listed.output


def test_orientation_is_applied_and_icc_profile_dropped_pixels_kept(tmp_path):
    """Lossless: an EXIF-rotated file is stored and extracted upright, with no EXIF; an ICC profile is not
    kept, and the pixel values are exactly the file's."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    rng = np.random.default_rng(0)
    turned = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(turned).save(folder / "turned.png", exif=exif.tobytes())
    profiled = rng.integers(0, 256, (10, 6, 3), dtype=np.uint8)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.fromarray(profiled).save(folder / "profiled.png", icc_profile=icc)
    assert Image.open(folder / "profiled.png").info.get("icc_profile") == icc
    archive = tmp_path / "a.lpk"
    assert invoke("compress", folder, "-o", archive, "--lossless", *TINY).exit_code == 0
    assert invoke("extract", archive, "-o", out).exit_code == 0
    with Image.open(out / "turned.png") as img:
        assert 0x0112 not in img.getexif()
        assert np.array_equal(np.asarray(img), np.rot90(turned, -1))  # upright: 10 high, 6 wide
    with Image.open(out / "profiled.png") as img:
        assert "icc_profile" not in img.info
        assert np.array_equal(np.asarray(img), profiled)
    assert invoke("verify", archive, folder).exit_code == 0  # the folder's files are read the same way
