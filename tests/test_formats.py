"""Tests of the HDF5 archive layer: round trip, header, and every refusal."""
from __future__ import annotations

import json
import os
import pickle
import queue
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from archive_factory import assert_contents_equal, make_contents  # noqa: E402

import latentpack.formats as formats  # noqa: E402
from latentpack.formats import (  # noqa: E402
    ArchiveError,
    CorruptArchiveError,
    NotAnArchiveError,
    UnsupportedVersionError,
    compute_header,
    open_archive,
    read_archive,
    read_header,
    write_archive,
)
from latentpack.formats import writer as writer_module  # noqa: E402
from latentpack.formats.h5write import to_json  # noqa: E402


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "a.lpk", make_contents(w=5, arch="dense"))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


# -- round trip --------------------------------------------------------------


@pytest.mark.parametrize("arch", ["dense", "conv"])
@pytest.mark.parametrize("w", [0, 1, 7])
def test_pack_unpack_identity(tmp_path: Path, arch: str, w: int) -> None:
    contents = make_contents(w=w, arch=arch, seed=w)
    path = write_archive(tmp_path / "x.lpk", contents)
    assert path == tmp_path / "x.lpk"
    assert_contents_equal(read_archive(path), contents)
    assert _leftovers(tmp_path) == []


def test_open_archive_parts(archive: Path) -> None:
    want = make_contents(w=5, arch="dense")
    with open_archive(archive) as a:
        assert a.format_version == "1.0"
        assert a.writer == "latentpack 0.1.0"
        assert a.created == "2024-01-02T03:04:05Z"
        assert a.header == want.header
        assert a.spec.input_shape == (1, 1, 4)
        assert len(a.images) == 5 and len(a.latents) == 5
        np.testing.assert_array_equal(a.latents.get(3), want.latents.get(3))
        assert a.training["loss"] == [0.5, 0.25, 0.125]
        assert a.quality.min_psnr == want.quality.min_psnr
        parts = a.storage_breakdown()
    assert set(parts) == {"decoder", "latents", "images", "quality", "training", "overhead", "file"}
    assert parts["file"] == archive.stat().st_size
    assert sum(v for k, v in parts.items() if k != "file") == parts["file"]
    assert parts["decoder"] >= want.decoder.num_scalars * 4
    assert parts["latents"] >= want.latents.values.nbytes
    assert parts["training"] >= len(to_json(want.training))
    assert all(v > 0 for v in parts.values())


def test_closed_archive_keeps_what_was_read(archive: Path) -> None:
    with open_archive(archive) as a:
        names = a.images.names
    assert a.images.names == names
    with pytest.raises(ValueError, match="closed"):
        a.latents


def test_writer_fills_in_writer_and_created(tmp_path: Path) -> None:
    contents = make_contents(w=2)
    contents.writer, contents.created = "", ""
    got = read_archive(write_archive(tmp_path / "a.lpk", contents))
    assert got.writer.startswith("latentpack ")
    assert got.created.endswith("Z") and got.created[4] == "-" and got.created[10] == "T"


def test_writer_casts_dtypes_and_converts_numpy_in_training(tmp_path: Path) -> None:
    contents = make_contents(w=3)
    contents.latents.values = contents.latents.values.astype(np.float64)
    contents.images.shapes = contents.images.shapes.astype(np.int64)
    contents.images.sha256 = [bytes(row) for row in contents.images.sha256]
    contents.training = {"loss": np.array([0.5, 0.25], dtype=np.float32), "epochs": np.int64(2)}
    got = read_archive(write_archive(tmp_path / "a.lpk", contents))
    assert got.latents.values.dtype == np.float32 and got.images.shapes.dtype == np.int32
    assert got.images.sha256.shape == (3, 32)
    assert got.training == {"loss": [0.5, 0.25], "epochs": 2}


def _text(value) -> str:
    assert isinstance(value, bytes), f"expected bytes from a fixed-length string, got {type(value).__name__}"
    return value.decode("utf-8")


