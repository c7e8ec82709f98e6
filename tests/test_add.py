"""``latentpack add``: images appended to lossy, lossless and pixel-model archives, without retraining.

Every test grows a copy of a committed fixture (no training), so the old
images are those of a released format version: after ``add`` they must
decode to the very same pixels, and the new ones decode (near their
originals when lossy, exactly when lossless).
"""
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
from latentpack.codec.decode import iter_images
from latentpack.formats import CorruptArchiveError, open_archive, read_archive, write_archive
from latentpack.fs.images import natural_pixels
from latentpack.metrics import psnr

ARCHIVES = Path(__file__).parent / "data" / "archives"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _copy(tmp_path: Path, fixture: str) -> Path:
    dest = tmp_path / Path(fixture).name
    shutil.copyfile(ARCHIVES / fixture, dest)
    return dest


def _ramps(folder: Path, count: int, size: tuple[int, int] = (12, 12), mode: str = "L", seed: int = 3,
           prefix: str = "new") -> Path:
    """Smooth ramps like the fixtures' own images (RGB ones tinted per channel)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]] / max(size[0] - 1, 1)
    for i in range(count):
        a, b = rng.uniform(-1, 1, 2)
        arr = 120 + 60 * (a * xx + b * yy)
        if mode == "RGB":
            arr = arr[:, :, None] + rng.uniform(-40, 40, 3)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode).save(folder / f"{prefix}{i}.png")
    return folder


def _decoded(archive: Path) -> list[np.ndarray]:
    """Every image of an archive as the pixels extract writes (natural pixels, in archive order)."""
    contents = read_archive(archive)
    return [natural_pixels(image)[0] for _, image, _, _ in iter_images(contents)]


def _same_old_images(before: list[np.ndarray], after: list[np.ndarray]) -> None:
    assert len(after) > len(before)
    for i, (a, b) in enumerate(zip(before, after)):
        assert np.array_equal(a, b), f"old image {i} changed"


def test_add_to_a_lossy_archive_keeps_old_images_and_fits_new_ones(tmp_path: Path) -> None:
    archive = _copy(tmp_path, "v1.4/dense-grey.lpk")
    before, old = _decoded(archive), read_archive(archive)
    new = _ramps(tmp_path / "new", 3)
    result = invoke("add", archive, new, "--json", "--fit-steps", "60")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["added"] == 3 and summary["images"] == 11 and summary["batch"] == 0
    after = _decoded(archive)
    _same_old_images(before, after)
    grown = read_archive(archive)
    assert np.array_equal(grown.quality.psnr[:8], old.quality.psnr)
    assert grown.images.names[8:] == ["new0.png", "new1.png", "new2.png"]
    for k, name in enumerate(grown.images.names[8:]):  # the recorded PSNR is what extract gives
        original = natural_pixels(Image.open(new / name))[0]
        assert abs(psnr(original, after[8 + k]) - grown.quality.psnr[8 + k]) < 0.02
    assert np.mean(grown.quality.psnr[8:]) > np.mean(old.quality.psnr) - 3  # as good as the encoder's, roughly
    assert summary["mean_psnr"] == pytest.approx(float(np.mean(grown.quality.psnr[8:])))
    with open_archive(archive) as ar:
        assert ar.format_version == "1.5" and ar.header.w == 11
        assert ar.header.x_bits == 11 * 12 * 12 * 8 and ar.header.latent_scalars == 11 * 3
    assert invoke("verify", archive).exit_code == 0


def test_add_to_a_lossless_archive_is_exact(tmp_path: Path) -> None:
    archive = _copy(tmp_path, "v1.4/conv-mixed-lossless.lpk")
    before, data = _decoded(archive), archive.read_bytes()
    new = tmp_path / "new"
    _ramps(new, 1, (9, 13), "RGB")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB").quantize(4).save(new / "pal.png")
    Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8), "L").save(new / "grey.png")
    out = tmp_path / "grown.lpk"
    result = invoke("add", archive, new, "-o", out, "--fit-steps", "20", "--prefix", "more")
    assert result.exit_code == 0, result.output
    assert archive.read_bytes() == data  # -o leaves ARCHIVE alone
    after = _decoded(out)
    _same_old_images(before, after)
    grown = read_archive(out)
    assert grown.images.names[4:] == ["more/grey.png", "more/new0.png", "more/pal.png"]
    assert np.all(np.isinf(grown.quality.psnr))
    ll = grown.lossless
    assert int(ll.block_bounds[-1]) == 7 and np.array_equal(ll.counts, read_archive(archive).lossless.counts)
    extracted = tmp_path / "x"
    assert invoke("extract", out, "-o", extracted).exit_code == 0  # every digest checked, batch by batch
    for name in ("grey.png", "new0.png", "pal.png"):
        a, b = Image.open(new / name), Image.open(extracted / "more" / name)
        assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
    verified = invoke("verify", out, "--json")
    assert verified.exit_code == 0, verified.output


def test_add_twice_to_a_pixel_model_archive_records_two_batches(tmp_path: Path) -> None:
    archive = _copy(tmp_path, "v1.3/pixels-mixed.lpk")
    before = _decoded(archive)
    assert invoke("add", archive, _ramps(tmp_path / "a", 2, (8, 10), "RGB")).exit_code == 0
    assert invoke("add", archive, _ramps(tmp_path / "b", 1, (6, 6), "RGB", prefix="late")).exit_code == 0
    _same_old_images(before, _decoded(archive))
    grown = read_archive(archive)
    assert grown.additions.first.tolist() == [5, 7] and len(grown.additions.created) == 2
    for k, folder in enumerate(("a", "b")):  # each batch's digest of digests, over its full digests
        import hashlib

        from latentpack.fs.images import open_image

        digests = b"".join(open_image(p).sha256 for p in sorted((tmp_path / folder).iterdir()))
        assert bytes(grown.additions.sha256_all[k]) == hashlib.sha256(digests).digest()
    listed = json.loads(invoke("list", archive, "--json").stdout)
    assert [r["batch"] for r in listed] == [None] * 5 + [0, 0, 1]
    assert "added" in invoke("list", archive).output.splitlines()[0]
    summary = json.loads(invoke("inspect", archive, "--json").stdout)
    assert [(b["batch"], b["first"], b["images"]) for b in summary["additions"]] == [(0, 5, 2), (1, 7, 1)]
    assert "added images       3 in 2 batch(es)" in invoke("inspect", archive).output
    assert invoke("verify", archive).exit_code == 0


def test_add_to_a_refined_pixel_model_archive_codes_the_new_blocks_refined(tmp_path: Path) -> None:
    archive = _copy(tmp_path, "v1.5/pixels-refined.lpk")
    before = _decoded(archive)
    refinement = read_archive(archive).pixels.refinement
    assert refinement
    assert invoke("add", archive, _ramps(tmp_path / "a", 2, (8, 10), "RGB")).exit_code == 0
    _same_old_images(before, _decoded(archive))
    assert read_archive(archive).pixels.refinement == refinement
    assert invoke("verify", archive).exit_code == 0  # the new blocks decode exactly, refined


def test_add_to_a_float32_latent_archive(tmp_path: Path) -> None:
    archive = _copy(tmp_path, "v1.0/dense-grey.lpk")
    before = _decoded(archive)
    assert invoke("add", archive, _ramps(tmp_path / "new", 1), "--fit-steps", "30").exit_code == 0
    _same_old_images(before, _decoded(archive))
    assert read_archive(archive).latents.coding == "float32"


def _unchanged_failure(archive: Path, *args) -> str:
    """Run ``add`` expecting exit 1 with one Error line, the archive byte-identical and no temporary file left."""
    data = archive.read_bytes()
    result = invoke("add", archive, *args, "-q")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert archive.read_bytes() == data
    assert sorted(p.name for p in archive.parent.iterdir() if p.name.startswith(".")) == []
    return lines[0]


def test_generated_code_archives_cannot_grow(tmp_path: Path) -> None:
    archive = _copy(tmp_path, "v1.1/index-grey-lossless.lpk")
    line = _unchanged_failure(archive, _ramps(tmp_path / "new", 1))
    assert str(archive) in line and "--codes index" in line


def test_a_name_already_in_the_archive_is_refused(tmp_path: Path) -> None:
    archive = _copy(tmp_path, "v1.4/dense-grey.lpk")
    line = _unchanged_failure(archive, _ramps(tmp_path / "new", 1, prefix="ramp"))  # ramp0.png is in it
    assert "'ramp0.png' is already in the archive" in line
    line = _unchanged_failure(archive, _ramps(tmp_path / "case", 1, prefix="RAMP"))
    assert "letter case" in line


def test_images_the_archive_cannot_hold_are_refused(tmp_path: Path) -> None:
    archive = _copy(tmp_path, "v1.4/dense-grey.lpk")
    line = _unchanged_failure(archive, _ramps(tmp_path / "big", 1, (14, 12)))
    assert "new0.png" in line and "makes 12x12 images" in line
    line = _unchanged_failure(archive, _ramps(tmp_path / "rgb", 1, mode="RGB"))
    assert "new0.png" in line and "RGB" in line
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    result = invoke("add", archive, bad)
    assert result.exit_code == 1 and "broken.png" in result.output


def test_a_failed_write_leaves_the_old_archive(tmp_path: Path, monkeypatch) -> None:
    archive = _copy(tmp_path, "v1.3/pixels-mixed.lpk")
    data = archive.read_bytes()

    def refuse(tmp: Path, path: Path) -> None:
        raise CorruptArchiveError("simulated failure of the read-back check", file=path)

    monkeypatch.setattr("latentpack.formats.writer._read_back", refuse)
    result = invoke("add", archive, _ramps(tmp_path / "new", 1, (6, 6), "RGB"))
    assert result.exit_code == 1 and "simulated failure" in result.output
    assert archive.read_bytes() == data and sorted(p.name for p in tmp_path.iterdir()) == ["new", "pixels-mixed.lpk"]


def test_output_option_leaves_the_archive_and_needs_force_to_replace(tmp_path: Path) -> None:
    archive = _copy(tmp_path, "v1.3/pixels-mixed.lpk")
    data = archive.read_bytes()
    out = tmp_path / "out.lpk"
    out.write_bytes(b"old")
    new = _ramps(tmp_path / "new", 1, (6, 6), "RGB")
    result = invoke("add", archive, new, "-o", out)
    assert result.exit_code == 1 and "exists" in result.output and out.read_bytes() == b"old"
    assert invoke("add", archive, new, "-o", out, "--force", "-q").exit_code == 0
    assert archive.read_bytes() == data and read_archive(out).images.names[-1] == "new0.png"
    assert invoke("add", archive).exit_code == 2  # no SOURCES: a usage error


def test_readers_refuse_a_damaged_additions_record(tmp_path: Path) -> None:
    archive = _copy(tmp_path, "v1.5/pixels-mixed-added.lpk")
    contents = read_archive(archive)
    contents.additions.first = np.array([6, 6])
    with pytest.raises(ValueError, match="/additions/first"):
        write_archive(tmp_path / "bad.lpk", contents)
    with h5py.File(archive, "r+") as f:
        del f["additions/first"]
        f["additions"].create_dataset("first", data=np.array([7, 6], np.int64))
    with pytest.raises(CorruptArchiveError, match="/additions/first"):
        read_archive(archive)
