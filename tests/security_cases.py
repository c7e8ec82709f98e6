"""Hostile archives for tests/test_security.py and examples/fuzz_report.py.

Three kinds of attack, each a function that returns counts so the report
script can print them:

* `CRAFTED`: a table of hand-made archives, each breaking one rule, with the
  error it must give and the HDF5 path its message must name;
* `fuzz_archives`: hypothesis mutates a valid archive (flipped bytes,
  overwritten regions, truncation, h5py edits of attributes, datasets, links
  and names) and every outcome must be a clean read or a refusal, with
  nothing written outside the output folder;
* `kill_compress`: ``python -m latentpack compress`` killed with SIGKILL at
  random moments; the target must hold nothing or a complete archive.

Needs h5py, numpy and hypothesis; nothing here imports TensorFlow.
"""
from __future__ import annotations

import faulthandler
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from archive_factory import make_contents  # noqa: E402

from latentpack.ops.extract import extract_archive  # noqa: E402
from latentpack.formats import ArchiveError, CorruptArchiveError, open_archive, write_archive  # noqa: E402
from latentpack.fs.names import UnsafeNameError  # noqa: E402

__all__ = ["CRAFTED", "Crafted", "craft", "fuzz_archives", "kill_compress", "listing", "FuzzReport", "KillReport",
           "Swapper", "swap_races", "RaceReport", "palette_bomb"]

#: The errors a hostile archive may give; anything else is a bug.
REFUSALS = (ArchiveError, UnsafeNameError)
#: Names in the base archive (make_contents(w=3)): img_000.png, "sub dir/é_001.png", img_002.png.
BASE_W = 3


def listing(root: Path) -> dict[str, bytes | str]:
    """Every entry under `root`: files by content, symlinks by target, folders by name."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes()
    return out


# -- crafted archives -----------------------------------------------------------


def _fixed(strings: list[bytes]) -> np.ndarray:
    size = max([len(s) for s in strings] + [1])
    return np.array(strings, dtype=h5py.string_dtype("utf-8", size))


def _replace(f: h5py.File, path: str, data: Any, **kw: Any) -> None:
    del f[path]
    f.create_dataset(path, data=data, **kw)


def _names(*names: str | bytes) -> Callable[[h5py.File, Path], None]:
    """Replace /images/names (keeping w = 3: the rest are made unique and harmless)."""
    raw = [n if isinstance(n, bytes) else n.encode("utf-8") for n in names]
    raw += [f"filler_{i}.png".encode() for i in range(BASE_W - len(raw))]

    def tamper(f: h5py.File, tmp: Path) -> None:
        _replace(f, "images/names", _fixed(raw))

    return tamper


def _architecture(arch: Any) -> Callable[[h5py.File, Path], None]:
    def tamper(f: h5py.File, tmp: Path) -> None:
        _replace(f, "decoder/architecture", _fixed([json.dumps(arch).encode()]).reshape(()))

    return tamper


def _with_layer(layer: dict[str, Any]) -> dict[str, Any]:
    arch = make_contents(w=1).decoder.architecture
    arch["layers"].insert(1, layer)
    return arch


def _symlink_in_out(name: str, target: str) -> Callable[[Path], None]:
    def prepare(out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out.parent / "elsewhere").mkdir(exist_ok=True)
        (out / name).symlink_to(out.parent / "elsewhere" / target if target else out.parent / "elsewhere")

    return prepare


def _external_storage(f: h5py.File, tmp: Path) -> None:
    n = f["latents/values"].shape[0]
    del f["latents/values"]
    f.create_dataset("latents/values", shape=(n,), dtype=np.float32, external=[("/etc/passwd", 0, 4 * n)])


def _external_link(f: h5py.File, tmp: Path) -> None:
    with h5py.File(tmp / "other.h5", "w") as other:
        other["v"] = f["latents/values"][()]
    del f["latents/values"]
    f["latents"]["values"] = h5py.ExternalLink(str(tmp / "other.h5"), "/v")


def _virtual(f: h5py.File, tmp: Path) -> None:
    n = f["latents/values"].shape[0]
    with h5py.File(tmp / "src.h5", "w") as src:
        src["v"] = f["latents/values"][()]
    layout = h5py.VirtualLayout(shape=(n,), dtype=np.float32)
    layout[:] = h5py.VirtualSource(str(tmp / "src.h5"), "v", shape=(n,))
    del f["latents/values"]
    f["latents"].create_virtual_dataset("values", layout)


def _set_header(f: h5py.File, **values: int) -> None:
    for name, value in values.items():
        f["header"].attrs[name] = np.int64(value)


def _huge_pixels(f: h5py.File, tmp: Path) -> None:
    """240 images of 65535 x 65535: 1.03e12 pixels, header made consistent."""
    w = f["images/shapes"].shape[0]
    _replace(f, "images/shapes", np.tile(np.array([[65535, 65535, 1]], np.int32), (w, 1)))
    x_bits = w * 65535 * 65535 * 8
    _set_header(f, x_bits=x_bits)
    f["header"].attrs["beats_raw"] = np.bool_(int(f["header"].attrs["lhs_bits"]) < x_bits)


def _huge_decode(f: h5py.File, tmp: Path) -> None:
    """Four weightless UpSampling2D(8) layers: a 4x6 image's latent decodes to 16384 x 24576 x 4 values."""
    arch = json.loads(f["decoder/architecture"][()].decode())
    ups = [{"name": f"up{i}", "type": "UpSampling2D", "config": {"size": [8, 8]}} for i in range(4)]
    arch["layers"][1:1] = ups
    _replace(f, "decoder/architecture", _fixed([json.dumps(arch).encode()]).reshape(()))


