"""Untrusted archives and messy folders: clear errors, nothing lost, nothing written where it must not be.

Crafted and fuzzed archives (tests/security_cases.py), writes that cannot
half-happen (kills, full disks, an output that is an input), and folders as
real disks hold them. `examples/fuzz_report.py` runs the same attacks with
larger counts and prints the figures quoted in the README.
"""
from __future__ import annotations

import base64
import errno
import json
import marshal
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFile

sys.path.insert(0, str(Path(__file__).parent))

from archive_factory import make_contents  # noqa: E402
from security_cases import CRAFTED, craft, fuzz_archives, kill_compress, listing  # noqa: E402

from latentpack.cli import cli  # noqa: E402
from latentpack.fs import output as output_module  # noqa: E402
from latentpack.ops import extract as extract_module  # noqa: E402
from latentpack.formats import open_archive, write_archive  # noqa: E402
from latentpack.formats import writer as writer_module  # noqa: E402
from latentpack.fs.atomic import stale_temp_files  # noqa: E402
from latentpack.fs.images import ImageReadError, open_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "-y", "2", "--filters", "2", "--batch-size", "4"]
FUZZ_EXAMPLES = int(os.environ.get("LATENTPACK_FUZZ_EXAMPLES", "150"))
KILLS = int(os.environ.get("LATENTPACK_KILLS", "2"))  # each kill costs a TensorFlow start-up; the report runs 10


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _clean_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Error: " in result.output, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


# -- crafted archives ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_archive_is_refused_with_its_hdf5_path(name: str, tmp_path: Path) -> None:
    case = CRAFTED[name]
    archive = craft(name, tmp_path)
    out = tmp_path / "out"
    if case.prepare:
        case.prepare(out)
    before = listing(tmp_path)
    with pytest.raises(case.error) as info:
        extract_module.extract_archive(archive, out)
    assert case.where in str(info.value) and str(archive) in str(info.value), str(info.value)
    assert listing(tmp_path) == before  # nothing written, not even OUTDIR
    for args in (["extract", archive, "-o", out], ["extract", archive, "-o", out, "--force"]):
        _clean_error(invoke(*args), case.where)
        assert listing(tmp_path) == before
    result = invoke("inspect", archive)
    if case.reader:
        _clean_error(result, case.where)
    else:
        assert result.exit_code == 0, result.output
    result = invoke("list", archive)
    assert result.exit_code in (0, 1) and "Traceback" not in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output  # no terminal escapes printed
    assert listing(tmp_path) == before


def test_code_in_an_archive_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"open({str(marker)!r}, 'w').write('ran')"

    class Boom:
        def __reduce__(self):
            return (exec, (payload,))

    code = base64.b64encode(marshal.dumps(compile(payload, "<lambda>", "exec"))).decode()
    keras_lambda = {"class_name": "Lambda", "name": "evil",
                    "config": {"name": "evil", "function": [code, None, None], "function_type": "lambda"}}
    arch = make_contents(w=1).decoder.architecture
    plain = json.loads(json.dumps(arch))
    plain["layers"].insert(1, {"name": "evil", "type": "Lambda", "config": {"function": payload}})
    keras = json.loads(json.dumps(arch))
    keras["layers"].insert(1, keras_lambda)
    variants = {
        "lambda": json.dumps(plain).encode(),
        "keras lambda": json.dumps(keras).encode(),
        "keras model": json.dumps({"class_name": "Sequential", "config": {"layers": [keras_lambda]}}).encode(),
        "pickle": pickle.dumps(Boom()),
    }
    for i, (label, data) in enumerate(variants.items()):
        archive = write_archive(tmp_path / f"{i}.lpk", make_contents(w=2))
        with h5py.File(archive, "r+") as f:
            del f["decoder/architecture"]
            if label == "pickle":
                f["decoder"].create_dataset("architecture", data=np.void(data))
            else:
                f["decoder"].create_dataset("architecture", data=np.array(data, dtype=h5py.string_dtype("utf-8", len(data))))
        for args in (["extract", archive, "-o", tmp_path / "out"], ["inspect", archive], ["list", archive]):
            result = invoke(*args)
            assert result.exit_code in (0, 1) and "Traceback" not in result.output, (label, result.output)
        assert not marker.exists(), label
    # Unknown elements holding code are ignored, never loaded: the archive still extracts.
    archive = write_archive(tmp_path / "extra.lpk", make_contents(w=2))
    with h5py.File(archive, "r+") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": [keras_lambda]}})
        f["decoder"].create_dataset("keras_model", data=np.void(pickle.dumps(Boom())))
    assert invoke("extract", archive, "-o", tmp_path / "out2").exit_code == 0
    assert invoke("inspect", archive).exit_code == 0 and invoke("list", archive).exit_code == 0
    assert not marker.exists()


