"""``--format edl``: a CMX 3600 edit decision list of one video, one event per segment.

::

    TITLE: bikes
    FCM: NON-DROP FRAME

    001  AX       V     C        00:00:00:24 00:00:05:18 01:00:00:00 01:00:04:18
    * FROM CLIP NAME: bikes.mp4
    * riding a bike (score 0.873)

Each event is a cut (``C``) of the video track (``V``) of reel ``AX`` (the usual reel
name of a file-based source), events in segment order (start, end, label, decreasing
score). Source in/out are the segment's start and end on the video's frames (the out
point is exclusive, as EDLs count it; an event is at least one frame); the record side
lays the events end to end from ``01:00:00:00``, so importing the list gives a sequence
of the detected clips. The comment under each event names the label and score (its
label on one line).

Timecodes run at the video's frame rate (``timecode``; drop frame at 29.97 / 59.94,
with ``FCM: DROP FRAME``). When the rate is unknown (a feature dataset's video), they
run at ``timecode.DEFAULT_FPS`` and a comment under each event says so. CMX 3600 numbers events up to
999; a video with more segments gets 4-digit numbers from 1000 on.
"""

from __future__ import annotations

from typing import Any

from psftr_core.io.formats.base import OutputFormat
from psftr_core.io.formats.subtitles import cue_order, one_line
from psftr_core.io.formats.timecode import (
    DEFAULT_FPS,
    TimecodeRate,
    frame_to_timecode,
    seconds_to_frame,
    timecode_rate,
    timecode_to_frame,
)
from psftr_core.io.formats.timeline import TimelineWriter, check_start, media_fps, media_name

REEL = "AX"
RECORD_START = "01:00:00:00"  # the record side starts at one hour, as in broadcast


def rate_comment(fps: float | None, rate: TimecodeRate) -> str:
    """A comment line (for each event) when the timecodes do not run at the video's own rate, else ''."""
    if fps is None:
        return f"* psftr: frame rate of the video unknown; timecodes at {DEFAULT_FPS:g} fps\n"
    if not rate.exact:
        return f"* psftr: the video's {fps:g} fps is no timecode rate; timecodes at {rate.nominal} fps\n"
    return ""


def event_line(number: int, source: tuple[int, int], record: tuple[int, int], rate: TimecodeRate) -> str:
    """``NNN  AX       V     C        SRC_IN SRC_OUT REC_IN REC_OUT`` (frame numbers in)."""
    times = " ".join(frame_to_timecode(frame, rate) for frame in (*source, *record))
    return f"{number:03d}  {REEL:<8} {'V':<5} {'C':<8} {times}\n"


class EdlWriter(TimelineWriter):
    """Title, frame-count mode, then one event (line + clip name + comment) per segment."""

    fmt = "edl"

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        fps = media_fps(self.media)
        rate = timecode_rate(fps)
        mode = "DROP FRAME" if rate.drop_frame else "NON-DROP FRAME"
        record = timecode_to_frame(RECORD_START, rate)
        clip = one_line(media_name(video, self.media))
        note = rate_comment(fps, rate)  # under each event: EDL readers take comments only there
        self._stream.write(f"TITLE: {one_line(video)}\nFCM: {mode}\n\n")
        for number, det in enumerate(cue_order(items), start=1):
            start, end = det["segment"]
            check_start(video, start)
            source_in = seconds_to_frame(start, rate)
            source_out = max(seconds_to_frame(end, rate), source_in + 1)
            record_out = record + source_out - source_in
            self._stream.write(event_line(number, (source_in, source_out), (record, record_out), rate))
            self._stream.write(f"* FROM CLIP NAME: {clip}\n* {one_line(det['label'])} (score {det['score']:.3f})\n{note}\n")
            record = record_out


EDL_FORMAT = OutputFormat(name="edl", extension="edl", summary="CMX 3600 edit list", open=EdlWriter,
                          single_video=True, media=True)
