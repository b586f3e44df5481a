"""The ``psftr`` Typer app.

Command modules are imported here but import torch / open_clip only inside the
command functions, so ``psftr --help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import functools
import sys

import typer

from psftr_core import __version__
from psftr_core.errors import PsftrError

app = typer.Typer(
    name="psftr",
    help="Zero-shot temporal action localization (PSFTR): extract, train, evaluate, detect.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"psftr {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Also print informational messages on stderr."),
    log_file: str = typer.Option(None, "--log-file", metavar="FILE", help="Append every log record to FILE."),
) -> None:
    """Zero-shot temporal action localization (PSFTR)."""
    from psftr_cli.logs import configure_logging

    if log_file:  # the one output-path check every command uses: exit 2, one line naming the path
        from psftr_core.io.paths import prepare_output_file

        log_file = str(prepare_output_file(log_file, "--log-file"))
    configure_logging(verbose, log_file)


def _interruptible(func):
    """Ctrl-C ends any command with one line and exit code 130 (not click's "Aborted!", 1).

    Commands with more to say (train, extract) catch it themselves first.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            print("psftr: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def _register() -> None:
    # Each command lives in its own module; registration order is the help order.
    from psftr_cli import commands

    for name, func in commands.COMMANDS:
        app.command(name)(_interruptible(func))


_register()


def run() -> None:
    """Console-script entry point: one-line errors with the documented exit codes (docs/formats.md)."""
    try:
        app()
    except PsftrError as err:
        print(f"psftr: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
