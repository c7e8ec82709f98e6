"""Lossless archives, generated codes and ``verify``, end to end through the CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from latentpack.cli import cli
from latentpack.formats import CorruptArchiveError, read_archive
from latentpack.fs.images import natural_pixels, open_image
from latentpack.metrics import psnr

from conftest import ramp_folder


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def mixed_lossless(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny folder of every mode (L, LA, RGB, RGBA, P, 1, JPEG), compressed losslessly once."""
    root = tmp_path_factory.mktemp("mixed")
    folder = root / "images"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(5)

    def noise(h, w, c):
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)

    Image.fromarray(noise(20, 30, 3), "RGB").save(folder / "rgb.png")
    Image.fromarray(noise(16, 16, 1)[..., 0], "L").save(folder / "nested" / "grey.png")
    Image.fromarray(noise(9, 13, 4), "RGBA").save(folder / "rgba.png")
    Image.fromarray(noise(11, 7, 2), "LA").save(folder / "la.png")
    Image.fromarray(noise(12, 12, 3), "RGB").quantize(16).save(folder / "palette.png", transparency=0)
    Image.fromarray(noise(10, 10, 1)[..., 0] > 128).save(folder / "bilevel.png")
    Image.fromarray(noise(24, 17, 3), "RGB").save(folder / "photo.jpg", quality=90)
    archive = root / "mixed.lpk"
    result = invoke("compress", folder, "-o", archive, "--lossless", "--epochs", "1", "-y", "2", "--filters", "2")
    assert result.exit_code == 0, result.output
    return folder, archive


def _assert_extracts_bit_exact(archive: Path, folder: Path, out: Path) -> None:
    result = invoke("extract", archive, "-o", out)
    assert result.exit_code == 0, result.output
    assert _files(out) == _files(folder)
    for name in _files(folder):
        assert open_image(out / name).sha256 == open_image(folder / name).sha256, name


def test_lossless_round_trip_is_bit_exact_for_every_mode(mixed_lossless, tmp_path: Path) -> None:
    folder, archive = mixed_lossless
    _assert_extracts_bit_exact(archive, folder, tmp_path / "out")
    summary = json.loads(invoke("inspect", archive, "--json").output)
    assert summary["mode"] == "lossless" and summary["format_version"] == "1.4"  # compact metadata
    assert summary["quality"]["exact_images"] == len(_files(folder))
    assert summary["bytes"]["breakdown"]["lossless"] > 0
    assert "lossless residuals" in invoke("inspect", archive).output


def test_lossless_with_float16_weights_is_bit_exact(mixed_lossless, tmp_path: Path) -> None:
    """The fixed-point prediction is derived from the float16 weights as read back, and stays exact."""
    folder, _ = mixed_lossless
    archive = tmp_path / "half.lpk"
    result = invoke("compress", folder, "-o", archive, "--lossless", "--weights", "float16",
                    "--epochs", "1", "-y", "2", "--filters", "2")
    assert result.exit_code == 0, result.output
    with h5py.File(archive, "r") as f:
        assert f["decoder"].attrs["encoding-version"] in ("1.2", b"1.2")
        dtypes = {ds.dtype for g in f["decoder/layers"].values() for ds in g.values()}
        assert dtypes == {np.dtype(np.float16)}
    _assert_extracts_bit_exact(archive, folder, tmp_path / "out")
    assert invoke("verify", archive, folder).exit_code == 0


def test_lossless_extract_of_some_names(mixed_lossless, tmp_path: Path) -> None:
    folder, archive = mixed_lossless
    out = tmp_path / "some"
    assert invoke("extract", archive, "-o", out, "palette.png", "nested/grey.png").exit_code == 0
    assert _files(out) == ["nested/grey.png", "palette.png"]
    assert open_image(out / "palette.png").sha256 == open_image(folder / "palette.png").sha256


def _tampered(archive: Path, dest: Path) -> Path:
    shutil.copy(archive, dest)
    with h5py.File(dest, "r+") as f:  # rewritten through h5py: the checksum stays valid, the data is wrong
        stream = f["lossless/stream"][()]
        stream[-2] ^= np.uint32(1 << 16)  # near the end: the coder still runs, the pixels come out wrong
        f["lossless/stream"][...] = stream
    return dest


def test_wrong_residuals_are_detected_and_named(mixed_lossless, tmp_path: Path) -> None:
    folder, archive = mixed_lossless
    bad = _tampered(archive, tmp_path / "bad.lpk")
    out = tmp_path / "out"
    result = invoke("extract", bad, "-o", out)
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output and ("sha256" in result.output or "cannot be decoded" in result.output)
    assert any(f"'{name}'" in result.output for name in _files(folder)), result.output
    assert not out.exists() or _files(out) == []  # nothing wrong is left behind
    result = invoke("verify", bad)
    assert result.exit_code == 1 and any(name in result.output for name in _files(folder)), result.output