def test_on_disk_layout(archive: Path) -> None:
    with h5py.File(archive, "r") as f:
        assert _text(f.attrs["encoding-type"]) == "latentpack-archive"
        assert _text(f.attrs["encoding-version"]) == "1.0"
        for group in ("header", "decoder", "latents", "images", "quality", "training"):
            assert _text(f[group].attrs["encoding-type"]) == group
            assert _text(f[group].attrs["encoding-version"]) == "1.0"
        assert isinstance(f["header"].attrs["beats_raw"], np.bool_)
        assert f["header"].attrs["w"].dtype == np.int64
        assert [_text(n) for n in f["decoder"].attrs["layer_names"]] == ["g_s_dense", "g_s_up0", "g_s_out"]
        assert [_text(n) for n in f["decoder/layers/g_s_up0"].attrs["weight_names"]] == ["kernel", "bias"]
        assert f["decoder/layers/g_s_up0/kernel"].shape == (3, 3, 2, 2)
        assert f["decoder/layers/g_s_up0/kernel"].fletcher32
        assert f["latents/values"].fletcher32 and f["latents/values"].dtype == np.float32
        assert f["latents/offsets"].shape == (6,) and f["latents/offsets"].dtype == np.int64
        assert f["images/sha256"].shape == (5, 32) and f["images/palettes"].shape == (1, 256, 4)
        assert json.loads(_text(f["decoder/architecture"][()]))["type"] == "latentpack-decoder"
        assert [_text(n) for n in f["images/names"][()]] == make_contents(w=5).images.names
        for name in ("names", "modes", "formats"):
            ds = f[f"images/{name}"]
            assert ds.fletcher32 and ds.compression == "gzip" and ds.shuffle, name
        for name in ("decoder/architecture", "training/config"):  # compact: inside a checksummed object header
            assert f[name].shape == () and f[name].id.get_create_plist().get_layout() == h5py.h5d.COMPACT, name


def _string_types(f: h5py.File) -> dict[str, tuple]:
    """HDF5 path (``path@attribute`` for attributes) -> string info and padding of every string in `f`."""
    found = {}

    def visit(name: str, obj) -> None:
        for attr in obj.attrs:
            aid = obj.attrs.get_id(attr)
            if h5py.check_string_dtype(aid.dtype):
                where = f"/{name}@{attr}".replace("//", "/")
                found[where] = (h5py.check_string_dtype(aid.dtype), aid.get_type().get_strpad())
        if isinstance(obj, h5py.Dataset) and h5py.check_string_dtype(obj.dtype):
            found[f"/{name}"] = (h5py.check_string_dtype(obj.dtype), obj.id.get_type().get_strpad())

    visit("", f)
    f.visititems(visit)
    return found


@pytest.mark.parametrize("arch, w", [("dense", 5), ("conv", 7), ("dense", 0)])
def test_every_string_is_fixed_length_and_no_global_heap(tmp_path: Path, arch: str, w: int) -> None:
    contents = make_contents(w=w, arch=arch)
    path = write_archive(tmp_path / "a.lpk", contents)
    with h5py.File(path, "r") as f:
        strings = _string_types(f)
    groups = ("header", "decoder", "latents", "images", "quality", "training")
    assert set(strings) == (
        {"/@encoding-type", "/@encoding-version", "/@writer", "/@created", "/decoder@layer_names"}
        | {f"/{g}@encoding-{key}" for g in groups for key in ("type", "version")}
        | {f"/decoder/layers/{layer}@weight_names" for layer in contents.decoder.weights}
        | {"/decoder/architecture", "/images/names", "/images/modes", "/images/formats", "/training/config"}
    )
    for where, (info, pad) in strings.items():
        assert info.encoding == "utf-8" and info.length is not None and pad == h5py.h5t.STR_NULLPAD, where
    # Variable-length data lives in global heap collections, signature b"GCOL"; there must be none.
    assert b"GCOL" not in path.read_bytes()


def _fixed(value):
    """`value` (a str or a list of str) as a fixed-length UTF-8 numpy array, as the writer stores it."""
    raw = [value.encode("utf-8")] if isinstance(value, str) else [v.encode("utf-8") for v in value]
    arr = np.array(raw, dtype=h5py.string_dtype("utf-8", max([len(b) for b in raw] + [1])))
    return arr.reshape(()) if isinstance(value, str) else arr


