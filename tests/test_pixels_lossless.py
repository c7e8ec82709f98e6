"""Lossless archives under the learned pixel model alone (format 1.3 ``/pixels``), end to end."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from latentpack.cli import cli
from latentpack.formats import read_archive
from latentpack.fs.images import open_image


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _smooth(rng, h, w, c):
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.uniform(40, 200, (1, 1, c)) + rng.uniform(-2, 2, (1, 1, c)) * (xx + yy)[:, :, None]
    return np.clip(base + rng.normal(0, 3, (h, w, c)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, Path]:
    """Grey, RGB, RGBA, LA, palette, bilevel and JPEG images of several sizes, compressed once."""
    root = tmp_path_factory.mktemp("pixels")
    folder = root / "images"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(7)
    Image.fromarray(_smooth(rng, 20, 30, 3), "RGB").save(folder / "rgb.png")
    Image.fromarray(_smooth(rng, 20, 30, 3), "RGB").save(folder / "rgb2.png")
    Image.fromarray(_smooth(rng, 16, 16, 1)[..., 0], "L").save(folder / "nested" / "grey.png")
    Image.fromarray(_smooth(rng, 9, 13, 4), "RGBA").save(folder / "rgba.png")
    Image.fromarray(_smooth(rng, 11, 7, 2), "LA").save(folder / "la.png")
    Image.fromarray(_smooth(rng, 12, 12, 3), "RGB").quantize(16).save(folder / "palette.png", transparency=0)
    Image.fromarray(_smooth(rng, 10, 10, 1)[..., 0] > 128).save(folder / "bilevel.png")
    Image.fromarray(_smooth(rng, 24, 17, 3), "RGB").save(folder / "photo.jpg", quality=90)
    archive = root / "mixed.lpk"
    result = invoke("compress", folder, "-o", archive, "--lossless", "--epochs", "3", "--json")
    assert result.exit_code == 0, result.output
    return folder, archive


def test_auto_picks_the_pixel_model_and_stores_no_decoder(mixed):
    _, archive = mixed
    contents = read_archive(archive)
    assert contents.pixels is not None and contents.decoder is None and contents.latents is None
    assert contents.lossless is None
    h = contents.header
    assert h.y == 0 and h.latent_scalars == 0 and h.z_bits == contents.pixels.model_scalars * 32
    assert h.stored_bits == h.stored_decoder_bits + h.residual_bits
    with h5py.File(archive, "r") as f:
        assert f.attrs["encoding-version"].decode() == "1.5" and "decoder" not in f
        assert f["pixels"].attrs["encoding-version"].decode() == "1.5" and "latents" not in f
        assert f["pixels"].attrs["refinement"].decode() == "node-context-counts"


def test_every_image_comes_back_bit_exact(mixed, tmp_path):
    folder, archive = mixed
    out = tmp_path / "out"
    result = invoke("extract", archive, "-o", out)
    assert result.exit_code == 0, result.output
    assert _files(out) == _files(folder)
    for name in _files(folder):
        assert open_image(out / name).sha256 == open_image(folder / name).sha256, name
    result = invoke("verify", archive, folder)
    assert result.exit_code == 0, result.output


def test_one_image_and_the_api_agree_with_the_folder(mixed, tmp_path):
    import latentpack

    folder, archive = mixed
    with latentpack.open(archive) as a:
        got = a["nested/grey.png"]
        assert np.array_equal(got, np.asarray(Image.open(folder / "nested" / "grey.png")))
        assert [n for n, _ in a.items()] == a.names
    result = invoke("extract", archive, "-o", tmp_path / "one", "rgba.png")
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "one") == ["rgba.png"]


def test_inspect_shows_the_pixel_model(mixed):
    _, archive = mixed
    result = invoke("inspect", archive, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["mode"] == "lossless" and info["bytes"]["breakdown"]["pixels"] > 0
    text = invoke("inspect", archive).output
    assert "pixel model" in text


def test_a_flipped_byte_in_the_stream_names_the_images_and_writes_nothing(mixed, tmp_path):
    _, archive = mixed
    bad = tmp_path / "bad.lpk"
    bad.write_bytes(archive.read_bytes())
    with h5py.File(bad, "r+") as f:
        ds = f["pixels/stream"]
        words = ds[()]
        words[len(words) // 2] ^= 0x00FF00FF
        del f["pixels/stream"]
        f.create_dataset("pixels/stream", data=words, fletcher32=True)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["extract", str(bad), "-o", str(out)])
    assert result.exit_code == 1
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "Traceback" not in result.output
    assert "bad.lpk" in error[0] and "/pixels" in error[0] and "rgb.png" in error[0]
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_pixel_coder_refuses_autoencoder_options(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(tmp_path / "a.lpk"), "--lossless",
                                      "--lossless-coder", "pixel", "-y", "4"])
    assert result.exit_code == 1 and "Error:" in result.output and "--lossless-coder residual" in result.output
    assert not (tmp_path / "a.lpk").exists()


def test_reading_a_pixel_model_archive_never_imports_tensorflow(tmp_path):
    import subprocess
    import sys

    fixture = Path(__file__).parent / "data" / "archives" / "v1.3" / "pixels-mixed.lpk"
    code = (
        "import sys, latentpack\n"
        "from latentpack.ops.extract import extract_archive\n"
        "from latentpack.ops.inspect import archive_summary\n"
        f"extract_archive({str(fixture)!r}, {str(tmp_path / 'out')!r})\n"
        f"archive_summary({str(fixture)!r}); latentpack.open({str(fixture)!r})[0]\n"
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    assert any((tmp_path / "out").rglob("*.png"))
