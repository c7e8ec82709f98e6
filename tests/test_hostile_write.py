"""Hostile file systems and inputs, round two (issue 13): races while extracting, multi-frame images.

Race-free extraction: while thousands of tiny files are written under
``OUT/sub``, a thread keeps swapping ``OUT/sub`` for a symlink to another
folder (and back). No write may ever land in the symlink's target; a run
either completes into the real folder or stops with `OutputChangedError` and
leaves no file behind.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from latentpack.cli import cli  # noqa: E402
from latentpack.fs.held import OutputChangedError  # noqa: E402
from latentpack.fs.output import OutputFolder, check_targets  # noqa: E402

FILES = 3000
RUNS = 5


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


class Swapper(threading.Thread):
    """Swap ``out/sub`` for a symlink to ``elsewhere`` and back, over and over, until stopped."""

    def __init__(self, out: Path, elsewhere: Path, restore: bool):
        super().__init__(daemon=True)
        self.sub, self.real, self.elsewhere, self.restore = out / "sub", out / "sub.real", elsewhere, restore
        self.stop, self.swaps = threading.Event(), 0

    def run(self) -> None:
        while not self.stop.is_set() and not self.sub.is_dir():
            time.sleep(0.0002)
        while not self.stop.is_set():
            try:
                os.rename(self.sub, self.real)
                os.symlink(self.elsewhere, self.sub)
                self.swaps += 1
                time.sleep(0.001)
                if not self.restore:
                    return
                os.unlink(self.sub)
                os.rename(self.real, self.sub)
                time.sleep(0.001)
            except OSError:  # the run rolled back (sub gone): nothing left to swap
                time.sleep(0.0005)

    def finish(self) -> None:
        """Stop, and put the real folder back at its name if the symlink is there."""
        self.stop.set()
        self.join(5)
        if self.sub.is_symlink():
            self.sub.unlink()
        if self.real.is_dir():
            os.rename(self.real, self.sub)


def _files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, fs in os.walk(root) for f in fs]  # os.walk follows no symlink


@pytest.mark.parametrize("restore", [True, False], ids=["swap-and-back", "swap-once"])
def test_a_folder_swapped_for_a_symlink_never_redirects_a_write(tmp_path, restore):
    names = [f"sub/f{i:05d}.txt" for i in range(FILES)]
    stopped = 0
    for run in range(RUNS):
        out, elsewhere = tmp_path / f"out{run}", tmp_path / f"elsewhere{run}"
        elsewhere.mkdir()
        root = check_targets("test", out, names, range(FILES), force=False)
        swapper = Swapper(out, elsewhere, restore)
        swapper.start()
        try:
            with OutputFolder(out, root, names) as folder:
                for i in range(FILES):
                    folder.write(i, b"%d" % i)
        except OutputChangedError as err:
            stopped += 1
            assert "swapped" in str(err) or "not a plain folder" in str(err), str(err)
            swapper.finish()
            assert _files(tmp_path / f"out{run}") == []  # rolled back: every file written is gone
        else:
            swapper.finish()
            written = sorted(p.name for p in _files(out))
            assert written == [n.split("/")[1] for n in names]
        assert os.listdir(elsewhere) == []  # never a write through the symlink
    assert stopped >= 1  # the race was really run: at least one run met a swapped folder


def test_extract_stops_cleanly_when_its_folder_is_swapped(tmp_path, monkeypatch):
    """Through the command: one Error: line naming the folder, exit 1, nothing left, nothing outside."""
    sys.path.insert(0, str(Path(__file__).parent))
    from archive_factory import make_contents

    from latentpack.formats import write_archive
    from latentpack.fs import held

    contents = make_contents(w=3)
    contents.images.names[:] = ["sub/a.png", "sub/b.png", "sub/c.png"]
    archive = write_archive(tmp_path / "a.lpk", contents, force=True)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    real_write = held.HeldTree.write

    def write_then_swap(self, name, data, mode):  # the attacker strikes right after the first file
        real_write(self, name, data, mode)
        if not (out / "sub.real").exists():
            os.rename(out / "sub", out / "sub.real")
            os.symlink(elsewhere, out / "sub")

    monkeypatch.setattr(held.HeldTree, "write", write_then_swap)
    result = invoke("extract", archive, "-o", out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {out / 'sub'}: was swapped while extracting")
    assert os.listdir(elsewhere) == [] and _files(out) == []
