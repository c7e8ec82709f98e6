"""``latentpack bench``: the codecs, the harness and the command, end to end.

Facts only (bytes counted, lossless detected, bpp computed, files written);
no timing is asserted.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from latentpack.bench import CODECS, Codec, make_codec, run_bench
from latentpack.bench.harness import choose_sample, select_images
from latentpack.bench.report import markdown_table
from latentpack.cli import cli
from latentpack.fs.folder import scan_folder
from latentpack.fs.images import open_image
from latentpack.metrics import psnr as psnr_of

from conftest import gradient_image

TINY = 12  # images
SIZE = 16  # pixels per side


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """12 greyscale 16x16 ramps, plus a README that is not an image."""
    folder = tmp_path_factory.mktemp("tiny") / "images"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(TINY):
        gradient_image(rng, SIZE).save(folder / f"img{i:02d}.png")
    (folder / "README.md").write_text("not an image\n")
    return folder


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_bench_end_to_end_json(tiny_folder: Path, tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "bench.json"
    plot, sheet = tmp_path / "rd.png", tmp_path / "sheet.png"
    result = CliRunner().invoke(cli, [
        "bench", str(tiny_folder), "--codecs", "png,webp,latentpack", "--qualities", "50",
        "--rates", "4", "--epochs", "1", "--batch-size", "4", "--seed", "1",
        "--json", str(out), "--plot", str(plot), "--contact-sheet", str(sheet), "--sample", "3",
        "--workdir", str(work),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["images"] == TINY
    assert data["pixels"] == TINY * SIZE * SIZE
    assert any("README.md" in note for note in data["notes"])
    assert {"platform", "cpu_count", "python", "packages"} <= set(data["machine"])
    by_name = {(e["name"], e["setting"]): e for e in data["entries"]}
    assert set(by_name) == {("latentpack", "y=4, epochs=1"), ("png", "lossless"), ("webp", "q=50")}
    for entry in data["entries"]:
        assert entry["error"] is None and entry["skipped"] is None
        # Every byte the codec wrote is counted, and nothing else.
        assert entry["bytes"] == _tree_bytes(work / entry["store"]) > 0
        assert entry["bpp"] == pytest.approx(entry["bytes"] * 8 / (TINY * SIZE * SIZE), rel=1e-4)
        for key in ("compress_s", "extract_s", "compress_peak_rss_mb", "extract_peak_rss_mb"):
            assert entry[key] > 0
    png = by_name[("png", "lossless")]
    assert png["lossless"] is True and png["mean_psnr"] is None and png["min_psnr"] is None
    assert png["exact_images"] == TINY
    webp = by_name[("webp", "q=50")]
    assert webp["lossless"] is False and 20 < webp["min_psnr"] <= webp["mean_psnr"]
    lp = by_name[("latentpack", "y=4, epochs=1")]
    assert lp["files"] == 1 and (work / lp["store"] / "archive.lpk").is_file()
    assert {"read", "train", "encode", "measure", "write"} <= set(lp["details"]["compress_phases_s"])
    assert data["extract_speed_vs_webp"][0]["ratio"] > 0
    assert "png" in result.output and "lossless" in result.output
    assert "| png | lossless |" in markdown_table(data)
    for png_file in (plot, sheet):
        with Image.open(png_file) as im:
            assert im.format == "PNG" and im.width > 50


@pytest.mark.parametrize("name", [n for n, cls in CODECS.items() if cls.lossless and not n.startswith("latentpack")])
def test_lossless_codec_round_trip_identity(name: str, mixed_folder: Path, tmp_path: Path) -> None:
    codec = make_codec(name)
    if codec.missing():
        pytest.skip(codec.missing())
    folder = tmp_path / "in"
    folder.mkdir()
    for rel, path in scan_folder(mixed_folder):
        if rel.endswith(".png"):  # every mode; the JPEG is lossy already
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    store, restored = tmp_path / "store", tmp_path / "restored"
    store.mkdir()
    codec.encode(folder, store)
    codec.decode(store, restored)
    from latentpack.bench.harness import _restored_pixels

    for rel, path in scan_folder(folder):
        original = open_image(path)
        back = _restored_pixels(restored / (rel + codec.restored_suffix), original.natural_mode)
        np.testing.assert_array_equal(back, original.natural, err_msg=f"{name}: {rel}")


class _Absent(Codec):
    name = "absent"
    programs = ("no-such-program-for-latentpack-tests",)

    def encode(self, folder: Path, store: Path) -> None:  # pragma: no cover - never runs
        raise AssertionError("a codec with a missing program must not run")

    def decode(self, store: Path, restored: Path) -> None:  # pragma: no cover - never runs
        raise AssertionError


def test_missing_program_is_skipped_with_a_note(tiny_folder: Path) -> None:
    result = run_bench(tiny_folder, [_Absent()], limit=2, log=lambda m: None)
    (entry,) = result.entries
    assert entry.skipped == "no-such-program-for-latentpack-tests not installed"
    assert entry.bytes is None
    assert any(n.startswith("absent skipped") for n in result.notes)


def test_mixed_modes_are_compared_in_their_natural_mode(mixed_folder: Path) -> None:
    """JPEG drops alpha and WebP widens grey; the PSNR still compares like with like."""
    result = run_bench(mixed_folder, [make_codec("png"), make_codec("jpeg", quality=90)], log=lambda m: None)
    png, jpeg = result.entries
    assert png.error is None and png.quality.lossless
    assert jpeg.error is None and not jpeg.quality.lossless
    assert jpeg.quality.min_psnr > 0


def test_limit_takes_the_first_images_in_sorted_order(tiny_folder: Path) -> None:
    chosen, left_out = select_images(tiny_folder, limit=3)
    assert [name for name, _, _ in chosen] == ["img00.png", "img01.png", "img02.png"]
    assert left_out == ["README.md"]  # sorts first ("R" < "i") and is not an image
    assert choose_sample(10, 3, seed=5) == choose_sample(10, 3, seed=5)
    with pytest.raises(ValueError, match="`limit` must be >= 1"):
        select_images(tiny_folder, limit=0)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--codecs", "png,nope"], 2, "unknown codec(s) nope"),
        (["--codecs", "png", "--contact-sheet", "x.png"], 2, "include latentpack"),
        (["--rates", "8,zero"], 2, "comma-separated integers"),
    ],
)
def test_bench_usage_errors(tiny_folder: Path, args: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(cli, ["bench", str(tiny_folder), *args])
    assert result.exit_code == code, result.output
    assert message in result.output


def test_bench_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    result = CliRunner().invoke(cli, ["bench", str(tmp_path), "--codecs", "png"])
    assert result.exit_code == 1
    assert "Error:" in result.output and "holds no images" in result.output


def test_bench_does_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys, latentpack.cli, latentpack.bench.report, latentpack.bench.contact_sheet; " \
           "print('tensorflow' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


class _Unregistered(Codec):
    """Known here but not to the worker process, so its encode fails there."""

    name = "unregistered"

    def encode(self, folder: Path, store: Path) -> None:  # pragma: no cover - runs nowhere
        raise AssertionError

    def decode(self, store: Path, restored: Path) -> None:  # pragma: no cover - runs nowhere
        raise AssertionError


def test_a_failing_codec_is_reported_and_the_others_still_run(tiny_folder: Path) -> None:
    result = run_bench(tiny_folder, [_Unregistered(), make_codec("png")], limit=2, log=lambda m: None)
    failed, png = result.entries
    assert failed.error.startswith("encode failed (exit 1)") and "unregistered" in failed.error
    assert failed.quality is None
    assert png.error is None and png.quality.lossless


def test_latentpack_lossless_codec_rebuilds_from_its_params() -> None:
    """The worker process rebuilds each codec from its params; lossless must survive the trip."""
    codec = make_codec("latentpack-lossless", epochs=1, latent_dims=4)
    again = make_codec("latentpack-lossless", **json.loads(json.dumps(codec.params)))
    assert again.params == codec.params and again.params["lossless"] is True
    assert again.setting.startswith("lossless")


# --- pca: the linear-autoencoder baseline -------------------------------------------------------

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


@pytest.fixture(scope="module")
def pca_runs(tmp_path_factory) -> tuple[Path, list]:
    """The pca codec at three budgets on the first 200 example digits, through the bench harness."""
    work = tmp_path_factory.mktemp("pca") / "work"
    codecs = [make_codec("pca", bytes_per_image=b) for b in (40, 100, 250)]
    result = run_bench(DIGITS, codecs, limit=200, workdir=work, log=lambda m: None)
    return work, result.entries


def test_pca_decodes_and_every_byte_is_counted(pca_runs) -> None:
    work, entries = pca_runs
    for entry, budget in zip(entries, (40, 100, 250)):
        assert entry.error is None and entry.skipped is None, entry.error
        stored = work / entry.store / "pca.bin"
        assert entry.files == 1 and entry.bytes == stored.stat().st_size  # the one file is the whole store
        d = entry.details
        assert d["bytes"] == entry.bytes == sum(d["bytes_by_part"].values())
        assert d["budget_met"] and entry.bytes <= budget * 200 == d["budget_bytes"]
        assert d["bytes_by_part"]["basis"] == d["k"] * 28 * 28 * 2  # float16, counted
        assert d["bytes_by_part"]["mean"] == 28 * 28 * 2
        # the harness's PSNR, on the decoded PNGs, is the one the search predicted
        assert entry.quality.mean_psnr == pytest.approx(d["search_mean_psnr"], abs=0.01)
        assert entry.setting == f"<= {budget} B/image"


def test_pca_psnr_rises_with_the_budget(pca_runs) -> None:
    _, entries = pca_runs
    psnr = [e.quality.mean_psnr for e in entries]
    ks = [e.details["k"] for e in entries]
    assert psnr[0] < psnr[1] < psnr[2], psnr
    assert ks[0] <= ks[1] <= ks[2] and ks[2] >= 8, ks
    assert 12 < psnr[0] and psnr[2] < 40


def test_pca_declines_folders_of_mixed_sizes(mixed_folder: Path) -> None:
    result = run_bench(mixed_folder, [make_codec("pca", bpp=1.0)], log=lambda m: None)
    (entry,) = result.entries
    assert entry.skipped is not None and entry.skipped.startswith("needs images of one size")
    assert entry.bytes is None and any(n.startswith("pca skipped") for n in result.notes)


def test_pca_declines_a_fit_too_large(tiny_folder: Path, monkeypatch) -> None:
    import latentpack.bench.pca as pca

    codec = make_codec("pca", bpp=4.0)
    assert codec.declines(tiny_folder) is None  # 12 images of 256 values, room for the mean
    monkeypatch.setattr(pca, "MAX_FIT", 11)
    assert codec.declines(tiny_folder) == "12 images of 256 values: more than PCA fits here (--limit 11)"


def test_pca_round_trip_rgb_and_an_unreachable_budget(tmp_path: Path) -> None:
    folder = tmp_path / "rgb"
    folder.mkdir()
    rng = np.random.default_rng(4)
    for i in range(6):
        arr = np.stack([np.asarray(gradient_image(rng, 12)) for _ in range(3)], axis=2)
        Image.fromarray(arr, "RGB").save(folder / f"c{i}.png")
    Image.fromarray(np.asarray(gradient_image(rng, 12)), "L").save(folder / "grey.png")  # widened to RGB
    roomy, tight = make_codec("pca", bytes_per_image=2000), make_codec("pca", bytes_per_image=1)
    store, restored = tmp_path / "store", tmp_path / "restored"
    store.mkdir()
    facts = roomy.encode(folder, store)
    roomy.decode(store, restored)
    from latentpack.bench.harness import _restored_pixels

    for rel, path in scan_folder(folder):
        original = open_image(path)
        back = _restored_pixels(restored / (rel + ".png"), original.natural_mode)
        assert back.shape == original.natural.shape and psnr_of(original.natural, back) > 30, rel
    assert facts["budget_met"] and facts["k"] >= 1
    assert tight.declines(folder) == "a budget of 7 bytes in all is less than the float16 mean alone (864 bytes)"
    (tmp_path / "tight").mkdir()
    facts = tight.encode(folder, tmp_path / "tight")  # nothing fits in 7 bytes: the mean alone, said so
    assert facts["k"] == 0 and not facts["budget_met"]
    tight.decode(tmp_path / "tight", tmp_path / "tight-restored")
    assert len(list((tmp_path / "tight-restored").glob("*.png"))) == 7


@pytest.mark.parametrize("names", [
    ["00000.png", "00001.png", "00002.png", "00010.png"],
    ["a/img9.png", "a/img10.png", "b/x.png", "b/x2.png", "b/x1.png", "nodigits", "é/ü7.tif"],
    ["test/7/00000.png", "test/7/00017.png", "test/8/00003.png", "9"],
])
def test_pca_names_pack_unpack_identity(names: list[str]) -> None:
    from latentpack.bench.pca_file import pack_names, unpack_names

    assert unpack_names(pack_names(names)) == names


def test_pca_names_of_numbered_files_cost_almost_nothing() -> None:
    from latentpack.bench.pca_file import pack_names

    assert len(pack_names([f"{i:05d}.png" for i in range(2000)])) < 60


@pytest.mark.parametrize("cut", [0, 3, 39, 41, -1])
def test_pca_file_truncated_is_refused(tmp_path: Path, cut: int) -> None:
    from latentpack.bench.pca_file import read_pca

    codec = make_codec("pca", bytes_per_image=300)
    codec.encode(DIGITS / "0", tmp_path)
    data = (tmp_path / "pca.bin").read_bytes()
    with pytest.raises(ValueError, match="PCA baseline file"):
        read_pca(data[:cut])


def test_bench_command_sweeps_pca_through_the_qualities(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", str(DIGITS), "--codecs", "pca", "--qualities", "25,50", "--limit", "60",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    entries = json.loads(out.read_text())["entries"]
    assert [e["setting"] for e in entries] == ["<= 0.5 bpp", "<= 1 bpp"]
    assert all(e["bytes"] <= e["params"]["bpp"] * 60 * 784 / 8 for e in entries)
    assert entries[0]["mean_psnr"] < entries[1]["mean_psnr"]
    assert "pca" in result.output
