"""Hostile archives and odd files, round two (issue 13): special files, self-destruction, signals, escapes.

Each test is one attack from outside: a FIFO, socket or device where a file
is expected, an archive that names itself as an image, a signal mid-run, a
string that drives the terminal, a closed pipe, an output path that cannot be
written. Archives come from `archive_factory` (no training), but for one
`compress --skip-bad` of two tiny images.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from archive_factory import make_contents  # noqa: E402

from latentpack.cli import cli  # noqa: E402
from latentpack.formats import write_archive  # noqa: E402
from latentpack.fs import special  # noqa: E402
from latentpack.fs.folder import BadImagesError, read_folder  # noqa: E402
from latentpack.fs.names import CONTROLS, UnsafeNameError, check_name  # noqa: E402
from latentpack.fs.special import NotRegularFileError, open_regular  # noqa: E402
from latentpack.ops import compress as compress_module  # noqa: E402
from latentpack.ops.extract import extract_archive  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
TINY = ["--epochs", "1", "-y", "2", "--filters", "2", "--batch-size", "4"]
_RAW = re.compile(f"[{CONTROLS}]")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: SIGALRM interrupts a blocking open() of a FIFO."""
    def expire(signum, frame):
        raise TimeoutError(f"blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _clean_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Error: " in result.output and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


def _archive(path: Path, names: list[str] | None = None, **changes) -> Path:
    """A small valid archive (no training), its names and root strings replaced as asked."""
    contents = make_contents(w=len(names) if names else 3)
    if names:
        contents = dataclasses.replace(contents, images=dataclasses.replace(contents.images, names=names))
    return write_archive(path, dataclasses.replace(contents, **changes))


def _one_image_folder(folder: Path, name: str = "a.png") -> Path:
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(folder / name, format="PNG")
    return folder


def _special_files(folder: Path) -> dict[str, str]:
    """A FIFO, a socket, a symlink to /dev/null (and as root a real device node) in ``folder``: name -> kind."""
    made = {}
    os.mkfifo(folder / "fifo.png")
    made["fifo.png"] = "FIFO"
    if len(os.fsencode(folder / "sock.png")) < 100:  # AF_UNIX path limit
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(folder / "sock.png"))
        made["sock.png"] = "socket"
    (folder / "null.png").symlink_to("/dev/null")
    made["null.png"] = "character device"
    with contextlib.suppress(PermissionError, OSError):
        os.mknod(folder / "zero.png", 0o644 | stat.S_IFCHR, os.makedev(1, 5))
        made["zero.png"] = "character device"
    return made


# -- 1. special files ------------------------------------------------------------------


def test_special_files_in_the_folder_are_listed_by_name_and_never_block(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8), "L").save(folder / f"ok{i}.png")
    made = _special_files(folder)
    with deadline(30):
        with pytest.raises(BadImagesError) as info:
            read_folder(folder)
        bad = dict(info.value.bad)
        assert set(bad) == set(made), bad
        for name, kind in made.items():
            assert kind in bad[name] and "not a regular file" in bad[name], bad
        staged = read_folder(folder, skip_bad=True)
        assert [im.name for im in staged.images] == ["ok0.png", "ok1.png"]
        assert {name for name, _ in staged.skipped} == set(made)
        staged.close()
        result = invoke("compress", folder, "-o", tmp_path / "a.lpk")
    _clean_error(result, *made)
    assert not (tmp_path / "a.lpk").exists()


def test_skip_bad_leaves_a_fifo_out_and_records_it(tmp_path: Path) -> None:
    folder = _one_image_folder(tmp_path / "in")
    Image.fromarray(np.full((8, 8), 200, np.uint8), "L").save(folder / "b.png")
    os.mkfifo(folder / "pipe.png")
    with deadline(300):
        result = invoke("compress", folder, "-o", tmp_path / "a.lpk", "--skip-bad", *TINY)
    assert result.exit_code == 0, result.output
    listed = invoke("list", tmp_path / "a.lpk")
    assert listed.exit_code == 0, listed.output
    assert "pipe.png (is a FIFO (named pipe), not a regular file" in listed.stderr, listed.stderr


def test_open_regular_refuses_a_fifo_swapped_in_after_the_stat(tmp_path: Path, monkeypatch) -> None:
    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)
    monkeypatch.setattr(special, "require_regular", lambda path, what="file": None)  # the race: stat saw a file
    with deadline(10), pytest.raises(NotRegularFileError, match="FIFO"):
        open_regular(fifo)


@pytest.mark.parametrize("command", ["extract", "inspect", "list", "verify"])
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_an_archive_that_is_not_a_regular_file_is_one_error_line(command: str, kind: str, tmp_path: Path) -> None:
    archive = tmp_path / "a.lpk"
    if kind == "fifo":
        os.mkfifo(archive)
    else:
        archive.symlink_to("/dev/null")
    extra = ["-o", tmp_path / "out"] if command == "extract" else []
    with deadline(30):
        result = invoke(command, archive, *extra)
    _clean_error(result, "not a regular file", "FIFO" if kind == "fifo" else "character device")
    assert not (tmp_path / "out").exists()