@dataclass
class Crafted:
    """One hand-made hostile archive.

    Attributes:
        tamper: Edits the base archive with h5py (``(file, tmp_dir)``).
        error: The exception `extract` must raise.
        where: A string the message must hold (the HDF5 path).
        prepare: Sets up the output folder first (symlinks planted there).
        base: ``(w, arch)`` of the base archive.
        reader: Whether reading alone (``inspect``) must refuse it too.
        source: Writes the base archive into a folder instead (a fixture copy, coded latents).
    """

    tamper: Callable[[h5py.File, Path], None]
    error: type
    where: str
    prepare: Callable[[Path], None] | None = None
    base: tuple[int, str] = (BASE_W, "dense")
    reader: bool = True
    source: Callable[[Path], Path] | None = None


def _coded_base(folder: Path) -> Path:
    from archive_factory import with_v11_features

    return write_archive(folder / "crafted.lpk", with_v11_features(make_contents(w=BASE_W)), force=True)


def _fixture_base(name: str) -> Callable[[Path], Path]:
    def source(folder: Path) -> Path:
        return Path(shutil.copy(HERE / "data" / "archives" / name, folder / "crafted.lpk"))

    return source


def _fill(path: str, value: int) -> Callable[[h5py.File, Path], None]:
    return lambda f, t: f[path].__setitem__(Ellipsis, value)


def _modes(*modes: bytes) -> Callable[[h5py.File, Path], None]:
    return lambda f, t: _replace(f, "images/modes", _fixed(list(modes) + [b"L"] * (BASE_W - len(modes))))


