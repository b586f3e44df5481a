"""Segment writers: one video's detections as CSV, JSON, JSON Lines, SRT or WebVTT.

Every writer has the same small interface (:class:`SegmentWriter`)::

    writer = open_writer("jsonl", sys.stdout)
    writer.write_video("video_a", detections)   # flushed after each video
    writer.close()                                # writes any trailer (JSON, CSV: none)

``detections`` are ActivityNet detection dicts (``{"segment": [start_s, end_s],
"label": str, "score": float}``) or objects with a ``to_result()`` method giving one
(``psftr_core.infer.detect.Segment``). They are validated like the results files of
:mod:`psftr_core.io.export` (finite numbers, end >= start, non-empty label).
:func:`write_video_file` writes one video to a path atomically; :func:`read_video_file`
reads a ``json`` or ``jsonl`` file back exactly (:data:`LOSSLESS_FORMATS`).

Formats:

- ``csv``: the results CSV of :mod:`psftr_core.io.export` (formula cells neutralised).
- ``json``: the ActivityNet results document, byte for byte what
  ``export.write_results_json`` writes, streamed one video at a time.
- ``jsonl``: one line per segment, ``{"video", "label", "start", "end", "score"}``,
  numbers unrounded.
- ``srt`` / ``vtt``: one cue per segment with the text ``label (0.873)`` (score with 3
  decimals). Times are whole milliseconds, ``HH:MM:SS,mmm`` (SRT) / ``HH:MM:SS.mmm``
  (WebVTT), each rounded to the nearest millisecond, so a parsed cue gives back the
  segment's times to within half a millisecond (a cue whose end would round onto its
  start ends one millisecond later: both formats need end > start). Cues are ordered by
  start, then end, then label, then decreasing score.

Overlapping segments: a subtitle file is one timeline, and different actions (or the
same action twice) often overlap. WebVTT allows overlapping cues. SRT has no written
standard; overlapping cues are parsed by the common parsers and shown stacked by the
common players (VLC, mpv, browsers via conversions), so SRT also gets one cue per
segment, overlapping as the segments do. The alternative, merging concurrent labels
into one cue per time span, would split a segment over several cues and lose which
pieces belong together; one cue per segment keeps every segment recoverable and makes
the file round-trip.

Untrusted text: labels are written on one line (CR, LF, U+2028/U+2029 become spaces),
so they cannot end a cue early. WebVTT escapes ``&``, ``<`` and ``>`` as character
references (so ``-->`` cannot appear, and no markup tag is read). SRT has no escape
syntax: ``<`` / ``>`` become ``‹`` / ``›``, so players read no ``<i>``-style tag and
``-->`` cannot appear; the label in an SRT cue is for display, the JSON outputs keep it
exactly. The WebVTT file starts with ``WEBVTT``, a blank line and a ``NOTE`` naming the
video.

SRT and WebVTT hold one video's timeline: a stream writer for them refuses a second
video (:data:`SINGLE_VIDEO_FORMATS`); write several videos to one file per video
(:mod:`psftr_core.io.output_dir`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Protocol

from psftr_core import __version__
from psftr_core.errors import InputError
from psftr_core.io.atomic import atomic_open
from psftr_core.io.export import CsvSegmentWriter, normalise_results, read_results_json

FORMATS = ("json", "csv", "jsonl", "srt", "vtt")
"""Output formats, by their ``--format`` names."""

FORMAT_EXTENSIONS = {"json": "json", "csv": "csv", "jsonl": "jsonl", "srt": "srt", "vtt": "vtt"}
"""File extension (no dot) of each format."""

SINGLE_VIDEO_FORMATS = frozenset({"srt", "vtt"})
"""Formats whose file is one video's timeline: one video per file or stream."""

LOSSLESS_FORMATS = ("jsonl", "json")
"""Formats that :func:`read_video_file` reads back equal to what was written (the others
round times or scores, or change labels for display)."""


