"""Random access (`latentpack.open(a)[i]` reads only image i's chunks), `extract --shard`, training batches."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import latentpack
from archive_factory import make_contents, with_v11_features
from latentpack.cli import cli
from latentpack.codec.decode import iter_images
from latentpack.formats import CorruptArchiveError, read_archive, write_archive
from latentpack.formats.lazy import LazyArray
from latentpack.errors import OptionError
from latentpack.ops.extract import parse_shard, shard_images

FIXTURES = Path(__file__).parent / "data" / "archives"
#: One archive of each way of storing latents or pixels: coded, generated + lossless residuals, pixel model.
KINDS = ["v1.4/dense-grey.lpk", "v1.1/index-grey-lossless.lpk", "v1.4/conv-mixed-lossless.lpk",
         "v1.3/pixels-mixed.lpk", "v1.0/conv-mixed.lpk"]


@pytest.fixture(scope="module")
def big_float(tmp_path_factory) -> Path:
    """20,000 images of float32 latents (80,000 values: two HDF5 chunks of /latents/values)."""
    path = tmp_path_factory.mktemp("access") / "float.lpk"
    write_archive(path, make_contents(w=20_000, seed=5))
    return path


def _eager(path: Path, i: int) -> np.ndarray:
    """Image i as the whole-archive read decodes it alone (what `latentpack.open` did before)."""
    _, image, _, _ = next(iter_images(read_archive(path), [i]))
    return np.asarray(image)


@pytest.mark.parametrize("name", KINDS)
def test_random_access_equals_the_whole_read(name: str) -> None:
    path = FIXTURES / name
    with latentpack.open(path) as a:
        for i in dict.fromkeys([len(a) - 1, len(a) // 2, 0]):  # backwards: none relies on one decoded before it
            assert np.array_equal(a[i], _eager(path, i)), (name, i)


def test_opening_reads_no_latent_and_an_access_reads_only_its_slice(big_float: Path) -> None:
    with latentpack.open(big_float) as a:
        values = a._decoding.latents.values
        assert isinstance(values, LazyArray) and values.bytes_read == 0
        pixels = a[19_999]
        assert values.bytes_read == 4 * 4  # image 19,999's four float32 latents, nothing else
        assert np.array_equal(pixels, _eager(big_float, 19_999))
        assert np.array_equal(a["img_000.png"], _eager(big_float, 0)) and values.bytes_read == 2 * 16


def test_lossless_access_reads_only_its_block() -> None:
    path = FIXTURES / "v1.4/conv-mixed-lossless.lpk"
    with latentpack.open(path) as a:
        stream = a._decoding.lossless.stream
        ll = read_archive(path).lossless
        a[len(a) - 1]
        b = int(np.searchsorted(ll.block_bounds, len(a) - 1, side="right")) - 1
        assert stream.bytes_read == 4 * int(ll.stream_offsets[b + 1] - ll.stream_offsets[b]) > 0


def _flip(path: Path, dataset: str, chunk: int, at: int) -> None:
    """Flip byte `at` of chunk `chunk` of `dataset` in the file (its Fletcher-32 checksum then fails)."""
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_chunk_info(chunk).byte_offset + at
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def _damage_chunk(path: Path, index: int, nan: bool = False) -> None:
    """Flip a byte inside chunk `index` of /latents/values (``nan``: the last value NaN, written through h5py
    with a valid checksum)."""
    if not nan:
        return _flip(path, "latents/values", index, 100)
    with h5py.File(path, "r+") as f:
        f["latents/values"][-1] = np.nan


@pytest.mark.parametrize("nan", [False, True], ids=["checksum", "not-finite"])
def test_a_damaged_chunk_fails_only_the_images_it_holds(big_float: Path, tmp_path: Path, nan: bool) -> None:
    path = tmp_path / "damaged.lpk"
    path.write_bytes(big_float.read_bytes())
    _damage_chunk(path, 1, nan)
    with latentpack.open(path) as a:  # opening reads no latent: it succeeds
        assert np.array_equal(a[0], _eager(big_float, 0))  # chunk 0 is intact
        message = "latents must be finite" if nan else "cannot be read"
        with pytest.raises(CorruptArchiveError, match=f"^{path}: /latents/values: {message}"):
            a[19_999]
    with pytest.raises(CorruptArchiveError, match="/latents/values"):
        read_archive(path)  # the whole read refuses it as before
    result = CliRunner().invoke(cli, ["verify", str(path)])
    assert result.exit_code == 1 and "/latents/values" in result.output, result.output


def test_a_damaged_coded_stream_fails_the_first_access(tmp_path: Path) -> None:
    path = tmp_path / "coded.lpk"
    write_archive(path, with_v11_features(make_contents(w=6)))
    _flip(path, "latents/stream", 0, 0)
    with latentpack.open(path) as a:  # the stream codes every image: the first access reads it whole
        with pytest.raises(CorruptArchiveError, match=f"^{path}: /latents/stream: cannot be read"):
            a[3]


# -- extract --shard ----------------------------------------------------------------


def test_shards_are_disjoint_balanced_and_make_the_whole() -> None:
    for k in (0, 1, 7, 12, 100):
        for n in (1, 2, 3, 8, 13):
            parts = [list(shard_images(range(k), (i, n))) for i in range(1, n + 1)]
            assert sum(parts, []) == list(range(k))  # in order, disjoint, complete
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parse_shard("2/5") == (2, 5) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/0", "3/2", "0/3", "1/0", "junk", "", "-1/2", "1/2/3", "1.5/2"):
        with pytest.raises(OptionError):
            parse_shard(bad)


def _extract(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["extract", *args])
    return result.exit_code, result.output


def test_extract_shard_cli(tmp_path: Path) -> None:
    archive = str(FIXTURES / "v1.4/dense-grey.lpk")
    code, out = _extract(archive, "-o", str(tmp_path / "all"))
    assert code == 0, out
    everything = sorted(p.relative_to(tmp_path / "all") for p in (tmp_path / "all").rglob("*.png"))
    got = []
    for i in (1, 2, 3):
        code, out = _extract(archive, "-o", str(tmp_path / f"s{i}"), "--shard", f"{i}/3")
        assert code == 0, out
        mine = sorted(p.relative_to(tmp_path / f"s{i}") for p in (tmp_path / f"s{i}").rglob("*.png"))
        assert len(mine) in (2, 3)
        for name in mine:
            assert (tmp_path / f"s{i}" / name).read_bytes() == (tmp_path / "all" / name).read_bytes()
        got += mine
    assert sorted(got) == everything and len(set(got)) == len(got)
    # with a pattern, the shards split what the pattern selects
    code, out = _extract(archive, "-o", str(tmp_path / "p"), "ramp[0-3]*", "--shard", "2/2")
    assert code == 0 and sorted(p.name for p in (tmp_path / "p").iterdir()) == ["ramp2.png", "ramp3.png"], out
    for bad in ("0/0", "3/2", "junk"):
        code, out = _extract(archive, "-o", str(tmp_path / "bad"), "--shard", bad)
        assert code == 2 and "--shard" in out and not (tmp_path / "bad").exists(), out
    code, out = _extract(archive, "-o", "-", "ramp1.png", "--shard", "1/2")
    assert code == 2 and "--shard" in out, out


# -- training from the archive ------------------------------------------------------------------


def _close(batched: np.ndarray, alone: np.ndarray) -> None:
    """A batched decode is ``a[i]`` up to one level where the sums' rounding differs (README, Python API)."""
    assert batched.shape == alone.shape and batched.dtype == alone.dtype == np.uint8
    assert np.abs(batched.astype(int) - alone).max() <= 1


