"""Format 1.4: compact ``/images`` and ``/quality`` (front-coded names, shared columns, PSNR codes, 2-byte digests)."""
from __future__ import annotations

import dataclasses
import hashlib
import sys
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from latentpack.formats import CorruptArchiveError, open_archive, read_archive, write_archive
from latentpack.formats.elements.quality import INF_CODE
from latentpack.formats.footprint import group_bytes
from latentpack.formats.names_blob import decode_names, encode_names

from archive_factory import assert_contents_equal, make_contents

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "tests" / "data"))

from metadata_size import mnist_contents  # noqa: E402


def _compact(contents):
    """`contents` as the 1.4 writer stores them: PSNRs rounded to the nearest 1/64 dB."""
    psnr = contents.quality.psnr
    rounded = np.where(np.isinf(psnr), np.inf, np.rint(np.where(np.isinf(psnr), 0, psnr) * 64) / 64)
    return dataclasses.replace(contents, quality=dataclasses.replace(contents.quality, psnr=rounded))


def _versions(path: Path) -> dict[str, str]:
    with h5py.File(path, "r") as f:
        return {name: f[name].attrs["encoding-version"].decode() for name in ["/", *f]}


NAME_LISTS = {
    "mnist": [f"train/{i:05d}.png" for i in range(1200)] + [f"test/{i:05d}.png" for i in range(30)],
    "unicode and nested": ["été/über/ß.png", "été/über/ßx.png", "日本/画像 1.png", "日本/画像 2.png", "a b/c/d/e.png",
                           "emoji/🙂.png", "emoji/🙃.png"],
    "unsorted": ["z.png", "a/b.png", "a.png", "a/a.png", "zz.png", "a/b/c.png"],
    "long shared prefixes": ["p" * 300 + f"/{i}.png" for i in range(40)] + ["p" * 299 + "q.png"],
    "split inside a character": ["xé", "xè", "x€", "x€a", "x"],
    "one": ["only.png"],
    "none": [],
}


@pytest.mark.parametrize("names", NAME_LISTS.values(), ids=NAME_LISTS.keys())
def test_names_round_trip_in_archive_order(names: list[str]) -> None:
    blob = encode_names(names)
    assert blob.dtype == np.uint8 and blob.ndim == 1
    assert decode_names(blob, len(names)) == names


def test_mnist_style_names_take_a_tenth_of_a_byte_each() -> None:
    names = [f"train/{i:05d}.png" for i in range(60000)] + [f"test/{i:05d}.png" for i in range(10000)]
    assert len(encode_names(names)) / len(names) < 0.1


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_pack_unpack_identity_v14(tmp_path: Path, arch: str) -> None:
    contents = make_contents(7, arch, compact_metadata=True)
    names = NAME_LISTS["unicode and nested"]
    contents = dataclasses.replace(contents, images=dataclasses.replace(contents.images, names=names))
    path = write_archive(tmp_path / "a.lpk", contents)
    assert _versions(path)["images"] == "1.4" and _versions(path)["quality"] == "1.4" and _versions(path)["/"] == "1.4"
    got = read_archive(path)
    assert_contents_equal(got, _compact(contents))
    with open_archive(path) as ar:
        assert ar.format_version == "1.4"
        assert ar.storage_breakdown()["images"] > 0


def test_empty_archive_round_trips(tmp_path: Path) -> None:
    contents = make_contents(0, compact_metadata=True)
    assert_contents_equal(read_archive(write_archive(tmp_path / "a.lpk", contents)), contents)


def test_shared_columns_are_attributes_and_mixed_ones_datasets(tmp_path: Path) -> None:
    shared = mnist_contents(50, file_sizes="one")
    mixed = make_contents(6, "conv", compact_metadata=True)  # shapes, modes and formats vary; one palette image
    write_archive(tmp_path / "s.lpk", shared)
    write_archive(tmp_path / "m.lpk", mixed)
    with h5py.File(tmp_path / "s.lpk", "r") as f:
        g = f["images"]
        assert sorted(g) == ["names", "sha256", "sha256_all"]
        assert (g.attrs["mode"], g.attrs["format"]) == (b"L", b"PNG")
        assert [int(g.attrs[k]) for k in ("height", "width", "channels", "file_bytes_each")] == [28, 28, 1, 275]
        assert g["sha256"].shape == (50, 2)
    with h5py.File(tmp_path / "m.lpk", "r") as f:
        g = f["images"]
        assert sorted(g) == ["file_bytes", "formats", "modes", "names", "palette_index", "palettes", "sha256",
                             "shapes"]
        assert g["shapes"].dtype == np.uint16
        assert not {"mode", "format", "height", "file_bytes_each"} & set(g.attrs)
    table = read_archive(tmp_path / "s.lpk").images
    assert table.modes == ["L"] * 50 and table.formats == ["PNG"] * 50
    assert table.shapes.dtype == np.int32 and table.shapes.tolist() == [[28, 28, 1]] * 50
    assert table.palette_index.tolist() == [-1] * 50 and table.palettes.shape == (0, 256, 4)
    assert table.file_bytes.tolist() == [275] * 50
    assert_contents_equal(read_archive(tmp_path / "m.lpk"), _compact(mixed))


