"""``--format csv``: the results CSV of :mod:`psftr_core.io.export` (header
``video,label,start,end,score``, formula cells neutralised), one video at a time."""

from __future__ import annotations

from typing import IO, Any

from psftr_core.io.export import CsvSegmentWriter
from psftr_core.io.formats.base import OutputFormat, StreamWriter


class CsvWriter(StreamWriter):
    """The results CSV (header at creation); ``stream`` needs ``newline=""`` if a file."""

    fmt = "csv"

    def __init__(self, stream: IO[str], flush: bool = True, details: str = "", version: str | None = None) -> None:
        super().__init__(stream, flush)
        self._csv = CsvSegmentWriter(stream, flush=False)
        if flush:
            stream.flush()

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        self._csv.write_video(video, items)


CSV_FORMAT = OutputFormat(name="csv", extension="csv", summary="one row per segment", open=CsvWriter)