def test_training_batches_are_uint8_arrays_one_epoch_per_pass() -> None:
    with latentpack.open(FIXTURES / "v1.4/dense-grey.lpk") as a:
        every = np.stack([a[i] for i in range(len(a))])[..., None]
        batches = a.training_batches(3, shuffle=True, seed=0)
        assert len(batches) == 3
        epochs = [list(batches) for _ in range(2)]
        for epoch, got in enumerate(epochs):
            assert [x.shape for x in got] == [(3, 12, 12, 1), (3, 12, 12, 1), (2, 12, 12, 1)]
            assert all(x.dtype == np.uint8 for x in got)
            _close(np.concatenate(got), every[batches.order(epoch)])  # each image once, in the epoch's order
        assert not np.array_equal(batches.order(0), batches.order(1))  # reshuffled
        again = a.training_batches(3, shuffle=True, seed=0)
        assert np.array_equal(np.concatenate(list(again)), np.concatenate(epochs[0]))  # repeatable
        plain = list(a.training_batches(8, drop_remainder=True))
        assert len(plain) == 1
        _close(plain[0], every)
        assert list(a.training_batches(3, drop_remainder=True).order(0)) == list(range(8))
        with pytest.raises(OptionError):
            a.training_batches(0)


def test_training_batches_refuse_mixed_shapes_and_modes(tmp_path: Path) -> None:
    with latentpack.open(FIXTURES / "v1.4/conv-mixed-lossless.lpk") as a:
        with pytest.raises(OptionError, match="one shape"):
            a.training_batches(2)
    path = tmp_path / "modes.lpk"
    write_archive(path, make_contents(w=4))  # image 1 is a palette image, the others greyscale
    with latentpack.open(path) as a:
        with pytest.raises(OptionError, match="one mode"):
            a.training_batches(2)
        x = next(iter(a.training_batches(2, names=[a.names[0], a.names[2]])))
        _close(x[1:2, ..., 0], a[2][None])