def test_psnr_codes_keep_64ths_of_a_db_and_infinity(tmp_path: Path) -> None:
    psnr = np.array([np.inf, 25.123456, 0.004, 1023.96875, 33.337, 18.0049, 42.0])
    base = make_contents(7, compact_metadata=True)
    contents = dataclasses.replace(base, quality=dataclasses.replace(base.quality, psnr=psnr))
    path = write_archive(tmp_path / "a.lpk", contents)
    with h5py.File(path, "r") as f:
        codes = f["quality/psnr"][()]
        assert f["quality/psnr"].dtype == np.uint16
    assert codes.tolist() == [INF_CODE, 1608, 0, 65534, 2134, 1152, 2688]
    got = read_archive(path).quality.psnr
    assert np.isinf(got[0]) and np.all(np.abs(got[1:] - psnr[1:]) <= 1 / 128)
    again = write_archive(tmp_path / "b.lpk", read_archive(path), force=True)  # the grid is kept: no drift
    assert np.array_equal(read_archive(again).quality.psnr, got)


def test_psnrs_as_compress_records_them_are_kept_exactly_and_print_the_same(tmp_path: Path) -> None:
    """compress rounds PSNRs to 1/64 dB (codec/assemble.py): the 1.4 column is lossless of them."""
    rng = np.random.default_rng(4)
    psnr = np.round(rng.uniform(5, 60, 500) * 64) / 64
    psnr[::7] = np.inf
    base = make_contents(500, compact_metadata=True)
    contents = dataclasses.replace(base, quality=dataclasses.replace(base.quality, psnr=psnr))
    new = read_archive(write_archive(tmp_path / "new.lpk", contents)).quality
    old = read_archive(write_archive(tmp_path / "old.lpk", dataclasses.replace(contents, compact_metadata=False))).quality
    assert np.array_equal(new.psnr, psnr) and np.array_equal(old.psnr, psnr)
    assert [f"{v:.2f}" for v in new.psnr] == [f"{v:.2f}" for v in old.psnr]  # what list and verify print
    assert (new.mean_psnr, new.min_psnr) == (old.mean_psnr, old.min_psnr)  # what inspect prints


def test_psnr_outside_the_codes_keeps_the_float64_layout(tmp_path: Path) -> None:
    c = make_contents(3, compact_metadata=True)
    c = dataclasses.replace(c, quality=dataclasses.replace(c.quality, psnr=np.array([np.inf, 2000.0, 31.5])))
    path = write_archive(tmp_path / "a.lpk", c)
    assert _versions(path)["quality"] == "1.0" and _versions(path)["images"] == "1.4"
    assert np.array_equal(read_archive(path).quality.psnr, c.quality.psnr)
    bad = dataclasses.replace(c, quality=dataclasses.replace(c.quality, psnr=np.array([np.nan, 1.0, 2.0])))
    with pytest.raises(ValueError, match="/quality/psnr"):
        write_archive(tmp_path / "b.lpk", bad)


def test_file_sizes_not_recorded_need_1_4(tmp_path: Path) -> None:
    c = make_contents(3, compact_metadata=True)
    c = dataclasses.replace(c, images=dataclasses.replace(c.images, file_bytes=np.array([-1, 7, -1])))
    assert read_archive(write_archive(tmp_path / "a.lpk", c)).images.file_bytes.tolist() == [-1, 7, -1]
    with pytest.raises(ValueError, match="/images/file_bytes.*1.4"):
        write_archive(tmp_path / "b.lpk", dataclasses.replace(c, compact_metadata=False))
    with pytest.raises(ValueError, match="/images/file_bytes"):
        write_archive(tmp_path / "c.lpk", dataclasses.replace(c, images=dataclasses.replace(
            c.images, file_bytes=np.array([-2, 7, 1]))))


