"""Run codecs on one folder and measure each: bytes, quality, time, memory.

    folder -> pick the images (sorted; first N with ``limit``) -> input/ (symlinks)
      for each codec and setting:
        worker: encode input/ -> store/    (child process: wall time, peak RSS)
        bytes = every file under store/
        worker: decode store/ -> restored/ (child process: wall time, peak RSS)
        PSNR of restored/ against the natural pixels of input/, image by image

Every encode and decode runs in a child process of its own
(``python -m latentpack.bench.worker``), so its wall time and peak resident
memory are that codec's alone (the worker reports its own peak, ``VmHWM``,
falling back to ``os.wait4``'s figure where there is no ``/proc``), and
TensorFlow is loaded only where latentpack compresses. Quality is measured in this process, streaming
one image at a time, so no folder is ever held in memory.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

import latentpack
from latentpack.bench.base import Codec
from latentpack.errors import LatentpackError
from latentpack.fs.folder import scan_folder
from latentpack.fs.images import ACCEPTED_FORMATS, ImageReadError, natural_image, natural_pixels, open_image
from latentpack.metrics import psnr

__all__ = ["BenchError", "Measured", "Quality", "Entry", "BenchResult", "run_measured", "select_images",
           "choose_sample", "run_bench"]

Log = Callable[[str], None]


class BenchError(LatentpackError, RuntimeError):
    """The bench cannot run (no images, a work folder in the way, ...)."""


@dataclass
class Measured:
    """One child process: wall time, peak resident memory, exit status."""

    wall_s: float
    peak_rss_mb: float
    exit_code: int


@dataclass
class Quality:
    """PSNR of the restored images against the originals (natural pixels).

    Attributes:
        mean_psnr: Mean over the images that are not exact; None when all are.
        min_psnr: Worst image's PSNR; None when all are exact.
        worst_image: Name of the worst image, or None.
        exact_images: Images restored bit for bit.
        lossless: Every image restored bit for bit.
    """

    mean_psnr: float | None
    min_psnr: float | None
    worst_image: str | None
    exact_images: int
    lossless: bool


@dataclass
class Entry:
    """One codec at one setting, measured (or skipped, or failed)."""

    name: str
    setting: str
    params: dict[str, Any]
    bytes: int | None = None
    files: int | None = None
    bpp: float | None = None
    quality: Quality | None = None
    compress: Measured | None = None
    extract: Measured | None = None
    extract_images_per_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    store: str | None = None
    skipped: str | None = None
    error: str | None = None
    samples: dict[int, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class BenchResult:
    """Everything one bench run measured.

    Attributes:
        folder: The folder benched.
        names: The images benched, in order.
        pixels: Sum of height*width over them (the bpp denominator).
        entries: One per codec and setting, in run order.
        notes: What a reader should know (files skipped, codecs skipped).
        originals: Natural pixels of the sampled images (for a contact sheet).
        workdir: Where the stores were written, when kept.
    """

    folder: str
    names: list[str]
    pixels: int
    entries: list[Entry]
    notes: list[str]
    originals: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    workdir: str | None = None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _max_rss_mb(ru_maxrss: int) -> float:
    # Linux reports KiB, macOS bytes.
    return ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else ru_maxrss / 1024


def run_measured(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> Measured:
    """Run a command as a child process and measure it.

    Peak RSS comes from ``os.wait4``'s resource usage of the child (on Linux
    the largest of the child and the descendants it waited for; note that it
    also counts this process's own size when the child was spawned, which is
    why the bench worker reports its own peak as well).

    Args:
        argv: The command.
        log_path: File that receives its stdout and stderr (appended).
        env: Its environment (default: this process's).
    """
    with open(log_path, "ab") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(wall_s=wall, peak_rss_mb=_max_rss_mb(usage.ru_maxrss), exit_code=proc.returncode)


def _worker_env() -> dict[str, str]:
    """This process's environment, with the running latentpack first on the path."""
    env = dict(os.environ)
    root = str(Path(latentpack.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def select_images(folder: Path, limit: int | None = None) -> tuple[list[tuple[str, Path, int]], list[str]]:
    """The images of a folder in sorted order, with their pixel counts.

    Files that are not images in an accepted format (a README, checksums) are
    left out and named.

    Args:
        folder: The folder (read recursively, hidden files skipped).
        limit: Keep the first ``limit`` images only.

    Returns:
        ([(name, path, height*width)], [names left out]).
    """
    if limit is not None and limit < 1:
        raise ValueError(f"`limit` must be >= 1, got {limit}")
    chosen: list[tuple[str, Path, int]] = []
    left_out: list[str] = []
    for name, path in scan_folder(folder):
        if limit is not None and len(chosen) >= limit:
            break
        try:
            with Image.open(path, formats=ACCEPTED_FORMATS) as image:
                chosen.append((name, path, image.width * image.height))
        except (OSError, SyntaxError, ValueError):
            left_out.append(name)
    return chosen, left_out


def choose_sample(count: int, k: int, seed: int = 0) -> list[int]:
    """``k`` image indices out of ``count``, sorted, chosen by ``seed``."""
    if k < 0:
        raise ValueError(f"`k` must be >= 0, got {k}")
    k = min(k, count)
    return sorted(int(i) for i in np.random.default_rng(seed).choice(count, size=k, replace=False))


def _stage(images: Sequence[tuple[str, Path, int]], target: Path) -> None:
    """Symlink the chosen images under ``target`` with their relative names."""
    for name, path, _ in images:
        link = target / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.realpath(path), link)


def _tree_bytes(root: Path) -> tuple[int, int]:
    """(total bytes, file count) of every file under ``root``."""
    total = count = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_size
            count += 1
    return total, count


def _restored_pixels(path: Path, natural_mode: str) -> np.ndarray:
    """Pixels of a restored file, in the original's natural mode."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with Image.open(path) as image:
        image.load()
        arr, mode = natural_pixels(image)
    if mode != natural_mode:
        arr = np.asarray(natural_image(arr).convert(natural_mode), dtype=np.uint8)
        if arr.ndim == 2:
            arr = arr[:, :, None]
    return arr


def _measure_quality(images: Sequence[tuple[str, Path, int]], restored: Path, suffix: str,
                     sample: Sequence[int], entry: Entry, originals: dict[int, np.ndarray]) -> Quality:
    values = np.empty(len(images), dtype=np.float64)
    keep = set(sample)
    for i, (name, path, _) in enumerate(images):
        original = open_image(path)
        target = restored / (name + suffix)
        if not target.is_file():
            raise BenchError(f"{name}: nothing restored at {target}")
        try:
            pixels = _restored_pixels(target, original.natural_mode)
            values[i] = psnr(original.natural, pixels)
        except (ImageReadError, OSError, ValueError) as exc:
            raise BenchError(f"{name}: restored file cannot be compared: {exc}") from None
        if i in keep:
            entry.samples[i] = pixels
            originals.setdefault(i, original.natural)
    finite = np.isfinite(values)
    exact = int(np.sum(~finite))
    if finite.any():
        worst = int(np.argmin(np.where(finite, values, np.inf)))
        return Quality(float(np.mean(values[finite])), float(values[worst]), images[worst][0], exact, False)
    return Quality(None, None, None, exact, True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9=.]+", "-", text).strip("-") or "default"


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return ""


def _run_entry(codec: Codec, images: Sequence[tuple[str, Path, int]], staged: Path, run_dir: Path,
               result: BenchResult, sampled: Sequence[int], env: dict[str, str], log: Log) -> Entry:
    """Encode, count, decode and compare one codec at one setting (errors land in the entry)."""
    entry = Entry(codec.name, codec.setting, dict(codec.params))
    why = codec.missing() or codec.declines(staged)
    if why:
        entry.skipped = why
        result.notes.append(f"{codec.name} skipped: {why}")
        log(f"skipped ({why})")
        return entry
    store, restored, log_path = run_dir / "store", run_dir / "restored", run_dir / "log.txt"
    store.mkdir(parents=True)
    entry.store = os.path.relpath(store, run_dir.parent)
    params = json.dumps(codec.params)

    def step(name: str, source: Path, target: Path) -> tuple[Measured, dict[str, Any]]:
        report = run_dir / f"{name}.json"
        argv = [sys.executable, "-m", "latentpack.bench.worker", name, codec.name, params, str(source), str(target),
                str(report)]
        measured = run_measured(argv, log_path, env)
        facts: dict[str, Any] = {}
        if measured.exit_code == 0 and report.is_file():
            data = json.loads(report.read_text())
            facts = data.get("facts") or {}
            if data.get("peak_rss_mb") is not None:  # the worker's own figure (see latentpack.bench.worker)
                measured.peak_rss_mb = float(data["peak_rss_mb"])
        return measured, facts

    log(f"compressing {len(images):,} image(s)")
    entry.compress, entry.details = step("encode", staged, store)
    if entry.compress.exit_code != 0:
        entry.error = f"encode failed (exit {entry.compress.exit_code}): {_tail(log_path)}"
        log(entry.error)
        return entry
    entry.bytes, entry.files = _tree_bytes(store)
    entry.bpp = entry.bytes * 8 / result.pixels

    log("extracting")
    entry.extract, _ = step("decode", store, restored)
    if entry.extract.exit_code != 0:
        entry.error = f"decode failed (exit {entry.extract.exit_code}): {_tail(log_path)}"
        log(entry.error)
        return entry
    if entry.extract.wall_s > 0:
        entry.extract_images_per_s = len(images) / entry.extract.wall_s

    try:
        entry.quality = q = _measure_quality(images, restored, codec.restored_suffix, sampled, entry, result.originals)
    except BenchError as exc:
        entry.error = str(exc)
        log(entry.error)
        return entry
    if codec.lossless and not q.lossless:
        result.notes.append(f"{codec.name} claims to be lossless but {len(images) - q.exact_images} image(s) differ")
    shown = "lossless" if q.lossless else f"{q.mean_psnr:.2f} dB mean"
    log(f"{entry.bytes:,} bytes, {entry.bpp:.3f} bpp, {shown}, "
        f"compress {entry.compress.wall_s:.1f}s, extract {entry.extract.wall_s:.1f}s")
    return entry


def run_bench(
    folder: str | os.PathLike,
    codecs: Sequence[Codec],
    *,
    limit: int | None = None,
    workdir: str | os.PathLike | None = None,
    sample: int = 0,
    seed: int = 0,
    log: Log | None = None,
) -> BenchResult:
    """Run every codec on the images of ``folder`` and measure it.

    Args:
        folder: The image folder.
        codecs: The codecs, each at one setting, in run order.
        limit: Bench the first ``limit`` images (sorted by name) only.
        workdir: Where to write each codec's store and restored images; they
            are kept there. Default: a temporary folder, removed afterwards.
        sample: How many images (chosen by ``seed``) keep their original and
            restored pixels in the result, for a contact sheet.
        seed: Chooses the sampled images.
        log: Progress messages (default: stderr).

    Returns:
        The measurements; a codec that fails has ``error`` set and the others
        still run.

    Raises:
        NotADirectoryError: ``folder`` is not a folder.
        BenchError: the folder has no images, or ``workdir`` is not empty.
        ValueError: ``limit`` is below 1 or ``sample`` below 0.
    """
    log = log or _stderr
    folder = Path(folder)
    images, left_out = select_images(folder, limit)
    if not images:
        raise BenchError(f"{folder} holds no images")
    notes = []
    if left_out:
        shown = ", ".join(left_out[:5]) + (f" and {len(left_out) - 5} more" if len(left_out) > 5 else "")
        notes.append(f"left out {len(left_out)} file(s) that are not images: {shown}")
    pixels = int(sum(p for _, _, p in images))
    sampled = choose_sample(len(images), sample, seed)
    keep = workdir is not None
    if keep:
        root = Path(workdir)
        if root.exists() and any(root.iterdir()):
            raise BenchError(f"{root} is not empty (the bench writes its stores there)")
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="latentpack-bench-"))
    result = BenchResult(str(folder), [n for n, _, _ in images], pixels, [], notes, workdir=str(root) if keep else None)
    env = _worker_env()
    try:
        staged = root / "input"
        staged.mkdir()
        _stage(images, staged)
        for k, codec in enumerate(codecs, 1):
            title = f"[{k}/{len(codecs)}] {codec.name} {codec.setting}"
            entry = _run_entry(codec, images, staged, root / f"{k:02d}-{codec.name}-{_slug(codec.setting)}",
                               result, sampled, env, lambda m, t=title: log(f"{t}: {m}"))
            result.entries.append(entry)
            if not keep and entry.store:
                shutil.rmtree(root / Path(entry.store).parent, ignore_errors=True)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return result
