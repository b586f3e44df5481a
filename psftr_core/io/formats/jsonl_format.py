"""``--format jsonl``: JSON Lines, one object per segment and line,
``{"video", "label", "start", "end", "score"}``, numbers unrounded (lossless)."""

from __future__ import annotations

import json
import os
from typing import Any

from psftr_core.errors import InputError
from psftr_core.io.export import normalise_results
from psftr_core.io.formats.base import OutputFormat, StreamWriter


class JsonLinesWriter(StreamWriter):
    """One JSON object per segment and line: ``{"video","label","start","end","score"}``."""

    fmt = "jsonl"

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        for det in items:
            start, end = det["segment"]
            record = {"video": video, "label": det["label"], "start": start, "end": end, "score": det["score"]}
            self._stream.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_json_lines(path: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """A JSON Lines file written here as ``{video: [detection dicts]}``.

    Videos and segments come back in file order, numbers exactly as written. Raises
    InputError (naming the file) on a missing or malformed file.
    """
    results: dict[str, list[dict[str, Any]]] = {}
    number = 0
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


JSONL_FORMAT = OutputFormat(
    name="jsonl",
    extension="jsonl",
    summary="one segment per line",
    open=JsonLinesWriter,
    read_back=read_json_lines,
)
