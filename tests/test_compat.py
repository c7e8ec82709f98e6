"""Archives written by every released format version still read, and decode the same."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from latentpack.cli import cli
from latentpack.formats import open_archive

ARCHIVES = sorted((Path(__file__).parent / "data" / "archives").glob("v*/*.lpk"))


def test_there_is_a_fixture_for_the_current_format_version() -> None:
    from latentpack.formats.schema import FORMAT_VERSION

    assert any(p.parent.name == f"v{FORMAT_VERSION}" for p in ARCHIVES), "run tests/data/make_fixtures.py"


@pytest.mark.parametrize("archive", ARCHIVES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_reads_and_decodes_as_recorded(archive: Path, tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from make_fixtures import expected_facts

    recorded = json.loads(archive.with_suffix(".json").read_text())
    facts = expected_facts(archive)
    assert facts["names"] == recorded["names"]
    assert facts["modes"] == recorded["modes"]
    assert facts["shapes"] == recorded["shapes"]
    assert facts["header"] == recorded["header"]
    with open_archive(archive) as ar:
        assert ar.format_version == archive.parent.name[1:]
    for key in ("psnr", "digest_bytes"):  # recorded from 1.4 on
        if key in recorded:
            assert facts[key] == recorded[key], key
    if "working_sha256" in recorded:  # a pixel model decodes in integers: exactly, on every machine
        assert facts["working_sha256"] == recorded["working_sha256"]
        assert facts["exceptions"] == recorded["exceptions"]
    else:  # decoding may differ by float round-off across machines, not by more
        assert np.allclose(facts["working_means"], recorded["working_means"], atol=0.05)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["extract", str(archive), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(recorded["names"])


def test_v1_2_fixtures_store_float16_weights_and_count_them(tmp_path: Path) -> None:
    fixtures = [p for p in ARCHIVES if p.parent.name == "v1.2"]
    assert {p.name for p in fixtures} == {"dense-grey.lpk", "conv-mixed-lossless.lpk", "element-versions.lpk"}
    for archive in fixtures:
        with h5py.File(archive, "r") as f:
            weights = [ds for g in f["decoder/layers"].values() for ds in g.values()]
            assert {ds.dtype for ds in weights} == {np.dtype(np.float16)}, archive.name
            n = sum(ds.size for ds in weights)
            on_disk = {ds.name: ds[()] for ds in weights}
        recorded = json.loads(archive.with_suffix(".json").read_text())["header"]
        assert recorded["z_bits"] == 32 * n and recorded["stored_decoder_bits"] == 16 * n
        assert recorded["stored_bits"] == 16 * n + recorded["stored_latent_bits"] + recorded["residual_bits"]
        with open_archive(archive) as ar:
            assert ar.weight_dtype == "float16"
            decoder = ar.decoder
        for layer, pairs in decoder.weights.items():
            for name, arr in pairs:
                assert arr.dtype == np.float32
                assert np.array_equal(arr, on_disk[f"/decoder/layers/{layer}/{name}"].astype(np.float32))
    lossless = next(p for p in fixtures if "lossless" in p.name)
    summary = CliRunner().invoke(cli, ["inspect", str(lossless), "--json"])
    assert summary.exit_code == 0, summary.output
    assert json.loads(summary.output)["quality"]["exact_images"] == 4  # extract checks every digest (tested above)


def _group_versions(archive: Path) -> dict[str, str]:
    with h5py.File(archive, "r") as f:
        return {name: f[name].attrs["encoding-version"].decode() for name in ["/", *f]}


_OWN_VERSIONS = ("element-versions.lpk", "pixels-mixed.lpk", "pixels-refined.lpk")  # written with each element's own version
_OWN_VERSION_FOLDERS = ("v1.4", "v1.5")  # every fixture from 1.4 on


@pytest.mark.parametrize("archive", [p for p in ARCHIVES if p.name not in _OWN_VERSIONS
                                     and p.parent.name not in _OWN_VERSION_FOLDERS],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixtures_written_before_element_versions_tag_every_group_with_the_file_version(archive: Path) -> None:
    assert set(_group_versions(archive).values()) == {archive.parent.name[1:]}


def test_element_versions_fixture_tags_each_group_with_its_own_version() -> None:
    archive = next(p for p in ARCHIVES if p.name == "element-versions.lpk")
    assert _group_versions(archive) == {"/": "1.2", "header": "1.2", "decoder": "1.2", "latents": "1.1",
                                        "lossless": "1.1", "images": "1.0", "quality": "1.0", "training": "1.0"}
    with open_archive(archive) as ar:
        assert ar.format_version == "1.2" and ar.is_lossless and ar.weight_dtype == "float16"


@pytest.mark.parametrize("name, pixels_version, metadata_version, refinement", [
    ("pixels-mixed.lpk", "1.3", "1.0", None), ("pixels-refined.lpk", "1.5", "1.4", "node-context-counts")])
def test_pixel_fixture_decodes_exactly_and_tags_its_groups(name: str, pixels_version: str, metadata_version: str,
                                                           refinement: str | None) -> None:
    import hashlib

    from latentpack.codec.entropy.lossless import check_digest, rebuild_original
    from latentpack.codec.pixel_model.blocks import coded_blocks, iter_decoded, mlp_of

    archive = next(p for p in ARCHIVES if p.name == name)
    assert _group_versions(archive) == {"/": pixels_version, "header": "1.2", "pixels": pixels_version,
                                        "images": metadata_version, "quality": metadata_version, "training": "1.0"}
    recorded = json.loads(archive.with_suffix(".json").read_text())
    with open_archive(archive) as ar:
        assert ar.spec is None and ar.decoder is None and ar.latents is None and ar.latent_coding is None
        c, table, header = ar.pixels, ar.images, ar.header
    assert c.refinement == refinement and mlp_of(c).refinement == refinement
    assert c.working_mode == "RGB" and len({tuple(s[:2]) for s in table.shapes.tolist()}) == 2
    assert header.z_bits == 32 * c.model_scalars and header.stored_decoder_bits == c.model_bits
    assert header.residual_bits == c.residual_bits and header.y == 0 and header.stored_latent_bits == 0
    shapes = [(int(h), int(w), c.channels) for h, w, _ in table.shapes]
    decoded = dict(pair for _, pairs in iter_decoded(coded_blocks(c), shapes, mlp_of(c)) for pair in pairs)
    assert [hashlib.sha256(decoded[i].tobytes()).hexdigest() for i in range(len(shapes))] == recorded["working_sha256"]
    for i, working in decoded.items():  # every original, from its working pixels or its raw bytes, is exact
        r = int(c.exception_index[i])
        raw = None if r < 0 else c.exception_bytes[c.exception_offsets[r]:c.exception_offsets[r + 1]].tobytes()
        assert check_digest(rebuild_original(working, c.working_mode, table, i, raw), table, i, strict=False)[1], i
    assert recorded["exceptions"] == [3] and table.modes[3] == "P"


def test_v1_4_fixtures_store_compact_metadata() -> None:
    fixtures = {p.name: p for p in ARCHIVES if p.parent.name == "v1.4"}
    assert set(fixtures) == {"dense-grey.lpk", "conv-mixed-lossless.lpk"}
    assert _group_versions(fixtures["dense-grey.lpk"]) == {"/": "1.4", "header": "1.2", "decoder": "1.2",
                                                           "latents": "1.1", "images": "1.4", "quality": "1.4",
                                                           "training": "1.0"}
    with h5py.File(fixtures["dense-grey.lpk"], "r") as f:  # lossy: 2-byte digests, one shape, mode, format
        assert f["images/sha256"].shape == (8, 2) and "sha256_all" in f["images"]
        assert not {"shapes", "modes", "formats", "palettes"} & set(f["images"])
    with h5py.File(fixtures["conv-mixed-lossless.lpk"], "r") as f:  # lossless: 4-byte digests, mixed modes, a palette
        assert f["images/sha256"].shape == (4, 4) and {"shapes", "modes", "palettes"} <= set(f["images"])
