"""What SRT and WebVTT share: one video's timeline, one cue per segment.

Each cue has the text ``label (0.873)`` (score with 3 decimals). Times are whole
milliseconds, ``HH:MM:SS<mark>mmm``, each rounded to the nearest millisecond, so a
parsed cue gives back the segment's times to within half a millisecond (a cue whose end
would round onto its start ends one millisecond later: both formats need end > start).
Cues are ordered by start, then end, then label, then decreasing score.

Overlapping segments: a subtitle file is one timeline, and different actions (or the
same action twice) often overlap. WebVTT allows overlapping cues. SRT has no written
standard; overlapping cues are parsed by the common parsers and shown stacked by the
common players (VLC, mpv, browsers via conversions), so SRT also gets one cue per
segment, overlapping as the segments do. The alternative, merging concurrent labels
into one cue per time span, would split a segment over several cues and lose which
pieces belong together; one cue per segment keeps every segment recoverable and makes
the file round-trip.

Untrusted text: labels are written on one line (:func:`one_line`), so they cannot end a
cue early; each format escapes the rest (``srt_format``, ``vtt_format``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import IO, Any

from psftr_core.errors import InputError
from psftr_core.io.formats.base import StreamWriter


def cue_order(detections: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Detections in cue order: start, end, label, then decreasing score."""
    return sorted(detections, key=lambda d: (d["segment"][0], d["segment"][1], d["label"], -d["score"]))


def cue_milliseconds(start: float, end: float) -> tuple[int, int]:
    """``(start_ms, end_ms)`` rounded to the nearest millisecond, with end > start.

    Raises InputError for a negative start (a subtitle time cannot be negative).
    """
    if start < 0:
        raise InputError(f"segment start {start} is negative: subtitle times start at 0")
    start_ms = round(start * 1000.0)
    end_ms = max(round(end * 1000.0), start_ms + 1)
    return start_ms, end_ms


def format_timestamp(milliseconds: int, decimal_mark: str) -> str:
    """``HH:MM:SS<mark>mmm`` (hours grow past two digits when needed)."""
    seconds, ms = divmod(int(milliseconds), 1000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{sec:02d}{decimal_mark}{ms:03d}"


_LINE_BREAKS = str.maketrans({"\r": " ", "\n": " ", "\u2028": " ", "\u2029": " ", "\x85": " "})


def one_line(text: str) -> str:
    """``text`` with every line break replaced by a space."""
    return text.translate(_LINE_BREAKS)


class SubtitleWriter(StreamWriter):
    """The cues of one video; a second video is refused (the format's ``single_video``).

    A subtitle format subclasses it: ``decimal_mark`` of its times, ``header`` (written
    at creation), :meth:`_preamble` (before the cues) and :meth:`_cue`.
    """

    decimal_mark = "."
    header = ""

    def __init__(self, stream: IO[str], flush: bool = True, details: str = "", version: str | None = None) -> None:
        super().__init__(stream, flush)
        self._video: str | None = None
        if self.header:
            stream.write(self.header)

    def write_video(self, video: str, detections: Sequence[Any]) -> None:
        if self._video is not None:
            raise InputError(
                f"--format {self.fmt} holds one video's timeline; got a second video {video!r} "
                f"after {self._video!r} (write one file per video instead)"
            )
        super().write_video(video, detections)
        self._video = video

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        self._stream.write(self._preamble(video))
        for number, det in enumerate(cue_order(items), start=1):
            try:
                start_ms, end_ms = cue_milliseconds(*det["segment"])
            except InputError as err:
                raise InputError(f"video {video!r}: {err}") from None
            mark = self.decimal_mark
            timing = f"{format_timestamp(start_ms, mark)} --> {format_timestamp(end_ms, mark)}"
            self._stream.write(self._cue(number, timing, det["label"], det["score"]))

    def _preamble(self, video: str) -> str:
        """Text between the header and the first cue."""
        return ""

    def _cue(self, number: int, timing: str, label: str, score: float) -> str:
        """One cue block, its blank line included."""
        raise NotImplementedError