def test_trailing_nuls_are_stripped(archive: Path) -> None:
    # Strings are NUL-padded to their dataset's length; a wider one than needed reads the same.
    with h5py.File(archive, "r+") as f:
        names = f["images/names"][()]
        del f["images/names"]
        f["images"].create_dataset("names", data=names.astype(h5py.string_dtype("utf-8", 64)), fletcher32=True)
        f["decoder"].attrs["layer_names"] = f["decoder"].attrs["layer_names"].astype(h5py.string_dtype("utf-8", 40))
    assert read_archive(archive).images.names == make_contents(w=5).images.names


VLEN = h5py.string_dtype()  # variable-length UTF-8: its bytes go to the unchecked global heap

VLEN_TAMPERS = {
    "/images/names": lambda f: _replace(f, "images/names", f["images/names"][()].astype(VLEN), compression="gzip"),
    "/images/modes": lambda f: _replace(f, "images/modes", f["images/modes"][()].astype(VLEN)),
    "/decoder/architecture": lambda f: _replace(f, "decoder/architecture", f["decoder/architecture"][()].astype(VLEN)),
    "/decoder": lambda f: f["decoder"].attrs.__setitem__("layer_names", ["g_s_dense", "g_s_up0", "g_s_out"]),
    "/latents": lambda f: f["latents"].attrs.__setitem__("encoding-version", "1.0"),
    "/": lambda f: f.attrs.__setitem__("writer", "latentpack 0.1.0"),
}


@pytest.mark.parametrize("hdf5_path", sorted(VLEN_TAMPERS))
def test_variable_length_strings_are_refused(archive: Path, hdf5_path: str) -> None:
    with h5py.File(archive, "r+") as f:
        VLEN_TAMPERS[hdf5_path](f)
    assert b"GCOL" in archive.read_bytes()
    with pytest.raises(CorruptArchiveError, match="variable-length strings are not allowed") as info:
        read_archive(archive)
    assert info.value.hdf5_path == hdf5_path


def test_variable_length_magic_is_not_an_archive(archive: Path) -> None:
    with h5py.File(archive, "r+") as f:
        f.attrs["encoding-type"] = "latentpack-archive"  # h5py writes a str as a variable-length string
    with pytest.raises(NotAnArchiveError, match="fixed-length string 'latentpack-archive'"):
        read_archive(archive)


@pytest.mark.parametrize("hdf5_path", ["/images/names", "/decoder/architecture", "/decoder", "/"])
def test_invalid_utf8_names_its_path(archive: Path, hdf5_path: str) -> None:
    bad = b"\xff\xfe not UTF-8"
    with h5py.File(archive, "r+") as f:
        if hdf5_path == "/images/names":
            names = f["images/names"][()]
            names[2] = bad
            _replace(f, "images/names", names)
        elif hdf5_path == "/decoder/architecture":
            _replace(f, "decoder/architecture", np.array(bad, dtype=h5py.string_dtype("utf-8", len(bad))))
        elif hdf5_path == "/decoder":
            names = [b"g_s_dense", bad, b"g_s_out"]
            f["decoder"].attrs["layer_names"] = np.array(names, dtype=h5py.string_dtype("utf-8", 20))
        else:
            f.attrs["created"] = np.array(bad, dtype=h5py.string_dtype("utf-8", len(bad)))
    with pytest.raises(CorruptArchiveError, match="invalid UTF-8") as info:
        read_archive(archive)
    assert info.value.hdf5_path == hdf5_path, str(info.value)


def test_huge_attribute_is_refused_before_reading(archive: Path) -> None:
    with h5py.File(archive, "r+") as f:
        del f.attrs["writer"]
        f.attrs.create("writer", np.array(b"x", dtype=h5py.string_dtype("utf-8", 1 << 20)))
    with pytest.raises(CorruptArchiveError, match="attribute writer: declares 1048576 bytes"):
        read_archive(archive)


# -- header arithmetic ---------------------------------------------------------


def test_header_arithmetic() -> None:
    # 70,000 MNIST digits, y = 32, a decoder of 50,000 scalars.
    h = compute_header(
        w=70_000, latent_counts=np.full(70_000, 32), x_bits=70_000 * 28 * 28 * 8, decoder_scalars=50_000, folder_bytes=1
    )
    assert h.y == 32 and h.latent_scalars == 2_240_000
    assert h.z_bits == 1_600_000 and h.latent_bits == 71_680_000
    assert h.lhs_bits == 73_280_000 and h.x_bits == 439_040_000
    assert h.beats_raw is True


