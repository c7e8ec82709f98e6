"""Guard rails: compress warns when the archive is larger than the folder, or its mean PSNR is below 20 dB.

The checks are unit-tested on crafted figures; two real compressions (a few
8x8 images, one epoch) check the warning reaches stderr and ``--json``, and
that a folder larger than its archive gets none.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import PngImagePlugin

from latentpack.cli import cli
from latentpack.ops.compress import CompressOptions
from latentpack.ops.guard_rails import (
    LOW_PSNR_DB,
    SMALL_FOLDER_BYTES,
    compression_warnings,
    larger_than_folder,
    low_quality,
    warnings_json,
)

from conftest import gradient_image

LOSSY = CompressOptions()


def _folder(root: Path, count: int, padding: int = 0) -> Path:
    """``count`` 8x8 greyscale ramps; ``padding`` bytes of text in each file make the folder large on disk."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(count):
        info = PngImagePlugin.PngInfo()
        if padding:
            info.add_text("padding", "x" * padding)
        gradient_image(rng, 8).save(root / f"img{i}.png", pnginfo=info)
    return root


def test_larger_archive_is_warned_with_advice_for_the_options() -> None:
    big = SMALL_FOLDER_BYTES * 4
    w = larger_than_folder(big + 1, big, LOSSY)
    assert w is not None and w.kind == "larger_than_folder"
    assert f"{big + 1:,} bytes" in w.message and f"{big:,} bytes" in w.message
    assert f"--max-size {big // 2}" in w.advice and "--weights float16" not in w.advice  # lossy default: float16
    w32 = larger_than_folder(big + 1, big, CompressOptions(weight_dtype="float32"))
    assert "--weights float16" in w32.advice
    sized = larger_than_folder(big + 1, big, CompressOptions(max_bytes=big + 1))
    assert "a smaller --max-size" in sized.advice and "--weights float16" not in sized.advice  # float16 already
    assert "--lossless-coder" in larger_than_folder(big + 1, big, CompressOptions(lossless=True)).advice
    assert "keep the files" in larger_than_folder(5000, 300, LOSSY).advice  # a tiny folder: no option helps


def test_archive_no_larger_than_the_folder_is_not_warned() -> None:
    assert larger_than_folder(1000, 1000, LOSSY) is None
    assert larger_than_folder(999, 1000, LOSSY) is None


def test_low_psnr_is_warned_with_what_to_try() -> None:
    w = low_quality(14.25, CompressOptions(epochs=2, latent_dims=3))
    assert w is not None and w.kind == "low_psnr"
    assert "14.25 dB" in w.message and f"{LOW_PSNR_DB:g} dB" in w.message
    for hint in ("more --epochs (this run: 2)", "a larger -y (this run: 3)", "--arch", "--lossless"):
        assert hint in w.advice
    assert "--max-size" in low_quality(14.25, CompressOptions(max_bytes=4000)).advice
    assert str(w) == f"{w.message}; {w.advice}"


@pytest.mark.parametrize("psnr, options", [
    (LOW_PSNR_DB, LOSSY),  # at the threshold: fine
    (35.0, LOSSY),
    (float("inf"), LOSSY),  # every image exact
    (float("nan"), LOSSY),  # nothing measured
    (12.0, CompressOptions(lossless=True)),
    (12.0, CompressOptions(quality=15.0)),  # the user asked for low quality
])
def test_no_psnr_warning_when_quality_is_fine_or_asked_for(psnr: float, options: CompressOptions) -> None:
    assert low_quality(psnr, options) is None


def test_compression_warnings_measures_the_archive_on_disk(tmp_path: Path) -> None:
    archive = tmp_path / "a.lpk"
    archive.write_bytes(b"x" * 5000)
    found = compression_warnings(archive, 4000, 12.0, LOSSY)
    assert [w.kind for w in found] == ["larger_than_folder", "low_psnr"]
    assert compression_warnings(archive, 5000, 30.0, LOSSY) == []
    assert warnings_json(found)[1] == {"kind": "low_psnr", "message": found[1].message, "advice": found[1].advice}
    assert json.loads(json.dumps(warnings_json(found))) == warnings_json(found)


def test_compress_warns_on_stderr_and_in_json_when_the_archive_is_bigger(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "tiny", 3)
    archive = tmp_path / "tiny.lpk"
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(archive), "--epochs", "1", "--batch-size",
                                      "3", "--json"])
    assert result.exit_code == 0, result.output
    folder_bytes = sum(p.stat().st_size for p in folder.iterdir())
    assert archive.stat().st_size > folder_bytes
    assert "Warning: the archive" in result.stderr and "larger than the images' files" in result.stderr
    data = json.loads(result.stdout)
    kinds = [w["kind"] for w in data["warnings"]]
    assert "larger_than_folder" in kinds
    shown = next(w for w in data["warnings"] if w["kind"] == "larger_than_folder")
    assert f"({archive.stat().st_size:,} bytes)" in shown["message"] and f"({folder_bytes:,} bytes" in shown["message"]
    assert "Warning" not in result.stdout  # stdout stays JSON


def test_no_size_warning_when_the_folder_is_bigger_than_its_archive(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "padded", 4, padding=60_000)
    archive = tmp_path / "padded.lpk"
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(archive), "--epochs", "1", "--batch-size",
                                      "4", "--json"])
    assert result.exit_code == 0, result.output
    assert archive.stat().st_size < sum(p.stat().st_size for p in folder.iterdir())
    assert "larger_than_folder" not in [w["kind"] for w in json.loads(result.stdout)["warnings"]]
    assert "larger than the images' files" not in result.stderr

