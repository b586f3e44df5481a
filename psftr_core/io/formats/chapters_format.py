"""``--format chapters``: FFmpeg metadata chapters of one video (``<video>.ffmetadata``).

::

    ;FFMETADATA1
    ; psftr detections of video bikes

    [CHAPTER]
    TIMEBASE=1/1000
    START=960
    END=5760
    title=riding a bike (0.873)

Mux them into the video with
``ffmpeg -i bikes.mp4 -i bikes.ffmetadata -map_metadata 1 -codec copy bikes_chapters.mkv``
(Matroska keeps each chapter's end; MP4 stores only chapter starts, so there a chapter
lasts until the next one).

Chapters cannot overlap, segments can. Segments that overlap (a start before the end
of the chapter so far, in whole milliseconds) become one chapter spanning their union,
titled with each label once, at its best score, best first
(``riding a bike (0.873) + walking (0.451)``); a comment line ``; chapter N merges ...``
before it lists the merged segments. Segments that only touch stay separate chapters.
Times are whole milliseconds (rounded; a chapter ends at least 1 ms after its start).

Untrusted text: titles are on one line with FFmpeg's metadata escapes (``\\`` before
``=``, ``;``, ``#`` and ``\\``); comments are on one line.
"""

from __future__ import annotations

from typing import Any

from psftr_core.io.formats.base import OutputFormat
from psftr_core.io.formats.subtitles import cue_milliseconds, cue_order, one_line
from psftr_core.io.formats.timeline import TimelineWriter, check_start

HEADER = ";FFMETADATA1\n"


def metadata_escape(text: str) -> str:
    """FFmpeg metadata value escaping: one line, ``\\`` before ``= ; # \\``."""
    escaped = one_line(text).replace("\\", "\\\\")
    for special in "=;#":
        escaped = escaped.replace(special, "\\" + special)
    return escaped


def chapter_groups(video: str, items: list[dict[str, Any]]) -> list[tuple[int, int, list[dict[str, Any]]]]:
    """``(start_ms, end_ms, segments)`` per chapter: overlapping segments in one group."""
    groups: list[tuple[int, int, list[dict[str, Any]]]] = []
    for det in cue_order(items):
        check_start(video, det["segment"][0])
        start_ms, end_ms = cue_milliseconds(*det["segment"])
        if groups and start_ms < groups[-1][1]:  # overlaps the chapter so far
            first, last, members = groups[-1]
            groups[-1] = (first, max(last, end_ms), [*members, det])
        else:
            groups.append((start_ms, end_ms, [det]))
    return groups


def chapter_title(members: list[dict[str, Any]]) -> str:
    """``label (score)``; for merged segments each label once, at its best score, best first."""
    best: dict[str, float] = {}
    for det in members:
        best[det["label"]] = max(best.get(det["label"], det["score"]), det["score"])
    ranked = sorted(best.items(), key=lambda pair: (-pair[1], pair[0]))
    return " + ".join(f"{label} ({score:.3f})" for label, score in ranked)


def merge_comment(number: int, start_ms: int, end_ms: int, members: list[dict[str, Any]]) -> str:
    """``; chapter N merges K overlapping segments (a-b s): label a-b (score), ...``."""
    listed = ", ".join(
        f"{one_line(d['label'])} {d['segment'][0]:.3f}-{d['segment'][1]:.3f} ({d['score']:.3f})" for d in members
    )
    span = f"{start_ms / 1000:.3f}-{end_ms / 1000:.3f} s"
    return f"; chapter {number} merges {len(members)} overlapping segments ({span}): {listed}\n"


class ChaptersWriter(TimelineWriter):
    """Header, a comment naming the video, then one ``[CHAPTER]`` per group of segments."""

    fmt = "chapters"

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        self._stream.write(f"{HEADER}; psftr detections of video {one_line(video)}\n")
        for number, (start_ms, end_ms, members) in enumerate(chapter_groups(video, items), start=1):
            note = merge_comment(number, start_ms, end_ms, members) if len(members) > 1 else ""
            title = metadata_escape(chapter_title(members))
            self._stream.write(f"\n{note}[CHAPTER]\nTIMEBASE=1/1000\nSTART={start_ms}\nEND={end_ms}\ntitle={title}\n")


CHAPTERS_FORMAT = OutputFormat(name="chapters", extension="ffmetadata", summary="FFmpeg metadata chapters",
                               open=ChaptersWriter, single_video=True,
    media=True)