# -- fuzzing ------------------------------------------------------------------------


def test_fuzzed_archives_read_cleanly_or_are_refused(tmp_path: Path) -> None:
    report = fuzz_archives(FUZZ_EXAMPLES, tmp_path)
    assert report.tried >= FUZZ_EXAMPLES * 0.9, report
    assert report.unexpected == [] and report.outside_writes == []
    assert report.refused > 0 and set(report.kinds) == {"flip", "overwrite", "truncate", "h5py"}, report


# -- writes that cannot half-happen -----------------------------------------------------


def test_killing_compress_never_leaves_a_broken_archive(tmp_path: Path) -> None:
    report = kill_compress(KILLS, tmp_path, seed=int(os.environ.get("LATENTPACK_KILL_SEED", "0")))
    assert report.corrupt == [] and report.stray == [], report
    assert report.tried >= 1 and report.tried + report.finished <= 2 * KILLS, report


_KILL_STAGES = {
    "while writing HDF5": "w.PROGRESS_IMAGES = 1; progress = die",
    "before read-back": "w._read_back = lambda *a: die()",
    "before rename": "real = os.replace; os.replace = lambda *a: die()",
    "after rename": "real = os.replace; os.replace = lambda *a: (real(*a), die())",
}


@pytest.mark.parametrize("stage", list(_KILL_STAGES))
def test_sigkill_at_each_stage_of_a_write_leaves_old_or_new(stage: str, tmp_path: Path) -> None:
    old = write_archive(tmp_path / "a.lpk", make_contents(w=2, seed=1)).read_bytes()
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(REPO / 'tests')!r})
from archive_factory import make_contents
from latentpack.formats import writer as w
def die(*a):
    os.kill(os.getpid(), signal.SIGKILL)
progress = None
{_KILL_STAGES[stage]}
w.write_archive({str(tmp_path / 'a.lpk')!r}, make_contents(w=5, seed=2), force=True, progress=progress)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    now = (tmp_path / "a.lpk").read_bytes()
    if stage == "after rename":
        with open_archive(tmp_path / "a.lpk") as a:
            a.validate()
            assert a.header.w == 5
    else:
        assert now == old
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "a.lpk"]
    assert all(n.startswith(".a.lpk.tmp-") for n in leftovers), leftovers
    assert [p.name for p in stale_temp_files(tmp_path / "a.lpk")] == sorted(leftovers)


def test_compress_names_stale_temp_files_and_keeps_them(tmp_path: Path, easy_small: Path) -> None:
    stale = tmp_path / ".a.lpk.tmp-abc123"
    stale.write_bytes(b"half an archive")
    result = CliRunner().invoke(cli, ["compress", str(easy_small), "-o", str(tmp_path / "a.lpk"), *TINY])
    assert result.exit_code == 0, result.output
    assert ".a.lpk.tmp-abc123" in result.stderr and stale.exists()


def _enospc_writer(monkeypatch) -> None:
    real = writer_module._write

    def full(f, contents, progress):
        real(f, contents, progress)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module, "_write", full)


