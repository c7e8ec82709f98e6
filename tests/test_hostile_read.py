"""Hostile archives, round two (issue 13): what reading and decoding must refuse, and how.

One error family: a coded stream or count table that does not decode, a mode
this reader cannot write, a palette image without a palette, a latent step
that overflows float32: each is one ``Error:`` line naming the file and the
HDF5 path, from ``extract``, ``verify`` and (for what it checks) ``inspect``;
nothing is written and no numpy RuntimeWarning is printed (every test here
runs with warnings as errors). Archives are built by `archive_factory` or
copied from the committed fixtures and edited with h5py; nothing trains.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from archive_factory import make_contents, with_v11_features  # noqa: E402
from security_cases import palette_bomb  # noqa: E402

from latentpack.cli import cli  # noqa: E402
from latentpack.formats import write_archive  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")  # a RuntimeWarning reaching the user fails the test

FIXTURES = Path(__file__).parent / "data" / "archives"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _fixed(strings: list[bytes]) -> np.ndarray:
    return np.array(strings, dtype=h5py.string_dtype("utf-8", max(len(s) for s in strings)))


def _replace(f: h5py.File, path: str, data) -> None:
    del f[path]
    f.create_dataset(path, data=data)


def _base(kind: str, folder: Path) -> Path:
    path = folder / "hostile.lpk"
    if kind == "coded":
        write_archive(path, with_v11_features(make_contents(w=3)), force=True)
    elif kind == "plain":
        write_archive(path, make_contents(w=3), force=True)
    else:
        shutil.copy(FIXTURES / kind, path)
    return path


def _fill(path: str, value: int) -> Callable[[h5py.File], None]:
    return lambda f: f[path].__setitem__(Ellipsis, value)


#: name -> (base archive, h5py edit, HDF5 path the error names, whether inspect checks it)
CASES = {
    "latent stream": ("coded", _fill("latents/stream", 0xFFFFFFFF), "/latents/stream", True),
    "lossless residual stream": ("v1.1/conv-mixed-lossless.lpk", _fill("lossless/stream", 0xFFFFFFFF),
                                 "/lossless/stream", False),
    "pixel-model stream": ("v1.3/pixels-mixed.lpk", _fill("pixels/stream", 0xFFFFFFFF), "/pixels/stream", False),
    "latent step 1e308": ("coded", lambda f: f["latents"].attrs.__setitem__("step", 1e308), "/latents", True),
    "lossless latent step 1e300": ("v1.1/conv-mixed-lossless.lpk",
                                   lambda f: f["latents"].attrs.__setitem__("step", 1e300), "/latents", True),
    "unknown mode": ("plain", lambda f: _replace(f, "images/modes", _fixed([b"XYZ", b"L", b"L"])), "/images/modes",
                     True),
    "palette image without palette": (
        "plain", lambda f: _replace(f, "images/modes", _fixed([b"P", b"L", b"L"])), "/images/palette_index", True),
    "mode PNG cannot hold": ("plain", lambda f: _replace(f, "images/modes", _fixed([b"CMYK"] * 3)), "/images/formats",
                             False),
}


def _crafted(name: str, folder: Path) -> Path:
    kind, edit, _, _ = CASES[name]
    path = _base(kind, folder)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _one_error_line(result, path: Path, hdf5_path: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Warning" not in result.output, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: {path}: {hdf5_path}: "), result.output


@pytest.mark.parametrize("name", list(CASES))
def test_extract_and_verify_refuse_naming_file_and_path(tmp_path, name):
    path = _crafted(name, tmp_path)
    out = tmp_path / "out"
    _one_error_line(invoke("extract", path, "-o", out), path, CASES[name][2])
    assert not out.exists()  # nothing written, not even the folder
    if name != "mode PNG cannot hold":  # verify writes no file: that mode decodes fine
        _one_error_line(invoke("verify", path), path, CASES[name][2])


@pytest.mark.parametrize("name", [n for n, case in CASES.items() if case[3]])
def test_inspect_refuses_what_extract_would(tmp_path, name):
    path = _crafted(name, tmp_path)
    _one_error_line(invoke("inspect", path), path, CASES[name][2])


@pytest.mark.parametrize("name", [n for n, case in CASES.items() if not case[3]])
def test_inspect_says_which_checks_it_skipped(tmp_path, name):
    path = _crafted(name, tmp_path)
    result = invoke("inspect", path, "--json")
    assert result.exit_code == 0, result.output
    checks = json.loads(result.output)["checks"]
    assert any("largest decoding tensor" in c for c in checks["checked"])
    assert checks["skipped"] and all("verify decodes every image" in s for s in checks["skipped"])
    assert "not checked" in invoke("inspect", path).output


def test_inspect_decodes_the_latent_stream_of_a_good_archive(tmp_path):
    path = _base("coded", tmp_path)
    result = invoke("inspect", path, "--json")
    assert result.exit_code == 0, result.output
    assert any(c.startswith("the latent stream decodes (12 latents") for c in json.loads(result.output)["checks"]["checked"])


def test_zero_image_archive_reads_everywhere(tmp_path):
    path = write_archive(tmp_path / "empty.lpk", make_contents(w=0), force=True)
    text = invoke("inspect", path)
    assert text.exit_code == 0, text.output
    assert "no pixels" in text.output and "images (w)                  0" not in text.output
    assert json.loads(invoke("inspect", path, "--json").output)["formula"]["w"] == 0
    assert invoke("list", path).exit_code == 0
    assert invoke("verify", path).exit_code == 0
    result = invoke("extract", path, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "out").iterdir()) == []


# -- bounded memory: a gzip bomb in an element no image uses --------------------------------------------


_PEAK = """
import resource, sys
from latentpack.cli import main
sys.argv = ["latentpack"] + sys.argv[1:]
try:
    main()