def test_header_boundary_is_strict_and_mixed_counts() -> None:
    h = compute_header(w=2, latent_counts=np.array([3, 5]), x_bits=(8 + 10) * 32, decoder_scalars=10, folder_bytes=0)
    assert h.y == -1 and h.latent_scalars == 8
    assert h.lhs_bits == h.x_bits and h.beats_raw is False


def test_read_header(archive: Path) -> None:
    assert read_header(archive) == make_contents(w=5).header


# -- not an archive, versions ---------------------------------------------------


def test_invalid_file_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, not HDF5\n")
    with pytest.raises(NotAnArchiveError, match="not a latentpack archive") as info:
        read_archive(path)
    assert info.value.file == path


def test_invalid_file_other_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(3)
        f.attrs["encoding-type"] = "anndata"
    with pytest.raises(NotAnArchiveError, match="not a latentpack archive"):
        open_archive(path)


def test_missing_file_is_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_archive(tmp_path / "nope.lpk")


@pytest.mark.parametrize(
    "version, error, message",
    [
        ("2.0", UnsupportedVersionError, "archive format 2.0 was written by a newer latentpack; upgrade (this one reads 1.5)"),
        ("1.6", UnsupportedVersionError, "newer latentpack"),
        ("0.9", UnsupportedVersionError, "not supported"),
        ("one", CorruptArchiveError, "MAJOR.MINOR"),
    ],
)
def test_wrong_version(archive: Path, version: str, error: type, message: str) -> None:
    with h5py.File(archive, "r+") as f:
        f.attrs["encoding-version"] = _fixed(version)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        read_archive(archive)
    assert info.value.hdf5_path == "/"


def test_wrong_group_version(archive: Path) -> None:
    with h5py.File(archive, "r+") as f:
        f["latents"].attrs["encoding-version"] = _fixed("3.0")
    with pytest.raises(UnsupportedVersionError, match="/latents"):
        read_archive(archive)


# -- damaged bytes ------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 0.999])
def test_truncated(archive: Path, fraction: float) -> None:
    data = archive.read_bytes()
    archive.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ArchiveError):
        read_archive(archive)


@pytest.mark.parametrize(
    "weight_dtype, dataset, part",
    [("float32", "latents/values", "latents"), ("float16", "decoder/layers/g_s_dense/kernel", "decoder")],
)
def test_bit_flip_is_caught_by_checksum(tmp_path: Path, weight_dtype: str, dataset: str, part: str) -> None:
    archive = write_archive(tmp_path / "a.lpk", make_contents(w=5, arch="dense", weight_dtype=weight_dtype))
    with h5py.File(archive, "r") as f:
        offset = f[dataset].id.get_chunk_info(0).byte_offset
    data = bytearray(archive.read_bytes())
    data[offset + 3] ^= 0x10
    archive.write_bytes(bytes(data))
    with open_archive(archive) as a:
        with pytest.raises(CorruptArchiveError, match="/" + dataset):
            getattr(a, part)


#: Random single-bit flips per archive in the corruption test; raise it for a longer
#: search (a value of at least the file's size flips one bit of every byte).
FUZZ_EXAMPLES = int(os.environ.get("LATENTPACK_FUZZ_EXAMPLES", "100"))
FUZZ_SEED = int(os.environ.get("LATENTPACK_FUZZ_SEED", "0"))
#: Seconds one damaged copy may take to read before it counts as a hang (a read takes milliseconds).
FUZZ_TIMEOUT = float(os.environ.get("LATENTPACK_FUZZ_TIMEOUT", "30"))
_WORKER = (
    "import sys; sys.path.insert(0, sys.argv[1]); import archive_factory as a; "
    "a.read_damaged_copies(*sys.argv[2:5], int(sys.argv[5]))"
)


