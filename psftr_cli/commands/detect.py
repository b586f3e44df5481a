"""``psftr detect``: videos (or a feature dataset) + actions → segments as JSON or CSV.

Data (the results JSON or CSV) goes to stdout when there is no ``--output`` or it is
``-``; progress, warnings and the summary table go to stderr, so pipes stay clean.
Output files and timeline PNGs are written atomically. Exit codes: 0 ok, 2 bad input
(e.g. a missing path, named), 3 some videos failed (the others are written), 1 all
failed. No torch import at module level.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from psftr_core.errors import InputError

SUMMARY_ACTION_ROWS = 20  # the summary lists at most this many actions


def _output_format(fmt: Optional[str], output: Optional[str]) -> str:
    """``--format``, else from the ``--output`` suffix (``.csv``), else json."""
    if fmt is not None:
        value = fmt.strip().lower()
        if value not in ("json", "csv"):
            raise InputError(f"--format must be json or csv, got {fmt!r}")
        return value
    if output and output != "-" and Path(output).suffix.lower() == ".csv":
        return "csv"
    return "json"


def write_report(report: Any, output: Optional[str], fmt: str) -> None:
    """Results as JSON or CSV to ``output`` (atomic file) or stdout (None / ``-``)."""
    from psftr_core.io.export import write_results_csv, write_results_json

    results = report.results()
    if output is None or output == "-":
        # Data is UTF-8 whatever the locale; the csv module writes its own CRLF line ends,
        # so stdout must not translate newlines (newline="").
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(encoding="utf-8", newline="" if fmt == "csv" else None)
        if fmt == "csv":
            write_results_csv(sys.stdout, results)
        else:
            write_results_json(sys.stdout, results, report.details)
        sys.stdout.flush()
    elif fmt == "csv":
        write_results_csv(Path(output), results)
    else:
        write_results_json(Path(output), results, report.details)


def _print_summary(console: Any, report: Any, output: Optional[str], timeline_dir: Optional[Path]) -> None:
    from rich.table import Table
    from rich.text import Text

    stats = report.stats
    per_action = report.segments_per_action()
    table = Table(title="psftr detect", title_justify="left", show_edge=False)
    table.add_column("action", overflow="fold")
    table.add_column("segments", justify="right")
    ranked = sorted(per_action.items(), key=lambda kv: (-kv[1], report.actions.index(kv[0])))
    for name, count in ranked[:SUMMARY_ACTION_ROWS]:
        table.add_row(Text(name), str(count))  # Text: a name like "[red]" is not markup
    if len(ranked) > SUMMARY_ACTION_ROWS:
        rest = ranked[SUMMARY_ACTION_ROWS:]
        table.add_row(f"... {len(rest)} more actions", str(sum(c for _, c in rest)))
    console.print(table)
    cache = ""
    if stats.get("decoded") or stats.get("cache_hits"):
        cache = f", {stats['decoded']} decoded, {stats['cache_hits']} from cache"
    console.print(
        f"videos: {stats['videos']}, failed: {stats['failed']}, segments: {stats['segments']}, "
        f"model: {stats['model']}, threshold: {stats['threshold']:g}{cache}, time: {stats['seconds']:.1f} s",
        markup=False,
        soft_wrap=True,
    )
    if output and output != "-":
        console.print(f"wrote {output}", markup=False, soft_wrap=True)
    if timeline_dir is not None:
        console.print(f"timelines in {timeline_dir}", markup=False, soft_wrap=True)


def detect(
    inputs: Optional[List[str]] = typer.Argument(
        None,
        help="Video files, folders (recursive), glob patterns or @list.txt files. With --features: "
        "optional video ids of that dataset.",
        show_default=False,
        metavar="INPUTS",
    ),
    actions: Optional[List[str]] = typer.Option(
        None, "--actions", "-a", metavar="A,B", help='Comma-separated action names, e.g. "diving,pole vault" (repeatable).'
    ),
    actions_file: Optional[Path] = typer.Option(
        None, "--actions-file", metavar="FILE", help="Text file with one action per line (names may contain commas; '#' lines are comments)."
    ),
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", metavar="CKPT", help="PSFTR checkpoint from psftr train. Default: the training-free localizer."
    ),
    features: Optional[str] = typer.Option(
        None, "--features", metavar="DIR", help="Run on an extracted feature dataset (folder with dataset.yaml) instead of videos."
    ),
    clip_model: Optional[str] = typer.Option(
        None, "--clip-model", metavar="NAME", help="open_clip model name [default: ViT-B-16, or the checkpoint's]."
    ),
    clip_pretrained: Optional[str] = typer.Option(
        None, "--clip-pretrained", metavar="TAG|PATH", help="open_clip weights tag or local weights file [default: openai]."
    ),
    clip_config: Optional[Path] = typer.Option(
        None, "--clip-config", metavar="FILE.json", help="open_clip model-config JSON for a custom architecture."
    ),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", metavar="DIR", help="Feature/text cache folder [default: $PSFTR_CACHE_DIR or ~/.cache/psftr]."
    ),
    fmt: Optional[str] = typer.Option(
        None, "--format", metavar="json|csv", help="json or csv [default: csv if --output ends in .csv, else json]."
    ),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE|-", help="Output file, or - for stdout [default: stdout]."),
    threshold: Optional[List[str]] = typer.Option(
        None,
        "--threshold",
        metavar="T|NAME=T",
        help="Minimum score: 0.3 for all actions, or name=0.3 for one action (repeatable) "
        "[default: 0.3 training-free, 0.03 PSFTR].",
    ),
    top_k: Optional[int] = typer.Option(None, "--top-k", metavar="N", help="Keep at most N segments per video (best scores)."),
    min_duration: float = typer.Option(0.0, "--min-duration", metavar="S", help="Drop segments shorter than S seconds."),
    nms_iou: float = typer.Option(0.5, "--nms-iou", metavar="IOU", help="Class-wise NMS tIoU threshold."),
    timeline: Optional[Path] = typer.Option(None, "--timeline", metavar="DIR", help="Write one timeline PNG per video into DIR."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="auto, cpu or cuda."),
    stride: Optional[int] = typer.Option(
        None, "--stride", metavar="FRAMES", help="Sample one frame every N frames [default: 8, or the checkpoint's rate]."
    ),
    fps: Optional[float] = typer.Option(None, "--fps", metavar="F", help="Sample F frames per second instead of --stride."),
    prompt: Optional[str] = typer.Option(
        None, "--prompt", metavar="TEMPLATE", help='Text prompt template [default: "a video of a person doing {}"].'
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary on stderr."),
) -> None:
    """Find actions of a custom vocabulary in videos; write segments as JSON or CSV."""
    from psftr_cli.render import stderr_console
    from psftr_core.infer.detect import detect as run_detect
    from psftr_core.infer.vocabulary import parse_thresholds, parse_vocabulary

    vocabulary = parse_vocabulary(actions, actions_file)
    global_threshold, per_action = parse_thresholds(threshold)
    out_format = _output_format(fmt, output)
    if output and output != "-" and Path(output).is_dir():
        raise InputError(f"--output {output} is a folder; give a file name (or - for stdout)")
    if timeline is not None and timeline.exists() and not timeline.is_dir():
        raise InputError(f"--timeline {timeline} exists and is not a folder")

    console = stderr_console()
    report = _with_progress(console, quiet, lambda on_progress: run_detect(
        list(inputs or []), vocabulary, checkpoint=checkpoint, features_dir=features, clip_model=clip_model,
        clip_pretrained=clip_pretrained, clip_config=clip_config, cache_dir=cache_dir, threshold=global_threshold,
        per_action_thresholds=per_action, top_k=top_k, min_duration=min_duration, nms_iou=nms_iou, stride=stride,
        fps=fps, device=device, prompt=prompt, on_progress=on_progress,
    ))
    for line in report.warnings:
        console.print(f"warning: {line}", markup=False, soft_wrap=True)
    for failure in report.failures:
        console.print(f"failed: {failure.input}: {failure.reason}", markup=False, soft_wrap=True)
    if not report.videos:
        report.raise_for_failures()  # all failed: nothing to write

    write_report(report, output, out_format)
    if timeline is not None:
        from psftr_core.io.timeline import write_timelines

        write_timelines(timeline, report.results(), report.actions, report.durations())
    if not quiet:
        _print_summary(console, report, output, timeline)
    report.raise_for_failures()


def _with_progress(console: Any, quiet: bool, run: Callable[[Any], Any]) -> Any:
    """``run(on_progress)`` with a rich progress bar on stderr fed by ``on_progress``.

    The bar is shown on a terminal only and starts with the first video, so argument
    errors print no empty bar.
    """
    if quiet or not console.is_terminal:  # a bar in a log file is noise
        return run(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    state: dict[str, Any] = {}

    def on_progress(done: int, total: int, video: str, status: str) -> None:
        if "progress" not in state:
            progress = Progress(
                TextColumn("detect"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=console,
                transient=True,
            )
            progress.start()
            state["progress"], state["task"] = progress, progress.add_task("", total=total)
        label = f"{video} ..." if status == "started" else f"{video} ({status})"
        state["progress"].update(state["task"], completed=done, description=label)

    try:
        return run(on_progress)
    finally:
        if "progress" in state:
            state["progress"].stop()