finally:
    print("PEAK_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _peak_run(*args) -> tuple[int, str, int]:
    import os
    import re
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    p = subprocess.run([sys.executable, "-c", _PEAK, *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=120)
    peak = int(re.search(r"PEAK_KIB (\d+)", p.stderr).group(1))
    return p.returncode, p.stderr, peak


def test_gzip_bomb_in_an_unused_element_is_refused_without_being_read(tmp_path):
    path = write_archive(tmp_path / "bomb.lpk", make_contents(w=3), force=True)  # no image uses a palette
    with h5py.File(path, "r+") as f:
        palette_bomb(f, 1 << 30)  # 1 GiB declared in about 1 MiB of file
    assert path.stat().st_size < 4 << 20
    _, _, baseline = _peak_run("list", write_archive(tmp_path / "plain.lpk", make_contents(w=3), force=True))
    for args in (["list", path], ["inspect", path], ["extract", path, "-o", tmp_path / "out"], ["verify", path]):
        code, stderr, peak = _peak_run(*args)
        assert code == 1 and "Traceback" not in stderr, stderr
        assert f"Error: {path}: /images/palettes: declares 1,073,741,824 bytes" in stderr, stderr
        assert peak < baseline + (64 << 10), (args[0], peak, baseline)  # within 64 MiB of a plain list
    assert not (tmp_path / "out").exists()


def test_extract_and_verify_read_only_what_decoding_needs(tmp_path):
    """A damaged training record (not JSON) stops inspect, but extract and verify never read it."""
    path = write_archive(tmp_path / "a.lpk", make_contents(w=3), force=True)
    with h5py.File(path, "r+") as f:
        _replace(f, "training/config", _fixed([b"{not json"]).reshape(()))
    _one_error_line(invoke("inspect", path), path, "/training/config")
    result = invoke("extract", path, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").rglob("*.png"))) == 3
    assert invoke("verify", path).exit_code == 0


# -- strict spec: attribute types and Fletcher-32 as FORMAT.md gives them ----------------------------------

STRICT = {
    "int32 where int64": (lambda f: f["header"].attrs.__setitem__("w", np.int32(3)), "/header", "expected int64"),
    "uint64 where int64": (lambda f: f["header"].attrs.__setitem__("y", np.uint64(4)), "/header", "expected int64"),
    "float32 where float64": (lambda f: f["quality"].attrs.__setitem__("mean_psnr", np.float32(f["quality"].attrs["mean_psnr"])),
                              "/quality", "expected float64"),
    "int8 where bool": (lambda f: f["header"].attrs.__setitem__("beats_raw", np.int8(0)), "/header", "expected bool"),
    "weight without Fletcher-32": (
        lambda f: _replace(f, "decoder/layers/g_s_out/bias", f["decoder/layers/g_s_out/bias"][()]),
        "/decoder/layers/g_s_out/bias", "Fletcher-32"),
    "latent values without Fletcher-32": (
        lambda f: _replace(f, "latents/values", f["latents/values"][()]), "/latents/values", "Fletcher-32"),
}


@pytest.mark.parametrize("name", list(STRICT))
def test_reader_accepts_only_what_the_format_allows(tmp_path, name):
    edit, hdf5_path, reason = STRICT[name]
    path = write_archive(tmp_path / "a.lpk", make_contents(w=3), force=True)
    with h5py.File(path, "r+") as f:
        edit(f)
    for command in ("inspect", "list"):
        result = invoke(command, path)
        _one_error_line(result, path, hdf5_path)
        assert reason in result.output, result.output


def test_coded_stream_without_fletcher32_is_refused(tmp_path):
    path = _base("coded", tmp_path)
    with h5py.File(path, "r+") as f:
        _replace(f, "latents/stream", f["latents/stream"][()])
    result = invoke("list", path)
    _one_error_line(result, path, "/latents/stream")
    assert "Fletcher-32" in result.output


def test_latentpack_open_names_the_file_of_a_stream_that_does_not_decode(tmp_path):
    import latentpack
    from latentpack.formats import CorruptArchiveError

    path = _crafted("latent stream", tmp_path)
    archive = latentpack.open(path)
    with pytest.raises(CorruptArchiveError, match=f"^{path}: /latents/stream: the latent stream cannot be decoded"):
        archive[0]


def test_the_reader_itself_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    # what the commands check first, the reader checks again after its own non-blocking open, and HDF5
    # then reads that open file (/proc/self/fd): a FIFO swapped in after any check cannot block it
    import subprocess
    import sys

    fifo = tmp_path / "a.lpk"
    os.mkfifo(fifo)
    code = ("import sys\nfrom latentpack.formats.reader import Archive\n"
            "try:\n    Archive(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    run = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert "NotRegularFileError" in run.stdout and "FIFO" in run.stdout.upper(), run.stdout + run.stderr
