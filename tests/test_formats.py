"""Tests of the HDF5 archive layer: round trip, header, and every refusal."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
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
    assert set(parts) == {"decoder", "latents", "images", "quality", "overhead", "file"}
    assert parts["file"] == archive.stat().st_size
    assert sum(v for k, v in parts.items() if k != "file") == parts["file"]
    assert parts["decoder"] >= want.decoder.num_scalars * 4
    assert parts["latents"] >= want.latents.values.nbytes
    assert all(v >= 0 for v in parts.values())


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


def test_on_disk_layout(archive: Path) -> None:
    with h5py.File(archive, "r") as f:
        assert f.attrs["encoding-type"] == "latentpack-archive"
        assert f.attrs["encoding-version"] == "1.0"
        for group in ("header", "decoder", "latents", "images", "quality", "training"):
            assert f[group].attrs["encoding-type"] == group
            assert f[group].attrs["encoding-version"] == "1.0"
        assert isinstance(f["header"].attrs["beats_raw"], np.bool_)
        assert f["header"].attrs["w"].dtype == np.int64
        assert list(f["decoder"].attrs["layer_names"]) == ["g_s_dense", "g_s_up0", "g_s_out"]
        assert list(f["decoder/layers/g_s_up0"].attrs["weight_names"]) == ["kernel", "bias"]
        assert f["decoder/layers/g_s_up0/kernel"].shape == (3, 3, 2, 2)
        assert f["decoder/layers/g_s_up0/kernel"].fletcher32
        assert f["latents/values"].fletcher32 and f["latents/values"].dtype == np.float32
        assert f["latents/offsets"].shape == (6,) and f["latents/offsets"].dtype == np.int64
        assert f["images/sha256"].shape == (5, 32) and f["images/palettes"].shape == (1, 256, 4)
        assert json.loads(f["decoder/architecture"].asstr()[()])["type"] == "latentpack-decoder"


def test_fixed_length_strings_are_read(archive: Path) -> None:
    # Readers MUST accept NUL-padded fixed-length UTF-8 strings too (FORMAT.md, Conventions).
    with h5py.File(archive, "r+") as f:
        for name in ("names", "modes", "formats"):
            raw = [s.encode("utf-8") for s in f[f"images/{name}"].asstr()[()]]
            size = max(len(s) for s in raw)
            del f[f"images/{name}"]
            ds = f["images"].create_dataset(name, shape=(len(raw),), dtype=h5py.string_dtype("utf-8", size))
            ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw, dtype=f"S{size}"), mtype=ds.id.get_type())
    assert read_archive(archive).images.names == make_contents(w=5).images.names


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
        ("2.0", UnsupportedVersionError, "archive format 2.0 was written by a newer latentpack; upgrade (this one reads 1.0)"),
        ("1.1", UnsupportedVersionError, "newer latentpack"),
        ("0.9", UnsupportedVersionError, "not supported"),
        ("one", CorruptArchiveError, "MAJOR.MINOR"),
    ],
)
def test_wrong_version(archive: Path, version: str, error: type, message: str) -> None:
    with h5py.File(archive, "r+") as f:
        f.attrs["encoding-version"] = version
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        read_archive(archive)
    assert info.value.hdf5_path == "/"


def test_wrong_group_version(archive: Path) -> None:
    with h5py.File(archive, "r+") as f:
        f["latents"].attrs["encoding-version"] = "3.0"
    with pytest.raises(UnsupportedVersionError, match="/latents"):
        read_archive(archive)


# -- damaged bytes ------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 0.999])
def test_truncated(archive: Path, fraction: float) -> None:
    data = archive.read_bytes()
    archive.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ArchiveError):
        read_archive(archive)


def test_bit_flip_in_latents_is_caught_by_checksum(archive: Path) -> None:
    with h5py.File(archive, "r") as f:
        offset = f["latents/values"].id.get_chunk_info(0).byte_offset
    data = bytearray(archive.read_bytes())
    data[offset + 3] ^= 0x10
    archive.write_bytes(bytes(data))
    with open_archive(archive) as a:
        with pytest.raises(CorruptArchiveError, match="/latents/values"):
            a.latents


def _global_heaps(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of HDF5 global heap collections (where variable-length strings live)."""
    spans, i = [], data.find(b"GCOL")
    while i >= 0:
        size = int.from_bytes(data[i + 8 : i + 16], "little")
        spans.append((i, i + max(size, 16)))
        i = data.find(b"GCOL", i + max(size, 16))
    return spans


@pytest.mark.parametrize("fraction", [i / 20 for i in range(0, 20)])
def test_garbage_never_escapes_as_another_error(archive: Path, fraction: float) -> None:
    # The global heap is skipped: HDF5 does not checksum it, and libhdf5 1.14
    # can loop forever on a damaged heap object size (see docs/FORMAT.md,
    # "Security considerations"); nothing a Python reader can catch.
    data = bytearray(archive.read_bytes())
    heaps = _global_heaps(bytes(data))
    allowed = [i for i in range(len(data) - 64) if not any(a - 64 < i < b for a, b in heaps)]
    start = allowed[int(len(allowed) * fraction)]
    data[start : start + 64] = bytes(range(7, 71))
    archive.write_bytes(bytes(data))
    try:
        with open_archive(archive) as a:
            a.validate()
            a.storage_breakdown()
    except ArchiveError:
        pass  # detected; bytes HDF5 does not checksum (e.g. heap slack) may go unnoticed


# -- broken rules, each naming its HDF5 path ------------------------------------


def _replace(f: h5py.File, path: str, data, **kw) -> None:
    del f[path]
    f.create_dataset(path, data=data, **kw)


def _str(value: str):
    return np.array(value, dtype=h5py.string_dtype())


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
        lambda f: f["decoder/layers/g_s_out"].attrs.__setitem__("weight_names", ["bias", "kernel"]),
    ),
    "layer_names": ("/decoder", lambda f: f["decoder"].attrs.__setitem__("layer_names", ["g_s_dense"])),
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
    "bad json": ("/decoder/architecture", lambda f: _replace(f, "decoder/architecture", _str("{not json"))),
    "unknown layer": (
        "/decoder/architecture",
        lambda f: _replace(
            f, "decoder/architecture", _str(json.dumps({"type": "latentpack-decoder", "version": 1, "input_shape": [4],
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
    "training not object": ("/training/config", lambda f: _replace(f, "training/config", _str("[1, 2]"))),
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
