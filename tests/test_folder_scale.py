"""Flat memory at scale: the folder's compact metadata, the staging file's pages, lean latent coding.

What grows per image is measured by ``examples/memory_curve.py`` (it prints
numbers); these tests check that the restructured code gives the same
results as the straightforward one, and that no per-image object is held.
"""
from __future__ import annotations

import gc
import hashlib
import unicodedata
from pathlib import Path

import constriction
import numpy as np
import pytest
from PIL import Image

from latentpack.codec.assemble import image_table
from latentpack.codec.entropy.latent_coding import channel_index, decode_latents, encode_latents, quantize_latents
from latentpack.codec.entropy.range_coding import CountModels, encode_runs, quantize_counts
from latentpack.fs import folder as folder_module
from latentpack.fs.folder import FolderImage, ImageFolder, read_folder, scan_folder
from latentpack.fs.images import open_image
from latentpack.fs.records import FolderImages


def _folder(root: Path) -> list[str]:
    """Mixed modes and sizes, a palette image, a sub-folder and a name that is not NFC on disk."""
    rng = np.random.default_rng(0)
    made = []
    for k in range(12):
        arr = rng.integers(0, 256, (5 + k % 3, 7, 3), dtype=np.uint8)
        img = Image.fromarray(arr, "RGB")
        img = {0: img.convert("L"), 1: img.quantize(6), 2: img.convert("RGBA")}.get(k % 4, img)
        rel = f"sub/{k:02d}.png" if k % 2 else f"{k:02d}.png"
        (root / rel).parent.mkdir(exist_ok=True)
        img.save(root / rel)
        made.append(rel)
    odd = unicodedata.normalize("NFD", "caf\u00e9.png")  # stored NFC, read from its name on disk
    Image.fromarray(rng.integers(0, 256, (5, 7), dtype=np.uint8), "L").save(root / odd)
    made.append(odd)
    return made


def test_read_folder_keeps_each_image_as_opened(tmp_path: Path) -> None:
    made = _folder(tmp_path)
    staged = read_folder(tmp_path)
    try:
        assert isinstance(staged.images, FolderImages)
        assert [im.name for im in staged.images] == [name for name, _ in scan_folder(tmp_path)]
        assert len(staged) == len(made)
        for i, im in enumerate(staged.images):
            opened = open_image(im.path)
            assert (im.mode, im.natural_mode, im.height, im.width) == (opened.mode, opened.natural_mode,
                                                                       opened.height, opened.width)
            assert im.sha256 == opened.sha256 and im.file_bytes == im.path.stat().st_size
            assert (im.palette is None) == (opened.palette is None)
            if im.palette is not None:
                assert np.array_equal(im.palette, opened.palette)
            assert staged.working(i).shape == (im.height, im.width, staged.channels)
        assert staged.images[-1].name == staged.images[len(made) - 1].name
        with pytest.raises(IndexError):
            staged.images[len(made)]
        assert staged.x_bits == sum(im.height * im.width * im.channels * 8 for im in staged.images)
        assert staged.folder_bytes == sum(im.file_bytes for im in staged.images)
    finally:
        staged.close()


def test_image_table_from_columns_matches_the_rows(tmp_path: Path) -> None:
    _folder(tmp_path)
    staged = read_folder(tmp_path)
    try:
        rows = list(staged.images)
        for digest_bytes, sizes in ((32, True), (4, False)):
            table = image_table(staged, digest_bytes, file_sizes=sizes)
            assert table.names == [im.name for im in rows]
            assert table.modes == [im.mode for im in rows] and table.formats == [im.format for im in rows]
            assert np.array_equal(table.shapes, [(im.height, im.width, im.channels) for im in rows])
            assert table.shapes.dtype == np.int32
            full = b"".join(im.sha256 for im in rows)
            assert table.sha256.tobytes() == b"".join(im.sha256[:digest_bytes] for im in rows)
            if digest_bytes < 32:
                assert table.sha256_all.tobytes() == hashlib.sha256(full).digest()
            with_palette = [i for i, im in enumerate(rows) if im.palette is not None]
            assert with_palette and table.palette_index[with_palette].tolist() == list(range(len(with_palette)))
            assert (table.palette_index == -1).sum() == len(rows) - len(with_palette)
            assert np.array_equal(table.palettes, np.stack([rows[i].palette for i in with_palette]))
            expected = [im.file_bytes if sizes else -1 for im in rows]
            assert table.file_bytes.tolist() == expected and table.file_bytes.dtype == np.int64
    finally:
        staged.close()


