"""Progress reporting without a UI dependency.

Library functions take an optional ``progress(label, total)`` factory that
returns a context manager with ``update(n)``; `click.progressbar` fits it, and
`null_progress` (the default) shows nothing.
"""
from __future__ import annotations

from typing import Callable, ContextManager, Protocol

__all__ = ["Bar", "ProgressFactory", "null_progress"]


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