class SegmentWriter(Protocol):
    """What :func:`open_writer` returns."""

    videos: int  # videos written so far
    segments: int  # segments written so far

    def write_video(self, video: str, detections: Sequence[Any]) -> None: ...

    def close(self) -> None: ...


def detection_dicts(video: str, detections: Iterable[Any]) -> list[dict[str, Any]]:
    """Validated ActivityNet detection dicts of one video (``to_result()`` objects allowed).

    Raises InputError naming the video and entry on a malformed detection.
    """
    items = [d.to_result() if hasattr(d, "to_result") else d for d in detections]
    return normalise_results({video: items})[video]


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


def srt_text(label: str, score: float) -> str:
    """SRT cue text: one line, ``<`` ``>`` as ``‹`` ``›`` (SRT cannot escape; no ``-->``)."""
    text = one_line(label).replace("<", "\u2039").replace(">", "\u203a")
    return f"{text} ({score:.3f})"


def vtt_escape(text: str) -> str:
    """WebVTT cue text escaping: ``&``, ``<``, ``>`` as character references."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt_text(label: str, score: float) -> str:
    """WebVTT cue text: one line, escaped."""
    return f"{vtt_escape(one_line(label))} ({score:.3f})"


class _StreamWriter:
    """Shared bookkeeping: counts, flush after each video, refuse writes after close."""

    fmt = ""

    def __init__(self, stream: IO[str], flush: bool) -> None:
        self._stream = stream
        self._flush = flush
        self._closed = False
        self.videos = 0
        self.segments = 0

    def write_video(self, video: str, detections: Sequence[Any]) -> None:
        if self._closed:
            raise ValueError(f"{self.fmt} writer is closed")
        if not isinstance(video, str):
            raise InputError(f"video id {video!r} is not a string")
        items = detection_dicts(video, detections)
        self._write(video, items)
        self.videos += 1
        self.segments += len(items)
        if self._flush:
            self._stream.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finish()
            if self._flush:
                self._stream.flush()

    def __enter__(self) -> "_StreamWriter":
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:  # an error leaves the output unfinished, so it cannot pass as complete
            self.close()

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass


class CsvWriter(_StreamWriter):
    """The results CSV (header at creation); ``stream`` needs ``newline=""`` if a file."""

    fmt = "csv"

    def __init__(self, stream: IO[str], flush: bool = True) -> None:
        super().__init__(stream, flush)
        self._csv = CsvSegmentWriter(stream, flush=False)
        if flush:
            stream.flush()

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        self._csv.write_video(video, items)


class JsonLinesWriter(_StreamWriter):
    """One JSON object per segment and line: ``{"video","label","start","end","score"}``."""

    fmt = "jsonl"

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        for det in items:
            start, end = det["segment"]
            record = {"video": video, "label": det["label"], "start": start, "end": end, "score": det["score"]}
            self._stream.write(json.dumps(record, ensure_ascii=False) + "\n")


def _indent(text: str, spaces: int) -> str:
    """Indent every line of ``text`` but the first (it follows a key on its line)."""
    return text.replace("\n", "\n" + " " * spaces)


class JsonDocumentWriter(_StreamWriter):
    """The ActivityNet results document, streamed: the same text as ``json.dump(indent=2)``.

    ``details`` goes into ``external_data.details`` at :meth:`close`, so it may be set
    (``writer.details = ...``) while videos are being written.
    """

    fmt = "json"

    def __init__(self, stream: IO[str], flush: bool = True, details: str = "", version: str | None = None) -> None:
        super().__init__(stream, flush)
        self.details = details
        version = version if version is not None else f"psftr {__version__}"
        stream.write('{\n  "version": ' + json.dumps(version, ensure_ascii=False) + ',\n  "results": {')

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        key = json.dumps(video, ensure_ascii=False)
        body = _indent(json.dumps(items, indent=2, ensure_ascii=False), 4)
        self._stream.write(("," if self.videos else "") + f"\n    {key}: {body}")

    def _finish(self) -> None:
        external = _indent(json.dumps({"used": False, "details": self.details}, indent=2, ensure_ascii=False), 2)
        self._stream.write(("\n  }" if self.videos else "}") + f',\n  "external_data": {external}\n}}\n')


class SubtitleWriter(_StreamWriter):
    """SRT or WebVTT cues of one video (see the module docstring for the rules)."""

    def __init__(self, stream: IO[str], fmt: str, flush: bool = True) -> None:
        super().__init__(stream, flush)
        if fmt not in SINGLE_VIDEO_FORMATS:
            raise ValueError(f"not a subtitle format: {fmt!r}")
        self.fmt = fmt
        self._video: str | None = None
        if fmt == "vtt":
            stream.write("WEBVTT\n\n")

    def write_video(self, video: str, detections: Sequence[Any]) -> None:
        if self._video is not None:
            raise InputError(
                f"--format {self.fmt} holds one video's timeline; got a second video {video!r} "
                f"after {self._video!r} (write one file per video instead)"
            )
        super().write_video(video, detections)
        self._video = video

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        write = self._stream.write
        if self.fmt == "vtt":
            # NOTE text may not contain "-->" or a blank line; one_line + escape see to both.
            write(f"NOTE psftr detections of video {vtt_escape(one_line(video))}\n\n")
        mark = "," if self.fmt == "srt" else "."
        for number, det in enumerate(cue_order(items), start=1):
            try:
                start_ms, end_ms = cue_milliseconds(*det["segment"])
            except InputError as err:
                raise InputError(f"video {video!r}: {err}") from None
            timing = f"{format_timestamp(start_ms, mark)} --> {format_timestamp(end_ms, mark)}"
            if self.fmt == "srt":
                write(f"{number}\n{timing}\n{srt_text(det['label'], det['score'])}\n\n")
            else:
                write(f"{timing}\n{vtt_text(det['label'], det['score'])}\n\n")


def open_writer(
    fmt: str, stream: IO[str], *, flush: bool = True, details: str = "", version: str | None = None
) -> SegmentWriter:
    """A :class:`SegmentWriter` of format ``fmt`` (one of :data:`FORMATS`) on ``stream``.

    ``flush=True`` flushes the stream after each video, so a reader of a pipe sees each
    video's lines as soon as it is done. ``details`` / ``version`` are used by ``json``
    only (the results document's ``external_data.details`` and ``version``). CSV on a file
    needs the file opened with ``newline=""``.
    """
    if fmt == "csv":
        return CsvWriter(stream, flush=flush)
    if fmt == "json":
        return JsonDocumentWriter(stream, flush=flush, details=details, version=version)
    if fmt == "jsonl":
        return JsonLinesWriter(stream, flush=flush)
    if fmt in SINGLE_VIDEO_FORMATS:
        return SubtitleWriter(stream, fmt, flush=flush)
    raise InputError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")


def write_video_file(
    path: str | os.PathLike,
    fmt: str,
    video: str,
    detections: Sequence[Any],
    *,
    details: str = "",
    version: str | None = None,
) -> None:
    """Write one video's detections in format ``fmt`` to ``path``, atomically.

    A malformed detection raises InputError and leaves ``path`` untouched.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = open_writer(fmt, handle, flush=False, details=details, version=version)
        writer.write_video(video, detections)
        writer.close()


def read_video_file(path: str | os.PathLike, fmt: str) -> dict[str, list[dict[str, Any]]]:
    """Read a ``json`` or ``jsonl`` file written here: ``{video: [detection dicts]}``.

    Videos and segments come back in file order, numbers exactly as written. Raises
    InputError (naming the file) on a missing or malformed file.
    """
    if fmt == "json":
        return read_results_json(path)
    if fmt != "jsonl":
        raise InputError(f"cannot read segments back from --format {fmt} (only {', '.join(LOSSLESS_FORMATS)})")
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
                item = {"segment": [record["start"], record["end"]], "label": record["label"], "score": record["score"]}
                results.setdefault(record["video"], []).append(item)
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}, line {number}: not a psftr JSON Lines segment ({err})") from None
    try:
        return normalise_results(results)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None