def test_no_object_per_image_is_held_after_reading(tmp_path: Path) -> None:
    """The folder keeps one name string per image and numpy columns: no dataclass or `Path` per image."""
    for k in range(60):
        Image.fromarray(np.full((4, 4), k, np.uint8), "L").save(tmp_path / f"{k:03d}.png")
    gc.collect()
    before = sum(isinstance(o, (FolderImage, Path)) for o in gc.get_objects())
    staged = read_folder(tmp_path)
    gc.collect()
    held = sum(isinstance(o, (FolderImage, Path)) for o in gc.get_objects()) - before
    try:
        assert held < 10, f"{held} FolderImage or Path objects held for 60 images"
        assert staged.images._paths == {}  # every path is the folder joined with the name
    finally:
        staged.close()


def test_rows_given_as_a_list_become_columns() -> None:
    rows = [FolderImage(f"{k}.png", "L", "PNG", 2, 3, 1, "L", None, bytes([k]) * 32, 10 + k, Path(f"/x/{k}.png"))
            for k in range(3)]
    images = FolderImages.of(rows)
    assert list(images) == rows and images[1:] == rows[1:]
    folder = ImageFolder(rows, "L", np.arange(4, dtype=np.int64) * 6, np.arange(18, dtype=np.uint8), 0)
    assert isinstance(folder.images, FolderImages)
    assert folder.working(2).tolist() == np.arange(12, 18).reshape(2, 3, 1).tolist()
    folder.release_pages()  # an array that is no map: nothing to give back


def test_pages_are_given_back_and_views_stay_valid(tmp_path: Path, monkeypatch) -> None:
    _folder(tmp_path)
    staged = read_folder(tmp_path)
    try:
        first = [staged.working(i).copy() for i in range(len(staged))]
        released = []
        monkeypatch.setattr(folder_module, "RELEASE_BYTES", 100)
        monkeypatch.setattr(ImageFolder, "release_pages",
                            lambda self, original=ImageFolder.release_pages: (released.append(1), original(self)))
        views = [staged.working(i) for i in range(len(staged))]
        assert len(released) >= 2  # 13 images of at least 140 bytes, released every 100
        staged.release_pages()
        assert all(np.array_equal(v, f) for v, f in zip(views, first))
        with pytest.raises(ValueError):
            views[0][0, 0, 0] = 1  # the staged pixels are read-only
    finally:
        staged.close()


def test_a_file_changed_between_the_passes_is_refused(tmp_path: Path, monkeypatch) -> None:
    images, stage = tmp_path / "in", tmp_path / "stage"
    images.mkdir()
    stage.mkdir()
    _folder(images)
    real = folder_module._natural

    def bigger(path):  # the file grew after the first pass read it
        natural, mode = real(path)
        return np.concatenate([natural, natural]), mode

    monkeypatch.setattr(folder_module, "_natural", bigger)
    with pytest.raises(ValueError, match="changed while the folder was read"):
        read_folder(images, staging_dir=stage)
    assert list(stage.iterdir()) == []  # the staging file is removed


def _reference_encode(q, offsets, shapes, step):
    """The straightforward coder (whole-array int64 temporaries, one lexsort): the stream it must equal."""
    q = np.asarray(q, dtype=np.int64)
    channels = channel_index(offsets, shapes).astype(np.int64)
    n_channels = int(shapes[:, 2].max())
    qmin = int(q.min())
    k = max(2, int(q.max()) - qmin + 1)
    symbols = q - qmin

    def cost(rows, n_rows):
        counts = np.bincount(rows * k + symbols, minlength=n_rows * k).reshape(n_rows, k)
        nz = counts > 0
        tot = np.broadcast_to(counts.sum(axis=1, keepdims=True), counts.shape)
        return float(-(counts[nz] * np.log2(counts[nz] / tot[nz])).sum() + counts.size * 16)

    split = cost(channels, n_channels) < cost(np.zeros_like(channels), 1)
    table_of_channel = np.arange(n_channels) if split else np.zeros(n_channels, np.int64)
    rows = table_of_channel[channels]
    n_tables = int(table_of_channel.max()) + 1
    counts = quantize_counts(np.bincount(rows * k + symbols, minlength=n_tables * k).reshape(n_tables, k))
    order = np.lexsort((np.arange(len(rows)), rows))
    encoder = constriction.stream.queue.RangeEncoder()
    encode_runs(encoder, symbols[order], rows[order], CountModels(counts))
    return qmin, table_of_channel, counts, np.asarray(encoder.get_compressed(), dtype=np.uint32)