def palette_bomb(f: h5py.File, declared: int) -> None:
    """Replace /images/palettes by `declared` bytes of zeros, deflated chunk by chunk (about 1 KiB a MiB).

    No image uses a palette in `make_contents`: a bomb in an element nothing needs.
    """
    import zlib

    rows = 1024  # 1 MiB chunks of (1024, 256, 4) uint8
    chunk = zlib.compress(bytes(rows * 256 * 4), 9)
    del f["images/palettes"]
    ds = f["images"].create_dataset("palettes", shape=(declared // 1024, 256, 4), dtype=np.uint8,
                                    chunks=(rows, 256, 4), compression="gzip")
    for start in range(0, declared // 1024, rows):
        ds.id.write_direct_chunk((start, 0, 0), chunk)


_LOSSLESS = _fixture_base("v1.1/conv-mixed-lossless.lpk")
_PIXELS = _fixture_base("v1.3/pixels-mixed.lpk")


_KERAS_LAMBDA = {
    "class_name": "Lambda",
    "config": {"name": "evil", "function": ["<base64 of marshalled code>", None, None], "function_type": "lambda", "arguments": {}},
}

CRAFTED: dict[str, Crafted] = {
    # names: the reader's format rules, then extraction's stricter rules
    "absolute name": Crafted(_names("/etc/cron.d/x"), CorruptArchiveError, "/images/names"),
    "dot-dot name": Crafted(_names("../../x.png"), CorruptArchiveError, "/images/names"),
    "dot-dot inside": Crafted(_names("a/../../x.png"), CorruptArchiveError, "/images/names"),
    "drive letter": Crafted(_names("C:/Windows/x.png"), UnsafeNameError, "/images/names", reader=False),
    "drive relative": Crafted(_names("C:x.png"), UnsafeNameError, "/images/names", reader=False),
    "UNC path": Crafted(_names("//server/share/x.png"), CorruptArchiveError, "/images/names"),
    "backslash": Crafted(_names("a\\..\\..\\x.png"), CorruptArchiveError, "/images/names"),
    "NUL byte": Crafted(_names("a\x00b.png"), CorruptArchiveError, "/images/names"),
    "escape sequence": Crafted(_names("a\x1b]0;pwned\x07.png"), UnsafeNameError, "/images/names", reader=False),
    "newline": Crafted(_names("a\nb.png"), UnsafeNameError, "/images/names", reader=False),
    "empty name": Crafted(_names(b""), CorruptArchiveError, "/images/names"),
    "invalid UTF-8": Crafted(_names(b"\xff\xfe.png"), CorruptArchiveError, "/images/names"),
    "device CON": Crafted(_names("CON"), UnsafeNameError, "/images/names", reader=False),
    "device nul.png": Crafted(_names("sub/nul.png"), UnsafeNameError, "/images/names", reader=False),
    "device COM1": Crafted(_names("com1.tar.png"), UnsafeNameError, "/images/names", reader=False),
    "trailing dot": Crafted(_names("x.png."), UnsafeNameError, "/images/names", reader=False),
    "trailing space": Crafted(_names("dir /x.png"), UnsafeNameError, "/images/names", reader=False),
    "long component": Crafted(_names("a" * 300 + ".png"), UnsafeNameError, "/images/names", reader=False),
    "long name": Crafted(_names("/".join(["d" * 200] * 25)), CorruptArchiveError, "/images/names"),
    "duplicate": Crafted(_names("x.png", "x.png"), CorruptArchiveError, "/images/names"),
    "case clash": Crafted(_names("x.png", "X.PNG"), UnsafeNameError, "/images/names", reader=False),
    "unicode form clash": Crafted(_names("\u00e9.png", "e\u0301.png"), UnsafeNameError, "/images/names", reader=False),
    "file and folder": Crafted(_names("a.png", "a.png/b.png"), UnsafeNameError, "/images/names", reader=False),
    "case clash in a folder": Crafted(_names("d/x.png", "D/x.png"), UnsafeNameError, "/images/names", reader=False),
    "unicode clash in a folder": Crafted(
        _names("caf\u00e9/x.png", "cafe\u0301/x.png"), UnsafeNameError, "/images/names", reader=False
    ),
    "file and grandparent folder": Crafted(_names("a/b/c.png", "A"), UnsafeNameError, "/images/names", reader=False),
    "symlink escape": Crafted(
        _names("link/x.png"), UnsafeNameError, "/images/names", prepare=_symlink_in_out("link", ""), reader=False
    ),
    "target is a symlink": Crafted(
        _names("img_000.png"), UnsafeNameError, "/images/names", prepare=_symlink_in_out("img_000.png", "victim.png"),
        reader=False,
    ),
    # sizes and counts
    "10^12 pixels": Crafted(_huge_pixels, CorruptArchiveError, "/images/shapes", base=(240, "dense")),
    "decoder needs 1.6e9 values": Crafted(_huge_decode, ArchiveError, "/latents/shapes", base=(BASE_W, "conv")),
    "image bigger than side limit": Crafted(
        lambda f, t: f["images/shapes"].__setitem__(0, [70000, 14, 1]), CorruptArchiveError, "/images/shapes"
    ),
    "latents too short": Crafted(
        lambda f, t: _replace(f, "latents/values", f["latents/values"][:-1], chunks=True, fletcher32=True),
        CorruptArchiveError, "/latents/offsets",
    ),
    "latents too long": Crafted(
        lambda f, t: _replace(f, "latents/values", np.zeros(13, np.float32), chunks=True, fletcher32=True),
        CorruptArchiveError, "/latents/offsets",
    ),
    "latent shape vs count": Crafted(
        lambda f, t: f["latents/shapes"].__setitem__(0, [1, 2, 2]), CorruptArchiveError, "/latents/shapes"
    ),
    "forged dataset size": Crafted(
        lambda f, t: (f.__delitem__("latents/values"),
                      f.create_dataset("latents/values", shape=(10**10,), dtype=np.float32, chunks=(1 << 16,))),
        CorruptArchiveError, "/latents/values",
    ),
    "header w": Crafted(lambda f, t: _set_header(f, w=7), CorruptArchiveError, "/latents/offsets"),
    "header x_bits": Crafted(
        lambda f, t: (_set_header(f, x_bits=10**15), f["header"].attrs.__setitem__("beats_raw", np.bool_(True))),
        CorruptArchiveError, "/header",
    ),
    # the decoder
    "weight shape": Crafted(
        lambda f, t: _replace(f, "decoder/layers/g_s_dense/kernel", np.zeros((4, 97), np.float32)),
        CorruptArchiveError, "/decoder/layers/g_s_dense/kernel",
    ),
    "weight dtype": Crafted(
        lambda f, t: _replace(f, "decoder/layers/g_s_out/bias", np.zeros(1, np.float64)),
        CorruptArchiveError, "/decoder/layers/g_s_out/bias",
    ),
    "NaN weight": Crafted(
        lambda f, t: f["decoder/layers/g_s_up0/kernel"].__setitem__((0, 0, 0, 0), np.nan),
        CorruptArchiveError, "/decoder/layers/g_s_up0/kernel",
    ),
    "inf weight": Crafted(
        lambda f, t: f["decoder/layers/g_s_out/bias"].__setitem__(0, np.inf),
        CorruptArchiveError, "/decoder/layers/g_s_out/bias",
    ),
    "NaN latent": Crafted(
        lambda f, t: f["latents/values"].__setitem__(0, np.nan), CorruptArchiveError, "/latents/values"
    ),
    "Lambda layer": Crafted(
        _architecture(_with_layer({"name": "evil", "type": "Lambda", "config": {"function": "__import__('os')"}})),
        CorruptArchiveError, "/decoder/architecture",
    ),
    "keras-serialized Lambda": Crafted(
        _architecture(_with_layer(_KERAS_LAMBDA)), CorruptArchiveError, "/decoder/architecture"
    ),
    "keras model_config": Crafted(
        _architecture({"class_name": "Sequential", "config": {"layers": [_KERAS_LAMBDA]}}),
        CorruptArchiveError, "/decoder/architecture",
    ),
    "activation outside allowlist": Crafted(
        _architecture(_with_layer({"name": "x", "type": "Dense", "config": {"units": 98, "activation": "eval"}})),
        CorruptArchiveError, "/decoder/architecture",
    ),
    "description missing output_mode": Crafted(
        _architecture({k: v for k, v in make_contents(w=1).decoder.architecture.items() if k != "output_mode"}),
        CorruptArchiveError, "/decoder/architecture",
    ),
    "description not an object": Crafted(_architecture([1, 2, 3]), CorruptArchiveError, "/decoder/architecture"),
    "description huge units": Crafted(
        _architecture(_with_layer({"name": "x", "type": "Dense", "config": {"units": 10**9}})),
        CorruptArchiveError, "/decoder/architecture",
    ),
    "description not JSON": Crafted(
        lambda f, t: _replace(f, "decoder/architecture", _fixed([b"{'type': eval}"]).reshape(())),
        CorruptArchiveError, "/decoder/architecture",
    ),
    "pickled description": Crafted(
        lambda f, t: _replace(f, "decoder/architecture", np.void(pickle.dumps({"a": 1}))),
        CorruptArchiveError, "/decoder/architecture",
    ),
    # streams and decoding (issue 13): constriction's assertions, overflow, modes no file can hold
    "latent stream does not decode": Crafted(_fill("latents/stream", 0xFFFFFFFF), CorruptArchiveError,
                                             "/latents/stream", source=_coded_base),
    "residual stream does not decode": Crafted(_fill("lossless/stream", 0xFFFFFFFF), CorruptArchiveError,
                                               "/lossless/stream", source=_LOSSLESS, reader=False),
    "pixel-model stream does not decode": Crafted(_fill("pixels/stream", 0xFFFFFFFF), CorruptArchiveError,
                                                  "/pixels/stream", source=_PIXELS, reader=False),
    "latent step 1e308": Crafted(lambda f, t: f["latents"].attrs.__setitem__("step", 1e308), CorruptArchiveError,
                                 "/latents", source=_coded_base),
    "unknown mode": Crafted(_modes(b"XYZ"), CorruptArchiveError, "/images/modes"),
    "palette image without palette": Crafted(_modes(b"P"), CorruptArchiveError, "/images/palette_index"),
    "mode no file format holds": Crafted(_modes(b"CMYK", b"CMYK", b"CMYK"), CorruptArchiveError, "/images/formats",
                                         reader=False),
    "gzip bomb in an unused element": Crafted(lambda f, t: palette_bomb(f, 256 << 20), CorruptArchiveError,
                                              "/images/palettes"),
    # HDF5 storage
    "external storage /etc/passwd": Crafted(_external_storage, CorruptArchiveError, "/latents/values"),
    "external link": Crafted(_external_link, CorruptArchiveError, "/latents/values"),
    "soft link": Crafted(
        lambda f, t: (f.move("latents/values", "elsewhere"), f["latents"].__setitem__("values", h5py.SoftLink("/elsewhere"))),
        CorruptArchiveError, "/latents/values",
    ),
    "virtual dataset": Crafted(_virtual, CorruptArchiveError, "/latents/values"),
    "lzf filter": Crafted(
        lambda f, t: _replace(f, "latents/values", f["latents/values"][()], compression="lzf"),
        CorruptArchiveError, "/latents/values",
    ),
    "scaleoffset filter": Crafted(
        lambda f, t: _replace(f, "images/file_bytes", f["images/file_bytes"][()], scaleoffset=0),
        CorruptArchiveError, "/images/file_bytes",
    ),
    "group replaced by dataset": Crafted(
        lambda f, t: (f.__delitem__("quality"), f.create_dataset("quality", data=np.zeros(3))),
        CorruptArchiveError, "/quality",
    ),
    "newer version": Crafted(
        lambda f, t: f.attrs.__setitem__("encoding-version", _fixed([b"9.0"]).reshape(())), ArchiveError, "/"
    ),
}


def craft(name: str, folder: Path) -> Path:
    """Write crafted archive `name` as ``folder / "crafted.lpk"``."""
    case = CRAFTED[name]
    w, arch = case.base
    if case.source is not None:
        path = case.source(folder)
    else:
        path = write_archive(folder / "crafted.lpk", make_contents(w=w, arch=arch, seed=w), force=True)
    with h5py.File(path, "r+") as f:
        case.tamper(f, folder)
    return path


# -- fuzzing ------------------------------------------------------------------------


@dataclass
class FuzzReport:
    """What `fuzz_archives` tried and saw."""

    tried: int = 0
    clean: int = 0
    refused: int = 0
    extracted_files: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    outside_writes: list[str] = field(default_factory=list)


_H5_PATHS = [
    "/", "/header", "/decoder", "/decoder/layers/g_s_dense", "/latents", "/images", "/quality", "/training",
]
_DATASETS = [
    "decoder/architecture", "decoder/layers/g_s_dense/kernel", "decoder/layers/g_s_out/bias", "latents/values",
    "latents/offsets", "latents/shapes", "images/names", "images/shapes", "images/modes", "images/formats",
    "images/sha256", "images/palette_index", "images/palettes", "images/file_bytes", "quality/psnr", "training/config",
]
_ATTRS = ["encoding-type", "encoding-version", "w", "y", "x_bits", "z_bits", "latent_scalars", "lhs_bits",
          "beats_raw", "layer_names", "weight_names", "mean_psnr", "min_psnr", "writer", "created"]


def _mutations():
    """A hypothesis strategy of ``(kind, mutate(bytes, path) -> bytes | None)``."""
    from hypothesis import strategies as st

    fraction = st.floats(0, 1, allow_nan=False)
    byte = st.integers(1, 255)

    def flips(items):
        def mutate(data: bytearray, path: Path) -> None:
            for where, xor in items:
                data[min(int(where * len(data)), len(data) - 1)] ^= xor

        return mutate

    def overwrite(args):
        where, length, value = args

        def mutate(data: bytearray, path: Path) -> None:
            start = int(where * len(data))
            data[start : start + length] = bytes([value]) * len(data[start : start + length])

        return mutate

    def truncate(where):
        def mutate(data: bytearray, path: Path) -> None:
            del data[int(where * len(data)) :]

        return mutate

    text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
        ["../x", "/etc/passwd", "a/../../b", "C:x", "CON", "a\\b", "", ".", "x/", "nul.png", "A.png"]
    )
    scalar = st.one_of(
        st.integers(-(2**63), 2**63 - 1).map(np.int64), st.booleans().map(np.bool_), st.floats().map(np.float64),
        text.map(lambda s: _fixed([s.encode("utf-8", "surrogatepass")]).reshape(())),
        st.lists(text, max_size=4).map(lambda xs: _fixed([x.encode("utf-8", "surrogatepass") for x in xs])),
    )

    def set_attr(args):
        obj, name, value = args

        def edit(f: h5py.File) -> None:
            f[obj].attrs[name] = value

        return edit

    def reshape(args):
        path, shape, dtype = args

        def edit(f: h5py.File) -> None:
            del f[path]
            f.create_dataset(path, data=np.ones(shape, dtype=dtype))

        return edit

    def set_names(names):
        def edit(f: h5py.File) -> None:
            data = [n.encode("utf-8", "surrogatepass") for n in names]
            del f["images/names"]
            f.create_dataset("images/names", data=_fixed(data))

        return edit

    def delete(path):
        return lambda f: f.__delitem__(path)

    dims = st.lists(st.integers(0, 40), min_size=0, max_size=3).map(tuple)
    h5edit = st.one_of(
        st.tuples(st.sampled_from(_H5_PATHS), st.sampled_from(_ATTRS), scalar).map(set_attr),
        st.tuples(st.sampled_from(_DATASETS), dims, st.sampled_from(["f4", "f8", "i4", "i8", "u1"])).map(reshape),
        st.lists(text, min_size=3, max_size=3).map(set_names),
        st.sampled_from(_DATASETS + _H5_PATHS[1:]).map(delete),
    )

    def h5py_edits(edits):
        def mutate(data: bytearray, path: Path) -> None:
            path.write_bytes(bytes(data))
            with h5py.File(path, "r+") as f:
                for edit in edits:
                    try:
                        edit(f)
                    except (KeyError, ValueError, TypeError, OSError, RuntimeError):
                        pass  # an edit h5py itself refuses (e.g. the root group) is no mutation
            data[:] = path.read_bytes()

        return mutate

    return st.one_of(
        st.tuples(st.just("flip"), st.lists(st.tuples(fraction, byte), min_size=1, max_size=8).map(flips)),
        st.tuples(st.just("overwrite"), st.tuples(fraction, st.integers(1, 512), st.integers(0, 255)).map(overwrite)),
        st.tuples(st.just("truncate"), fraction.map(truncate)),
        st.tuples(st.just("h5py"), st.lists(h5edit, min_size=1, max_size=3).map(h5py_edits)),
    )


def fuzz_one(base: bytes, kind: str, mutate: Callable, report: FuzzReport, root: Path) -> None:
    """Mutate, read, extract, and record; `root` holds nothing else of value."""
    case = Path(tempfile.mkdtemp(dir=root))
    try:
        sibling = case / "sibling"
        sibling.mkdir()
        (sibling / "keep.txt").write_text("must not change")
        archive = case / "a.lpk"
        data = bytearray(base)
        mutate(data, archive)
        archive.write_bytes(bytes(data))
        before = listing(case)
        report.tried += 1
        report.kinds[kind] = report.kinds.get(kind, 0) + 1
        out = case / "out"
        faulthandler.dump_traceback_later(120, exit=True)  # a libhdf5 hang fails loudly, never silently
        try:
            with open_archive(archive) as a:
                a.validate()
                a.storage_breakdown()
            written = extract_archive(archive, out).paths
            report.clean += 1
            report.extracted_files += len(written)
        except REFUSALS:
            report.refused += 1
        except Exception as err:  # noqa: BLE001 - this is what the fuzzer hunts
            report.unexpected.append(f"{kind}: {type(err).__name__}: {err}")
        finally:
            faulthandler.cancel_dump_traceback_later()
        after = listing(case)
        outside = {k: v for k, v in after.items() if k != "out" and not k.startswith("out/")}
        if outside != before:
            report.outside_writes.append(f"{kind}: {sorted(set(outside) ^ set(before)) or 'changed content'}")
        for p in out.rglob("*") if out.exists() else []:
            if os.path.commonpath([os.path.realpath(p), os.path.realpath(out)]) != os.path.realpath(out):
                report.outside_writes.append(f"{kind}: {p} resolves outside out/")
    finally:
        shutil.rmtree(case, ignore_errors=True)


def fuzz_archives(examples: int, root: Path) -> FuzzReport:
    """Run `examples` hypothesis-generated mutations of a valid archive (deterministic)."""
    from hypothesis import HealthCheck, given, settings

    report = FuzzReport()
    base_path = write_archive(root / "base.lpk", make_contents(w=BASE_W, arch="dense", seed=1))
    base = base_path.read_bytes()

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_mutations())
    def run(mutation) -> None:
        kind, mutate = mutation
        fuzz_one(base, kind, mutate, report, root)
        assert not report.unexpected, report.unexpected[-1]
        assert not report.outside_writes, report.outside_writes[-1]

    run()
    return report


