"""The ``latentpack`` command line: the click group and its commands.

Each command lives in a module of its own (compress, add, extract, inspect,
list, verify, bench) that parses its arguments, calls the operation and prints;
options they share are in `latentpack.cli.options`. Data goes to stdout,
progress and status to stderr. Exit codes: 0 success, 1 ``Error: ...`` for
user errors (and a bug's traceback), 2 usage errors, 128 + N when stopped by
signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP), 141 when stdout is closed.
"""
from __future__ import annotations

import click

import latentpack

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(latentpack.__version__, prog_name="latentpack")
def cli() -> None:
    """Pack a folder of images into one HDF5 archive: a decoder plus one latent vector per image.

    The archive pays off when z + w*y*32 < x (decoder bits + latent bits < raw bits).
    """


def main() -> None:
    """Console-script entry point: SIGTERM and SIGHUP clean up like SIGINT (`latentpack.cli.interrupts`)."""
    from latentpack.cli.interrupts import install_signal_handlers

    install_signal_handlers()
    cli(prog_name="latentpack")


def _add_commands() -> None:
    from latentpack.cli.add import add
    from latentpack.cli.bench import bench
    from latentpack.cli.compress import compress
    from latentpack.cli.extract import extract
    from latentpack.cli.inspect import inspect
    from latentpack.cli.list import list_
    from latentpack.cli.manpage import help_command
    from latentpack.cli.verify import verify

    for command in (compress, add, extract, inspect, verify, list_, bench, help_command):
        cli.add_command(command)


_add_commands()
