"""Attack latentpack with hostile archives and kills, and print the figures the README quotes.

    PYTHONPATH=. python examples/fuzz_report.py [--fuzz 2000] [--kills 10] [--races 10] [--seed 0]

Runs, with larger counts than the test suite (tests/test_security.py):

* every crafted archive of tests/security_cases.py through ``extract``
  (library and CLI, with and without ``--force``), ``inspect`` and ``list``;
* ``--fuzz`` hypothesis-generated mutations of a valid archive, each read,
  validated and extracted into its own ``out/``;
* ``--kills`` runs of ``python -m latentpack compress --force`` killed with
  SIGKILL at stratified random moments, plus one kill at each stage of an
  archive write;
* ``--races`` extractions of 3,000 tiny files while a thread swaps the
  folder they go to for a symlink (and back, every other run).

Prints one line per figure and the command that produced them; exits 1 if
any attack got through.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from click.testing import CliRunner  # noqa: E402
from security_cases import CRAFTED, craft, fuzz_archives, kill_compress, listing, swap_races  # noqa: E402

from latentpack.cli import cli  # noqa: E402
from latentpack.ops.extract import extract_archive  # noqa: E402


def crafted(root: Path) -> tuple[int, list[str]]:
    """Every crafted archive must give its error, name its HDF5 path, and write nothing."""
    problems = []
    for name, case in CRAFTED.items():
        folder = Path(tempfile.mkdtemp(dir=root))
        archive = craft(name, folder)
        out = folder / "out"
        if case.prepare:
            case.prepare(out)
        before = listing(folder)
        try:
            extract_archive(archive, out)
            problems.append(f"{name}: extracted")
        except case.error as err:
            if case.where not in str(err):
                problems.append(f"{name}: message lacks {case.where}: {err}")
        except Exception as err:  # noqa: BLE001
            problems.append(f"{name}: {type(err).__name__}: {err}")
        for args in (["extract", archive, "-o", out], ["extract", archive, "-o", out, "--force"], ["inspect", archive],
                     ["list", archive]):
            result = CliRunner().invoke(cli, [str(a) for a in args])
            if result.exception and not isinstance(result.exception, SystemExit):
                problems.append(f"{name}: {args[0]} raised {result.exception!r}")
            elif args[0] == "extract" and (result.exit_code != 1 or "Error: " not in result.output):
                problems.append(f"{name}: {args[0]} exit {result.exit_code}")
        if listing(folder) != before:
            problems.append(f"{name}: something was written")
    return len(CRAFTED), problems


def staged_kills(root: Path) -> tuple[int, list[str]]:
    """SIGKILL inside write_archive at each stage; the target must be the old or the new archive."""
    stages = {
        "while writing HDF5": "w.PROGRESS_IMAGES = 1; progress = die",
        "before read-back": "w._read_back = lambda *a: die()",
        "before rename": "os.replace = lambda *a: die()",
        "after rename": "real = os.replace; os.replace = lambda *a: (real(*a), die())",
    }
    problems = []
    for stage, patch in stages.items():
        folder = Path(tempfile.mkdtemp(dir=root))
        code = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT / 'tests')!r})
from archive_factory import make_contents
from latentpack.formats import writer as w
def die(*a):
    os.kill(os.getpid(), signal.SIGKILL)
w.write_archive({str(folder / 'a.lpk')!r}, make_contents(w=2, seed=1))
progress = None
{patch}
w.write_archive({str(folder / 'a.lpk')!r}, make_contents(w=5, seed=2), force=True, progress=progress)
"""
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        from latentpack.formats import ArchiveError, read_header

        try:
            w = read_header(folder / "a.lpk").w
            if proc.returncode != -signal.SIGKILL or w not in (2, 5):
                problems.append(f"{stage}: rc {proc.returncode}, w {w}")
        except ArchiveError as err:
            problems.append(f"{stage}: {err}")
    return len(stages), problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz", type=int, default=2000, help="fuzzed archives (default 2000)")
    parser.add_argument("--kills", type=int, default=10, help="random SIGKILLs of compress (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--races", type=int, default=10,
                        help="extractions of 3,000 files while OUT/sub is swapped for a symlink (default 10)")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="latentpack-fuzz-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        n, problems = crafted(root)
        print(f"crafted archives tried: {n}; got through: {len(problems)}  ({time.perf_counter() - t:.0f} s)")
        for p in problems:
            print("  ", p)
        ok &= not problems

        t = time.perf_counter()
        try:
            report = fuzz_archives(args.fuzz, root)
            print(f"fuzzed archives tried: {report.tried} ({report.kinds}); read cleanly: {report.clean}, "
                  f"refused: {report.refused}; unexpected exceptions: {len(report.unexpected)}; "
                  f"writes outside the target folder: {len(report.outside_writes)}  ({time.perf_counter() - t:.0f} s)")
        except AssertionError as err:
            print(f"fuzzing found a problem: {err}")
            ok = False

        if args.races:
            t = time.perf_counter()
            race = swap_races(args.races, 3000, root / "races")
            print(f"extractions of 3,000 files with OUT/sub swapped for a symlink: {race.tried} ({race.swaps} swaps); "
                  f"stopped cleanly: {race.stopped}, completed: {race.completed}; files written through the "
                  f"symlink: {race.through_symlink}; files left by a stopped run: {race.left_behind}; unexpected: "
                  f"{len(race.unexpected)}  ({time.perf_counter() - t:.0f} s)")
            for p in race.unexpected:
                print("  ", p)
            ok &= not (race.unexpected or race.through_symlink or race.left_behind)

        t = time.perf_counter()
        n, problems = staged_kills(root)
        kills = kill_compress(args.kills, root / "kills", seed=args.seed) if args.kills else None
        if kills:
            print(f"compress runs killed with SIGKILL: {kills.tried} at random moments (+{kills.finished} finished "
                  f"before their kill; a full run took {kills.full_run_s:.1f} s) and {n} at each stage of a write; "
                  f"corrupt archives at the target path: {len(kills.corrupt) + len(problems)} "
                  f"(target kept the previous archive {kills.previous} times, held a new complete one "
                  f"{kills.replaced} times); stray non-hidden files: {len(kills.stray)}  "
                  f"({time.perf_counter() - t:.0f} s)")
            ok &= not (kills.corrupt or kills.stray or problems)
        for p in problems + (kills.corrupt + kills.stray if kills else []):
            print("  ", p)
    print(f"command: PYTHONPATH=. python examples/fuzz_report.py --fuzz {args.fuzz} --kills {args.kills} "
          f"--races {args.races} --seed {args.seed}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