def _damages(data: bytes, examples: int, seed: int) -> list[list]:
    """``[offset, hex bytes]``: single-bit flips at distinct offsets anywhere, then 64-byte garbage windows."""
    rng = np.random.default_rng(seed)
    offsets = range(len(data)) if examples >= len(data) else sorted(rng.choice(len(data), examples, replace=False))
    flips = [[int(o), bytes([data[o] ^ (1 << int(rng.integers(8)))]).hex()] for o in offsets]
    windows = [[(len(data) - 64) * i // 20, bytes(range(7, 71)).hex()] for i in range(20)]
    return flips + windows


def _read_damaged(archive: Path, damages: list[list], tmp_path: Path) -> dict[int, str]:
    """Outcome of reading each damaged copy (see `read_damaged_copies`), in a subprocess.

    A copy whose read gives no answer within `FUZZ_TIMEOUT` is a ``hang`` and
    one that kills the process a ``crash``; the worker is then restarted after it.
    """
    spec = tmp_path / "damages.json"
    spec.write_text(json.dumps(damages))
    errors = tmp_path / "worker.stderr"
    outcomes: dict[int, str] = {}
    start = 0
    while start < len(damages):
        args = [str(Path(__file__).parent), str(archive), str(spec), str(tmp_path / "damaged.lpk"), str(start)]
        with open(errors, "w") as stderr:
            proc = subprocess.Popen([sys.executable, "-c", _WORKER, *args], stdout=subprocess.PIPE, stderr=stderr, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: ([lines.put(x) for x in proc.stdout], lines.put(None)), daemon=True).start()
        first = start
        while start < len(damages):
            try:
                line = lines.get(timeout=FUZZ_TIMEOUT)
            except queue.Empty:
                proc.kill()
                outcomes[start] = f"hang (no answer after {FUZZ_TIMEOUT:g} s)"
                start += 1
                break
            if line is None:
                code = proc.wait()
                if start == first:
                    pytest.fail(f"the worker died before its first answer (exit {code}): {errors.read_text()[-2000:]}")
                outcomes[start] = f"crash (exit {code}): {errors.read_text()[-300:]}"
                start += 1
                break
            index, outcome = line.rstrip("\n").split(" ", 1)
            outcomes[int(index)] = outcome
            start = int(index) + 1
        proc.wait()
        proc.stdout.close()
    return outcomes


def _region(archive: Path):
    """offset -> which dataset's stored bytes hold it, or "HDF5 metadata" (for failure messages)."""
    spans = []

    def visit(name: str, obj) -> None:
        if not isinstance(obj, h5py.Dataset):
            return
        layout = obj.id.get_create_plist().get_layout()
        if layout == h5py.h5d.CHUNKED:
            for i in range(obj.id.get_num_chunks()):
                info = obj.id.get_chunk_info(i)
                spans.append((info.byte_offset, info.byte_offset + info.size, f"/{name} chunk {i}"))
        elif layout == h5py.h5d.CONTIGUOUS and obj.id.get_offset() is not None:
            spans.append((obj.id.get_offset(), obj.id.get_offset() + obj.id.get_storage_size(), f"/{name} data"))

    with h5py.File(archive, "r") as f:
        f.visititems(visit)
    return lambda offset: next((what for lo, hi, what in spans if lo <= offset < hi), "HDF5 metadata")


@pytest.mark.parametrize("arch, w, weight_dtype", [("dense", 5, "float32"), ("conv", 7, "float32"), ("dense", 5, "float16")])
def test_damage_is_detected_or_harmless(tmp_path: Path, arch: str, w: int, weight_dtype: str) -> None:
    # Every string is fixed-length, so there is no unchecked global heap to avoid:
    # bytes are damaged anywhere. Each damaged copy must either fail with an
    # ArchiveError or read back exactly the original (damage to unused bytes);
    # never another exception, never silently different contents, never a hang.
    path = write_archive(tmp_path / "a.lpk", make_contents(w=w, arch=arch, seed=w, weight_dtype=weight_dtype))
    data = path.read_bytes()
    assert b"GCOL" not in data
    damages = _damages(data, FUZZ_EXAMPLES, FUZZ_SEED)
    outcomes = _read_damaged(path, damages, tmp_path)
    assert sorted(outcomes) == list(range(len(damages)))
    where = _region(path)
    bad = [
        f"offset {damages[i][0]} ({where(damages[i][0])}), bytes {damages[i][1][:16]}: {outcome}"
        for i, outcome in sorted(outcomes.items())
        if outcome.split()[0] not in ("same", "error")
    ]
    assert not bad, f"{len(bad)} of {len(damages)} damaged copies of {path.name}:\n" + "\n".join(bad[:40])
    detected = sum(outcome.startswith("error") for outcome in outcomes.values())
    assert detected > len(damages) // 2, f"only {detected} of {len(damages)} damaged copies were refused"


# -- broken rules, each naming its HDF5 path ------------------------------------


def _replace(f: h5py.File, path: str, data, **kw) -> None:
    del f[path]
    f.create_dataset(path, data=data, **kw)


TAMPERS = {
    "weight shape": (
        "/decoder/layers/g_s_dense/kernel",
        lambda f: _replace(f, "decoder/layers/g_s_dense/kernel", np.zeros((4, 97), np.float32)),
    ),
    "weight dtype": (
        "/decoder/layers/g_s_out/bias",
        lambda f: _replace(f, "decoder/layers/g_s_out/bias", np.zeros(1, np.float64)),
    ),
    "weight missing": ("/decoder/layers/g_s_out/bias", lambda f: f.__delitem__("decoder/layers/g_s_out/bias")),
    "weight not finite": (
        "/decoder/layers/g_s_out/bias",
        lambda f: f["decoder/layers/g_s_out/bias"].__setitem__(0, np.nan),
    ),
    "weight_names": (
        "/decoder/layers/g_s_out",
        lambda f: f["decoder/layers/g_s_out"].attrs.__setitem__("weight_names", _fixed(["bias", "kernel"])),
    ),
    "layer_names": ("/decoder", lambda f: f["decoder"].attrs.__setitem__("layer_names", _fixed(["g_s_dense"]))),
    "offsets count": ("/latents/offsets", lambda f: _replace(f, "latents/offsets", np.arange(5, dtype=np.int64) * 4)),
    "offsets decreasing": (
        "/latents/offsets",
        lambda f: _replace(f, "latents/offsets", np.array([0, 8, 4, 12, 16, 20], np.int64)),
    ),
    "offsets end": ("/latents/offsets", lambda f: _replace(f, "latents/offsets", np.array([0, 4, 8, 12, 16, 19], np.int64))),
    "latent shape vs decoder": (
        "/latents/shapes",
        lambda f: _replace(f, "latents/shapes", np.tile(np.array([[1, 2, 2]], np.int32), (5, 1))),
    ),
    "bad json": ("/decoder/architecture", lambda f: _replace(f, "decoder/architecture", _fixed("{not json"))),
    "unknown layer": (
        "/decoder/architecture",
        lambda f: _replace(
            f, "decoder/architecture", _fixed(json.dumps({"type": "latentpack-decoder", "version": 1, "input_shape": [4],
                                                         "output_mode": "L", "layers": [{"name": "x", "type": "Lambda"}]}))
        ),
    ),
    "image shape": ("/images/shapes", lambda f: f["images/shapes"].__setitem__(0, [14, 14, 7])),
    "duplicate names": ("/images/names", lambda f: f["images/names"].__setitem__(1, "img_000.png")),
    "unsafe name": ("/images/names", lambda f: f["images/names"].__setitem__(1, "../../etc/passwd")),
    "palette index": ("/images/palette_index", lambda f: f["images/palette_index"].__setitem__(0, 3)),
    "psnr count": ("/quality/psnr", lambda f: _replace(f, "quality/psnr", np.zeros(4))),
    "header w": ("/latents/offsets", lambda f: f["header"].attrs.__setitem__("w", np.int64(6))),
    "header z_bits": ("/header", lambda f: f["header"].attrs.__setitem__("z_bits", np.int64(64))),
    "header beats_raw": ("/header", lambda f: f["header"].attrs.__setitem__("beats_raw", np.bool_(True))),
    "group missing": ("/quality", lambda f: f.__delitem__("quality")),
    "training not object": ("/training/config", lambda f: _replace(f, "training/config", _fixed("[1, 2]"))),
    "soft link": (
        "/latents/values",
        lambda f: (f.move("latents/values", "elsewhere"), f["latents"].__setitem__("values", h5py.SoftLink("/elsewhere"))),
    ),
    "external link": (
        "/latents/values",
        lambda f: (f.__delitem__("latents/values"), f["latents"].__setitem__("values", h5py.ExternalLink("x.h5", "/v"))),
    ),
    "lzf filter": (
        "/latents/values",
        lambda f: _replace(f, "latents/values", f["latents/values"][()], compression="lzf"),
    ),
    "forged size": (
        "/latents/values",
        lambda f: (f.__delitem__("latents/values"),
                   f.create_dataset("latents/values", shape=(10**10,), dtype=np.float32, chunks=(1 << 16,))),
    ),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_broken_rule_names_hdf5_path(archive: Path, name: str) -> None:
    hdf5_path, tamper = TAMPERS[name]
    with h5py.File(archive, "r+") as f:
        tamper(f)
    with pytest.raises(CorruptArchiveError) as info:
        read_archive(archive)
    assert info.value.hdf5_path == hdf5_path, str(info.value)
    assert hdf5_path in str(info.value) and str(archive) in str(info.value)


def test_external_storage_refused(archive: Path, tmp_path: Path) -> None:
    raw = tmp_path / "values.bin"
    with h5py.File(archive, "r+") as f:
        values = f["latents/values"][()]
        raw.write_bytes(values.tobytes())
        del f["latents/values"]
        f.create_dataset("latents/values", shape=values.shape, dtype=np.float32, external=[(str(raw), 0, values.nbytes)])
    with pytest.raises(CorruptArchiveError, match="/latents/values: external storage is not allowed"):
        read_archive(archive)


def test_virtual_dataset_refused(archive: Path, tmp_path: Path) -> None:
    with h5py.File(archive, "r+") as f:
        n = f["latents/values"].shape[0]
        layout = h5py.VirtualLayout(shape=(n,), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(tmp_path / "src.h5"), "v", shape=(n,))
        del f["latents/values"]
        f["latents"].create_virtual_dataset("values", layout)
    with pytest.raises(CorruptArchiveError, match="virtual"):
        read_archive(archive)


def test_errors_format_and_pickle() -> None:
    err = CorruptArchiveError("expected 11 entries, got 10", hdf5_path="/latents/offsets", file="a.lpk")
    assert str(err) == "a.lpk: /latents/offsets: expected 11 entries, got 10"
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is CorruptArchiveError and str(again) == str(err) and again.hdf5_path == "/latents/offsets"
    up = pickle.loads(pickle.dumps(UnsupportedVersionError("2.0", "1.0", file="a.lpk")))
    assert up.version == "2.0" and "upgrade" in str(up)
    assert issubclass(NotAnArchiveError, ArchiveError) and issubclass(UnsupportedVersionError, ArchiveError)


# -- atomic writes -------------------------------------------------------------


def test_existing_file_needs_force(archive: Path) -> None:
    before = archive.read_bytes()
    with pytest.raises(FileExistsError):
        write_archive(archive, make_contents(w=2))
    assert archive.read_bytes() == before
    write_archive(archive, make_contents(w=2), force=True)
    assert read_header(archive).w == 2


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failed_write_leaves_existing_archive_untouched(archive: Path, monkeypatch, exc: BaseException) -> None:
    before = archive.read_bytes()
    calls = []

    def progress(n: int) -> None:
        calls.append(n)
        raise exc

    with pytest.raises(type(exc)):
        write_archive(archive, make_contents(w=3, seed=9), force=True, progress=progress)
    assert calls == [3]
    assert archive.read_bytes() == before
    assert _leftovers(archive.parent) == []


def test_failed_read_back_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    real = writer_module._write

    def damaged(f, contents, progress):
        real(f, contents, progress)
        f["latents"].attrs["encoding-version"] = "9.9"

    monkeypatch.setattr(writer_module, "_write", damaged)
    with pytest.raises(CorruptArchiveError, match="read-back"):
        write_archive(tmp_path / "a.lpk", make_contents(w=2))
    assert list(tmp_path.iterdir()) == []


def test_invalid_contents_is_value_error(tmp_path: Path) -> None:
    contents = make_contents(w=3)
    contents.images.names[2] = contents.images.names[0]
    with pytest.raises(ValueError, match="/images/names"):
        write_archive(tmp_path / "a.lpk", contents)
    assert list(tmp_path.iterdir()) == []


def test_progress_and_permissions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(writer_module, "PROGRESS_IMAGES", 2)
    calls: list[int] = []
    path = write_archive(tmp_path / "a.lpk", make_contents(w=5), progress=calls.append)
    assert calls == [2, 4, 5]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_formats_never_imports_tensorflow() -> None:
    code = "import sys, latentpack.formats; assert not {'tensorflow', 'keras'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
    assert set(formats.__all__) >= {"write_archive", "read_archive", "open_archive", "Archive", "validate_architecture"}
