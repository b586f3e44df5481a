"""The output formats of detect (io/formats/) and per-video output folders (io/output_dir.py).

SRT and WebVTT files are read back with the ``srt`` and ``webvtt-py`` parsers from
PyPI: every segment must come back as one cue, times equal to the millisecond.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
from datetime import timedelta

import pytest

from psftr_core.errors import InputError
from psftr_core.infer.detect import Segment
from psftr_core.io.export import write_results_csv, write_results_json
from psftr_core.io.output_dir import DETECT_MANIFEST_NAME, OutputDir, id_hash, safe_stem, settings_hash
from psftr_core.io.formats import (
    OUTPUT_FORMATS,
    format_names,
    open_writer,
    output_format,
    read_video_file,
    write_video_file,
)
from psftr_core.io.formats.srt_format import SRT_FORMAT
from psftr_core.io.formats.subtitles import cue_milliseconds, format_timestamp

srt = pytest.importorskip("srt", reason="the srt parser (test extra) is not installed")
webvtt = pytest.importorskip("webvtt", reason="webvtt-py (test extra) is not installed")

TIMING = re.compile(r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})")
NASTY = "a\nb --> <i>c</i> & d\r\n"

# Overlaps, a tie in start (ordered by end, then label), float times that do not
# round-trip through decimal text naively, an hour boundary, a 3-digit-hour end.
DETECTIONS = [
    {"segment": [12.3456, 20.0], "label": "Diving", "score": 0.87654321},
    {"segment": [1.0005, 2.0015], "label": "High Jump", "score": 0.5},
    {"segment": [1.0005, 1.9999], "label": "High Jump", "score": 0.25},
    {"segment": [1.0005, 1.9999], "label": "Archery", "score": 0.75},
    {"segment": [3599.9996, 3661.0004], "label": NASTY, "score": 1.0},
    {"segment": [15.0, 17.5], "label": "Diving", "score": 0.0123},
    {"segment": [360000.25, 360001.125], "label": "Ünïcode 東京", "score": 0.333333},
]

# Cue order: start, then end, then label, then decreasing score.
EXPECTED_ORDER = [3, 2, 1, 0, 5, 4, 6]


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def render(fmt: str, video: str, detections, **kwargs) -> str:
    stream = io.StringIO()
    writer = open_writer(fmt, stream, **kwargs)
    writer.write_video(video, detections)
    writer.close()
    return stream.getvalue()


# --------------------------------------------------------------------------- the registry


def test_registry_lists_the_built_in_formats():
    table = [(f.name, f.extension, f.single_video, f.lossless) for f in OUTPUT_FORMATS.values()]
    assert table[:5] == [  # the first five; the editor formats follow (tests/io/test_editor_formats.py)
        ("json", "json", False, True),
        ("csv", "csv", False, False),
        ("jsonl", "jsonl", False, True),
        ("srt", "srt", True, False),
        ("vtt", "vtt", True, False),
    ]
    assert format_names()[:5] == ("json", "csv", "jsonl", "srt", "vtt")
    assert output_format("srt") is SRT_FORMAT
    with pytest.raises(InputError, match="unknown output format 'xml'; choose one of json, csv, jsonl, srt, vtt"):
        output_format("xml")


@pytest.mark.parametrize("fmt", list(OUTPUT_FORMATS.values()), ids=lambda f: f.name)
def test_every_format_keeps_the_registry_rules(fmt, tmp_path):
    """What each descriptor declares, its writer does (a new format is held to it too)."""
    assert OUTPUT_FORMATS[fmt.name] is fmt and fmt.name == fmt.name.lower()
    assert [f.extension for f in OUTPUT_FORMATS.values()].count(fmt.extension) == 1  # one file per format
    writer = fmt.open(io.StringIO(), flush=False, details="", version=None)
    writer.write_video("a", DETECTIONS[:1])
    if fmt.single_video:
        with pytest.raises(InputError, match="one video's timeline"):
            writer.write_video("b", DETECTIONS[:1])
    else:
        writer.write_video("b", DETECTIONS[:1])
    if fmt.lossless:
        fmt.write_file(tmp_path / f"v.{fmt.extension}", "vidéo", DETECTIONS)
        assert fmt.read_back(tmp_path / f"v.{fmt.extension}") == {"vidéo": DETECTIONS}


# --------------------------------------------------------------------------- SRT


def test_srt_parses_and_round_trips_to_the_millisecond():
    text = render("srt", "video_a", DETECTIONS)
    cues = list(srt.parse(text))
    assert len(cues) == len(DETECTIONS)
    assert [c.index for c in cues] == list(range(1, len(DETECTIONS) + 1))
    for cue, i in zip(cues, EXPECTED_ORDER):
        start, end = DETECTIONS[i]["segment"]
        assert cue.start == timedelta(milliseconds=ms(start))
        assert cue.end == timedelta(milliseconds=ms(end))
        assert abs(cue.start.total_seconds() - start) <= 0.0005
    assert cues[1].content == "High Jump (0.250)"
    assert cues[3].content == "Diving (0.877)"
    # Overlapping segments stay separate cues (here 12.3-20 and 15-17.5).
    assert (cues[3].start, cues[4].start) == (timedelta(seconds=12.346), timedelta(seconds=15))
    # srt's own writer gives the same file back: the file is canonical SRT.
    assert srt.compose(cues, reindex=False) == text


def test_srt_timestamps_and_line_breaks():
    text = render("srt", "v", [DETECTIONS[4]])
    assert text.splitlines()[:3] == ["1", "01:00:00,000 --> 01:01:01,000", "a b --› ‹i›c‹/i› & d   (1.000)"]
    assert "-->" not in text.splitlines()[2]
    assert format_timestamp(360001125, ",") == "100:00:01,125"


def test_subtitle_cue_never_collapses_or_goes_negative():
    assert cue_milliseconds(0.0004, 0.0006) == (0, 1)  # end > start after rounding
    with pytest.raises(InputError, match="negative"):
        render("srt", "v", [{"segment": [-1.0, 2.0], "label": "x", "score": 0.5}])
    cues = list(srt.parse(render("srt", "v", [{"segment": [5.0, 5.0], "label": "x", "score": 0.5}])))
    assert (cues[0].start, cues[0].end) == (timedelta(seconds=5), timedelta(seconds=5.001))


# --------------------------------------------------------------------------- WebVTT


def test_vtt_parses_and_round_trips_to_the_millisecond():
    text = render("vtt", "video <x> --> y", DETECTIONS)
    assert text.startswith("WEBVTT\n\n")
    captions = webvtt.from_string(text).captions
    assert len(captions) == len(DETECTIONS)
    for caption, i in zip(captions, EXPECTED_ORDER):
        start, end = DETECTIONS[i]["segment"]
        assert caption.start_time.in_milliseconds() == ms(start)
        assert caption.end_time.in_milliseconds() == ms(end)
    assert html.unescape(captions[5].text) == "a b --> <i>c</i> & d   (1.000)"
    assert captions[5].text == "a b --&gt; &lt;i&gt;c&lt;/i&gt; &amp; d   (1.000)"


def test_vtt_follows_the_cue_syntax():
    """Header, then blocks separated by one blank line; no block text holds '-->'."""
    text = render("vtt", "v\n-->", DETECTIONS)
    header, *blocks = text.rstrip("\n").split("\n\n")
    assert header == "WEBVTT"
    assert blocks[0] == "NOTE psftr detections of video v --&gt;"
    assert len(blocks) == 1 + len(DETECTIONS)
    for block in blocks[1:]:
        timing, cue_text = block.split("\n")  # one timing line, one text line
        match = TIMING.fullmatch(timing)
        assert match, timing
        h1, m1, s1, f1, h2, m2, s2, f2 = map(int, match.groups())
        assert (h2 * 3600 + m2 * 60 + s2) * 1000 + f2 > (h1 * 3600 + m1 * 60 + s1) * 1000 + f1
        assert "-->" not in cue_text and "<" not in cue_text and cue_text.strip()


def test_subtitles_hold_one_video():
    stream = io.StringIO()
    writer = open_writer("vtt", stream)
    writer.write_video("a", DETECTIONS[:1])
    with pytest.raises(InputError, match="one video's timeline"):
        writer.write_video("b", DETECTIONS[:1])


# --------------------------------------------------------------------------- JSON Lines, JSON, CSV


class FlushLog(io.StringIO):
    """A stream that records what had been written at each flush."""

    def __init__(self):
        super().__init__()
        self.flushed: list[str] = []

    def flush(self):
        self.flushed.append(self.getvalue())


def test_jsonl_one_line_per_segment_flushed_per_video():
    stream = FlushLog()
    writer = open_writer("jsonl", stream)
    writer.write_video("vidéo 1", DETECTIONS)
    after_first = stream.flushed[-1]
    writer.write_video("empty", [])
    writer.write_video("b", [Segment("b", "Archery", 1.0, 2.5, 0.75)])
    writer.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(DETECTIONS) + 1
    assert after_first.count("\n") == len(DETECTIONS)  # the first video's lines went out at once
    records = [json.loads(line) for line in lines]
    assert records[0] == {"video": "vidéo 1", "label": "Diving", "start": 12.3456, "end": 20.0, "score": 0.87654321}
    assert records[4]["label"] == NASTY  # exact, newlines escaped by JSON
    assert records[-1] == {"video": "b", "label": "Archery", "start": 1.0, "end": 2.5, "score": 0.75}
    assert (writer.videos, writer.segments) == (3, len(DETECTIONS) + 1)


def test_streamed_json_and_csv_equal_the_results_writers():
    results = {"b": DETECTIONS[:3], "empty": [], "vidéo": DETECTIONS[3:]}
    for fmt, write_all in (("json", write_results_json), ("csv", write_results_csv)):
        stream = io.StringIO(newline="")
        writer = open_writer(fmt, stream, details="the model")
        for video, dets in results.items():
            writer.write_video(video, dets)
        writer.close()
        expected = io.StringIO(newline="")
        if fmt == "json":
            write_all(expected, results, details="the model")
        else:
            write_all(expected, results)
        assert stream.getvalue() == expected.getvalue(), fmt
    empty = io.StringIO()
    open_writer("json", empty).close()
    assert json.loads(empty.getvalue())["results"] == {}


def test_write_video_file_all_formats_and_atomic(tmp_path):
    for fmt, descriptor in OUTPUT_FORMATS.items():
        path = tmp_path / f"v.{descriptor.extension}"
        write_video_file(path, fmt, "v", DETECTIONS)
        assert path.read_bytes() == render(fmt, "v", DETECTIONS).encode("utf-8")
    before = (tmp_path / "v.srt").read_bytes()
    with pytest.raises(InputError, match="entry 1"):
        write_video_file(tmp_path / "v.srt", "srt", "v", [DETECTIONS[0], {"segment": [2, 1], "label": "x", "score": 1}])
    assert (tmp_path / "v.srt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"v.{f.extension}" for f in OUTPUT_FORMATS.values())
    with pytest.raises(InputError, match="unknown output format"):
        write_video_file(tmp_path / "v.txt", "txt", "v", [])


# --------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    "video, stem",
    [
        ("vidéo 東京 🎬", "vidéo 東京 🎬"),
        ("a/b\\c", "a_b_c"),
        ('q<>:"|?*', "q_______"),
        ("tab\there\x00\x7f\x85", "tab_here___"),
        ("CON", "_CON"),
        ("nul.mp4", "_nul.mp4"),
        ("com1 .x", "_com1 .x"),
        ("COM10", "COM10"),
        ("trailing. .", "trailing___"),
        (".hidden", "_hidden"),
        ("..", "__"),
        ("", "_"),
    ],
)
def test_safe_stem(video, stem):
    assert safe_stem(video) == stem


def test_long_ids_fit_the_name_limit(tmp_path):
    out = OutputDir(tmp_path, "jsonl", {})
    paths = out.assign(["é" * 300 + "1", "é" * 300 + "2"])
    names = [p.name for p in paths.values()]
    assert len(set(names)) == 2 and all(len(n.encode("utf-8")) <= 255 for n in names)
    for path in paths.values():
        path.write_text("x", encoding="utf-8")  # the file system accepts them


def test_names_never_collide_and_are_stable(tmp_path):
    ids = ["a:b", "a_b", "A_B", "Report", "report", "café", "cafe\u0301"]
    paths = OutputDir(tmp_path / "one", "srt", {}).assign(ids)
    names = {video: p.name for video, p in paths.items()}
    assert len({n.casefold() for n in names.values()}) == len(ids)
    # Sorted order: "A_B" < "Report" < "a:b" < "a_b" < "cafe\u0301" < "café" < "report".
    assert names["A_B"] == "A_B.srt"
    assert names["a:b"] == f"a_b~{id_hash('a:b')}.srt"
    assert names["a_b"] == f"a_b~{id_hash('a_b')}.srt"
    assert names["report"] == f"report~{id_hash('report')}.srt"
    assert names["cafe\u0301"] == "cafe\u0301.srt"  # unicode kept as given
    assert names["café"] == f"café~{id_hash('café')}.srt"  # same name after NFC
    # Another folder, ids given in another order: the same names.
    again = OutputDir(tmp_path / "two", "srt", {}).assign(list(reversed(ids)))
    assert {video: p.name for video, p in again.items()} == names


def test_manifest_keeps_names_across_runs(tmp_path):
    first = OutputDir(tmp_path, "json", {"k": 1})
    assert first.path_for("a_b") == tmp_path / "a_b.json"
    write_video_file(first.path_for("a_b"), "json", "a_b", [])
    first.mark_complete("a_b")  # names are saved with the finished videos
    # A later run (other settings, too) adds "a:b", which sorts first: "a_b" keeps its name.
    second = OutputDir(tmp_path, "json", {"k": 2})
    assert second.assign(["a_b", "a:b"]) == {"a_b": tmp_path / "a_b.json", "a:b": tmp_path / f"a_b~{id_hash('a:b')}.json"}


# --------------------------------------------------------------------------- completion


def test_completion_sidecar(tmp_path):
    settings = {"actions": ["Diving"], "threshold": 0.3, "format": "srt"}
    out = OutputDir(tmp_path, "srt", settings)
    assert not out.is_complete("v1")
    with pytest.raises(FileNotFoundError):
        out.mark_complete("v1")  # nothing written yet
    for video in ("v1", "v2"):
        write_video_file(out.path_for(video), "srt", video, DETECTIONS[:1])
        out.mark_complete(video)
    manifest = json.loads((tmp_path / DETECT_MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["settings_hash"] == settings_hash(settings)
    assert manifest["finished"] == {"v1": ["v1.srt"], "v2": ["v2.srt"]}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    # Same settings (keys in another order): finished videos are skipped...
    rerun = OutputDir(tmp_path, "srt", {"format": "srt", "threshold": 0.3, "actions": ["Diving"]})
    assert rerun.is_complete("v1") and rerun.is_complete("v2") and not rerun.is_complete("v3")
    # ...unless their file is gone.
    os.remove(tmp_path / "v2.srt")
    assert rerun.finished() == ["v1"]

    # Other settings: everything is redone, and the reset is on disk before any file is.
    other = OutputDir(tmp_path, "srt", dict(settings, threshold=0.5))
    assert not other.is_complete("v1")
    assert json.loads((tmp_path / DETECT_MANIFEST_NAME).read_text(encoding="utf-8"))["finished"] == {}
    assert not OutputDir(tmp_path, "srt", settings).is_complete("v1")


def test_broken_manifest_means_nothing_finished(tmp_path):
    (tmp_path / "v.srt").write_text("x", encoding="utf-8")
    for garbage in ("", "{", "[]", '{"version": 1, "stems": {"v": 3}, "finished": {}}'):
        (tmp_path / DETECT_MANIFEST_NAME).write_text(garbage, encoding="utf-8")
        out = OutputDir(tmp_path, "srt", {})
        assert not out.is_complete("v")
        assert out.path_for("v") == tmp_path / "v.srt"
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="is a file"):
        OutputDir(tmp_path / "file", "srt", {})


def test_several_formats_share_one_stem_and_complete_together(tmp_path):
    out = OutputDir(tmp_path, ["json", "srt", "vtt"], {"formats": ["json", "srt", "vtt"]})
    assert out.paths_for("a:b") == {ext: tmp_path / f"a_b.{ext}" for ext in ("json", "srt", "vtt")}
    with pytest.raises(ValueError, match="not one of"):
        out.path_for("a:b", "csv")
    for ext in ("json", "srt"):
        write_video_file(out.path_for("a:b", ext), ext, "a:b", DETECTIONS[:1])
    with pytest.raises(FileNotFoundError, match="a_b.vtt"):
        out.mark_complete("a:b")  # one format is missing: not complete
    write_video_file(out.path_for("a:b", "vtt"), "vtt", "a:b", DETECTIONS[:1])
    out.mark_complete("a:b", {"duration": 12.5})
    rerun = OutputDir(tmp_path, ["json", "srt", "vtt"], {"formats": ["json", "srt", "vtt"]})
    assert rerun.is_complete("a:b") and rerun.info("a:b") == {"duration": 12.5}
    os.remove(tmp_path / "a_b.srt")
    assert not rerun.is_complete("a:b")  # every file of a video must be there


def test_json_and_jsonl_files_read_back_exactly(tmp_path):
    for fmt in ("json", "jsonl"):
        path = tmp_path / f"v.{fmt}"
        write_video_file(path, fmt, "vidéo", DETECTIONS)
        assert read_video_file(path, fmt) == {"vidéo": DETECTIONS}  # same order, same floats, same labels
    write_video_file(tmp_path / "empty.jsonl", "jsonl", "empty", [])
    assert read_video_file(tmp_path / "empty.jsonl", "jsonl") == {}
    (tmp_path / "bad.jsonl").write_text('{"video": "v", "label": "x"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 1"):
        read_video_file(tmp_path / "bad.jsonl", "jsonl")
    with pytest.raises(InputError, match="cannot read segments back"):
        read_video_file(tmp_path / "v.json", "srt")
