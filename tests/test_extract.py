"""extract_archive: what it reports, what it refuses, and that it keeps nothing per image it does not need."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from archive_factory import make_contents

from latentpack.codec.runtime import reconstruct
from latentpack.formats import write_archive
from latentpack.fs.names import UnsafeNameError
from latentpack.fs.output import OutputFolder, check_targets
from latentpack.ops import extract as extract_module


def _archive(tmp_path: Path, w: int) -> Path:
    return write_archive(tmp_path / f"a{w}.lpk", make_contents(w=w), force=True)


def test_result_names_every_file_written_in_archive_order(tmp_path: Path) -> None:
    archive = _archive(tmp_path, 5)
    names = make_contents(w=5).images.names
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = extract_module.extract_archive(archive, tmp_path / "link" / "out")
    assert len(result) == 5 and list(result.names) == names
    assert result.root == (tmp_path / "real" / "out").resolve()  # symlinks resolved, as the checks saw it
    assert result.paths == [result.root.joinpath(*n.split("/")) for n in names]
    assert all(p.is_file() for p in result.paths)
    some = extract_module.extract_archive(archive, tmp_path / "o2", [names[3], names[0]])
    assert list(some.names) == [names[0], names[3]]
    assert sorted(p.relative_to(tmp_path / "o2").as_posix() for p in (tmp_path / "o2").rglob("*.png")) == sorted(
        [names[0], names[3]])


def test_existing_files_are_counted_and_the_first_five_named(tmp_path: Path) -> None:
    archive = _archive(tmp_path, 8)
    out = tmp_path / "out"
    for name in make_contents(w=8).images.names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"^8 file\(s\) exist in .*: img_000\.png, .* and 3 more$"):
        extract_module.extract_archive(archive, out)
    assert all(p.read_bytes() == b"mine" for p in out.rglob("*.png"))
    assert len(extract_module.extract_archive(archive, out, force=True)) == 8


def test_memory_per_image_is_the_archive_s_own(tmp_path: Path, monkeypatch) -> None:
    # Extraction streams: besides the archive's arrays and names (about 200 bytes an image here), the
    # checks and the write loop keep a few bytes an image. Holding a Path per target, as before, cost 700.
    monkeypatch.setattr(reconstruct, "MAX_BATCH_PIXELS", 14 * 14 * 16)  # batches as small as at any size
    extract_module.extract_archive(_archive(tmp_path, 20), tmp_path / "warm")  # lazy imports are not per image
    peaks = {}
    for w in (200, 2000):
        archive = _archive(tmp_path, w)
        tracemalloc.start()
        try:
            extract_module.extract_archive(archive, tmp_path / f"out{w}")
            peaks[w] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    per_image = (peaks[2000] - peaks[200]) / 1800
    assert per_image < 400, f"{per_image:.0f} bytes of Python heap per image"


def test_output_folder_rolls_back_what_it_created_and_keeps_what_it_overwrote(tmp_path: Path) -> None:
    names = ["kept.png", "new/a.png", "new/deeper/b.png"]
    outdir = tmp_path / "made" / "out"
    outdir.mkdir(parents=True)
    (outdir / "kept.png").write_bytes(b"old")
    root = check_targets("test", outdir, names, range(3), force=True)
    with pytest.raises(ZeroDivisionError):
        with OutputFolder(outdir, root, names) as out:
            for i in range(3):
                out.write(i, b"new")
            assert (outdir / "new" / "deeper" / "b.png").read_bytes() == b"new"
            1 / 0
    assert sorted(p.name for p in outdir.rglob("*")) == ["kept.png"]  # created files and folders removed
    assert (outdir / "kept.png").read_bytes() == b"new"  # an overwritten file is not a created one
    fresh = tmp_path / "fresh" / "out"
    with pytest.raises(KeyboardInterrupt):
        with OutputFolder(fresh, check_targets("test", fresh, names, range(3), force=False), names) as out:
            out.write(1, b"x")
            raise KeyboardInterrupt
    assert not (tmp_path / "fresh").exists()  # OUTDIR and its missing parents too


def test_check_targets_refuses_clashes_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(UnsafeNameError, match="same output file"):
        check_targets("test", tmp_path / "o", ["A.png", "a.png"], range(2), force=False)
    with pytest.raises(UnsafeNameError, match="folder of another"):
        check_targets("test", tmp_path / "o", ["a", "a/b.png"], range(2), force=False)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x.png").write_bytes(b"")
    with pytest.raises(FileExistsError, match="--force"):
        check_targets("test", tmp_path / "o", ["x.png"], range(1), force=False)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x.png"]
