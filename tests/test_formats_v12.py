"""Format 1.2: float16 decoder weights and ``stored_decoder_bits`` (no TensorFlow)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from latentpack.cli import cli
from latentpack.formats import CorruptArchiveError, DecoderWeights, compute_header, open_archive, read_archive, write_archive
from latentpack.ops.inspect import archive_summary

from archive_factory import assert_contents_equal, make_contents, with_v11_features

STORED_ATTRS = ("stored_latent_bits", "residual_bits", "stored_bits", "beats_raw_stored")


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_pack_unpack_identity_float16(tmp_path: Path, arch: str) -> None:
    contents = make_contents(w=4, arch=arch, weight_dtype="float16")
    path = write_archive(tmp_path / "a.lpk", contents)
    assert_contents_equal(read_archive(path), contents)
    n = contents.decoder.num_scalars
    with h5py.File(path, "r") as f:
        assert f.attrs["encoding-version"] in ("1.2", b"1.2")
        weights = [ds for g in f["decoder/layers"].values() for ds in g.values()]
        assert weights and all(ds.dtype == np.float16 and ds.fletcher32 for ds in weights)
        assert sum(ds.size for ds in weights) == n
        h = dict(f["header"].attrs)
    assert h["z_bits"] == 32 * n  # the seed's accounting is kept
    assert h["stored_decoder_bits"] == 16 * n
    assert h["stored_bits"] == 16 * n + h["latent_bits"]  # float32 latents: stored as counted
    with open_archive(path) as ar:
        assert ar.weight_dtype == "float16"
        for layer, pairs in ar.decoder.weights.items():
            for name, arr in pairs:
                assert arr.dtype == np.float32
                assert np.array_equal(arr, arr.astype(np.float16).astype(np.float32)), f"{layer}/{name}"


def test_as_stored_rounds_to_half_precision_once() -> None:
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 5)).astype(np.float32) * 100
    decoder = DecoderWeights({}, {"d": [("kernel", kernel)]})
    half = decoder.as_stored("float16")
    assert half.weight_dtype == "float16" and decoder.weight_dtype == "float32"
    assert np.array_equal(half.weights["d"][0][1], kernel.astype(np.float16).astype(np.float32))
    assert not np.array_equal(half.weights["d"][0][1], kernel)  # it did round
    again = half.as_stored("float16")
    assert np.array_equal(again.weights["d"][0][1], half.weights["d"][0][1])
    assert half.stored_bits == 16 * 15 and decoder.stored_bits == 32 * 15
    assert np.array_equal(decoder.as_stored("float32").weights["d"][0][1], kernel)


@pytest.mark.parametrize("value", [70000.0, -1e6, np.inf])
def test_weights_beyond_half_range_are_refused_naming_the_weight(value: float) -> None:
    decoder = DecoderWeights({}, {"g_s_out": [("kernel", np.array([1.0, value], np.float32))]})
    with pytest.raises(ValueError, match="/decoder/layers/g_s_out/kernel: cannot be stored as float16"):
        decoder.as_stored("float16")
    with pytest.raises(ValueError, match="`weight_dtype` must be one of"):
        decoder.as_stored("bfloat16")


def test_writer_refuses_float16_weights_that_are_not_half_values(tmp_path: Path) -> None:
    contents = make_contents(w=2, weight_dtype="float16")
    layer, pairs = next(iter(contents.decoder.weights.items()))
    name, arr = pairs[0]
    nudged = arr.copy()
    nudged.flat[0] = np.nextafter(nudged.flat[0], np.float32(np.inf))  # a float32 value between two halves
    weights = {**contents.decoder.weights, layer: [(name, nudged)] + pairs[1:]}
    bad = dataclasses.replace(contents, decoder=DecoderWeights(contents.decoder.architecture, weights, "float16"))
    with pytest.raises(ValueError, match=f"/decoder/layers/{layer}/{name}: weights to be stored as float16"):
        write_archive(tmp_path / "a.lpk", bad)
    assert not (tmp_path / "a.lpk").exists()


@pytest.mark.parametrize(
    "weight_dtype, v11, version",
    [("float32", False, "1.0"), ("float32", True, "1.1"), ("float16", False, "1.2"), ("float16", True, "1.2")],
)
def test_writer_writes_the_oldest_version_that_holds_the_contents(tmp_path: Path, weight_dtype: str, v11: bool,
                                                                  version: str) -> None:
    contents = make_contents(w=3, weight_dtype=weight_dtype)
    if v11:
        contents = with_v11_features(contents)
    assert contents.format_version == tuple(int(v) for v in version.split("."))
    path = write_archive(tmp_path / "a.lpk", contents)
    with open_archive(path) as ar:
        assert ar.format_version == version
        assert ar.weight_dtype == weight_dtype
        assert ar.header.stored_decoder_bits == (16 * contents.decoder.num_scalars if weight_dtype == "float16" else None)
    with h5py.File(path, "r") as f:
        assert ("stored_decoder_bits" in f["header"].attrs) == (version == "1.2")


def test_header_stored_bits_count_the_decoder_as_stored() -> None:
    counts = np.array([4, 4])
    half = compute_header(w=2, latent_counts=counts, x_bits=10_000, decoder_scalars=100, folder_bytes=0,
                          stored_decoder_bits=1600, stored_latent_bits=40)
    assert half.z_bits == 3200 and half.lhs_bits == 3200 + 256
    assert half.stored_bits == 1600 + 40 and half.residual_bits == 0
    only_weights = compute_header(w=2, latent_counts=counts, x_bits=3000, decoder_scalars=100, folder_bytes=0,
                                  stored_decoder_bits=1600)
    assert only_weights.stored_latent_bits == 256 and only_weights.stored_bits == 1600 + 256
    assert only_weights.beats_raw is False and only_weights.beats_raw_stored is True
    assert "stored_decoder_bits" not in compute_header(w=2, latent_counts=counts, x_bits=1, decoder_scalars=100,
                                                       folder_bytes=0, stored_latent_bits=40).as_dict()


def _relabel(f: h5py.File, version: str) -> None:
    for group in ("/", "header", "decoder", "latents", "images", "quality", "training"):
        f[group].attrs["encoding-version"] = np.bytes_(version)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_older_version_with_float16_weights_is_refused_naming_the_weight(tmp_path: Path, version: str) -> None:
    """What a reader sees in a file that claims 1.0 or 1.1 but holds float16 weights."""
    path = write_archive(tmp_path / "a.lpk", make_contents(w=3, weight_dtype="float16"))
    with h5py.File(path, "r+") as f:
        _relabel(f, version)
    with pytest.raises(CorruptArchiveError, match=f"stored_decoder_bits: not part of format {version}|stored_latent_bits") as info:
        read_archive(path)
    assert info.value.hdf5_path == "/header"
    with h5py.File(path, "r+") as f:  # the header made 1.0-clean: the weights themselves are refused
        for name in (*STORED_ATTRS, "stored_decoder_bits"):
            del f["header"].attrs[name]
    with pytest.raises(CorruptArchiveError, match=f"float16 weights need format 1.2, the file says {version}") as info:
        read_archive(path)
    assert info.value.hdf5_path == "/decoder/layers/g_s_dense/kernel"


def _set_weight(f: h5py.File, path: str, data: np.ndarray) -> None:
    del f[path]
    f.create_dataset(path, data=data, fletcher32=True)


FORGERIES = {
    "stored_decoder_bits wrong": (
        "/header", "stored_decoder_bits: expected",
        lambda f: f["header"].attrs.__setitem__("stored_decoder_bits", np.int64(f["header"].attrs["z_bits"])),
    ),
    "stored_decoder_bits missing": (
        "/header", "present exactly when the weights are float16",
        lambda f: f["header"].attrs.__delitem__("stored_decoder_bits"),
    ),
    "stored_bits missing": (
        "/header", "stored_bits is missing", lambda f: f["header"].attrs.__delitem__("stored_bits"),
    ),
    "stored_bits counts z": (
        "/header", "stored_bits: expected",
        lambda f: f["header"].attrs.__setitem__("stored_bits", np.int64(f["header"].attrs["z_bits"] + f["header"].attrs["latent_bits"])),
    ),
    "mixed dtypes": (
        "/decoder/layers/g_s_up0/kernel", "expected dtype float16 like the decoder's other weights, got float32",
        lambda f: _set_weight(f, "decoder/layers/g_s_up0/kernel", f["decoder/layers/g_s_up0/kernel"][()].astype(np.float32)),
    ),
    "float64 weight": (
        "/decoder/layers/g_s_dense/bias", "expected dtype float16",
        lambda f: _set_weight(f, "decoder/layers/g_s_dense/bias", f["decoder/layers/g_s_dense/bias"][()].astype(np.float64)),
    ),
    "half infinity": (
        "/decoder/layers/g_s_out/bias", "must be finite",
        lambda f: f["decoder/layers/g_s_out/bias"].__setitem__(0, np.float16(np.inf)),
    ),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_1_2_elements_are_refused_with_their_path(tmp_path: Path, name: str) -> None:
    hdf5_path, message, forge = FORGERIES[name]
    path = write_archive(tmp_path / "a.lpk", make_contents(w=3, weight_dtype="float16"))
    with h5py.File(path, "r+") as f:
        forge(f)
    with pytest.raises(CorruptArchiveError, match=message) as info:
        read_archive(path)
    assert info.value.hdf5_path == hdf5_path, str(info.value)


def test_stored_decoder_bits_with_float32_weights_is_refused(tmp_path: Path) -> None:
    path = write_archive(tmp_path / "a.lpk", with_v11_features(make_contents(w=3)))
    with h5py.File(path, "r+") as f:
        _relabel(f, "1.2")
        f["header"].attrs["stored_decoder_bits"] = np.int64(f["header"].attrs["z_bits"])
    with pytest.raises(CorruptArchiveError, match="stored_decoder_bits: present exactly when the weights are float16"):
        read_archive(path)
    with h5py.File(path, "r+") as f:  # a 1.2 file with float32 weights and no stored_decoder_bits reads
        del f["header"].attrs["stored_decoder_bits"]
    with open_archive(path) as ar:
        assert ar.format_version == "1.2" and ar.weight_dtype == "float32"
        ar.validate()


def test_inspect_shows_the_decoder_as_stored(tmp_path: Path) -> None:
    contents = make_contents(w=3, weight_dtype="float16")
    path = write_archive(tmp_path / "a.lpk", contents)
    n = contents.decoder.num_scalars
    summary = archive_summary(path).to_dict()
    assert summary["format_version"] == "1.2"
    assert summary["formula"]["weight_dtype"] == "float16" and summary["formula"]["z_bits"] == 32 * n
    assert summary["stored"]["decoder_bits"] == 16 * n
    assert summary["stored"]["total_bits"] == 16 * n + summary["stored"]["latent_bits"]
    result = CliRunner().invoke(cli, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    z_line = next(i for i, line in enumerate(lines) if line.startswith("decoder (z)"))
    assert lines[z_line + 1].split()[:2] == ["float16", "stored"]  # right under z
    assert f"{16 * n:,} bits" in lines[z_line + 1] and "weights stored as float16" in lines[z_line + 1]
    as_json = json.loads(CliRunner().invoke(cli, ["inspect", str(path), "--json"]).output)
    assert as_json["stored"]["decoder_bits"] == 16 * n and as_json["formula"]["weight_dtype"] == "float16"
    plain = write_archive(tmp_path / "b.lpk", make_contents(w=3))
    assert "float16" not in CliRunner().invoke(cli, ["inspect", str(plain)]).output


# -- per-element versions (each group carries its element's own layout version) ----------------------------


def _tags(path: Path) -> dict[str, str]:
    with h5py.File(path, "r") as f:
        tags = {"/": f.attrs["encoding-version"]}
        tags.update({name: f[name].attrs["encoding-version"] for name in f})
    return {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in tags.items()}


@pytest.mark.parametrize(
    "weight_dtype, v11, expected",
    [
        ("float32", False, {"/": "1.0", "header": "1.0", "decoder": "1.0", "latents": "1.0", "images": "1.0"}),
        ("float16", False, {"/": "1.2", "header": "1.2", "decoder": "1.2", "latents": "1.0", "images": "1.0"}),
        ("float32", True, {"/": "1.1", "header": "1.1", "decoder": "1.0", "latents": "1.1", "images": "1.1"}),
        ("float16", True, {"/": "1.2", "header": "1.2", "decoder": "1.2", "latents": "1.1", "images": "1.1"}),
    ],
)
def test_each_group_carries_its_own_version_and_the_root_the_highest(tmp_path: Path, weight_dtype: str, v11: bool,
                                                                     expected: dict[str, str]) -> None:
    contents = make_contents(w=3, weight_dtype=weight_dtype)
    if v11:
        contents = with_v11_features(contents)
    tags = _tags(write_archive(tmp_path / "a.lpk", contents))
    assert tags == {**expected, "quality": "1.0", "training": "1.0"}
    assert tags["/"] == max(v for k, v in tags.items() if k != "/")
    assert tags["/"] == "{}.{}".format(*contents.format_version)


@pytest.mark.parametrize("weight_dtype", ["float32", "float16"])
def test_files_tagging_every_group_with_the_file_version_read_the_same(tmp_path: Path, weight_dtype: str) -> None:
    """Files written before per-element versions say the file's version on every group."""
    contents = with_v11_features(make_contents(w=3, weight_dtype=weight_dtype))
    path = write_archive(tmp_path / "a.lpk", contents)
    new = read_archive(path)
    version = _tags(path)["/"]
    with h5py.File(path, "r+") as f:
        for group in f:
            f[group].attrs["encoding-version"] = np.bytes_(version)
    assert set(_tags(path).values()) == {version}
    old = read_archive(path)
    assert_contents_equal(old, contents)
    assert old.header == new.header