def test_tf_dataset_serves_the_same_epochs() -> None:
    pytest.importorskip("tensorflow")
    with latentpack.open(FIXTURES / "v1.4/dense-grey.lpk") as a:
        ds = latentpack.tf_dataset(a, batch_size=3, shuffle=True, seed=1, drop_remainder=True)
        assert ds.element_spec.shape.as_list() == [3, 12, 12, 1]
        reference = a.training_batches(3, shuffle=True, seed=1, drop_remainder=True)
        for _ in range(2):  # each pass over the dataset is the next epoch
            got = [x.numpy() for x in ds]
            assert len(got) == 2 and all(np.array_equal(g, r) for g, r in zip(got, reference))


def test_training_batches_never_import_tensorflow() -> None:
    code = ("import sys, latentpack\n"
            f"a = latentpack.open({str(FIXTURES / 'v1.4/dense-grey.lpk')!r})\n"
            "x = next(iter(a.training_batches(4, shuffle=True, seed=0)))\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
            "print(x.shape)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "(4, 12, 12, 1)" in proc.stdout, proc.stderr


@pytest.mark.parametrize("bad", ["", "/abs.png", "a//b.png", "a/./b.png", "../b.png", "a/..", "dir/", "a\\b.png",
                                 "nul\x00.png", "img_000.png", "é" * 2049])
def test_the_whole_list_name_check_names_the_entry_at_fault(bad: str) -> None:
    # the fast, whole-list pass over the names must let no bad name through, and the error still names its row
    from latentpack.formats.elements.images import check_image_table

    table = make_contents(w=5).images
    table.names[3] = bad
    with pytest.raises(CorruptArchiveError, match="/images/names") as err:
        check_image_table(table, 5, (1, 1))
    assert "entries 0 and 3" in str(err.value) if bad == "img_000.png" else "entry 3" in str(err.value)


@pytest.mark.parametrize("channels", [[3] * 3000, [3, 2] + [3] * 2998], ids=["one-c", "mixed-c"])
def test_per_channel_tables_decode_as_the_general_path(channels: list[int]) -> None:
    # a stream of one table per channel is decoded column by column when every image has c channels
    from latentpack.codec.entropy import latent_coding as lc

    rng = np.random.default_rng(0)
    shapes = np.array([(1, 1, c) for c in channels], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(shapes.prod(axis=1))]).astype(np.int64)
    channel = lc.channel_index(offsets, shapes)
    q = (rng.integers(-2, 3, size=int(offsets[-1])) * (1 + 3 * channel)).astype(np.int32)  # channels differ
    coded = lc.encode_latents(q, offsets, shapes, 1.0)
    assert len(np.unique(coded.table_of_channel)) == 3  # one table per channel
    assert np.array_equal(lc.decode_latents(coded, offsets, shapes), q)
    import constriction

    decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(coded.stream))
    column_wise = lc._decode_per_channel(decoder, lc.CountModels(coded.counts), coded.table_of_channel, offsets,
                                         shapes, int(offsets[-1]))
    assert (column_wise is not None) == (len(set(channels)) == 1)  # mixed channel counts: the general path