def test_older_layouts_are_still_written_on_request(tmp_path: Path) -> None:
    c = make_contents(4, compact_metadata=True)
    path = write_archive(tmp_path / "a.lpk", dataclasses.replace(c, compact_metadata=False))
    assert _versions(path)["/"] == "1.0" and _versions(path)["images"] == "1.0"
    assert_contents_equal(read_archive(path), c)


def _short(contents, k: int, with_all: bool = True):
    full = contents.images.sha256
    every = np.frombuffer(hashlib.sha256(full.tobytes()).digest(), np.uint8).copy() if with_all else None
    return dataclasses.replace(contents, images=dataclasses.replace(contents.images, sha256=full[:, :k].copy(),
                                                                    sha256_all=every))


def test_two_byte_digests_need_1_4_and_the_digest_of_all_digests(tmp_path: Path) -> None:
    c = make_contents(3, compact_metadata=True)
    path = write_archive(tmp_path / "a.lpk", _short(c, 2))
    assert read_archive(path).images.sha256.shape == (3, 2)
    with pytest.raises(ValueError, match="/images/sha256.*1.4"):
        write_archive(tmp_path / "b.lpk", dataclasses.replace(_short(c, 2), compact_metadata=False))
    with pytest.raises(ValueError, match="/images/sha256_all"):
        write_archive(tmp_path / "c.lpk", _short(c, 2, with_all=False))
    with pytest.raises(ValueError, match="/images/sha256"):
        write_archive(tmp_path / "d.lpk", _short(c, 3))


def test_lossy_archives_default_to_two_byte_digests() -> None:
    from latentpack.ops.compress import CompressOptions

    assert CompressOptions().stored_digest_bytes == 2
    assert CompressOptions(lossless=True).stored_digest_bytes == 4
    assert CompressOptions(digest_bytes=32).stored_digest_bytes == 32
    CompressOptions(digest_bytes=2).check()


def test_verify_names_a_tampered_image_with_two_byte_digests(tmp_path: Path) -> None:
    from make_fixtures import _pixel_folder, pixel_contents

    from latentpack.ops.verify import verify_archive

    contents = pixel_contents(_pixel_folder(tmp_path), digest_bytes=2)
    path = write_archive(tmp_path / "p.lpk", contents)
    assert verify_archive(path).ok
    table = contents.images
    raw = int(np.flatnonzero(contents.pixels.exception_index >= 0)[0])  # the image stored as raw bytes
    with h5py.File(path, "r+") as f:
        data = f["pixels/exception_bytes"][()]
        data[0] ^= 1  # one pixel of that image changed
        f["pixels/exception_bytes"][...] = data
    report = verify_archive(path)
    assert not report.ok and report.all_digests_ok is False
    assert [name for name, _ in report.mismatches] == [table.names[raw]]


@pytest.mark.parametrize("sizes", [[(8, 10)] * 3, [(8, 10), (6, 6), (8, 10)]], ids=["one shape", "two shapes"])
def test_pixel_model_archives_find_their_block_shapes_in_either_form(tmp_path: Path, sizes) -> None:
    from PIL import Image

    from make_fixtures import pixel_contents

    rng = np.random.default_rng(3)
    folder = tmp_path / "f"
    folder.mkdir()
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(folder / f"{i}.png")
    path = write_archive(tmp_path / "p.lpk", pixel_contents(folder, digest_bytes=4))
    with h5py.File(path, "r") as f:
        assert ("shapes" in f["images"]) == (len(set(sizes)) > 1)
    with open_archive(path) as ar:
        assert ar.images.shapes.tolist() == [[h, w, 3] for h, w in sizes]
        assert ar.pixels is not None


def _replace(f: h5py.File, path: str, data, **kwargs) -> None:
    del f[path]
    f.create_dataset(path, data=data, **kwargs)


def _raw(f: h5py.File) -> bytes:
    return zlib.decompress(f["images/names"][()].tobytes())


