"""The ``psftr`` Typer app.

Command modules are imported here but import torch / open_clip only inside the
command functions, so ``psftr --help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import errno
import functools
import sys

import click
import typer

from psftr_cli.signals import (
    INTERRUPTED_EXIT,
    TERMINATED_EXIT,
    GuardedStdout,
    StdoutBroken,
    Terminated,
    guarded_stdout,
    sigterm_as_interrupt,
)
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
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "-V", "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Also print informational messages on stderr."),
    quiet: bool = typer.Option(False, "-q", "--quiet",
                               help="As the command's own -q/--quiet (detect, extract)."),
    log_file: str = typer.Option(None, "--log-file", metavar="FILE", help="Append every log record to FILE."),
) -> None:
    """Zero-shot temporal action localization (PSFTR)."""
    from psftr_cli.logs import configure_logging

    if quiet:  # the subcommand's context is made after this callback: its quiet defaults to True
        ctx.default_map = _merged(ctx.default_map or {}, quiet_defaults(ctx.command, ctx))
    if log_file:  # the one output-path check every command uses: exit 2, one line naming the path
        from psftr_core.io.paths import prepare_output_file

        log_file = str(prepare_output_file(log_file, "--log-file"))
    configure_logging(verbose, log_file)


def quiet_defaults(group: click.Group, ctx: click.Context) -> dict:
    """A click ``default_map`` that sets ``quiet`` of every command of ``group`` (at any
    depth) that has a ``quiet`` parameter: ``{"detect": {"quiet": True}, ...}``. A value
    on the command line still wins, and a command without one is left as it is."""
    found: dict = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            inner = quiet_defaults(command, ctx)
            if inner:
                found[name] = inner
        elif command is not None and any(param.name == "quiet" for param in command.params):
            found[name] = {"quiet": True}
    return found


def _merged(base: dict, extra: dict) -> dict:
    """``base`` with ``extra``'s entries, nested dicts merged (a caller's default_map stays)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _interruptible(func):
    """Ctrl-C (or SIGTERM, psftr_cli.signals) ends any command with one line and exit code
    130 (not click's "Aborted!", 1); ``run`` makes it 143 for SIGTERM. A write to a pipe
    whose reader went away ends it silently (exit 141), whatever the output.

    Commands with more to say (train, extract) catch it themselves first.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt as interrupt:
            how = " by SIGTERM" if isinstance(interrupt, Terminated) else ""
            print(f"psftr: interrupted{how}", file=sys.stderr)
            raise typer.Exit(INTERRUPTED_EXIT) from None
        except OSError as err:
            if err.errno == errno.EPIPE:  # a pipe's reader went away (-o /dev/stdout | head): as for stdout
                raise StdoutBroken(err) from None
            raise

    return wrapper


def _register() -> None:
    # Each command lives in its own module; registration order is the help order.
    from psftr_cli import commands

    from psftr_cli.help_format import PsftrCommand

    for name, func in commands.COMMANDS:
        app.command(name, cls=PsftrCommand)(_interruptible(func))
    # Command groups (psftr checkpoint info): a Typer sub-app each, their commands wrapped alike.
    from psftr_cli.commands import checkpoint

    group = typer.Typer(help=checkpoint.HELP, no_args_is_help=True, rich_markup_mode=None)
    for name, func in checkpoint.COMMANDS:
        group.command(name, cls=PsftrCommand)(_interruptible(func))
    app.add_typer(group, name="checkpoint")


_register()


def run() -> None:
    """Console-script entry point: one-line errors with the documented exit codes (docs/formats.md).

    SIGTERM ends a command as Ctrl-C does (exit 143), and a stdout or log file that stops
    taking output ends it with one line, never a traceback (psftr_cli.signals).
    """
    with sigterm_as_interrupt() as sigterm, guarded_stdout() as stdout:
        code = _run_app()
        code = _flush_stdout(stdout, code)  # now, not at exit, where a failure has no exit code
    if sigterm.received and code == INTERRUPTED_EXIT:
        code = TERMINATED_EXIT
    sys.exit(_report_log_file(code))


def _run_app() -> int:
    """The command's exit code; a PsftrError becomes its one line."""
    try:
        app()
    except SystemExit as done:
        return _exit_code(done)
    except StdoutBroken as err:
        return _stdout_failed(err)
    except PsftrError as err:
        print(f"psftr: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


def _exit_code(done: SystemExit) -> int:
    if done.code is None or isinstance(done.code, int):
        return done.code or 0
    print(done.code, file=sys.stderr)  # sys.exit("message"), as Python would show it
    return 1


def _stdout_failed(err: StdoutBroken) -> int:
    if not err.silent:  # a reader that went away (| head) is no error to tell
        print(f"psftr: error: {err}", file=sys.stderr)
    return err.exit_code


def _flush_stdout(stdout: GuardedStdout, code: int) -> int:
    """Flush what is left for stdout; an exit code of 0 becomes the failure's if that fails
    (or if a failure during the run was caught on its way out)."""
    try:
        stdout.flush()  # a no-op once it failed
    except StdoutBroken:
        pass
    if stdout.failure is not None and code == 0:
        return _stdout_failed(stdout.failure)
    return code


def _report_log_file(code: int) -> int:
    """A ``--log-file`` that stopped taking records: one line, and exit 1 for a run that was ok."""
    from psftr_cli.logs import take_log_file_failure

    failure = take_log_file_failure()
    if failure is None:
        return code
    kind = "error" if code == 0 else "warning"  # a failed run already has its error line
    print(f"psftr: {kind}: {failure}; records from then on are missing", file=sys.stderr)
    return 1 if code == 0 else code
