"""Signals and closed pipes: clean up like an interrupt, exit like a shell.

SIGINT, SIGTERM (what ``timeout`` and service managers send) and SIGHUP (a
closed terminal) all raise `Interrupted` in the main thread, a
``KeyboardInterrupt``: what a command had started is undone on the way out
(the temporary archive removed, a partial extraction rolled back), then the
command exits with the shell's code for that signal, 128 + its number (130,
143, 129), instead of click's "Aborted!" and 1. A signal that was ignored
when latentpack started (``nohup``, a background job) stays ignored.

A closed stdout (``latentpack list A | head -1``) ends the command quietly
with 141, the shell's code for SIGPIPE, and nothing on stderr.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

import click

__all__ = ["Interrupted", "install_signal_handlers", "exit_interrupted", "exit_broken_pipe"]

_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class Interrupted(KeyboardInterrupt):
    """A signal asked the command to stop; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise `Interrupted` (those not ignored at start; main thread only)."""
    if threading.current_thread() is not threading.main_thread():  # signal.signal would raise ValueError
        return
    for name in _SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise_interrupted)


def exit_interrupted(exc: KeyboardInterrupt) -> NoReturn:
    """Say that the command was stopped (its partial work already undone) and exit with 128 + the signal."""
    signum = getattr(exc, "signum", signal.SIGINT)
    click.echo(f"\nInterrupted ({signal.Signals(signum).name}): stopped; what this command had started writing "
               "was removed", err=True)
    sys.exit(128 + signum)


def exit_broken_pipe() -> NoReturn:
    """The reader of stdout went away: exit 141 quietly (no "Broken pipe", none at interpreter exit either)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # what is still buffered is flushed into nothing
    except (OSError, ValueError, AttributeError):  # not a real file (a test runner's stream)
        pass
    sys.exit(128 + getattr(signal, "SIGPIPE", 13))
