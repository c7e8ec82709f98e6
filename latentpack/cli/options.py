"""Options and helpers shared by the commands, and the command line's error policy.

The model options that ``compress`` and ``bench`` share are defined here once
(type, range, default); each command gives its own help text.

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
import pathlib
import sys
import traceback
from typing import Any, Callable

import click

from latentpack.cli.interrupts import exit_broken_pipe, exit_interrupted
from latentpack.codec.architectures import names as architecture_names
from latentpack.fs.names import display_text

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


def progress_factory(label: str, total: int):
    """A click progress bar on stderr (shown only on a terminal)."""
    return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True)


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
