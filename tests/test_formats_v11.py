"""Format 1.1 elements: coded and generated latents, short digests, stored bits (no TensorFlow)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from latentpack.formats import CorruptArchiveError, open_archive, read_archive, write_archive

from archive_factory import make_contents, with_v11_features as _v11


@pytest.mark.parametrize("arch", ["dense", "conv"])
@pytest.mark.parametrize("index", [False, True])
def test_pack_unpack_identity_v11(tmp_path: Path, arch: str, index: bool) -> None:
    contents = _v11(make_contents(w=4, arch=arch), index=index)
    path = write_archive(tmp_path / "a.lpk", contents)
    got = read_archive(path)
    with open_archive(path) as ar:
        assert ar.format_version == "1.1"
        assert ar.latent_coding == ("index" if index else "range-categorical")
    assert got.header == contents.header
    assert got.header.stored_bits == contents.header.z_bits + contents.header.stored_latent_bits
    if index:
        assert got.latents.index_codes == contents.latents.index_codes
    else:
        for name in ("table_of_channel", "counts", "stream"):
            assert np.array_equal(getattr(got.latents.quantized, name), getattr(contents.latents.quantized, name))
    assert np.array_equal(got.images.sha256, contents.images.sha256)
    assert np.array_equal(got.images.sha256_all, contents.images.sha256_all)


def test_archive_without_1_1_features_is_written_as_1_0(tmp_path: Path) -> None:
    path = write_archive(tmp_path / "a.lpk", make_contents(w=2))
    with h5py.File(path, "r") as f:
        assert f.attrs["encoding-version"] in ("1.0", b"1.0")
        assert "stored_bits" not in f["header"].attrs


@pytest.mark.parametrize(
    "forge, path",
    [
        (lambda f: f["latents"].attrs.__setitem__("coding", "zip"), "/latents"),
        (lambda f: (f["latents"].__delitem__("counts"), f["latents"].create_dataset("counts", data=np.ones((9, 3), np.uint16))),
         "/latents/counts"),
        (lambda f: f["header"].attrs.__setitem__("stored_bits", np.int64(1)), "/header"),
        (lambda f: f["header"].attrs.__delitem__("residual_bits"), "/header"),
        (lambda f: f["images"].__delitem__("sha256_all"), "/images/sha256_all"),
    ],
)
def test_forged_1_1_elements_are_refused_with_their_path(tmp_path: Path, forge, path: str) -> None:
    archive = write_archive(tmp_path / "a.lpk", _v11(make_contents(w=3)))
    with h5py.File(archive, "r+") as f:
        forge(f)
    with pytest.raises(CorruptArchiveError) as info:
        read_archive(archive)
    assert info.value.hdf5_path == path, str(info.value)


def test_short_digests_are_refused_in_1_0(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.lpk", _v11(make_contents(w=3)))
    with h5py.File(archive, "r+") as f:
        for group in ("/", "header", "decoder", "latents", "images", "quality", "training"):
            f[group].attrs["encoding-version"] = "1.0"
    with pytest.raises(CorruptArchiveError):
        read_archive(archive)
