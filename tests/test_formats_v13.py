"""Format 1.3: ``/pixels``, a learned per-pixel model in place of the decoder and the latents (no TensorFlow)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from latentpack.codec.pixel_model import luts
from latentpack.codec.pixel_model.blocks import coded_blocks, encode_images, iter_decoded, mlp_of, to_coding
from latentpack.codec.pixel_model.network import DenseInt, IntegerMLP, PixelModelSpec, feature_count
from latentpack.formats import CorruptArchiveError, compute_header, open_archive, read_archive, write_archive
from latentpack.formats.elements import pixels as pixels_element
from latentpack.formats.schema import ArchiveContents

from archive_factory import assert_contents_equal, make_contents

SPEC = PixelModelSpec(rows=1, cols=1, channels=3, components=2, hidden=(6, 5), position=True)


def _mlp(spec: PixelModelSpec = SPEC, seed: int = 0, refinement: str | None = None) -> IntegerMLP:
    rng = np.random.default_rng(seed)
    dims = [spec.inputs, *spec.hidden, spec.outputs]
    return IntegerMLP(spec, [DenseInt(rng.integers(-2000, 2000, (a, b)).astype(np.int16),
                                      rng.integers(-4000, 4000, b).astype(np.int32), 14, i < len(dims) - 2)
                             for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))], refinement=refinement)


def pixel_contents(w: int = 4, max_samples: int = 1 << 23, refinement: str | None = None
                   ) -> tuple[ArchiveContents, list[np.ndarray]]:
    """`make_contents`' RGB image table with its images coded under a fixed pixel model, and the images.

    ``refinement`` (format 1.5) codes them with the adaptive refinement on top.
    """
    base = make_contents(w=w, arch="conv")
    rng = np.random.default_rng(5)
    shapes = [tuple(int(d) for d in s) for s in base.images.shapes]
    images = [rng.integers(0, 256, s, dtype=np.uint8) for s in shapes]
    mlp = _mlp(refinement=refinement)
    coded = encode_images(lambda i: images[i], shapes, mlp, max_samples=max_samples)
    index = np.full(w, -1, np.int32)
    if w > 1:
        index[1] = 0  # image 1 is a palette image: stored raw too
    coding = to_coding(mlp, coded, "RGB", index, [bytes(range(7))] if w > 1 else [])
    header = compute_header(w=w, latent_counts=np.zeros(w, np.int64), x_bits=base.header.x_bits,
                            decoder_scalars=coding.model_scalars, folder_bytes=base.header.folder_bytes,
                            stored_latent_bits=0, residual_bits=coding.residual_bits,
                            stored_decoder_bits=coding.model_bits)
    contents = dataclasses.replace(base, header=header, decoder=None, latents=None, pixels=coding,
                                   quality=dataclasses.replace(base.quality, psnr=np.full(w, np.inf)))
    return contents, images


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "p.lpk", pixel_contents()[0])


@pytest.mark.parametrize("w", [0, 1, 4])
def test_pack_unpack_identity_pixels(tmp_path: Path, w: int) -> None:
    contents, images = pixel_contents(w, max_samples=150)
    path = write_archive(tmp_path / "p.lpk", contents)
    got = read_archive(path)
    assert got.decoder is None and got.latents is None and got.lossless is None
    assert_contents_equal(got, contents)
    with open_archive(path) as ar:
        assert ar.format_version == "1.3" and ar.spec is None and ar.latent_coding is None and not ar.is_lossless
        shapes = [tuple(s) for s in ar.images.shapes.tolist()]
        c = ar.pixels
    decoded = {i: x for _, pairs in iter_decoded(coded_blocks(c), shapes, mlp_of(c)) for i, x in pairs}
    assert all(np.array_equal(decoded[i], images[i]) for i in range(w))
    with h5py.File(path, "r") as f:
        versions = {name: f[name].attrs["encoding-version"].decode() for name in ["/", *f]}
        assert f["pixels/stream"].fletcher32 == bool(c.stream.size)
    assert versions == {"/": "1.3", "pixels": "1.3", "header": "1.2", "images": "1.0", "quality": "1.0",
                        "training": "1.0"}


def test_damage_is_detected_or_harmless(tmp_path: Path) -> None:
    """Every byte of a pixel-model archive is checked or unused (as test_formats checks for the others)."""
    from test_formats import FUZZ_EXAMPLES, FUZZ_SEED, _damages, _read_damaged

    path = write_archive(tmp_path / "p.lpk", pixel_contents(w=5, max_samples=150)[0])
    damages = _damages(path.read_bytes(), FUZZ_EXAMPLES, FUZZ_SEED)
    outcomes = _read_damaged(path, damages, tmp_path)
    bad = [f"offset {damages[i][0]}: {o}" for i, o in sorted(outcomes.items()) if o.split()[0] not in ("same", "error")]
    assert sorted(outcomes) == list(range(len(damages))) and not bad, "\n".join(bad[:20])


def test_header_and_storage_breakdown_add_up(archive: Path) -> None:
    with open_archive(archive) as ar:
        h, c, parts = ar.header, ar.pixels, ar.storage_breakdown()
    assert h.y == 0 and h.latent_scalars == 0 and h.latent_bits == 0 and h.stored_latent_bits == 0
    assert h.z_bits == 32 * (c.kernels.size + c.biases.size) == 32 * c.model_scalars
    assert h.stored_decoder_bits == 16 * c.kernels.size + 32 * c.biases.size == c.model_bits
    rest = 32 * (c.hidden.size + c.shifts.size + c.stream.size + c.exception_index.size) + 8 * c.exception_bytes.size
    rest += 64 * (c.order.size + c.block_bounds.size + c.stream_offsets.size + c.exception_offsets.size)
    assert h.residual_bits == rest == c.residual_bits
    assert h.stored_bits == h.stored_decoder_bits + h.residual_bits and h.beats_raw_stored == (h.stored_bits < h.x_bits)
    assert list(parts) == ["images", "quality", "training", "pixels", "overhead", "file"]
    assert sum(v for k, v in parts.items() if k != "file") == parts["file"] == archive.stat().st_size
    assert parts["pixels"] >= c.stream.nbytes


@pytest.mark.parametrize("rows, cols, channels, position",
                         [(1, 1, 1, False), (2, 2, 3, True), (0, 3, 4, True), (3, 0, 2, False), (8, 8, 4, True)])
def test_input_count_is_the_networks(rows: int, cols: int, channels: int, position: bool) -> None:
    spec = PixelModelSpec(rows=rows, cols=cols, channels=channels, components=2, hidden=(4,), position=position)
    assert pixels_element.feature_count(rows, cols, channels, position) == feature_count(spec) == spec.inputs


def test_tables_digest_is_the_codecs() -> None:
    assert pixels_element.TABLES_SHA256 == luts.table_digest()


def _set_attr(name: str, value):
    return lambda f: f["pixels"].attrs.__setitem__(name, value)


def _replace(path: str, make):
    def tamper(f: h5py.File) -> None:
        data = make(f[path][()])
        del f[path]
        f.create_dataset(path, data=data)
    return tamper


def _blocks(bounds: list[int]):
    """Replace the block index by `bounds` (the stream offsets as many: one stream for all)."""
    def tamper(f: h5py.File) -> None:
        n, old = f["pixels/stream"].shape[0], f["pixels/block_bounds"].shape[0]
        for name in ("residual_bits", "stored_bits"):  # the header counts the index: keep it right
            f["header"].attrs[name] = np.int64(f["header"].attrs[name] + 128 * (len(bounds) - old))
        _replace("pixels/block_bounds", lambda a: np.array(bounds, np.int64))(f)
        _replace("pixels/stream_offsets", lambda a: np.array([0] * (len(bounds) - 1) + [n], np.int64))(f)
    return tamper


TAMPERS = {
    "coding": ("/pixels", _set_attr("coding", np.bytes_("gaussian"))),
    "tables": ("/pixels", _set_attr("tables", np.bytes_("0" * 64))),
    "working_mode": ("/pixels", _set_attr("working_mode", np.bytes_("CMYK"))),
    "channels vs mode": ("/pixels", _set_attr("channels", np.int64(4))),
    "rows": ("/pixels", _set_attr("rows", np.int64(9))),
    "no window": ("/pixels", lambda f: (_set_attr("rows", np.int64(0))(f), _set_attr("cols", np.int64(0))(f))),
    "components": ("/pixels", _set_attr("components", np.int64(17))),
    "too many inputs": ("/pixels", lambda f: [_set_attr(n, v)(f) for n, v in (
        ("rows", np.int64(8)), ("cols", np.int64(8)), ("channels", np.int64(4)), ("working_mode", np.bytes_("RGBA")))]),
    "position not bool": ("/pixels", _set_attr("position", np.int64(1))),
    "no hidden layer": ("/pixels/hidden", _replace("pixels/hidden", lambda a: a[:0])),
    "too many layers": ("/pixels/hidden", _replace("pixels/hidden", lambda a: np.ones(9, np.int32))),
    "hidden width": ("/pixels/hidden", _replace("pixels/hidden", lambda a: np.array([0, 5], np.int32))),
    "shifts count": ("/pixels/shifts", _replace("pixels/shifts", lambda a: a[:-1])),
    "shift range": ("/pixels/shifts", _replace("pixels/shifts", lambda a: np.array([14, 31, 14], np.int32))),
    "kernels size": ("/pixels/kernels", _replace("pixels/kernels", lambda a: a[:-1])),
    "biases size": ("/pixels/biases", _replace("pixels/biases", lambda a: np.append(a, 0).astype(np.int32))),
    "kernels dtype": ("/pixels/kernels", _replace("pixels/kernels", lambda a: a.astype(np.int32))),
    "order not a permutation": ("/pixels/order", _replace("pixels/order", lambda a: np.zeros_like(a))),
    "order count": ("/pixels/order", _replace("pixels/order", lambda a: a[:-1])),
    "block_bounds end": ("/pixels/block_bounds", _blocks([0, 1, 2, 3, 5])),
    "block_bounds not increasing": ("/pixels/block_bounds", _blocks([0, 1, 1, 3, 4])),
    "block_bounds one entry": ("/pixels/block_bounds", _blocks([0])),
    "block shapes": ("/pixels/block_bounds", _blocks([0, 4])),
    "stream_offsets count": ("/pixels/stream_offsets", _replace("pixels/stream_offsets", lambda a: a[:-1])),
    "stream_offsets end": ("/pixels/stream_offsets",
                           _replace("pixels/stream_offsets", lambda a: a + np.arange(a.size))),
    "stream dtype": ("/pixels/stream", _replace("pixels/stream", lambda a: a.astype(np.int64))),
    "exception_index": ("/pixels/exception_index", _replace("pixels/exception_index", lambda a: a + 2)),
    "exception_offsets end": ("/pixels/exception_offsets", _replace("pixels/exception_offsets", lambda a: a + 1)),
    "with decoder": ("/decoder", lambda f: f.copy(_with_decoder(), "decoder")),
    "with lossless": ("/lossless", lambda f: f.create_group("lossless").attrs.update(
        {"encoding-type": np.bytes_("lossless"), "encoding-version": np.bytes_("1.1")})),
    "version 1.2": ("/decoder", lambda f: f.attrs.__setitem__("encoding-version", np.bytes_("1.2"))),
}

_DECODER_FILE: list[h5py.File] = []


def _with_decoder() -> h5py.Group:
    return _DECODER_FILE[0]["decoder"]


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_broken_rule_names_hdf5_path(archive: Path, tmp_path: Path, name: str) -> None:
    hdf5_path, tamper = TAMPERS[name]
    if name == "with decoder":
        _DECODER_FILE[:] = [h5py.File(write_archive(tmp_path / "d.lpk", make_contents(w=4, arch="conv")), "r")]
    try:
        with h5py.File(archive, "r+") as f:
            tamper(f)
    finally:
        for f in _DECODER_FILE:
            f.close()
    with pytest.raises(CorruptArchiveError) as info:
        with open_archive(archive) as ar:
            ar.validate()
    assert info.value.hdf5_path == hdf5_path, str(info.value)
    assert hdf5_path in str(info.value)


def test_a_1_2_file_ignores_pixels_and_reads_its_decoder(tmp_path: Path) -> None:
    """/pixels is a 1.3 element: in an older file it is ignored, like any group the format does not name."""
    path = write_archive(tmp_path / "a.lpk", make_contents(w=4, arch="conv", weight_dtype="float16"))
    source = write_archive(tmp_path / "p.lpk", pixel_contents()[0])
    with h5py.File(source, "r") as src, h5py.File(path, "r+") as f:
        src.copy(src["pixels"], f, "pixels")
    with open_archive(path) as ar:
        assert ar.format_version == "1.2" and ar.pixels is None and ar.decoder is not None
        ar.validate()


@pytest.mark.parametrize("change, message", [
    (dict(decoder="keep"), "/pixels (which replaces it)"),
    (dict(pixels=None), "/decoder: required element is missing"),
    (dict(lossless="keep"), "/lossless: must not be present together with /pixels"),
])
def test_writer_refuses_the_wrong_combinations(tmp_path: Path, change: dict, message: str) -> None:
    from latentpack.formats.schema import LosslessResiduals

    contents, _ = pixel_contents()
    other = make_contents(w=4, arch="conv")
    if change.get("decoder") == "keep":
        contents = dataclasses.replace(contents, decoder=other.decoder)
    if "pixels" in change:
        contents = dataclasses.replace(contents, pixels=None)
    if change.get("lossless") == "keep":
        ll = LosslessResiduals(12, 24, np.zeros(255, np.int64), 1, 1, np.ones((1, 256), np.uint16),
                               np.array([0, 4]), np.array([0, 0]), np.zeros(0, np.uint32), np.full(4, -1),
                               np.array([0]), np.zeros(0, np.uint8))
        contents = dataclasses.replace(contents, lossless=ll)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_archive(tmp_path / "x.lpk", contents)
