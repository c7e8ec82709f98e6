"""Progress reporting without a UI dependency.

Library functions take an optional ``progress(label, total)`` factory that
returns a context manager with ``update(n)``; `click.progressbar` fits it (the
command line's bar on a terminal), `LineProgress` writes a line at a steady
interval (the command line's progress in a log), and `null_progress` (the
default) shows nothing.
"""
from __future__ import annotations

from typing import Callable, ContextManager, Protocol

__all__ = ["Bar", "ProgressFactory", "null_progress", "LineProgress", "LINE_INTERVAL"]


class Bar(Protocol):
    def update(self, n: int) -> None: ...


ProgressFactory = Callable[[str, int], ContextManager[Bar]]


class _NullBar:
    def __enter__(self) -> "_NullBar":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def null_progress(label: str, total: int) -> _NullBar:
    """A progress factory that shows nothing."""
    return _NullBar()


#: Seconds between two progress lines when stderr is not a terminal.
LINE_INTERVAL = 10.0


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class LineProgress:
    """Progress as plain lines, for a log rather than a terminal (``2>log``, CI, nohup).

    One line when a stage starts, one every ``interval`` seconds while it
    runs, and one when it ends::

        Training: 1,200/24,068 (5%), 0:24 elapsed, ETA 7:37

    Args:
        label: The stage.
        total: Units of work in it.
        write: Where a line goes (e.g. ``click.echo(..., err=True)``).
        interval: Seconds between lines.
        clock: The time source (seconds; tests pass their own).
    """

    def __init__(self, label: str, total: int, write: Callable[[str], None], interval: float = LINE_INTERVAL,
                 clock: Callable[[], float] | None = None):
        import time

        self.label, self.total, self.write, self.interval = label, max(int(total), 0), write, interval
        self.clock = clock or time.monotonic
        self.done = 0
        self.start = self.last = 0.0

    def __enter__(self) -> "LineProgress":
        self.start = self.last = self.clock()
        self.write(f"{self.label}: 0/{self.total:,}")
        return self

    def update(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.write(self._line(now))

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is None:
            self.write(self._line(self.clock(), ended=True))

    def _line(self, now: float, ended: bool = False) -> str:
        elapsed = now - self.start
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        text = f"{self.label}: {self.done:,}/{self.total:,}{pct}, {_clock(elapsed)} elapsed"
        if ended:
            return text + ", done"
        if 0 < self.done < self.total:
            text += f", ETA {_clock(elapsed * (self.total - self.done) / self.done)}"
        return text