CORRUPTIONS = {
    "not zlib": (lambda f: _replace(f, "images/names", np.frombuffer(b"not a zlib stream", np.uint8)), "/images/names"),
    "truncated": (lambda f: _replace(f, "images/names", f["images/names"][()][:-6]), "/images/names"),
    "trailing bytes": (lambda f: _replace(f, "images/names", np.concatenate([f["images/names"][()], [1, 2]]).astype(
        np.uint8)), "/images/names"),
    "one name short": (lambda f: _replace(f, "images/names", encode_names(["a.png", "b.png"])), "/images/names"),
    "prefix too long": (lambda f: _replace(f, "images/names", np.frombuffer(zlib.compress(
        b"\x00a\x00\x05b\x00" + _raw(f)[4:]), np.uint8)), "/images/names"),
    "bad utf-8": (lambda f: _replace(f, "images/names", np.frombuffer(zlib.compress(
        b"\x00\xff\xfe\x00" + _raw(f)[_raw(f).index(b"\x00", 1) + 1:]), np.uint8)), "/images/names"),
    "duplicate": (lambda f: _replace(f, "images/names", encode_names(["a.png", "a.png", "b.png"])), "/images/names"),
    "mode twice": (lambda f: f["images"].attrs.__setitem__("mode", np.bytes_("L")), "/images/modes"),
    "no format": (lambda f: f.__delitem__("images/formats"), "/images/formats"),
    "half a shape": (lambda f: f["images"].attrs.__setitem__("height", np.int64(14)), "/images"),
    "palettes without index": (lambda f: f.__delitem__("images/palette_index"), "/images/palette_index"),
    "psnr floats": (lambda f: _replace(f, "quality/psnr", np.zeros(3)), "/quality/psnr"),
    "shapes int32": (lambda f: _replace(f, "images/shapes", np.ones((3, 3), np.int32)), "/images/shapes"),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupt_compact_metadata_names_its_hdf5_path(tmp_path: Path, name: str) -> None:
    forge, where = CORRUPTIONS[name]
    path = write_archive(tmp_path / "a.lpk", make_contents(3, "conv", compact_metadata=True))
    with h5py.File(path, "r+") as f:
        forge(f)
    with pytest.raises(CorruptArchiveError) as info:
        with open_archive(path) as ar:
            ar.validate()
    assert info.value.hdf5_path == where, str(info.value)
    assert str(path) in str(info.value)


def test_names_that_spell_more_than_the_limit_are_refused_before_they_are_spelled() -> None:
    w = 20000
    raw = b"\x00" + b"a" * 300 + b"\x00" + b"\xffb\x00" * (w - 1)  # each name 256 bytes from 3 raw bytes
    blob = np.frombuffer(zlib.compress(raw, 9), np.uint8)
    with pytest.raises(CorruptArchiveError, match="spell more than") as info:
        decode_names(blob, w)
    assert info.value.hdf5_path == "/images/names"


def _per_image(path: Path, n: int) -> float:
    sizes = group_bytes(path)
    return (sizes["images"] + sizes["quality"]) / n


@pytest.mark.parametrize("file_sizes", ["one", "none"])
def test_mnist_style_metadata_fits_four_bytes_per_image_from_the_file(tmp_path: Path, file_sizes: str) -> None:
    """10,000 MNIST-style images (28x28 L PNG), files of one size or sizes not recorded: <= 4 B/image.

    Every HDF5 byte of /images and /quality counts (headers, indexes, attributes, data).
    With PNG-like file sizes (each file its own) the sizes column adds about 1.2 B/image:
    the bound is then 5 (examples/metadata_size.py prints every case).
    """
    n = 10000
    assert _per_image(write_archive(tmp_path / "a.lpk", mnist_contents(n, 2, file_sizes)), n) <= 4.0
    assert 4.0 < _per_image(write_archive(tmp_path / "b.lpk", mnist_contents(n, 2)), n) <= 5.0
    old = write_archive(tmp_path / "c.lpk", dataclasses.replace(mnist_contents(n, digest_bytes=32),
                                                                compact_metadata=False))
    assert _per_image(old, n) > 32  # the 1.3 default: full digests, strings, float64


@pytest.mark.parametrize("arch, w", [("dense", 5), ("conv", 7)])
def test_damage_to_a_1_4_archive_is_detected_or_harmless(tmp_path: Path, arch: str, w: int) -> None:
    """As test_formats' damage test, on the compact layouts: each damaged copy is refused or reads back the same."""
    from test_formats import FUZZ_EXAMPLES, FUZZ_SEED, _damages, _read_damaged, _region

    path = write_archive(tmp_path / "a.lpk", make_contents(w=w, arch=arch, seed=w, compact_metadata=True))
    damages = _damages(path.read_bytes(), FUZZ_EXAMPLES, FUZZ_SEED)
    outcomes = _read_damaged(path, damages, tmp_path)
    assert sorted(outcomes) == list(range(len(damages)))
    where = _region(path)
    bad = [f"offset {damages[i][0]} ({where(damages[i][0])}): {outcome}" for i, outcome in sorted(outcomes.items())
           if outcome.split()[0] not in ("same", "error")]
    assert not bad, f"{len(bad)} of {len(damages)} damaged copies:\n" + "\n".join(bad[:40])
    assert sum(outcome.startswith("error") for outcome in outcomes.values()) > len(damages) // 2