def test_a_group_newer_than_the_file_is_corrupt(tmp_path: Path) -> None:
    path = write_archive(tmp_path / "a.lpk", make_contents(w=2))
    with h5py.File(path, "r+") as f:
        f["images"].attrs["encoding-version"] = np.bytes_("1.1")
    with pytest.raises(CorruptArchiveError, match="newer than the file's 1.0") as info:
        read_archive(path)
    assert info.value.hdf5_path == "/images"


@pytest.mark.parametrize("group, version", [("lossless", "1.0"), ("latents", "1.6"), ("quality", "0.9")])
def test_an_unknown_element_version_is_unsupported_naming_the_group(tmp_path: Path, group: str, version: str) -> None:
    from latentpack.formats import UnsupportedVersionError

    path = write_archive(tmp_path / "a.lpk", with_v11_features(make_contents(w=2, weight_dtype="float16")))
    with h5py.File(path, "r+") as f:
        if group not in f:
            f.create_group(group)
            f[group].attrs["encoding-type"] = np.bytes_(group)
        f[group].attrs["encoding-version"] = np.bytes_(version)
    with pytest.raises(UnsupportedVersionError) as info:
        read_archive(path)
    assert info.value.hdf5_path == f"/{group}" and f"/{group}" in str(info.value)


def test_registry_lists_the_elements_and_the_breakdown_labels(tmp_path: Path) -> None:
    from latentpack.formats import registry

    assert registry.types() == ["header", "decoder", "latents", "images", "quality", "training", "lossless", "pixels",
                                "additions"]
    assert [(el.encoding_type, el.variant) for el in registry.elements() if el.encoding_type == "latents"] == [
        ("latents", "float32"), ("latents", "range-categorical"), ("latents", "index")]
    assert registry.breakdown_parts() == [
        ("decoder", "decoder weights"), ("pixels", "pixel model and coded pixels"), ("latents", "latents"),
        ("lossless", "lossless residuals"),
        ("images", "image metadata"), ("quality", "quality"), ("training", "training log"), ("additions", "additions")]
    with open_archive(write_archive(tmp_path / "a.lpk", make_contents(w=2))) as ar:
        parts = ar.storage_breakdown()
    assert list(parts) == ["decoder", "latents", "images", "quality", "training", "overhead", "file"]
