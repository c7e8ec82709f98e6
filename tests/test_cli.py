"""The command line, end to end, through click's CliRunner."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from latentpack.cli import cli
from latentpack.fs.images import natural_pixels
from latentpack.metrics import psnr

from conftest import gradient_image

EASY_ARGS = ["-y", "4", "--epochs", "100", "--batch-size", "8", "--seed", "3"]


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def easy(tmp_path_factory) -> tuple[Path, Path]:
    """The easy folder and its archive, compressed once for the module."""
    root = tmp_path_factory.mktemp("easy")
    rng = np.random.default_rng(1)
    folder = root / "images"
    for i in range(48):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        gradient_image(rng).save(sub / f"img{i:02d}.png")
    archive = root / "easy.lpk"
    result = invoke("compress", folder, "-o", archive, *EASY_ARGS)
    assert result.exit_code == 0, result.output
    return folder, archive


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_round_trip_preserves_names_sizes_modes_and_quality(easy, tmp_path: Path) -> None:
    folder, archive = easy
    out = tmp_path / "out"
    result = invoke("extract", archive, "-o", out)
    assert result.exit_code == 0, result.output
    assert _files(out) == _files(folder)
    values = []
    for name in _files(folder):
        a, b = Image.open(folder / name), Image.open(out / name)
        assert (a.size, a.mode) == (b.size, b.mode)
        values.append(psnr(natural_pixels(a)[0], natural_pixels(b)[0]))
    assert np.mean(values) > 30, values
    listed = json.loads(invoke("list", archive, "--json").output)
    assert [r["name"] for r in listed] == _files(folder)
    assert np.allclose([r["psnr"] for r in listed], values, atol=1 / 128)  # stored rounded to 1/64 dB


def test_header_arithmetic_matches_the_files_own_datasets(easy) -> None:
    _, archive = easy
    with h5py.File(archive, "r") as f:
        images, w = f["images"], f["latents/shapes"].shape[0]
        if "shapes" in images:
            shapes = images["shapes"][()].astype(np.int64)
        else:  # 1.4: one shape for every image, as attributes
            shapes = np.tile([int(images.attrs[k]) for k in ("height", "width", "channels")], (w, 1))
        x = int((shapes[:, 0] * shapes[:, 1] * shapes[:, 2] * 8).sum())
        latent_shapes = f["latents/shapes"][()].astype(np.int64)
        total = int(latent_shapes.prod(axis=1).sum())
        assert "values" not in f["latents"]  # 1.1: quantised and range-coded
        stored_latents = 32 * (f["latents/stream"].size + f["latents/table_of_channel"].size) + 16 * f["latents/counts"].size + 128
        z, stored_z = 0, 0
        for layer in f["decoder/layers"].values():
            for weight in layer.values():
                assert weight.dtype == np.float16  # the lossy default (rate-distortion training)
                z += weight.size * 32  # z: as if float32, whatever the stored dtype
                stored_z += weight.size * 16
        h = dict(f["header"].attrs)
    assert h["w"] == w and h["x_bits"] == x and h["z_bits"] == z
    assert h["latent_scalars"] == total and h["y"] == 4 and h["latent_bits"] == w * 4 * 32
    assert h["lhs_bits"] == z + w * 4 * 32
    assert bool(h["beats_raw"]) == (z + w * 4 * 32 < x)
    assert h["stored_latent_bits"] == stored_latents and h["residual_bits"] == 0
    assert h["stored_bits"] == stored_z + stored_latents
    assert bool(h["beats_raw_stored"]) == (stored_z + stored_latents < x)
    summary = json.loads(invoke("inspect", archive, "--json").output)
    assert summary["formula"]["x_bits"] == x and summary["formula"]["z_bits"] == z
    assert summary["bytes"]["archive"] == archive.stat().st_size
    assert sum(v for k, v in summary["bytes"]["breakdown"].items() if k != "file") == archive.stat().st_size


def test_inspect_table_names_both_sides_and_the_verdict(easy) -> None:
    result = invoke("inspect", easy[1])
    assert result.exit_code == 0, result.output
    for needle in ("z + w*y*32", "raw pixels (x)", "decoder (z)", "beats raw", "mean PSNR", "HDF5 overhead"):
        assert needle in result.output


def test_mixed_sizes_and_modes_round_trip(mixed_folder: Path, tmp_path: Path) -> None:
    archive = tmp_path / "mixed.lpk"
    result = invoke("compress", mixed_folder, "-o", archive, "--epochs", "2", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    summary = json.loads(invoke("inspect", archive, "--json").output)
    assert summary["training"]["arch"] == "conv"
    assert summary["formula"]["y"] is None  # latent grids differ in size
    out = tmp_path / "out"
    assert invoke("extract", archive, "-o", out, "--format", "original").exit_code == 0  # the default: JPEG as PNG
    assert _files(out) == _files(mixed_folder)
    for name in _files(mixed_folder):
        a, b = Image.open(mixed_folder / name), Image.open(out / name)
        assert (a.size, a.mode, a.format) == (b.size, b.mode, b.format), name


def test_extract_named_images_only(easy, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("extract", easy[1], "-o", out, "a/img01.png", "b/img00.png")
    assert result.exit_code == 0, result.output
    assert _files(out) == ["a/img01.png", "b/img00.png"]
    result = invoke("extract", easy[1], "-o", tmp_path / "o2", "nope.png")
    assert result.exit_code == 1 and "nope.png" in result.output


def test_extract_never_overwrites_without_force(easy, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "img01.png").write_bytes(b"mine")
    result = invoke("extract", easy[1], "-o", out)
    assert result.exit_code == 1 and "Error:" in result.output and "--force" in result.output
    assert (out / "a" / "img01.png").read_bytes() == b"mine"
    assert _files(out) == ["a/img01.png"]  # nothing else was written either
    assert invoke("extract", easy[1], "-o", out, "--force").exit_code == 0
    assert (out / "a" / "img01.png").read_bytes() != b"mine"


def test_compress_refuses_existing_archive_without_force(easy) -> None:
    folder, archive = easy
    before = archive.read_bytes()
    result = invoke("compress", folder, "-o", archive, "--epochs", "1")
    assert result.exit_code == 1 and "exists" in result.output
    assert archive.read_bytes() == before


def test_bad_image_is_named_and_nothing_is_written(easy_folder: Path, tmp_path: Path) -> None:
    (easy_folder / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (easy_folder / "notes.txt").write_text("hello")
    archive = tmp_path / "x.lpk"
    result = invoke("compress", easy_folder, "-o", archive, "--epochs", "1")
    assert result.exit_code == 1
    assert "Error:" in result.output and "a/broken.png" in result.output and "notes.txt" in result.output
    assert "Traceback" not in result.output
    assert not archive.exists()


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "x.lpk"
    path.write_text("just text")
    result = invoke("inspect", path)
    assert result.exit_code == 1 and "not a latentpack archive" in result.output
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.arange(3)
    result = invoke("list", tmp_path / "other.h5")
    assert result.exit_code == 1 and "not a latentpack archive" in result.output


def test_newer_version_is_refused(easy, tmp_path: Path) -> None:
    copy = tmp_path / "newer.lpk"
    copy.write_bytes(easy[1].read_bytes())
    with h5py.File(copy, "r+") as f:
        f.attrs["encoding-version"] = np.bytes_("9.0")  # fixed-length, as FORMAT.md requires
    for command in ("inspect", "list"):
        result = invoke(command, copy)
        assert result.exit_code == 1 and "upgrade" in result.output, result.output
    result = invoke("extract", copy, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "upgrade" in result.output


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_archive_gives_a_clear_error(easy, tmp_path: Path, fraction: float) -> None:
    data = easy[1].read_bytes()
    cut = tmp_path / "cut.lpk"
    cut.write_bytes(data[: int(len(data) * fraction)])
    for args in (["inspect", cut], ["extract", cut, "-o", tmp_path / "out"]):
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error:") and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


def test_same_seed_gives_the_same_archive_contents(easy_folder: Path, tmp_path: Path) -> None:
    args = ["-y", "3", "--epochs", "2", "--batch-size", "16", "--seed", "7"]
    for name in ("a.lpk", "b.lpk"):
        assert invoke("compress", easy_folder, "-o", tmp_path / name, *args).exit_code == 0
    with h5py.File(tmp_path / "a.lpk") as a, h5py.File(tmp_path / "b.lpk") as b:
        assert np.array_equal(a["latents/stream"][()], b["latents/stream"][()])
        for layer in a["decoder/layers"]:
            for weight in a["decoder/layers"][layer]:
                assert np.array_equal(a["decoder/layers"][layer][weight][()], b["decoder/layers"][layer][weight][()])


def test_weights_float16_end_to_end(easy_folder: Path, tmp_path: Path, monkeypatch) -> None:
    """--weights float16: half-precision weights on disk, and every quality measurement used exactly those."""
    import latentpack.ops.compress as compress_module
    from latentpack.formats import read_archive

    loaded = []  # every decoder compress runs (choosing the latent step, measuring PSNR)
    real_load = compress_module.load_decoder
    monkeypatch.setattr(compress_module, "load_decoder", lambda decoder: (loaded.append(decoder), real_load(decoder))[1])
    archive = tmp_path / "half.lpk"
    # without refinement, every decoder compress runs is the stored one (refinement's own check:
    # tests/test_refine.py, where the recorded PSNR is what extract gives)
    result = invoke("compress", easy_folder, "-o", archive, "-y", "3", "--epochs", "2", "--batch-size", "16",
                    "--weights", "float16", "--refine-steps", "0", "--objective", "mse")  # mse: the step search decodes too
    assert result.exit_code == 0, result.output
    with h5py.File(archive, "r") as f:
        assert f["decoder"].attrs["encoding-version"] in ("1.2", b"1.2")  # the file: 1.4 (compact metadata)
        weights = [ds for g in f["decoder/layers"].values() for ds in g.values()]
        assert {ds.dtype for ds in weights} == {np.dtype(np.float16)}
        n = sum(ds.size for ds in weights)
        h = dict(f["header"].attrs)
    assert h["z_bits"] == 32 * n and h["stored_decoder_bits"] == 16 * n
    assert h["stored_bits"] == 16 * n + h["stored_latent_bits"]
    stored = read_archive(archive).decoder
    assert stored.weight_dtype == "float16" and len(loaded) >= 2
    for decoder in loaded:
        for layer, pairs in stored.weights.items():
            for (name, want), (_, got) in zip(pairs, decoder.weights[layer]):
                assert np.array_equal(got, want), f"{layer}/{name} measured with other weights than stored"
    summary = json.loads(invoke("inspect", archive, "--json").output)
    assert summary["formula"]["weight_dtype"] == "float16" and summary["stored"]["decoder_bits"] == 16 * n
    assert "float16 stored" in invoke("inspect", archive).output
    out = tmp_path / "out"
    assert invoke("extract", archive, "-o", out).exit_code == 0
    got = [psnr(natural_pixels(Image.open(easy_folder / name))[0], natural_pixels(Image.open(out / name))[0])
           for name in _files(easy_folder)]
    assert np.allclose(got, [r["psnr"] for r in json.loads(invoke("list", archive, "--json").output)], atol=1 / 128)
    result = invoke("compress", easy_folder, "-o", tmp_path / "x.lpk", "--weights", "float8")
    assert result.exit_code == 2 and "float8" in result.output


def test_read_commands_do_not_import_tensorflow(easy, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from latentpack.cli import cli\n"
        f"for args in ([\"inspect\", {str(easy[1])!r}], [\"list\", {str(easy[1])!r}, \"--json\"],"
        f" [\"extract\", {str(easy[1])!r}, \"-o\", {str(tmp_path / 'out')!r}], [\"verify\", {str(easy[1])!r}]):\n"
        "    cli.main(args, standalone_mode=False)\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('clean')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "clean" in proc.stdout
    assert len(_files(tmp_path / "out")) == 48


def test_python_dash_m_and_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "latentpack", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "latentpack" in proc.stdout


@pytest.fixture
def some_file(tmp_path: Path) -> Path:
    path = tmp_path / "a.lpk"
    path.write_bytes(b"whatever: the operation is replaced")
    return path


def test_a_latentpack_error_is_one_error_line(some_file: Path, monkeypatch) -> None:
    from latentpack.errors import OptionError
    from latentpack.ops import inspect as inspect_module

    def refuse(path):
        raise OptionError("`thing` must be >= 1, got 0")

    monkeypatch.setattr(inspect_module, "archive_summary", refuse)
    result = CliRunner().invoke(cli, ["inspect", str(some_file)])
    assert result.exit_code == 1
    assert result.output.splitlines() == ["Error: `thing` must be >= 1, got 0"]


@pytest.mark.parametrize("bug", [ZeroDivisionError("division by zero"), ValueError("a plain ValueError"),
                                 KeyError("a plain KeyError")])
def test_a_bug_shows_its_traceback_and_asks_to_report_it(some_file: Path, monkeypatch, bug: Exception) -> None:
    import latentpack
    from latentpack.ops import inspect as inspect_module

    def broken(path):
        raise bug

    monkeypatch.setattr(inspect_module, "archive_summary", broken)
    result = CliRunner().invoke(cli, ["inspect", str(some_file)])
    assert result.exit_code != 0
    lines = result.output.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2].startswith(type(bug).__name__) and not any(line.startswith("Error:") for line in lines)
    assert lines[-1].startswith(f"This is a bug in latentpack {latentpack.__version__}: please report it")


def test_names_not_in_the_archive_are_one_error_line(easy, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["extract", str(easy[1]), "nope.png", "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.output.splitlines() == ["Error: not in the archive: nope.png"]
