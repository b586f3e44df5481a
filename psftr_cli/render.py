"""Rich output of ``psftr evaluate``: mAP tables, the over-splits table, warnings; and
:func:`counted`, a count and its noun in the right number, for every command's messages.

Tables go to stdout, each under a title line saying what was scored, on which dataset and
split; notes and warnings to stderr (:func:`stderr_console`).
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


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``1 class``, ``2 classes``, ``0 videos``: ``number`` and the noun in its number.
    ``plural`` defaults to ``noun`` + "es" after s, x, z or sh, else + "s" ("epochs"; give
    the others, e.g. "batches")."""
    if number == 1:
        return f"{number} {noun}"
    if plural is None:
        plural = noun + ("es" if noun.endswith(("s", "x", "z", "sh")) else "s")
    return f"{number} {plural}"


def print_table(console: Console, table: Table) -> None:
    """Print ``table``; piped output has no terminal width to respect, so it is not wrapped."""
    if not console.is_terminal:
        needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
        if needed > console.width:
            console = Console(file=console.file, width=needed, color_system=None, highlight=False)
    console.print(table)


def print_titled(console: Console, title: str, table: Table) -> None:
    """``title`` on its own line, then ``table``: a table's own title is wrapped to the
    table's width, and these titles (what was scored, where) are often wider."""
    console.print(title, markup=False, soft_wrap=True, highlight=False)
    print_table(console, table)


def _percent(value: float) -> str:
    return f"{100.0 * value:.2f}"


def render_map_table(result: Any, console: Console, per_class: bool = False, title: str | None = None) -> None:
    """Print mAP (%) at each threshold plus "Avg"; with ``per_class`` also AP per class.

    ``result`` is an ``EvalResult`` (anything with ``tious``, ``mAP``, ``average`` and
    ``per_class``). Class names are printed literally (no Rich markup).
    """
    # str() of a float parsed from a decimal gives back that decimal ("0.3", "0.55").
    headers = [str(t) for t in result.tious] + ["Avg"]
    table = Table()
    table.add_column("tIoU", no_wrap=True)
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_row("mAP", *[_percent(v) for v in result.mAP], _percent(result.average))
    print_titled(console, title or "Detection mAP (%)", table)
    if not per_class:
        return
    classes = Table()
    classes.add_column("class", no_wrap=True)
    for header in headers:
        classes.add_column(header, justify="right", no_wrap=True)
    for name, aps in result.per_class.items():
        average = sum(aps) / len(aps) if aps else 0.0
        classes.add_row(escape(name), *[_percent(a) for a in aps], _percent(average))
    print_titled(console, "Average precision per class (%)", classes)


LOCALIZER_WORDS = "Training-free localizer"


def psftr_words(roi_weight: float, contrast_weight: float, nms: str = "all") -> str:
    """The model's scoring in a title: ``PSFTR (w_r 0.5, w_c 0)``; w_r is left out at
    w_c = 1 (where it has no effect), cross-window NMS is said."""
    weights = f"w_c {contrast_weight:g}" if contrast_weight >= 1 else f"w_r {roi_weight:g}, w_c {contrast_weight:g}"
    return f"PSFTR ({weights}{', cross-window NMS' if nms == 'cross_window' else ''})"


def _on(dataset: str | None) -> str:
    return f" on {dataset}" if dataset else ""


def split_title(ratio: str, evaluation: Any, dataset: str | None = None, scored_by: str | None = None) -> str:
    """Title of the table of one ``CheckpointEvaluation``: what scored it (``scored_by``,
    e.g. ``psftr_words(...)``; default "PSFTR" or the localizer), the dataset, the split."""
    scored_by = scored_by or (LOCALIZER_WORDS if evaluation.checkpoint is None else "PSFTR")
    what = f"{scored_by} zero-shot mAP (%){_on(dataset)}, split {ratio}/{evaluation.split_index}"
    if evaluation.checkpoint is None:
        return what
    if evaluation.selection == "best":
        return f"{what}, {SELECTION_NOTE}"
    return f"{what}, last epoch" + (f" ({evaluation.epoch})" if evaluation.epoch is not None else "")


def render_aggregate(agg: Any, console: Console, ratio: str, dataset: str | None = None,
                     scored_by: list[str] | None = None) -> None:
    """One row per split and mean ± std per threshold (percent) of a ``SplitAggregate``.

    ``scored_by``: what scored each split (as in :func:`split_title`); one for all goes in
    the title, different ones in an "inference" column.
    """
    localizer = bool(agg.per_split) and agg.per_split[0].checkpoint is None
    scored_by = scored_by or [LOCALIZER_WORDS if localizer else "PSFTR"] * len(agg.per_split)
    same = len(set(scored_by)) <= 1
    what = scored_by[0] if same and scored_by else "PSFTR (each split's inference)"
    title = f"{what} zero-shot mAP (%){_on(dataset)} over {counted(len(agg.per_split), 'split')} of {ratio}"
    if not localizer:
        title += ", " + (SELECTION_NOTE if agg.selection == "best" else "last epoch of each split")
    table = Table()
    table.add_column("split", no_wrap=True)
    if not same:
        table.add_column("inference", no_wrap=True)
    for t in agg.tious:
        table.add_column(str(t), justify="right", no_wrap=True)
    table.add_column("Avg", justify="right", no_wrap=True)
    for ev, words in zip(agg.per_split, scored_by):
        table.add_row(str(ev.split_index), *([] if same else [words]), *[_percent(v) for v in ev.result.mAP],
                      _percent(ev.result.average))
    table.add_section()
    table.add_row(
        "mean ± std", *([] if same else [""]),
        *[f"{100 * m:.2f} ± {100 * s:.2f}" for m, s in zip(agg.mean, agg.std)],
        f"{100 * agg.average_mean:.2f} ± {100 * agg.average_std:.2f}",
    )
    print_titled(console, title, table)


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
