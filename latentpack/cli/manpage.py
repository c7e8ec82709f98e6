"""``latentpack help COMMAND`` and the man page, both generated from the click definitions.

`render_man` writes roff (``man 7 man`` macros) for the group and every
command: their help texts and options exactly as ``--help`` shows them, plus
the exit codes and shell completion. ``tools/make_man.py`` writes it to
``docs/latentpack.1``; a test checks that the committed page is up to date.
"""
from __future__ import annotations

import click

from latentpack.cli.options import echo, user_errors

__all__ = ["help_command", "render_man", "COMPLETION"]

#: How to turn on shell completion (click's ``_LATENTPACK_COMPLETE``), shown in the man page.
COMPLETION = (
    ("bash", 'eval "$(_LATENTPACK_COMPLETE=bash_source latentpack)"', "~/.bashrc"),
    ("zsh", 'eval "$(_LATENTPACK_COMPLETE=zsh_source latentpack)"', "~/.zshrc"),
    ("fish", "_LATENTPACK_COMPLETE=fish_source latentpack | source", "~/.config/fish/completions/latentpack.fish"),
)

_EXIT_CODES = (
    ("0", "success"),
    ("1", "an error: one line starting with Error: on stderr (a mismatch for verify)"),
    ("2", "a usage error (an unknown option, a missing argument, -o - with more than one NAME)"),
    ("128+N", "stopped by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP); what it had started writing is removed"),
    ("141", "stdout was closed (a pipe's reader went away)"),
)


@click.command(name="help")
@click.argument("command", required=False)
@click.pass_context
@user_errors
def help_command(ctx: click.Context, command: str | None) -> None:
    """Show the help of COMMAND (all of latentpack's commands without one)."""
    group = ctx.parent.command if ctx.parent is not None else ctx.command
    if command is None:
        echo(group.get_help(ctx.parent))
        return
    cmd = group.get_command(ctx, command)
    if cmd is None:
        raise click.UsageError(f"no such command {command!r}; the commands: {', '.join(group.list_commands(ctx))}")
    with click.Context(cmd, info_name=command, parent=ctx.parent) as sub:
        echo(cmd.get_help(sub))


def _roff(text: str) -> str:
    """Escape text for roff: backslashes, and a leading dot or quote on any line."""
    lines = text.replace("\\", "\\e").replace("-", "\\-").splitlines()
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in lines)


def _paragraphs(text: str) -> list[str]:
    """A help text as roff paragraphs (each paragraph's lines joined, separated by ``.PP``)."""
    import inspect

    out: list[str] = []
    for block in inspect.cleandoc(text or "").split("\n\n"):
        joined = " ".join(line.strip() for line in block.splitlines() if line.strip() and line.strip() != "\b")
        if joined:
            out += [_roff(joined), ".PP"]
    return out


def _options(cmd: click.Command, ctx: click.Context) -> list[str]:
    out = []
    for param in cmd.get_params(ctx):
        if not isinstance(param, click.Option):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, text = record
        out += [".TP", f"\\fB{_roff(names)}\\fR", _roff(text) or "."]
    return out


def _command_section(name: str, cmd: click.Command, parent: click.Context) -> list[str]:
    with click.Context(cmd, info_name=name, parent=parent) as ctx:
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        return [f".SS {name}", f"\\fBlatentpack {name}\\fR {_roff(usage)}", ".PP",
                *_paragraphs(cmd.help or ""), *_options(cmd, ctx)]


def render_man(group: click.Group, version: str) -> str:
    """The man page of ``latentpack`` (section 1) as roff text."""
    with click.Context(group, info_name="latentpack") as ctx:
        lines = [
            f'.TH LATENTPACK 1 "" "latentpack {version}" "User Commands"',
            ".SH NAME", "latentpack \\- " + _roff((group.help or "").splitlines()[0].rstrip(".")),
            ".SH SYNOPSIS", "\\fBlatentpack\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR]...",
            ".SH DESCRIPTION", *_paragraphs(group.help or ""), "Archives are HDF5 files, conventionally named \\fI*.lpk\\fR.",
            ".SH COMMANDS",
        ]
        for name in group.list_commands(ctx):
            lines += _command_section(name, group.get_command(ctx, name), ctx)
    lines += [".SH EXIT STATUS"]
    for code, meaning in _EXIT_CODES:
        lines += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    lines += [".SH SHELL COMPLETION", "Add one line to the shell's start-up file:"]
    for shell, line, where in COMPLETION:
        lines += [".TP", f"\\fB{shell}\\fR ({_roff(where)})", f"\\f(CW{_roff(line)}\\fR"]
    lines += [".SH ENVIRONMENT", ".TP", "\\fBLATENTPACK_PROGRESS_INTERVAL\\fR",
              "Seconds between two progress lines when stderr is not a terminal (default 10).",
              ".TP", "\\fBLATENTPACK_CHECKPOINT_SECONDS\\fR",
              "Least seconds between two training checkpoints with \\-\\-resume or \\-\\-work\\-dir (default 30).",
              ".TP", "\\fBXDG_CACHE_HOME\\fR",
              "Where \\-\\-resume keeps checkpoints without \\-\\-work\\-dir (latentpack/checkpoints under it; "
              "default ~/.cache).",
              ".SH SEE ALSO", "docs/FORMAT.md (the archive format), README.md (usage and measurements)."]
    return "\n".join(lines) + "\n"