def test_disk_full_during_the_archive_write(tmp_path: Path, easy_small: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.lpk").write_bytes(b"previous")
    _enospc_writer(monkeypatch)
    result = invoke("compress", easy_small, "-o", out / "a.lpk", "--force", *TINY)
    _clean_error(result, "no space left", str(out / "a.lpk"))
    assert listing(out) == {"a.lpk": b"previous"}


def test_disk_full_during_extract_removes_what_it_wrote(tmp_path: Path, monkeypatch) -> None:
    archive = write_archive(tmp_path / "a.lpk", make_contents(w=5))
    real = os.fdopen
    calls = []

    class FullDisk:
        """The third image file hits a full disk halfway through its bytes."""

        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, mode="r", *args, **kw):
        fh = real(fd, mode, *args, **kw)
        if "w" not in mode:  # the archive, opened for reading: not an image file
            return fh
        calls.append(fd)
        return FullDisk(fh) if len(calls) >= 3 else fh

    monkeypatch.setattr(output_module.os, "fdopen", fdopen)
    before = listing(tmp_path)
    result = invoke("extract", archive, "-o", tmp_path / "out" / "deeper")
    _clean_error(result, "no space left", "img_002.png")
    assert listing(tmp_path) == before  # images, folders, temp files: all gone


def test_a_real_file_size_limit_gives_a_clean_error(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes libhdf5's own writes fail (EFBIG), as a full disk would.
    target = tmp_path / "a.lpk"
    code = f"""
import resource, signal, sys
sys.path.insert(0, {str(REPO / 'tests')!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
from archive_factory import make_contents
from latentpack.cli import cli
from latentpack.formats import write_archive
try:
    write_archive({str(target)!r}, make_contents(w=400, arch="conv"))
except OSError as err:
    print("errno", err.errno, err)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr  # no crash (h5py with a chunk cache can segfault here)
    assert f"errno {errno.EFBIG}" in proc.stdout and "while writing the archive" in proc.stdout, proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_output_that_is_an_input_is_refused(tmp_path: Path, easy_small: Path) -> None:
    image = easy_small / "i0.png"
    before = image.read_bytes()
    result = invoke("compress", easy_small, "-o", image, "--force", *TINY)
    _clean_error(result, "input folder")
    assert image.read_bytes() == before
    # An earlier archive inside the folder is not an input: skipped as one, and replaced with --force.
    assert invoke("compress", easy_small, "-o", easy_small / "a.lpk", *TINY).exit_code == 0
    (easy_small / "b.lpk").write_bytes((easy_small / "a.lpk").read_bytes())
    result = invoke("compress", easy_small, "-o", easy_small / "b.lpk", "--force", "--seed", "1", *TINY)
    assert result.exit_code == 0, result.output
    assert (easy_small / "b.lpk").read_bytes() != (easy_small / "a.lpk").read_bytes()
    names = [r["name"] for r in json.loads(invoke("list", easy_small / "b.lpk", "--json").stdout)]
    assert names == ["i0.png", "i1.png", "i2.png", "i3.png"]


# -- folders from real disks ---------------------------------------------------------------


@pytest.fixture
def easy_small(tmp_path: Path) -> Path:
    folder = tmp_path / "easy"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(4):
        Image.fromarray(rng.integers(40, 200, (16, 16), dtype=np.uint8), "L").save(folder / f"i{i}.png")
    return folder


def _png(path: Path, size=(16, 16), mode="L", value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def test_messy_folder_lists_every_bad_file_then_skip_bad_records_them(tmp_path: Path) -> None:
    folder = tmp_path / "messy"
    _png(folder / "good.png")
    _png(folder / "ünïcödé ✓.png", value=30)
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(folder / "deep.png")
    _png(folder / "whole.png", size=(64, 64))
    data = (folder / "whole.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    (folder / "whole.png").unlink()
    (folder / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (folder / "loop.png").symlink_to("loop.png")
    (tmp_path / "outside").mkdir()
    _png(tmp_path / "outside" / "x.png")
    (folder / "linked").symlink_to(tmp_path / "outside")
    _png(folder / "Case.png", value=50)
    _png(folder / "case.png", value=60)
    _png(folder / "CON.png", value=70)
    _png(folder / "bell\x07.png", value=80)
    _png(Path(os.fsdecode(bytes(folder) + b"/latin1-\xe9.png")), value=90)
    write_archive(folder / "old.lpk", make_contents(w=1))  # an earlier output: not an input, not bad
    bad = ["zero.png", "text.png", "deep.png", "cut.png", "dangling.png", "loop.png", "linked",
           "case.png", "CON.png", "bell\\x07.png", "latin1-\\xe9.png"]

    archive = tmp_path / "a.lpk"
    result = invoke("compress", folder, "-o", archive, *TINY)
    _clean_error(result, *bad, "--skip-bad")
    assert "good.png" not in result.output and "old.lpk" not in result.output
    assert not archive.exists() and "\x07" not in result.output

    result = invoke("compress", folder, "-o", archive, "--skip-bad", *TINY)
    assert result.exit_code == 0, result.output
    summary = json.loads(invoke("inspect", archive, "--json").stdout)
    assert sorted(s["name"] for s in summary["skipped"]) == sorted(bad)
    assert all(s["reason"] for s in summary["skipped"])
    table = invoke("inspect", archive).output
    assert f"skipped files      {len(bad)}" in table and "latin1-\\xe9.png" in table
    listed = CliRunner().invoke(cli, ["list", str(archive)])
    assert f"{len(bad)} file(s) of the folder were skipped" in listed.stderr
    rows = json.loads(invoke("list", archive, "--json").stdout)
    assert [r["name"] for r in rows] == ["Case.png", "good.png", "ünïcödé ✓.png"]
    out = tmp_path / "out"
    assert invoke("extract", archive, "-o", out).exit_code == 0
    assert sorted(listing(out)) == ["Case.png", "good.png", "ünïcödé ✓.png"]


def test_empty_folder_and_folder_of_only_bad_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _clean_error(invoke("compress", tmp_path / "empty", "-o", tmp_path / "a.lpk", *TINY), "holds no images")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("no")
    _clean_error(invoke("compress", tmp_path / "bad", "-o", tmp_path / "a.lpk", "--skip-bad", *TINY), "x.png")
    assert not (tmp_path / "a.lpk").exists()


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path: Path, monkeypatch) -> None:
    # Tests run as root, where chmod 000 does not stop reading: make listing fail instead.
    folder = tmp_path / "f"
    _png(folder / "ok.png")
    _png(folder / "locked" / "hidden-from-us.png")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    _clean_error(invoke("compress", folder, "-o", tmp_path / "a.lpk", *TINY), "locked", "Permission denied")


def test_decompression_bomb_warning_and_error_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    _png(tmp_path / "warn.png", size=(12, 12))  # 144 > 100: Pillow only warns; we refuse
    _png(tmp_path / "error.png", size=(16, 16))  # 256 > 2 * 100: Pillow refuses
    for name in ("warn.png", "error.png"):
        with pytest.raises(ImageReadError, match="decompression bomb"):
            open_image(tmp_path / name)


def test_truncated_image_is_refused_even_if_someone_allowed_them(tmp_path: Path, monkeypatch) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), "L").save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) * 2 // 3])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageReadError, match="cannot be decoded"):
        open_image(tmp_path / "cut.png")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is put back


def test_identical_tiny_and_large_images_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    rng = np.random.default_rng(3)
    same = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB")
    folder.mkdir()
    same.save(folder / "same1.png")
    same.save(folder / "same2.png")
    Image.new("RGB", (1, 1), (10, 200, 30)).save(folder / "one.png")
    Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8), "RGB").save(folder / "big.png")
    archive = tmp_path / "a.lpk"
    result = invoke("compress", folder, "-o", archive, *TINY)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert invoke("extract", archive, "-o", out).exit_code == 0
    for name in ("same1.png", "same2.png", "one.png", "big.png"):
        a, b = Image.open(folder / name), Image.open(out / name)
        assert (a.size, a.mode, a.format) == (b.size, b.mode, b.format), name
    assert (out / "same1.png").read_bytes() == (out / "same2.png").read_bytes()
