"""The public Python API: latentpack.open (the archive object), latentpack.compress and latentpack.add."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import latentpack
from latentpack.cli import cli
from latentpack.codec.runtime.numpy_decoder import NumpyDecoder
from latentpack.metrics import psnr
from latentpack.ops.extract import MissingImagesError, extract_archive

from conftest import make_mixed_folder, ramp_folder

TINY = {"epochs": 2, "batch_size": 4}


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    """A mixed folder (PNG, JPEG, palette, bilevel, alpha) compressed lossy and lossless, and a ramp folder."""
    root = tmp_path_factory.mktemp("api")
    mixed = make_mixed_folder(root / "mixed")
    ramps = ramp_folder(root / "ramps", 12, seed=4)
    lossy = latentpack.compress(mixed, root / "lossy.lpk", **TINY)
    lossless = latentpack.compress(mixed, root / "lossless.lpk", lossless=True, epochs=1, latent_dims=2, filters=2)
    vector = latentpack.compress(ramps, root / "ramps.lpk", arch="mlp", latent_dims=4, **TINY)
    return {"lossy": lossy.path, "lossless": lossless.path, "ramps": vector.path}


@pytest.mark.parametrize("kind", ["lossy", "lossless", "ramps"])
def test_images_equal_the_files_extract_writes(archives, tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    extract_archive(archives[kind], out)
    with latentpack.open(archives[kind]) as a:
        assert len(a) == len(a.names) > 0
        for name in a.names:
            pixels = a[name]
            on_disk = np.asarray(Image.open(out / name))
            if name.endswith(".jpg") and kind == "lossy":  # extract re-encodes JPEG (quality 95)
                assert pixels.shape == on_disk.shape and pixels.dtype == on_disk.dtype
                assert psnr(pixels, on_disk) > 30
            else:
                assert np.array_equal(pixels, on_disk), name
                assert pixels.dtype == on_disk.dtype, name


def test_palette_and_bilevel_images_come_back_in_their_mode(archives) -> None:
    with latentpack.open(archives["lossless"]) as a:
        palette = a["palette.png"]
        assert palette.dtype == np.uint8 and palette.ndim == 2  # palette indices, as Image.open gives them
        original = Image.open(_folder(archives) / "palette.png")
        assert np.array_equal(palette, np.asarray(original))
        assert a["bilevel.png"].dtype == bool


def test_positions_names_and_their_errors(archives) -> None:
    with latentpack.open(archives["ramps"]) as a:
        assert np.array_equal(a[0], a[a.names[0]])
        assert np.array_equal(a[-1], a[a.names[-1]]) and np.array_equal(a[-1], a[len(a) - 1])
        with pytest.raises(IndexError):
            a[len(a)]
        with pytest.raises(KeyError) as err:
            a["no-such.png"]
        assert err.type is MissingImagesError and "no-such.png" in str(err.value)
        with pytest.raises(TypeError):
            a[1.5]


def test_iteration_is_batched_and_in_archive_order(archives, monkeypatch) -> None:
    calls = []
    run = NumpyDecoder.__call__

    def counting(self, latents):
        calls.append(len(latents))
        return run(self, latents)

    monkeypatch.setattr(NumpyDecoder, "__call__", counting)
    with latentpack.open(archives["ramps"]) as a:
        each = [a[i] for i in range(len(a))]
        assert calls == [1] * len(a)
        calls.clear()
        batches = list(a.batches(5))
        assert [len(b) for b in batches] == [5, 5, 2]
        assert len(calls) < len(a) and max(calls) > 1  # the decoder ran on batches, not once per image
        flat = [pixels for batch in batches for pixels in batch]
        assert all(np.array_equal(x, y) for x, y in zip(flat, each))
        assert all(np.array_equal(x, y) for x, y in zip(a, each))
        named = dict(a.items(a.names[3:5]))
        assert list(named) == a.names[3:5] and np.array_equal(named[a.names[4]], each[4])
        with pytest.raises(ValueError):
            next(a.batches(0))


def test_info_is_what_inspect_json_prints(archives) -> None:
    for path in archives.values():
        printed = json.loads(CliRunner().invoke(cli, ["inspect", str(path), "--json"]).output)
        with latentpack.open(str(path)) as a:
            assert a.info == printed


def test_close_and_context_manager(archives) -> None:
    a = latentpack.open(archives["ramps"])
    assert "12 images" in repr(a)
    a.close()
    with pytest.raises(ValueError, match="closed"):
        len(a)
    with latentpack.open(archives["ramps"]) as b:
        assert len(b) == 12
    with pytest.raises(ValueError, match="closed"):
        b[0]


def test_compress_returns_the_result_dataclass(archives) -> None:
    result = latentpack.compress(_folder(archives) / "nested", archives["ramps"].parent / "nested.lpk", **TINY)
    assert result.path.exists() and len(result.contents.images) == 2
    with pytest.raises(FileExistsError):
        latentpack.compress(_folder(archives) / "nested", result.path, **TINY)


def test_reading_never_imports_tensorflow_and_the_version_imports_nothing_heavy(archives) -> None:
    code = (
        "import sys, latentpack\n"
        "v = latentpack.__version__\n"
        "assert not [m for m in ('h5py', 'tensorflow', 'keras') if m in sys.modules]\n"
        f"pixels = latentpack.open({str(archives['lossy'])!r})[0]\n"
        f"pixels = latentpack.open({str(archives['lossless'])!r})[0]\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('clean', pixels.shape)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "clean" in proc.stdout


def test_add_grows_an_archive_through_the_api(archives, tmp_path: Path) -> None:
    more = ramp_folder(tmp_path / "more", 3, seed=9, prefix="new")
    out = tmp_path / "grown.lpk"
    result = latentpack.add(archives["ramps"], more, output=out, prefix="batch2", fit_steps=20)
    assert result.path == out and result.names == ["batch2/new000.png", "batch2/new001.png", "batch2/new002.png"]
    with latentpack.open(archives["ramps"]) as old, latentpack.open(out) as grown:
        assert len(grown) == len(old) + 3 and grown.names[: len(old)] == old.names
        assert np.array_equal(grown[0], old[0])  # the old images decode as before
        assert grown["batch2/new001.png"].shape == (16, 16)
    with pytest.raises(latentpack.OptionError, match="at least one folder or file"):
        latentpack.add(out)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        latentpack.no_such_thing  # noqa: B018
    assert {"open", "compress", "add", "Archive"} <= set(dir(latentpack))


def _folder(archives: dict[str, Path]) -> Path:
    return archives["lossy"].parent / "mixed"
