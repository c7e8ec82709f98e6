"""Options and helpers shared by the commands, and the command line's error policy.

The model options that ``compress`` and ``bench`` share are defined here once
(type, range, default); each command gives its own help text.

Verbosity (`verbosity_options`, on every command): ``-q`` shows errors only,
the default adds progress and notes, ``-v`` adds details. The library's
reports (the ``latentpack`` logger: the plan line, the training device) are
shown at INFO, and with ``-v`` at DEBUG. Progress (`progress_factory`) is a
bar on a terminal and a line every `LINE_INTERVAL` seconds
(``LATENTPACK_PROGRESS_INTERVAL``) anywhere else.

Error policy (`user_errors`): latentpack's own errors (`LatentpackError`, and
until the formats branch derives it from that, `ArchiveError`) and the
operating system's errors about a file (missing, permission, exists, disk
full) become one ``Error: ...`` line (control characters escaped) and exit 1.
An interrupt (SIGINT, SIGTERM, SIGHUP) exits 128 + the signal once its
partial work is undone, and a closed stdout exits 141 quietly
(`latentpack.cli.interrupts`). Anything else is a bug: its traceback is
shown, followed by one line asking to report it.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import pathlib
import sys
import traceback
from typing import Any, Callable

import click

from latentpack.cli.interrupts import exit_broken_pipe, exit_interrupted
from latentpack.codec.architectures import names as architecture_names
from latentpack.fs.names import display_text
from latentpack.progress import LINE_INTERVAL, LineProgress, null_progress

__all__ = [
    "archive_argument",
    "json_option",
    "force_option",
    "epochs_option",
    "batch_size_option",
    "arch_option",
    "filters_option",
    "seed_option",
    "progress_factory",
    "verbosity_options",
    "verbosity",
    "note",
    "detail",
    "QUIET",
    "NORMAL",
    "VERBOSE",
    "user_errors",
    "report_bug",
    "emit_json",
    "echo",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

archive_argument = click.argument(
    "archive", type=click.Path(path_type=pathlib.Path, dir_okay=False, exists=True, readable=True)
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
force_option = click.option("--force", is_flag=True, help="Overwrite existing files.")


def epochs_option(help: str) -> Decorator:
    """``--epochs``: training epochs (default: latentpack's own choice)."""
    return click.option("--epochs", type=click.IntRange(min=1), default=None, help=help)


def batch_size_option(help: str | None = None) -> Decorator:
    """``--batch-size``: training batch size."""
    return click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help=help)


def arch_option(help: str) -> Decorator:
    """``--arch``: the decoder architecture, or ``auto``."""
    return click.option("--arch", type=click.Choice(["auto", *architecture_names()]), default="auto", show_default=True, help=help)


def filters_option(help: str) -> Decorator:
    """``--filters``: the decoder width (default: from the size budget)."""
    return click.option("--filters", type=click.IntRange(min=1), default=None, help=help)


def seed_option(help: str) -> Decorator:
    """``--seed``: the random seed (same folder and seed, same archive)."""
    return click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help=help)


#: Environment variable: seconds between progress lines when stderr is not a terminal (default 10).
INTERVAL_VARIABLE = "LATENTPACK_PROGRESS_INTERVAL"
QUIET, NORMAL, VERBOSE = 0, 1, 2
_LEVELS = {QUIET: logging.ERROR, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}


def _flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[f"latentpack.{param.name}"] = True


def verbosity_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``-q/--quiet`` and ``-v/--verbose``, on every command (read back with `verbosity`)."""
    func = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_flag,
                        help="Also show the plan's details, each stage's time and the rate-control decisions.")(func)
    return click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_flag,
                        help="Show nothing but errors (no progress, no notes, no summary).")(func)


def verbosity() -> int:
    """`QUIET`, `NORMAL` or `VERBOSE`: what the running command was asked for."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    if meta.get("latentpack.quiet"):
        return QUIET
    return VERBOSE if meta.get("latentpack.verbose") else NORMAL


class _EchoHandler(logging.Handler):
    """Log records from the library as plain lines on the current stderr (escaped)."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.capitalize()}: {text}"
        click.echo(display_text(text), err=True)


_HANDLER = _EchoHandler()


def _start_reporting() -> None:
    """Route the library's reports (`latentpack.ops.plan.report`) to stderr at the asked level."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get("latentpack.quiet") and ctx.meta.get("latentpack.verbose"):
        raise click.UsageError("-q/--quiet and -v/--verbose cannot be combined")
    logger = logging.getLogger("latentpack")
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
    logger.setLevel(_LEVELS[verbosity()])


def note(text: str) -> None:
    """A status line on stderr, unless ``--quiet``."""
    if verbosity() > QUIET:
        echo(text, err=True)


def detail(text: str) -> None:
    """A line on stderr with ``--verbose`` only."""
    if verbosity() >= VERBOSE:
        echo(text, err=True)


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_VARIABLE, LINE_INTERVAL)))
    except ValueError:
        return LINE_INTERVAL


def progress_factory(label: str, total: int):
    """Progress on stderr: a bar on a terminal, a line every few seconds in a log, nothing with ``--quiet``."""
    if verbosity() == QUIET:
        return null_progress(label, total)
    if sys.stderr.isatty():
        return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True)
    return LineProgress(label, total, lambda text: echo(text, err=True), interval=_interval())


def report_bug() -> None:
    """Show the traceback of the exception being handled and ask the user to report it."""
    from latentpack import __version__

    traceback.print_exc(file=sys.stderr)
    click.echo(f"This is a bug in latentpack {__version__}: please report it with the traceback above "
               "and the command that caused it.", err=True)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn latentpack's errors and the system's file errors into ``Error: ...`` (exit 1); show bugs as bugs."""
    from latentpack.errors import LatentpackError
    from latentpack.formats.errors import ArchiveError
    from latentpack.fs.atomic import disk_full_errno

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            _start_reporting()
            return func(*args, **kwargs)
        except KeyboardInterrupt as exc:  # SIGINT, SIGTERM, SIGHUP: the partial work is undone by now
            exit_interrupted(exc)
        except BrokenPipeError:
            exit_broken_pipe()
        except click.ClickException as exc:
            exc.message = display_text(exc.message)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except (LatentpackError, ArchiveError, FileExistsError, IsADirectoryError, NotADirectoryError,
                FileNotFoundError, PermissionError) as exc:
            raise click.ClickException(display_text(str(exc))) from None  # messages may quote archive strings
        except OSError as exc:
            if disk_full_errno(exc) is not None:
                where = f" writing {exc.filename}" if exc.filename else ""
                raise click.ClickException(
                    f"no space left on the device{where} ({exc.strerror or exc}); "
                    "the files this command had started were removed, free some space and retry"
                ) from None
            raise click.ClickException(display_text(f"{exc.strerror or exc}: {exc.filename}" if exc.filename
                                                    else str(exc))) from None
        except Exception:
            report_bug()
            sys.exit(1)

    return wrapper


def echo(text: str = "", err: bool = False) -> None:
    """Print a line (or lines) with every control and bidi character but the newline escaped.

    Everything a command prints that can hold a string from an archive goes
    through here, so an OSC sequence or a right-to-left override in a name,
    a root attribute or the training record reaches the terminal as text.
    """
    click.echo(display_text(text), err=err)


def emit_json(data: Any) -> None:
    """Print strict JSON (non-finite numbers such as an exact PSNR become null; non-ASCII as ``\\uNNNN``)."""
    from latentpack.ops.inspect import json_ready

    click.echo(json.dumps(json_ready(data), indent=2, allow_nan=False))