# -- killing compress ------------------------------------------------------------------


@dataclass
class KillReport:
    """What `kill_compress` tried and saw at the target path after each kill.

    ``tried`` counts the runs actually killed, ``finished`` those that ended
    before their kill came; the target is checked after both.
    """

    tried: int = 0
    finished: int = 0
    absent: int = 0
    previous: int = 0
    replaced: int = 0
    corrupt: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    full_run_s: float = 0.0


def _tiny_folder(folder: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), "L").save(folder / f"i{i}.png")


def _complete(path: Path) -> bool:
    try:
        with open_archive(path) as a:
            a.validate()
        return True
    except ArchiveError:
        return False


def kill_compress(kills: int, root: Path, seed: int = 0) -> KillReport:
    """SIGKILL ``python -m latentpack compress --force`` at random moments, `kills` times.

    A full run is timed first; kill delays are spread evenly (stratified,
    with random jitter) over that time, so early kills (start-up, training)
    and late ones (writing, renaming) are both tried. A run that finishes
    before its kill is checked too, shortens the estimate, and is retried,
    until `kills` runs were killed (at most ``2 * kills`` runs).
    """
    report = KillReport()
    folder, out = root / "images", root / "out"
    _tiny_folder(folder)
    out.mkdir()
    target = out / "a.lpk"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="3")
    args = [sys.executable, "-m", "latentpack", "compress", str(folder), "-o", str(target), "--force",
            "--epochs", "1", "-y", "2", "--filters", "2", "--batch-size", "4"]
    start = time.monotonic()
    subprocess.run(args + ["--seed", "999"], env=env, check=True, capture_output=True, timeout=300)
    report.full_run_s = time.monotonic() - start
    previous = target.read_bytes()
    rng = random.Random(seed)
    estimate = report.full_run_s
    k = 0
    while report.tried < kills and k < 2 * kills:
        delay = estimate * (report.tried + rng.random()) / kills
        proc = subprocess.Popen(args + ["--seed", str(k)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = time.monotonic()
        try:
            proc.wait(timeout=delay)
            report.finished += 1  # quicker than the delay: a normal run, checked all the same
            estimate = min(estimate, time.monotonic() - start)  # and the next delays shrink to fit
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            report.tried += 1
        k += 1
        if not target.exists():
            report.absent += 1  # cannot happen here: a previous archive always exists
            report.corrupt.append(f"run {k} (delay {delay:.2f}s): the previous archive vanished")
        elif target.read_bytes() == previous:
            report.previous += 1
        elif _complete(target):
            report.replaced += 1
            previous = target.read_bytes()
        else:
            report.corrupt.append(f"run {k} (delay {delay:.2f}s): {target} is not a complete archive")
        for p in out.iterdir():
            if p != target and not (p.name.startswith(f".{target.name}.tmp-")):
                report.stray.append(p.name)
            elif p != target:
                p.unlink()  # a hidden temp file a SIGKILL left: allowed, removed before the next round
    return report


# -- a folder swapped for a symlink while extracting ---------------------------------------------------


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


@dataclass
class RaceReport:
    """What `swap_races` saw: runs that completed, runs stopped cleanly, and what went wrong."""

    tried: int = 0
    completed: int = 0
    stopped: int = 0
    swaps: int = 0
    through_symlink: int = 0
    left_behind: int = 0
    unexpected: list[str] = field(default_factory=list)


def swap_races(runs: int, files: int, root: Path) -> RaceReport:
    """Write `files` tiny files under ``OUT/sub`` while a thread swaps ``OUT/sub`` for a symlink and back.

    A run must either complete into the real folder or stop with
    `OutputChangedError` leaving no file; no file may ever reach the
    symlink's target.
    """
    from latentpack.fs.held import OutputChangedError
    from latentpack.fs.output import OutputFolder, check_targets

    report = RaceReport()
    names = [f"sub/f{i:05d}.txt" for i in range(files)]
    for run in range(runs):
        out, elsewhere = root / f"race{run}" / "out", root / f"race{run}" / "elsewhere"
        elsewhere.mkdir(parents=True)
        swapper = Swapper(out, elsewhere, restore=run % 2 == 0)
        swapper.start()
        report.tried += 1
        try:
            with OutputFolder(out, check_targets("race", out, names, range(files), force=False), names) as folder:
                for i in range(files):
                    folder.write(i, b"%d" % i)
            swapper.finish()
            report.completed += 1
            got = sum(len(f) for _, _, f in os.walk(out / "sub"))
            if got != files:
                report.unexpected.append(f"run {run}: completed with {got} of {files} files in OUT/sub")
        except OutputChangedError:
            report.stopped += 1
            swapper.finish()
            report.left_behind += sum(len(f) for _, _, f in os.walk(out))
        except Exception as err:  # noqa: BLE001 - anything else is what the report is for
            swapper.finish()
            report.unexpected.append(f"run {run}: {type(err).__name__}: {err}")
        report.swaps += swapper.swaps
        report.through_symlink += len(os.listdir(elsewhere))
    return report
