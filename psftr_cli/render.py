"""Rich tables for evaluation results (shared by every ``psftr evaluate`` mode)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def _tiou_header(t: float) -> str:
    # str() of a float parsed from a decimal gives back that decimal ("0.3", "0.55").
    return str(t)


def _print(console: Console, table: Table) -> None:
    # Piped output has no terminal width to respect: print the table unwrapped.
    if not console.is_terminal:
        needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
        if needed > console.width:
            console = Console(file=console.file, width=needed, color_system=None, highlight=False)
    console.print(table)


def _percent(value: float) -> str:
    return f"{100.0 * value:.2f}"


def render_map_table(result: Any, console: Console, per_class: bool = False, title: str | None = None) -> None:
    """Print mAP (%) at each threshold plus "Avg"; with ``per_class`` also AP per class.

    ``result`` is an ``EvalResult`` (anything with ``tious``, ``mAP``, ``average`` and
    ``per_class``). Class names are printed literally (no Rich markup).
    """
    headers = [_tiou_header(t) for t in result.tious] + ["Avg"]
    table = Table(title=title or "Detection mAP (%)", title_justify="left")
    table.add_column("tIoU", no_wrap=True)
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_row("mAP", *[_percent(v) for v in result.mAP], _percent(result.average))
    _print(console, table)
    if not per_class:
        return
    classes = Table(title="Average precision per class (%)", title_justify="left")
    classes.add_column("class", no_wrap=True)
    for header in headers:
        classes.add_column(header, justify="right", no_wrap=True)
    for name, aps in result.per_class.items():
        average = sum(aps) / len(aps) if aps else 0.0
        classes.add_row(_escape(name), *[_percent(a) for a in aps], _percent(average))
    _print(console, classes)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