def test_verify_against_a_folder_holding_a_fifo_names_it(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.lpk")
    folder = tmp_path / "originals"
    folder.mkdir()
    os.mkfifo(folder / "img_000.png")
    with deadline(30):
        result = invoke("verify", archive, folder)
    _clean_error(result, "img_000.png", "FIFO")


@pytest.mark.parametrize("kind", ["fifo", "/dev/null"])
def test_compress_output_must_be_a_regular_file_even_with_force(kind: str, tmp_path: Path, monkeypatch) -> None:
    folder = _one_image_folder(tmp_path / "in")
    target = tmp_path / "out.lpk"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target = Path("/dev/null")
    before = os.stat(target)
    monkeypatch.setattr(compress_module, "read_folder", lambda *a, **k: pytest.fail("read the folder first"))
    with deadline(30):
        result = invoke("compress", folder, "-o", target, "--force")
        _clean_error(result, "not a regular file", "even with --force")
        with pytest.raises(NotRegularFileError):  # the library's writer refuses it too
            write_archive(target, make_contents(w=1), force=True)
    after = os.stat(target)
    assert (after.st_ino, after.st_mode, after.st_rdev) == (before.st_ino, before.st_mode, before.st_rdev)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in"] + (["out.lpk"] if kind == "fifo" else []))


# -- 2. no command destroys its own input ----------------------------------------------------


@pytest.mark.parametrize("force", [False, True])
def test_extract_never_writes_over_the_archive_it_reads(force: bool, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    archive = _archive(out / "victim.lpk", ["other.png", "victim.lpk", "z.png"])
    before = archive.read_bytes()
    result = invoke("extract", archive, "-o", out, *(["--force"] if force else []))
    _clean_error(result, "victim.lpk", "is the archive being read")
    assert archive.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["victim.lpk"]  # nothing written, not even other.png


def test_extract_refuses_a_hard_link_or_another_path_to_the_archive(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.lpk", ["sub/x.png", "y.png"])
    before = archive.read_bytes()
    (tmp_path / "out" / "sub").mkdir(parents=True)
    os.link(archive, tmp_path / "out" / "sub" / "x.png")
    with pytest.raises(UnsafeNameError, match="is the archive being read"):
        extract_archive(archive, tmp_path / "out", force=True)
    assert archive.read_bytes() == before and not (tmp_path / "out" / "y.png").exists()


# -- 3. signals ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """An archive of 3,000 tiny images (no training): extracting it takes a few seconds."""
    return write_archive(tmp_path_factory.mktemp("many") / "many.lpk", make_contents(w=3000))


def _default_signals() -> None:
    """In the child: the default action for the signals under test (a run under nohup ignores SIGHUP, and
    latentpack rightly keeps a signal ignored that it was started ignoring)."""
    for signum in _SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


def _signal_when(proc: subprocess.Popen, ready, signum: int, limit: float = 90) -> tuple[str, str]:
    """Send ``signum`` once ``ready()`` holds; the process's (stdout, stderr) once it has ended."""
    end = time.monotonic() + limit
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"ended (rc {proc.returncode}) before it could be signalled: {err[-2000:]}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail("never reached the point to signal")
        time.sleep(0.01)
    proc.send_signal(signum)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"did not stop within 60 s of signal {signum}")


_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.mark.parametrize("signum, after", [pytest.param(s, 2, id=signal.Signals(s).name) for s in _SIGNALS]
                         + [pytest.param(signal.SIGTERM, 600, id="SIGTERM-later")])
def test_a_signal_mid_extract_rolls_back_and_exits_128_plus_n(signum: int, after: int, many: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "latentpack", "extract", str(many), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=_default_signals)

    def started() -> bool:  # ``after`` entries in OUT (about half the files written: the rest are in a subfolder)
        return out.is_dir() and sum(1 for _ in zip(range(after), os.scandir(out))) >= after

    _, err = _signal_when(proc, started, signum)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and "Aborted!" not in err, err
    assert f"Interrupted ({signal.Signals(signum).name})" in err, err
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))[:10]  # every file and folder it made removed


_SLOW_COMPRESS = """
import sys, time
sys.path.insert(0, {tests!r})
from archive_factory import make_contents
from latentpack.formats import writer
from latentpack.ops import compress
real = writer._write
def slow(f, contents, progress):
    real(f, contents, progress)
    time.sleep(120)  # the temporary archive exists, written in full but not renamed: signal now
writer._write = slow
compress._autoencoder_contents = lambda run: make_contents(w=2, seed=7)  # no training: this is about the write
sys.argv = ["latentpack", "compress", {folder!r}, "-o", {archive!r}, "--force"]
from latentpack.cli import main
main()
"""


