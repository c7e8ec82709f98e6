"""Two TF_CONFIG workers with one core each against one worker with both cores: training time, PSNR, size.

    python examples/workers_benchmark.py /tmp/mnist-png --count 10000 --epochs 20

--count PNGs of FOLDER, evenly spread over its sorted paths (for the MNIST
digits that ``examples/mnist_to_png.py`` writes: every class), are copied to a temporary folder, then
compressed with the same options three ways:

- **1 worker, 2 cores**: ``taskset -c 0,1``, TensorFlow's default threads;
- **1 worker, 1 core**: ``taskset -c 0`` with one intra-op and one
  inter-op thread (what each worker of the next row has);
- **2 workers, 1 core each**: ``taskset -c 0`` and ``taskset -c 1``, one
  intra-op and one inter-op thread each (``TF_NUM_INTRAOP_THREADS``,
  ``TF_NUM_INTEROP_THREADS``), ``TF_CONFIG`` on two loopback ports.

It prints a Markdown table: the training time the archive records, the whole
command's wall time (the chief's, start-up and encoding included), the mean
PSNR and the archive's bytes. Linux only (taskset).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def _copy_subset(source: Path, count: int, target: Path) -> None:
    every = sorted(p for p in source.rglob("*.png"))
    if len(every) < count:
        sys.exit(f"{source} has {len(every)} PNG files, fewer than --count {count}")
    files = [every[i * len(every) // count] for i in range(count)]  # spread over the sorted paths (every class)
    for p in files:
        dest = target / p.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run(cores: list[str], folder: Path, archive: Path, options: list[str], env_extra: dict[str, str]) -> float:
    """Run one compress per entry of ``cores`` (several: a TF_CONFIG cluster); the chief's wall seconds."""
    addresses = [f"127.0.0.1:{p}" for p in _free_ports(len(cores))]
    procs, start = [], time.perf_counter()
    for k, core in enumerate(cores):
        env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
        if len(cores) > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": k}})
        cmd = ["taskset", "-c", core, sys.executable, "-m", "latentpack", "compress", str(folder), "-o", str(archive),
               "-q", "--force", *options]
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [p.wait() for p in procs]
    if any(codes):
        sys.exit(f"a worker failed: exit codes {codes}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--args", default="", help="more compress options, one string")
    a = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from latentpack.formats.reader import read_archive

    options = ["--epochs", str(a.epochs), *shlex.split(a.args)]
    rows = [("1 worker, 2 cores", ["0,1"], {}), ("1 worker, 1 core, 1 thread", ["0"], ONE_THREAD),
            ("2 workers, 1 core and 1 thread each", ["0", "1"], ONE_THREAD)]
    print(f"`python examples/workers_benchmark.py {a.folder} --count {a.count} --epochs {a.epochs}"
          + (f" --args {shlex.quote(a.args)}" if a.args else "") + "`\n")
    print("| run | training (s) | s per step | command wall (s) | mean PSNR (dB) | archive bytes | replicas |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        _copy_subset(a.folder, a.count, folder)
        for name, cores, env in rows:
            archive = Path(tmp) / "a.lpk"
            wall = _run(cores, folder, archive, options, env)
            contents = read_archive(archive)
            t = contents.training
            steps = t["epochs"] * t["steps_per_epoch"]
            print(f"| {name} | {t['timings']['train']:.1f} | {t['timings']['train'] / steps:.4f} | {wall:.1f} | "
                  f"{contents.quality.mean_psnr:.2f} | {archive.stat().st_size:,} | {t.get('replicas', 1)} |",
                  flush=True)


if __name__ == "__main__":
    main()
