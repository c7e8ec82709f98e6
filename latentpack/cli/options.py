"""Options and helpers shared by the commands."""
from __future__ import annotations

import functools
import json
import math
import pathlib
import sys
from typing import Any, Callable

import click

__all__ = ["archive_argument", "json_option", "force_option", "progress_factory", "user_errors", "emit_json"]

archive_argument = click.argument(
    "archive", type=click.Path(path_type=pathlib.Path, dir_okay=False, exists=True, readable=True)
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
force_option = click.option("--force", is_flag=True, help="Overwrite existing files.")


def progress_factory(label: str, total: int):
    """A click progress bar on stderr (shown only on a terminal)."""
    return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's user-facing errors into ``Error: ...`` and exit 1."""
    from latentpack.folder import BadImagesError
    from latentpack.formats.errors import ArchiveError
    from latentpack.fs.atomic import disk_full_errno
    from latentpack.safenames import UnsafeNameError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ArchiveError, BadImagesError, UnsafeNameError, FileExistsError, IsADirectoryError,
                NotADirectoryError, FileNotFoundError, PermissionError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0]) if exc.args else "not found") from None
        except OSError as exc:
            if disk_full_errno(exc) is not None:
                where = f" writing {exc.filename}" if exc.filename else ""
                raise click.ClickException(
                    f"no space left on the device{where} ({exc.strerror or exc}); "
                    "the files this command had started were removed, free some space and retry"
                ) from None
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)) from None

    return wrapper


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def emit_json(data: Any) -> None:
    """Print strict JSON (non-finite numbers such as an exact PSNR become null)."""
    click.echo(json.dumps(_clean(data), indent=2, allow_nan=False))
