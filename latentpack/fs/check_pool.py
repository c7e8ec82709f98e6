"""The folder's first pass on every core: each file opened, decoded and checked in worker processes.

    names -> chunks of `CHUNK` paths -> worker processes (forked while this process runs one thread and has not
             imported TensorFlow; otherwise none: spawning would re-run a caller's script without a main guard)
          -> per file: ("ok", metadata) | ("bad", reason) | ("unreadable", reason), in the folder's order

Decoding a small image costs Pillow about half a millisecond of Python, so a
folder of 70,000 digits took 34 s on one core; the checks that depend on the
other names (letter-case clashes, unsafe names) stay in the calling process
(`latentpack.fs.folder`), which keeps the outcome identical to one process's.
Folders under `PARALLEL_FROM` files, machines with one core, and callers
that run threads or TensorFlow already, are checked in this process.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable, Iterator, Sequence

from latentpack.fs.images import ImageReadError, open_image

__all__ = ["CHUNK", "PARALLEL_FROM", "check_path", "checked_paths", "workers_for"]

#: Files per task sent to a worker (its results come back together).
CHUNK = 256
#: Folders with fewer files are checked in this process.
PARALLEL_FROM = 4096
#: Most worker processes (each holds numpy and Pillow, about 50 MB).
MAX_WORKERS = 8

#: What `check_path` returns: (kind, value); kind is ``ok`` (value: the image's metadata tuple),
#: ``bad`` (value: why it cannot be used) or ``unreadable`` (value: the system's reason).
Outcome = tuple[str, object]


def check_path(path: str) -> Outcome:
    """Open and check one file: its metadata (mode, format, height, width, channels, natural mode, palette,
    sha256, bytes on disk), or why it cannot be used."""
    try:
        if os.path.islink(path) and os.path.isdir(path):
            return "bad", "is a folder reached through a symlink (symlinked folders are not followed)"
        if os.path.isdir(path):  # os.walk could not list it: say why
            with os.scandir(path):
                pass
            return "bad", "is a folder that could not be listed"
        im = open_image(path)
        return "ok", (im.mode, im.format, im.height, im.width, im.channels, im.natural_mode, im.palette,
                      im.sha256, os.stat(path).st_size)
    except ImageReadError as exc:
        return "bad", str(exc)
    except OSError as exc:
        return "unreadable", f"cannot be read: {exc.strerror or exc}"


def _check_chunk(paths: Sequence[str]) -> list[Outcome]:
    return [check_path(p) for p in paths]


def _worker_signals() -> None:
    """A worker leaves Ctrl-C to the parent (which stops the pool) and dies quietly of SIGTERM and SIGHUP
    (the parent's handlers, inherited, would raise in it): no traceback from each worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


def workers_for(files: int) -> int:
    """How many worker processes check ``files`` files here (0: this process checks them)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    forkable = "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
    if files < PARALLEL_FROM or cores < 2 or not forkable or "tensorflow" in sys.modules:
        return 0
    return min(cores, MAX_WORKERS, -(-files // CHUNK))


def checked_paths(paths: Iterable[str], count: int) -> Iterator[Outcome]:
    """`check_path` of each of the ``count`` ``paths``, in order: in worker processes when `workers_for`
    says so, a few chunks in flight at a time (the paths are made as they are sent)."""
    workers = workers_for(count)
    if not workers:
        yield from map(check_path, paths)
        return
    paths = iter(paths)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_signals)
    try:
        pending: deque = deque()
        while True:
            while len(pending) < 2 * workers:
                chunk = list(itertools.islice(paths, CHUNK))
                if not chunk:
                    break
                pending.append(pool.submit(_check_chunk, chunk))
            if not pending:
                return
            yield from pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
