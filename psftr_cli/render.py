"""Rich output of ``psftr evaluate``: mAP tables, the over-splits table, warnings.

Tables go to stdout; notes and warnings to stderr (:func:`stderr_console`).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

SELECTION_NOTE = "best-on-test checkpoint selection (optimistic: chosen on the evaluation data)"


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def print_table(console: Console, table: Table) -> None:
    """Print ``table``; piped output has no terminal width to respect, so it is not wrapped."""
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
    # str() of a float parsed from a decimal gives back that decimal ("0.3", "0.55").
    headers = [str(t) for t in result.tious] + ["Avg"]
    table = Table(title=title or "Detection mAP (%)", title_justify="left")
    table.add_column("tIoU", no_wrap=True)
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_row("mAP", *[_percent(v) for v in result.mAP], _percent(result.average))
    print_table(console, table)
    if not per_class:
        return
    classes = Table(title="Average precision per class (%)", title_justify="left")
    classes.add_column("class", no_wrap=True)
    for header in headers:
        classes.add_column(header, justify="right", no_wrap=True)
    for name, aps in result.per_class.items():
        average = sum(aps) / len(aps) if aps else 0.0
        classes.add_row(escape(name), *[_percent(a) for a in aps], _percent(average))
    print_table(console, classes)


def split_title(ratio: str, evaluation: Any) -> str:
    """Title of the table of one ``CheckpointEvaluation`` (PSFTR or the localizer)."""
    if evaluation.checkpoint is None:
        return f"Training-free localizer zero-shot mAP (%), split {ratio}/{evaluation.split_index}"
    what = f"PSFTR zero-shot mAP (%), split {ratio}/{evaluation.split_index}"
    if evaluation.selection == "best":
        return f"{what}, {SELECTION_NOTE}"
    return f"{what}, last epoch" + (f" ({evaluation.epoch})" if evaluation.epoch is not None else "")


def render_aggregate(agg: Any, console: Console, ratio: str) -> None:
    """One row per split and mean ± std per threshold (percent) of a ``SplitAggregate``."""
    if agg.per_split and agg.per_split[0].checkpoint is None:
        title = f"Training-free localizer zero-shot mAP (%) over {len(agg.per_split)} splits of {ratio}"
    else:
        title = f"PSFTR zero-shot mAP (%) over {len(agg.per_split)} splits of {ratio}, " + (
            SELECTION_NOTE if agg.selection == "best" else "last epoch of each split"
        )
    table = Table(title=title, title_justify="left")
    table.add_column("split", no_wrap=True)
    for t in agg.tious:
        table.add_column(str(t), justify="right", no_wrap=True)
    table.add_column("Avg", justify="right", no_wrap=True)
    for ev in agg.per_split:
        table.add_row(str(ev.split_index), *[_percent(v) for v in ev.result.mAP], _percent(ev.result.average))
    table.add_section()
    table.add_row(
        "mean ± std",
        *[f"{100 * m:.2f} ± {100 * s:.2f}" for m, s in zip(agg.mean, agg.std)],
        f"{100 * agg.average_mean:.2f} ± {100 * agg.average_std:.2f}",
    )
    print_table(console, table)


def warn_about(result: Any) -> None:
    """One stderr line per kind of input of an ``EvalResult`` that was ignored or unmatched."""
    counts = result.counts
    lines = []
    if counts["ignored_predictions_unknown_label"]:
        lines.append(f"ignored {counts['ignored_predictions_unknown_label']} prediction(s) whose label is not an "
                     f"evaluated class: {_first_five(result.ignored_labels, repr, ' and {} more')}")
    if counts["predictions_on_videos_without_ground_truth"]:
        lines.append(f"{counts['predictions_on_videos_without_ground_truth']} prediction(s) are on videos "
                     "without ground truth; scored as false positives")
    if counts["ground_truth_videos_without_predictions"]:
        lines.append(f"{counts['ground_truth_videos_without_predictions']} of {counts['ground_truth_videos']} "
                     "ground-truth videos have no predictions")
    if result.classes_without_predictions:
        lines.append(f"{len(result.classes_without_predictions)} class(es) have no predictions (AP 0): "
                     + _first_five(result.classes_without_predictions, str, " ..."))
    if result.classes_without_ground_truth:
        lines.append(f"{len(result.classes_without_ground_truth)} requested class(es) have no ground truth "
                     "and are left out of the mean")
    print_lines(stderr_console(), "warning", lines)


def print_lines(console: Console, kind: str, lines: list[str]) -> None:
    """One ``kind: line`` per line, as typed (no markup, no wrapping)."""
    for line in lines:
        console.print(f"{kind}: {line}", markup=False, soft_wrap=True)


def _first_five(items: list[str], show: Any, more: str) -> str:
    """``items[:5]`` joined by ", " (each through ``show``), then ``more`` (``{}`` = how many more)."""
    text = ", ".join(show(item) for item in items[:5])
    return text + (more.format(len(items) - 5) if len(items) > 5 else "")