def test_verify_exit_codes(mixed_lossless, tmp_path: Path) -> None:
    folder, archive = mixed_lossless
    result = invoke("verify", archive, folder)
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    (partial / "rgb.png").unlink()
    Image.fromarray(np.zeros((16, 16), np.uint8), "L").save(partial / "nested" / "grey.png")
    result = invoke("verify", archive, partial)
    assert result.exit_code == 1
    assert "rgb.png" in result.output and "missing" in result.output and "nested/grey.png" in result.output
    out = invoke("verify", archive, partial, "--json").output  # stderr (progress, Error:) is mixed in
    report = json.loads(out[out.index("{") : out.rindex("}") + 1])
    assert report["ok"] is False and len(report["mismatches"]) == 2


def test_header_counts_the_bits_stored(mixed_lossless) -> None:
    _, archive = mixed_lossless
    with h5py.File(archive, "r") as f:
        h = dict(f["header"].attrs)
        ll = f["lossless"]
        residual = (32 * (ll["stream"].size + ll["exception_index"].size) + 16 * ll["counts"].size
                    + 64 * (ll["thresholds"].size + ll["block_bounds"].size + ll["stream_offsets"].size
                            + ll["exception_offsets"].size) + 8 * ll["exception_bytes"].size)
        lat = f["latents"]
        latent = 32 * (lat["stream"].size + lat["table_of_channel"].size) + 16 * lat["counts"].size + 128
    assert h["residual_bits"] == residual and h["stored_latent_bits"] == latent
    assert h["stored_bits"] == h["z_bits"] + latent + residual
    assert bool(h["beats_raw_stored"]) == (h["stored_bits"] < h["x_bits"])
    assert h["lhs_bits"] == h["z_bits"] + h["latent_bits"]  # the seed's float32 accounting is kept


def test_forged_lossless_table_shape_is_refused_with_its_path(mixed_lossless, tmp_path: Path) -> None:
    _, archive = mixed_lossless
    bad = tmp_path / "shape.lpk"
    shutil.copy(archive, bad)
    with h5py.File(bad, "r+") as f:
        del f["lossless/counts"]
        f["lossless"].create_dataset("counts", data=np.ones((3, 256), np.uint16))
    with pytest.raises(CorruptArchiveError, match="/lossless/counts"):
        read_archive(bad)


@pytest.fixture(scope="module")
def ramps(tmp_path_factory) -> Path:
    return ramp_folder(tmp_path_factory.mktemp("ramps") / "images", 24, seed=4, prefix="r")


def test_index_codes_store_no_latents_and_round_trip(ramps: Path, tmp_path: Path) -> None:
    archive = tmp_path / "index.lpk"
    args = ["--codes", "index", "-y", "4", "--epochs", "60", "--batch-size", "8"]
    result = invoke("compress", ramps, "-o", archive, *args)
    assert result.exit_code == 0, result.output
    summary = json.loads(invoke("inspect", archive, "--json").output)
    assert summary["stored"]["latent_coding"] == "index"
    assert summary["stored"]["latent_bits"] == 0
    assert summary["stored"]["total_bits"] == summary["formula"]["z_bits"]  # z only
    with h5py.File(archive, "r") as f:
        assert set(f["latents"]) == {"offsets", "shapes"}
    out = tmp_path / "out"
    assert invoke("extract", archive, "-o", out).exit_code == 0
    values = [psnr(natural_pixels(Image.open(ramps / n))[0], natural_pixels(Image.open(out / n))[0]) for n in _files(ramps)]
    assert np.allclose(values, [r["psnr"] for r in json.loads(invoke("list", archive, "--json").output)], atol=0.02)
    assert 15 < np.mean(values) < 60, values
    result = invoke("verify", archive, ramps)
    assert result.exit_code == 0, result.output
    # lossless on top of generated codes: exact, still no latents stored
    exact = tmp_path / "index-exact.lpk"
    assert invoke("compress", ramps, "-o", exact, *args[:-4], "--epochs", "2", "--lossless").exit_code == 0
    assert invoke("verify", exact, ramps).exit_code == 0


def test_mlp_archive_round_trips_lossy_and_lossless(easy_folder: Path, tmp_path: Path) -> None:
    """The fully connected design end to end: chosen by name, lossy quality, bit-exact lossless."""
    lossy, exact = tmp_path / "lossy.lpk", tmp_path / "exact.lpk"
    args = ["--arch", "mlp", "-y", "4", "--filters", "32", "--epochs", "60", "--batch-size", "8"]
    assert invoke("compress", easy_folder, "-o", lossy, *args).exit_code == 0
    summary = json.loads(invoke("inspect", lossy, "--json").output)
    assert summary["training"]["arch"] == "mlp"
    assert summary["quality"]["mean_psnr"] > 25.0  # smooth ramps: an easy floor
    assert invoke("compress", easy_folder, "-o", exact, *args, "--lossless").exit_code == 0
    out = tmp_path / "out"
    assert invoke("extract", exact, "-o", out).exit_code == 0
    assert _files(out) == _files(easy_folder)
    for name in _files(easy_folder):
        assert open_image(out / name).sha256 == open_image(easy_folder / name).sha256, name
