"""What ``psftr extract`` shows on stderr: notes, a progress bar, the summary table.

Imported inside the command (it imports the extraction core, and that imports numpy).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from psftr_cli.render import print_table
from psftr_core.features.extract import ExtractListener, ExtractSummary, VideoExtractResult

MAX_NOTES = 10  # notes on skipped input files shown before "... and N more"


def say(console: Console, text: str) -> None:
    """One plain line on the (stderr) console: no markup, so paths print as they are."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


class ExtractProgress(ExtractListener):
    """Prints notes and failures as they come and a transient progress bar (``show_bar``).

    Use as a context manager so that the bar is taken down however the run ends.
    """

    def __init__(self, console: Console, show_bar: bool = True) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not show_bar,
            transient=True,
        )
        self.task: Any = None

    def __enter__(self) -> ExtractProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.task is not None:  # stopping a bar that never started would print a blank line
            self.progress.stop()

    def inputs_collected(self, notes: list[str]) -> None:
        for note in notes[:MAX_NOTES]:
            say(self.console, f"note: {note}")
        if len(notes) > MAX_NOTES:
            say(self.console, f"note: ... and {len(notes) - MAX_NOTES} more files skipped")

    def shard_selected(self, shard: tuple[int, int], selected: int, total: int) -> None:
        if shard[1] > 1:
            say(self.console, f"shard {shard[0]}/{shard[1]}: {selected} of {total} videos")

    def quantized(self, drift: dict) -> None:
        say(
            self.console,
            "int8 image tower: cosine to fp32 mean {cosine_mean:.4f}, min {cosine_min:.4f}, "
            "relative L2 error {relative_l2:.4f} on {frames} frames".format(**drift),
        )

    def run_started(self, videos: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("extract", total=videos)

    def video_progress(self, video_id: str, encoded: int, total: int) -> None:
        self.progress.update(self.task, description=f"{video_id} ({encoded}/{total})")

    def video_done(self, result: VideoExtractResult) -> None:
        if result.status == "failed":
            say(self.console, f"failed {result.video_id}: {result.error}")
        self.progress.advance(self.task)


def print_summary(summary: ExtractSummary, console: Console) -> None:
    """Summary table: done, skipped, failed, frames, time, frames/s; then redone and failed videos."""
    table = Table(title=f"psftr extract -> {summary.output_dir}", title_justify="left")
    for column in ("done", "skipped", "failed", "frames", "time", "frames/s"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(summary.ids("done"))),
        str(len(summary.ids("skipped"))),
        str(len(summary.ids("failed"))),
        str(summary.frames),
        f"{summary.elapsed:.1f} s",
        f"{summary.frames_per_second:.1f}",
    )
    print_table(console, table)
    redone = [r.video_id for r in summary.results if r.redone and r.status == "done"]
    if redone:
        say(console, f"redone with new settings: {len(redone)} videos")
    for result in summary.results:
        if result.status == "failed":
            say(console, f"failed {result.video_id} ({result.path}): {result.error}")