@pytest.mark.parametrize("signum", _SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_mid_compress_keeps_the_old_archive_and_removes_the_temporary(signum: int, tmp_path: Path) -> None:
    folder = _one_image_folder(tmp_path / "in")
    archive = _archive(tmp_path / "a.lpk")
    old = archive.read_bytes()
    code = _SLOW_COMPRESS.format(tests=str(REPO / "tests"), folder=str(folder), archive=str(archive))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, preexec_fn=_default_signals)
    _, err = _signal_when(proc, lambda: any(p.name.startswith(".a.lpk.tmp-") for p in tmp_path.iterdir()), signum)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and "Aborted!" not in err, err
    assert archive.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.lpk", "in"]


# -- 4. output hygiene -------------------------------------------------------------------------

_OSC = "\x1b]52;c;aGVsbG8=\x07"  # an OSC 52 clipboard write
_HOSTILE = {
    "writer": f"latentpack 9{_OSC}\u202e",
    "created": f"2024-01-01{_OSC}",
    "training": {"arch": "dense\x1b[2J", "epochs": 3, "seed": 0, "codes": "x\x9b31m\u2066",
                 "skipped": [{"name": "a\x1b[1m.png", "reason": f"bad\u009d{_OSC}"}]},
}


def _assert_escaped(text: str) -> None:
    raw = sorted({hex(ord(c)) for c in text if _RAW.match(c) and c != "\n"})
    assert raw == [], (raw, text)


def test_strings_from_the_archive_reach_the_terminal_escaped(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.lpk", ["a.png", "b.png", "c.png"], **_HOSTILE)
    for args in (["inspect", archive], ["list", archive], ["verify", archive]):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        _assert_escaped(result.output)
        _assert_escaped(result.stderr)
    assert "\\x1b]52;c;" in invoke("inspect", archive).output
    inspected = json.loads(invoke("inspect", archive, "--json").output)
    assert inspected["writer"] == _HOSTILE["writer"]  # JSON keeps the string, escaped by JSON itself
    _assert_escaped(invoke("inspect", archive, "--json").output)


@pytest.mark.parametrize("name", ["a\x85.png", "evil\u202egnp.exe", "x\u2066y.png", "z\u200f.png", "c1\x9b.png"])
def test_c1_and_bidi_controls_in_names_are_refused_at_compress_and_extract(name: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafeNameError, match="control"):
        check_name(name)
    folder = _one_image_folder(tmp_path / "in", "ok.png")
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(folder / name, format="PNG")
    with pytest.raises(BadImagesError) as info:
        read_folder(folder)
    assert [n for n, _ in info.value.bad] == [name]
    _assert_escaped(str(info.value))
    archive = _archive(tmp_path / "a.lpk", ["ok.png", name, "z.png"])
    listed = invoke("list", archive)
    assert listed.exit_code == 0, listed.output
    assert "\\u" in listed.output or "\\x" in listed.output, listed.output
    _assert_escaped(listed.output)
    result = invoke("extract", archive, "-o", tmp_path / "out")
    _clean_error(result, "control")
    _assert_escaped(result.output)
    assert not (tmp_path / "out").exists()


def test_list_into_a_closed_pipe_ends_quietly(many: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "latentpack", "list", str(many)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`: 3,000 rows do not fit in the pipe
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert first.startswith(b"name")
    assert proc.returncode in (0, 128 + signal.SIGPIPE), err
    assert err == "", err


def test_list_piped_to_head_in_a_shell(many: Path) -> None:
    proc = subprocess.run(["bash", "-c", f'set -o pipefail; "{sys.executable}" -m latentpack list "{many}" | head -1'],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.stdout.startswith("name") and proc.stdout.count("\n") == 1, proc.stdout
    assert proc.stderr == "" and proc.returncode in (0, 128 + signal.SIGPIPE), proc.stderr


# -- 5. output problems before work; file modes -----------------------------------------------------


@pytest.mark.parametrize("case", ["missing", "a file", "read-only"])
def test_compress_output_folder_problems_fail_before_any_work(case: str, tmp_path: Path, monkeypatch,
                                                              request) -> None:
    folder = _one_image_folder(tmp_path / "in")
    parent = tmp_path / "where"
    if case == "a file":
        parent.write_bytes(b"")
    elif case == "read-only":
        parent.mkdir()
        parent.chmod(0o555)
        if os.access(parent, os.W_OK):  # root: modes do not stop it, an immutable folder does
            made = subprocess.run(["chattr", "+i", str(parent)], capture_output=True).returncode == 0
            request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(parent)], capture_output=True))
            if not made or os.access(parent, os.W_OK):
                pytest.skip("cannot make a folder this user cannot write into (root without chattr)")
    monkeypatch.setattr(compress_module, "read_folder", lambda *a, **k: pytest.fail("read the folder first"))
    result = invoke("compress", folder, "-o", parent / "a.lpk")
    _clean_error(result, str(parent), "not writable" if case == "read-only" else "does not exist")


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_extracted_files_follow_the_umask(umask: int, tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.lpk", ["a.png", "sub/b.png", "c.png"])
    old = os.umask(umask)
    try:
        result = extract_archive(archive, tmp_path / "out")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in result.paths}
    assert modes == dict.fromkeys(["a.png", "b.png", "c.png"], 0o666 & ~umask)
