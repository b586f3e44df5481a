"""How a command's help lists its arguments: name and metavar, as the options are.

Typer writes each argument with its Python type (``INPUTS <list[str]>``), which tells a
user nothing; the argument's own help says what it takes. :class:`PsftrCommand` lists
``INPUTS...`` instead (``...`` for an argument that takes several values).
"""

from __future__ import annotations

from typing import Any

import click
from typer.core import TyperCommand


class PsftrCommand(TyperCommand):
    """A Typer command whose help lists arguments without their Python types."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        arguments, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), record[1]))
            elif param.param_type_name == "option":
                opts.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


def _argument_name(param: Any) -> str:
    name = param.metavar or (param.name or "").upper()
    return f"{name}..." if param.nargs == -1 else name
