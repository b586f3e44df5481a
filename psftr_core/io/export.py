"""Results files: the ActivityNet results JSON and a spreadsheet-safe CSV.

Both hold the same thing, ``{video_id: [{"segment": [start_s, end_s], "label": str,
"score": float}, ...]}`` (docs/formats.md):

- JSON: ``{"version": str, "results": {...}, "external_data": {"used": false,
  "details": str}}``, the official ActivityNet results schema. Numbers are written
  as given (no rounding), so a written file reads back equal.
- CSV: header ``video,label,start,end,score``, one row per segment, seconds with 3
  decimals, the score with 6 significant digits, RFC 4180 quoting (``csv`` module,
  CRLF line ends). Text cells (video, label) that begin with ``=``, ``+``, ``-``,
  ``@``, tab or CR get a single quote ``'`` in front so a spreadsheet shows them as
  text instead of running them as a formula. Number cells are left alone: a
  formatted number cannot be a formula.

File paths are written atomically (``psftr_core.io.atomic``); open text streams (e.g.
stdout) are written directly, row by row, so output can be streamed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import IO, Any

from psftr_core import __version__
from psftr_core.errors import InputError
from psftr_core.io.atomic import atomic_open
from psftr_core.io.json_file import read_json_file

CSV_HEADER = ("video", "label", "start", "end", "score")

# First characters that make a spreadsheet treat a cell as a formula (OWASP list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def fixed_score(score: float) -> str:
    """``score`` with 6 significant digits in fixed notation (``0.0000678748``, never
    ``6.78748e-05``, which spreadsheets and some parsers read as text or misread)."""
    import numpy as np

    return np.format_float_positional(float(score), precision=6, unique=False, fractional=False, trim="-")


def neutralise_cell(text: str) -> str:
    """Return ``text`` with a leading ``'`` if it begins like a spreadsheet formula."""
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def _is_number(value: Any) -> bool:
    """A real number (numpy scalars included, bool excluded)."""
    kind = type(value)
    if kind is float or kind is int:  # fast path for what json.load gives
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _segment_entry(video: str, index: int, entry: Any) -> dict:
    """One validated, plain-Python detection dict (numpy scalars become floats)."""
    try:
        segment = entry["segment"]
        start, end = segment
        label = entry["label"]
        score = entry["score"]
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"results for video {video!r}, entry {index}: expected "
            '{"segment": [start, end], "label": str, "score": number}'
        ) from None
    if not (_is_number(start) and _is_number(end) and math.isfinite(start) and math.isfinite(end)):
        raise InputError(f"results for video {video!r}, entry {index}: segment must be two finite numbers")
    if end < start:
        raise InputError(f"results for video {video!r}, entry {index}: segment end {end} is before start {start}")
    if not isinstance(label, str) or not label:
        raise InputError(f"results for video {video!r}, entry {index}: label must be a non-empty string")
    if not (_is_number(score) and math.isfinite(score)):
        raise InputError(f"results for video {video!r}, entry {index}: score must be a finite number")
    return {"segment": [float(start), float(end)], "label": label, "score": float(score)}


def normalise_results(results: Any) -> dict[str, list[dict]]:
    """Validate a results mapping and return it as plain Python values.

    Raises InputError naming the video and entry on anything malformed.
    """
    if not isinstance(results, Mapping):
        raise InputError("results must map video ids to lists of detections")
    clean: dict[str, list[dict]] = {}
    for video, entries in results.items():
        if not isinstance(video, str):
            raise InputError(f"results: video id {video!r} is not a string")
        if not isinstance(entries, (list, tuple)):
            raise InputError(f"results for video {video!r}: expected a list of detections")
        clean[video] = [_segment_entry(video, i, entry) for i, entry in enumerate(entries)]
    return clean


def results_document(
    results: Mapping[str, Sequence[Mapping[str, Any]]], details: str = "", version: str | None = None
) -> dict:
    """The full ActivityNet results document for ``results`` (validated)."""
    return {
        "version": version if version is not None else f"psftr {__version__}",
        "results": normalise_results(results),
        "external_data": {"used": False, "details": details},
    }


def _is_stream(target: Any) -> bool:
    return hasattr(target, "write")


def write_results_json(
    path_or_file: str | os.PathLike | IO[str],
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    details: str = "",
    version: str | None = None,
) -> None:
    """Write the results document to a path (atomically) or to an open text stream."""
    document = results_document(results, details, version)
    if _is_stream(path_or_file):
        json.dump(document, path_or_file, indent=2, ensure_ascii=False)
        path_or_file.write("\n")
        return
    with atomic_open(path_or_file, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def read_results_json(path: str | os.PathLike) -> dict[str, list[dict]]:
    """Read a results file: ``video -> [{"segment","label","score"}]``.

    Accepts the full document (``{"version", "results", "external_data"}``) or a bare
    ``{video_id: [...]}`` mapping. Raises InputError (one line, naming the file and the
    offending video/entry) on a missing, empty, garbled or wrongly shaped file.
    """
    data = read_json_file(path, "predictions")
    if isinstance(data, dict) and "results" in data:
        data = data["results"]
    elif isinstance(data, dict) and any(not isinstance(v, list) for v in data.values()):
        raise InputError(
            f"predictions file {path} is not an ActivityNet results file "
            '(expected {"results": {video_id: [detections]}})'
        )
    if not isinstance(data, dict):
        raise InputError(
            f"predictions file {path}: \"results\" must map video ids to lists of detections"
        )
    try:
        return normalise_results(data)
    except InputError as err:
        raise InputError(f"predictions file {path}: {err}") from None


class CsvSegmentWriter:
    """Stream detections as CSV rows; the header is written on creation.

    ``stream`` must be a text stream opened with ``newline=""`` (files) or stdout.
    With ``flush=True`` every row is flushed, so a reader sees it immediately.
    """

    def __init__(self, stream: IO[str], flush: bool = False) -> None:
        self._stream = stream
        self._flush = flush
        self._writer = csv.writer(stream, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        self._writer.writerow(CSV_HEADER)
        self.rows = 0
        if flush:
            stream.flush()

    def write_row(self, video: str, label: str, start: float, end: float, score: float) -> None:
        self._writer.writerow(
            (
                neutralise_cell(str(video)),
                neutralise_cell(str(label)),
                f"{float(start):.3f}",
                f"{float(end):.3f}",
                fixed_score(score),
            )
        )
        self.rows += 1
        if self._flush:
            self._stream.flush()

    def write_video(self, video: str, detections: Sequence[Mapping[str, Any]]) -> None:
        for det in detections:
            start, end = det["segment"]
            self.write_row(video, det["label"], start, end, det["score"])


def write_results_csv(
    path_or_file: str | os.PathLike | IO[str], results: Mapping[str, Sequence[Mapping[str, Any]]]
) -> None:
    """Write all detections as CSV to a path (atomically) or to an open text stream."""
    results = normalise_results(results)
    if _is_stream(path_or_file):
        target = contextlib.nullcontext(path_or_file)
    else:
        target = atomic_open(path_or_file, "w", encoding="utf-8", newline="")
    with target as handle:
        writer = CsvSegmentWriter(handle)
        for video, detections in results.items():
            writer.write_video(video, detections)