@pytest.mark.parametrize("shapes, bias", [([(1, 1, 49)] * 400, 0.0), ([(1, 1, 16)] * 3000, 0.8),
                                          ([(2, 3, 8), (4, 4, 8), (1, 5, 3)] * 300, 1.5)])
def test_lean_latent_coding_writes_the_reference_stream(shapes, bias) -> None:
    shapes = np.array(shapes, np.int32)
    offsets = np.concatenate([[0], np.cumsum(shapes.prod(axis=1))]).astype(np.int64)
    rng = np.random.default_rng(3)
    channels = channel_index(offsets, shapes)
    values = (rng.normal(size=int(offsets[-1])) + bias * channels).astype(np.float32)
    q = quantize_latents(values, 0.25)
    assert q.dtype == np.int32 and np.array_equal(q, np.clip(np.rint(values.astype(np.float64) / 0.25), -2047, 2047))
    coded = encode_latents(q, offsets, shapes, 0.25)
    qmin, table_of_channel, counts, stream = _reference_encode(q, offsets, shapes, 0.25)
    assert coded.qmin == qmin and np.array_equal(coded.table_of_channel, table_of_channel)
    assert np.array_equal(coded.counts, counts) and np.array_equal(coded.stream, stream)
    assert np.array_equal(decode_latents(coded, offsets, shapes), q)
    if bias:
        assert int(coded.table_of_channel.max()) > 0  # the per-channel tables were exercised


_CHECK_IN_WORKERS = """
import json, sys
from pathlib import Path
from latentpack.fs import check_pool
from latentpack.fs.folder import _checked
check_pool.PARALLEL_FROM, check_pool.CHUNK = 1, 3  # every folder, several chunks in flight
images, bad = _checked(Path(sys.argv[1]), [], __import__("latentpack.progress").progress.null_progress, True)
print(json.dumps({"workers": check_pool.workers_for(len(images) + len(bad)), "bad": bad,
                  "images": [[im.name, im.mode, im.format, im.height, im.width, im.sha256.hex(), im.file_bytes,
                              str(im.path)] for im in images]}))
"""


def test_checking_in_worker_processes_gives_what_one_process_gives(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from latentpack.formats import write_archive
    from latentpack.progress import null_progress

    from archive_factory import make_contents

    root = tmp_path / "f"
    root.mkdir()
    _folder(root)
    (root / "bad.png").write_bytes(b"not an image")
    Image.new("L", (4, 4), 9).save(root / "Sub.png")  # differs from the folder "sub" only by case: fine
    Image.new("L", (4, 4), 9).save(root / "CASE.png")
    Image.new("L", (4, 4), 8).save(root / "case.png")  # a clash with CASE.png
    Image.new("L", (4, 4), 7).save(root / "CON.png")  # an unsafe name
    write_archive(root / "old.lpk", make_contents(w=1))  # left out without a word
    run = subprocess.run([sys.executable, "-c", _CHECK_IN_WORKERS, str(root)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=120)
    assert run.returncode == 0, run.stderr
    pooled = json.loads(run.stdout)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert (pooled["workers"] > 0) == (cores > 1)  # the workers really checked them where there are two cores
    images, bad = folder_module._checked(root, [], null_progress, True)  # here: TensorFlow may run, one process
    assert pooled["bad"] == [list(b) for b in bad] and len(bad) == 3, bad
    assert {b[0] for b in bad} == {"bad.png", "case.png", "CON.png"}
    assert pooled["images"] == [[im.name, im.mode, im.format, im.height, im.width, im.sha256.hex(), im.file_bytes,
                                 str(im.path)] for im in images]
    assert len(images) == 15
