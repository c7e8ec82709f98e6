"""Rules for stored image names, so extraction never writes outside OUTDIR.

A stored name is untrusted: it came from a file someone sent you. Like Python's
tarfile "data" filter, a name is refused unless it is a plain relative POSIX
path of ordinary components; and the final target is checked once more after
resolving symlinks that already exist under the output folder.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from latentpack.errors import LatentpackError

__all__ = ["UnsafeNameError", "check_name", "safe_target", "display_name", "display_text", "CONTROLS", "MAX_NAME_BYTES"]

MAX_NAME_BYTES = 1024
MAX_COMPONENT_BYTES = 255
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}
#: The one set of characters that can drive a terminal or reorder what it shows: C0 controls, DEL, C1
#: controls (U+0080-U+009F) and the bidirectional controls (U+200E/F, U+202A-U+202E, U+2066-U+2069).
CONTROLS = "\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
#: What a stored name may not hold (checked at compress and at extract).
_CONTROL = re.compile(f"[{CONTROLS}]")
#: What `display_name` escapes: those, and lone surrogates (undecodable bytes).
_UNPRINTABLE = re.compile(f"[{CONTROLS}\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape of the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}"


def display_name(name: str) -> str:
    """A file name (or any one string from an archive) safe to print on a terminal and to encode as UTF-8.

    C0 and C1 control characters (newline included), DEL and the
    bidirectional controls become ``\\xNN``/``\\uNNNN`` escapes, and the
    surrogate escapes that `os.fsdecode` makes of bytes that are not UTF-8
    become ``\\xNN`` of the original byte, so a hostile string cannot drive
    the terminal, reorder a line or forge one, and an undecodable name cannot
    crash the printing.
    """
    return _UNPRINTABLE.sub(_escape, str(name))


def display_text(text: str) -> str:
    """Like `display_name` but newlines are kept: for whole messages and tables about to be printed."""
    return "\n".join(display_name(line) for line in str(text).split("\n"))


class UnsafeNameError(LatentpackError, ValueError):
    """A stored name would write outside the output folder, or cannot be a file name."""

    def __init__(self, name: str, reason: str, where: str | None = None):
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}refusing to extract {name!r}: {reason}")
        self.name = name
        self.reason = reason
        self.where = where


def check_name(name: str) -> PurePosixPath:
    """Check a stored name and return it as a relative path.

    Raises:
        UnsafeNameError: absolute paths, ``..``, drive letters or UNC
            prefixes, backslashes, control characters, invalid UTF-8, empty
            or over-long names and components, Windows device names, and
            components ending in a dot or a space.
    """
    if not isinstance(name, str) or not name:
        raise UnsafeNameError(str(name), "empty name")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeNameError(name, "not valid UTF-8") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise UnsafeNameError(name, f"longer than {MAX_NAME_BYTES} bytes")
    if _CONTROL.search(name):
        raise UnsafeNameError(name, "contains NUL, control (C0, C1) or bidirectional control characters")
    if "\\" in name:
        raise UnsafeNameError(name, "contains a backslash")
    if name.startswith("/"):
        raise UnsafeNameError(name, "is an absolute path")
    if re.match(r"^[A-Za-z]:", name):
        raise UnsafeNameError(name, "starts with a drive letter")
    parts = name.split("/")
    for part in parts:
        if part in ("", "."):
            raise UnsafeNameError(name, "has an empty or '.' component")
        if part == "..":
            raise UnsafeNameError(name, "has a '..' component")
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise UnsafeNameError(name, f"has a component longer than {MAX_COMPONENT_BYTES} bytes")
        if part.endswith((".", " ")):
            raise UnsafeNameError(name, "has a component ending in a dot or a space")
        if part.split(".")[0].upper() in _WINDOWS_DEVICES:
            raise UnsafeNameError(name, "uses a reserved device name")
    return PurePosixPath(*parts)


def safe_target(outdir: Path, name: str, where: str | None = None) -> Path:
    """The path where ``name`` is extracted under ``outdir``, checked.

    Args:
        outdir: The output folder (it need not exist yet).
        name: The stored name.
        where: Where the name comes from, for the message
            (``"a.lpk: /images/names entry 3"``).

    Raises:
        UnsafeNameError: the name breaks a rule of `check_name`, or resolves
            outside ``outdir`` (through a symlink already there), or the
            target is itself a symlink.
    """
    try:
        rel = check_name(name)
    except UnsafeNameError as err:
        raise UnsafeNameError(name, err.reason, where) from None
    root = Path(os.path.realpath(outdir))
    target = root.joinpath(*rel.parts)
    parent = Path(os.path.realpath(target.parent))
    if parent != root and root not in parent.parents:
        raise UnsafeNameError(name, "resolves outside the output folder", where)
    if target.is_symlink():
        raise UnsafeNameError(name, "the target is a symlink", where)
    return target
