"""Results JSON and CSV: round trips, RFC 4180 quoting, formula neutralisation, errors."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from psftr_core.errors import InputError
from psftr_core.io.export import (
    CsvSegmentWriter,
    neutralise_cell,
    read_results_json,
    results_document,
    write_results_csv,
    write_results_json,
)

RESULTS = {
    "video_a": [
        {"segment": [1.25, 7.123456789], "label": "Diving", "score": 0.87654321},
        {"segment": [10.0, 12.5], "label": "High Jump", "score": 1e-5},
    ],
    "video_b": [],
    "vidéo_c": [{"segment": [0.0, 3.0], "label": "Ünïcode", "score": 0.5}],
}


# --------------------------------------------------------------------------- JSON


def test_results_document_schema():
    doc = results_document(RESULTS, details="CLIP ViT-B/16 features")
    assert set(doc) == {"version", "results", "external_data"}
    assert doc["version"].startswith("psftr ")
    assert doc["external_data"] == {"used": False, "details": "CLIP ViT-B/16 features"}
    assert doc["results"] == RESULTS
    assert results_document(RESULTS, version="VERSION 1.3")["version"] == "VERSION 1.3"


def test_json_round_trip_file(tmp_path):
    path = tmp_path / "out" / "preds.json"
    write_results_json(path, RESULTS, details="x")
    assert read_results_json(path) == RESULTS
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["results"]["video_a"][0]["segment"] == [1.25, 7.123456789]  # no rounding
    assert [p.name for p in path.parent.iterdir()] == ["preds.json"]  # no temp file left


def test_json_round_trip_numpy_values(tmp_path):
    results = {
        "v": [{"segment": [np.float32(1.5), np.float64(2.25)], "label": "A", "score": np.float32(0.25)}]
    }
    path = tmp_path / "p.json"
    write_results_json(path, results, details="")
    assert read_results_json(path) == {"v": [{"segment": [1.5, 2.25], "label": "A", "score": 0.25}]}


def test_json_to_stream_and_bare_mapping(tmp_path):
    stream = io.StringIO()
    write_results_json(stream, RESULTS, details="")
    assert json.loads(stream.getvalue())["results"] == RESULTS
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(RESULTS))
    assert read_results_json(bare) == RESULTS


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "is empty"),
        ("{not json", "not valid JSON \\(line 1, column 2"),
        ("[1, 2, 3]", "must map video ids"),
        ('{"results": [1]}', "must map video ids"),
        ('{"version": "1", "external": {}}', "not an ActivityNet results file"),
        ('{"results": {"v": {"segment": [0, 1]}}}', "video 'v': expected a list"),
        ('{"results": {"v": [{"segment": [0, 1], "label": "A"}]}}', "video 'v', entry 0"),
        ('{"results": {"v": [{"segment": [0, 1], "label": "A", "score": "high"}]}}', "score must be a finite"),
        ('{"results": {"v": [{"segment": [5, 1], "label": "A", "score": 1}]}}', "end 1 is before start 5"),
        ('{"results": {"v": [{"segment": [0, 1, 2], "label": "A", "score": 1}]}}', "entry 0"),
        ('{"results": {"v": [{"segment": [0, 1], "label": "", "score": 1}]}}', "label"),
        ('{"results": {"v": [{"segment": [0, NaN], "label": "A", "score": 1}]}}', "finite"),
    ],
)
def test_read_results_json_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_results_json(path)
    text = str(info.value)
    assert "\n" not in text and str(path) in text


def test_read_results_json_missing_and_binary(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_results_json(tmp_path / "missing.json")
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="not UTF-8"):
        read_results_json(binary)
    with pytest.raises(InputError, match="directory"):
        read_results_json(tmp_path)


# --------------------------------------------------------------------------- CSV


def test_neutralise_cell():
    assert neutralise_cell('=HYPERLINK("x")') == "'=HYPERLINK(\"x\")"
    for bad in ["+1", "-foo", "@SUM(A1)", "\tx", "\rx"]:
        assert neutralise_cell(bad) == "'" + bad
    for ok in ["Diving", "", "a=b", " =x", "'quoted"]:
        assert neutralise_cell(ok) == ok


def _parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_file_format(tmp_path):
    path = tmp_path / "dets.csv"
    write_results_csv(path, RESULTS)
    raw = path.read_bytes()
    assert raw.startswith(b"video,label,start,end,score\r\n")  # RFC 4180 line ends
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["video", "label", "start", "end", "score"],
        ["video_a", "Diving", "1.250", "7.123", "0.876543"],
        ["video_a", "High Jump", "10.000", "12.500", "0.00001"],
        ["vidéo_c", "Ünïcode", "0.000", "3.000", "0.5"],
    ]


def test_csv_formula_label_is_neutralised():
    stream = io.StringIO()
    writer = CsvSegmentWriter(stream)
    writer.write_row("=cmd|' /C calc'!A0", '=HYPERLINK("x")', 1, 2, 0.5)
    writer.write_row("v", "-foo", 1, 2, 0.5)
    rows = _parse(stream.getvalue())
    assert rows[1][0] == "'=cmd|' /C calc'!A0"
    assert rows[1][1] == "'=HYPERLINK(\"x\")"
    assert rows[2][1] == "'-foo"
    for row in rows[1:]:
        assert not row[0].startswith(("=", "+", "-", "@")) and not row[1].startswith(("=", "+", "-", "@"))


@pytest.mark.parametrize("label", ["a,b", 'say "hi"', "line1\nline2", 'mixed, "all"\r\nthree'])
def test_csv_special_labels_round_trip(label):
    stream = io.StringIO(newline="")
    write_results_csv(stream, {"v": [{"segment": [0.5, 1.5], "label": label, "score": 0.25}]})
    rows = _parse(stream.getvalue())
    assert len(rows) == 2
    assert rows[1] == ["v", label, "0.500", "1.500", "0.25"]


def test_csv_writer_streams_rows():
    class CountingStream(io.StringIO):
        flushes = 0

        def flush(self):
            self.flushes += 1
            super().flush()

    stream = CountingStream()
    writer = CsvSegmentWriter(stream, flush=True)
    assert stream.getvalue() == "video,label,start,end,score\r\n"  # header on creation
    writer.write_row("v", "A", 1.0, 2.0, 0.75)
    assert stream.getvalue().endswith("v,A,1.000,2.000,0.75\r\n")  # row visible at once
    assert stream.flushes == 2 and writer.rows == 1
    writer.write_video("w", [{"segment": [3, 4.0004], "label": "B", "score": 1}])
    assert _parse(stream.getvalue())[-1] == ["w", "B", "3.000", "4.000", "1"]


def test_csv_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "dets.csv"
    with pytest.raises(InputError):
        write_results_csv(path, {"v": [{"segment": [2, 1], "label": "A", "score": 1}]})
    assert not path.exists()


@pytest.mark.parametrize("score, text", [(6.78748e-05, "0.0000678748"), (0.8765432, "0.876543"), (1e-5, "0.00001"),
                                         (1.0, "1"), (0.0, "0")])
def test_csv_scores_are_in_fixed_notation(score, text):
    """6 significant digits, never ``6.78748e-05`` (a spreadsheet may read it as text)."""
    stream = io.StringIO()
    CsvSegmentWriter(stream).write_row("v", "A", 1.0, 2.0, score)
    assert _parse(stream.getvalue())[-1][-1] == text
