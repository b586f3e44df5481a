"""``--format edl``, ``otio`` and ``chapters``: timecodes with known values, files with
known text, and each read back by its own tool (otio's readers; ffmpeg + ffprobe for
the chapters, where installed)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from psftr_core.errors import InputError
from psftr_core.io.detect_outputs import output_formats
from psftr_core.io.formats import MISSING_FORMATS, OUTPUT_FORMATS, open_writer
from psftr_core.io.formats.otio_format import MISSING as OTIO_MISSING
from psftr_core.io.formats.otio_format import OTIO_FORMAT, load_otio
from psftr_core.io.formats.timecode import frame_to_timecode, timecode_rate, timecode_to_frame
from psftr_core.io.output_dir import DETECT_MANIFEST_NAME
from cli_runner import run_cli

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"

# bikes.mp4's nested segments (one label) and a later one with metadata-special characters.
BIKES = [
    {"segment": [0.96, 5.76], "label": "riding a bike", "score": 0.873},
    {"segment": [1.92, 2.56], "label": "riding a bike", "score": 0.5},
    {"segment": [3.84, 5.44], "label": "walking", "score": 0.451},
    {"segment": [10.0, 12.5], "label": "a=b;c#d\\e", "score": 0.2},
]


def render(fmt: str, detections, media=None, video: str = "bikes") -> str:
    stream = io.StringIO()
    writer = open_writer(fmt, stream)
    writer.write_video(video, detections, media=media)
    writer.close()
    return stream.getvalue()


# --------------------------------------------------------------------------- timecodes


@pytest.mark.parametrize("fps, frame, timecode", [
    (30000 / 1001, 1799, "00:00:59;29"),
    (30000 / 1001, 1800, "00:01:00;02"),  # frame numbers 0 and 1 of minute 1 are skipped
    (30000 / 1001, 17982, "00:10:00;00"),  # ... but not those of minute 10
    (30000 / 1001, 107892, "01:00:00;00"),
    (60000 / 1001, 3600, "00:01:00;04"),
    (25.0, 90000, "01:00:00:00"),
    (24000 / 1001, 1440, "00:01:00:00"),  # 23.976 counts at 24, without drop frame
    (30.0, 1800, "00:01:00:00"),
])
def test_timecode_known_values(fps, frame, timecode):
    rate = timecode_rate(fps)
    assert frame_to_timecode(frame, rate) == timecode
    assert timecode_to_frame(timecode, rate) == frame


def test_drop_frame_round_trips_and_never_shows_a_dropped_number():
    rate = timecode_rate(29.97)
    assert (rate.nominal, rate.drop_frame) == (30, True)
    for frame in range(0, 40000, 7):
        code = frame_to_timecode(frame, rate)
        assert timecode_to_frame(code, rate) == frame
        minutes, frames = int(code[3:5]), int(code[9:])
        assert not (code[6:8] == "00" and minutes % 10 and frames < 2), code


@pytest.mark.parametrize("fps, nominal, drop, exact", [
    (None, 25, False, True), (25.0, 25, False, True), (29.97, 30, True, True), (59.94, 60, True, True),
    (23.976, 24, False, True), (29.95, 30, False, False), (12.3, 12, False, False),
])
def test_timecode_rate_of_a_video(fps, nominal, drop, exact):
    rate = timecode_rate(fps)
    assert (rate.nominal, rate.drop_frame, rate.exact) == (nominal, drop, exact)


# --------------------------------------------------------------------------- the registry


def test_registry_and_format_all_include_the_editor_formats(tmp_path):
    for name, extension in [("edl", "edl"), ("chapters", "ffmetadata")]:
        assert OUTPUT_FORMATS[name].extension == extension and OUTPUT_FORMATS[name].single_video
    assert ("otio" in OUTPUT_FORMATS) == ("otio" not in MISSING_FORMATS)  # all = the installed formats
    dir_formats, _ = output_formats(["all"], None, tmp_path)
    assert dir_formats == list(OUTPUT_FORMATS) and {"edl", "chapters"} <= set(dir_formats)


def test_format_all_writes_the_editor_files_and_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    args = ["--features", DEMO, "synth_test_0000", "--actions", "diving,long jump", "-q",
            "--output-dir", out, "--format", "all"]
    code, _, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0, stderr
    chapters = (out / "synth_test_0000.ffmetadata").read_text(encoding="utf-8")
    assert chapters.startswith(";FFMETADATA1\n") and "title=diving (0.826)" in chapters
    edl = (out / "synth_test_0000.edl").read_text(encoding="utf-8")
    # the dataset records the video's 30 fps: segment 1.6-13.6 s is frames 48-408
    assert "* diving (score 0.826)" in edl and "timecodes at" not in edl
    assert "00:00:01:18 00:00:13:18" in edl and "FCM: NON-DROP FRAME" in edl
    finished = json.loads((out / DETECT_MANIFEST_NAME).read_text(encoding="utf-8"))["finished"]["synth_test_0000"]
    assert finished == [f"synth_test_0000.{f.extension}" for f in OUTPUT_FORMATS.values()]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _, stderr = run_cli(args, capsys, monkeypatch)  # resumed: nothing written again
    assert code == 0 and {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


@pytest.mark.parametrize("fmt", ["edl", "chapters"])
def test_editor_formats_refuse_a_negative_start_and_a_second_video(fmt):
    with pytest.raises(InputError, match="video 'v': segment start -1 is negative"):
        render(fmt, [{"segment": [-1, 2], "label": "x", "score": 0.5}], video="v")
    writer = open_writer(fmt, io.StringIO())
    writer.write_video("a", BIKES[:1])
    with pytest.raises(InputError, match="one video's timeline; got a second video 'b'"):
        writer.write_video("b", BIKES[:1])


# --------------------------------------------------------------------------- edl


def test_edl_known_text_at_25_fps():
    text = render("edl", BIKES[:1] + BIKES[3:], media={"fps": 25.0, "file": "/videos/bikes.mp4"})
    assert text == (
        "TITLE: bikes\nFCM: NON-DROP FRAME\n\n"
        "001  AX       V     C        00:00:00:24 00:00:05:19 01:00:00:00 01:00:04:20\n"
        "* FROM CLIP NAME: bikes.mp4\n* riding a bike (score 0.873)\n\n"
        "002  AX       V     C        00:00:10:00 00:00:12:12 01:00:04:20 01:00:07:07\n"
        "* FROM CLIP NAME: bikes.mp4\n* a=b;c#d\\e (score 0.200)\n\n"
    )


def test_edl_read_back_by_otio_cmx_3600_at_29_97_drop_frame():
    otio = pytest.importorskip("opentimelineio")
    pytest.importorskip("otio_cmx3600_adapter", reason="the cmx_3600 reader is the otio-cmx3600-adapter package")
    text = render("edl", BIKES, media={"fps": 30000 / 1001, "file": "bikes.mp4"})
    assert "FCM: DROP FRAME" in text and " 01:00:00;00 " in text
    clips = list(otio.adapters.read_from_string(text, "cmx_3600", rate=30000 / 1001).tracks[0])
    assert [c.name for c in clips] == ["bikes.mp4"] * 4
    # start, end on frames of 1001/30000 s: 0.96 s -> frame 29, 5.76 s -> 173, ...
    assert [(c.source_range.start_time.value, c.source_range.end_time_exclusive().value) for c in clips] == [
        (29, 173), (58, 77), (115, 163), (300, 375)]
    assert [c.metadata["cmx_3600"]["comments"][0] for c in clips] == [
        "riding a bike (score 0.873)", "riding a bike (score 0.500)", "walking (score 0.451)", "a=b;c#d\\e (score 0.200)"]


# --------------------------------------------------------------------------- chapters


def parse_chapters(text: str) -> list[dict[str, str]]:
    """The ``[CHAPTER]`` sections of an FFmpeg metadata file (comments skipped)."""
    assert text.startswith(";FFMETADATA1\n")
    chapters: list[dict[str, str]] = []
    for line in text.splitlines()[1:]:
        if line == "[CHAPTER]":
            chapters.append({})
        elif line and line[0] not in ";#":
            key, value = line.split("=", 1)
            chapters[-1][key] = value
    return chapters


def test_chapters_merge_overlaps_and_say_so():
    text = render("chapters", BIKES)
    assert parse_chapters(text) == [
        {"TIMEBASE": "1/1000", "START": "960", "END": "5760", "title": "riding a bike (0.873) + walking (0.451)"},
        {"TIMEBASE": "1/1000", "START": "10000", "END": "12500", "title": "a\\=b\\;c\\#d\\\\e (0.200)"},
    ]
    assert ("; chapter 1 merges 3 overlapping segments (0.960-5.760 s): riding a bike 0.960-5.760 (0.873), "
            "riding a bike 1.920-2.560 (0.500), walking 3.840-5.440 (0.451)\n[CHAPTER]\n") in text
    touching = render("chapters", [{"segment": [0, 1], "label": "a", "score": 1}, {"segment": [1, 2], "label": "b", "score": 1}])
    assert [c["START"] for c in parse_chapters(touching)] == ["0", "1000"] and "merges" not in touching


@pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                    reason="ffmpeg/ffprobe not installed (.ci/run installs them with apt)")
def test_chapters_muxed_by_ffmpeg_and_listed_by_ffprobe(tmp_path):
    chapters = tmp_path / "bikes.ffmetadata"
    OUTPUT_FORMATS["chapters"].write_file(chapters, "bikes", BIKES)
    video, muxed = tmp_path / "in.mkv", tmp_path / "out.mkv"
    quiet = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    subprocess.run([*quiet, "-f", "lavfi", "-i", "color=c=black:s=16x16:r=5:d=13", "-c:v", "ffv1", str(video)],
                   check=True, timeout=30)
    subprocess.run([*quiet, "-i", str(video), "-i", str(chapters), "-map_metadata", "1", "-codec", "copy",
                    str(muxed)], check=True, timeout=30)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(muxed)],
                           check=True, capture_output=True, text=True, timeout=30)
    listed = [(c["start_time"], c["end_time"], c["tags"]["title"]) for c in json.loads(probe.stdout)["chapters"]]
    assert listed == [("0.960000", "5.760000", "riding a bike (0.873) + walking (0.451)"),
                      ("10.000000", "12.500000", "a=b;c#d\\e (0.200)")]


@pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                    reason="ffmpeg/ffprobe not installed (.ci/run installs them with apt)")
def test_srt_cues_reach_an_mkv_whole_one_packet_each(tmp_path):
    """Overlapping cues of two actions (no nesting within one): ffmpeg muxes each SRT cue
    into MKV as one subtitle packet, with its own start and duration."""
    segments = [{"segment": [0.96, 5.76], "label": "riding a bike", "score": 0.87},
                {"segment": [2.0, 3.0], "label": "walking", "score": 0.45},
                {"segment": [6.5, 8.0], "label": "riding a bike", "score": 0.6}]
    srt, mkv = tmp_path / "bikes.srt", tmp_path / "bikes.mkv"
    OUTPUT_FORMATS["srt"].write_file(srt, "bikes", segments)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(srt), "-c:s", "copy", str(mkv)],
                   check=True, timeout=30)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_packets", "-of", "json", str(mkv)],
                           check=True, capture_output=True, text=True, timeout=30)
    packets = [(float(p["pts_time"]), float(p["duration_time"])) for p in json.loads(probe.stdout)["packets"]]
    assert packets == [pytest.approx((0.96, 4.8)), pytest.approx((2.0, 1.0)), pytest.approx((6.5, 1.5))]


# --------------------------------------------------------------------------- otio


def test_otio_read_back_by_otio(tmp_path):
    otio = pytest.importorskip("opentimelineio")
    path = tmp_path / "bikes.otio"
    path.write_text(render("otio", BIKES, media={"fps": 25.0, "duration": 20.0, "file": str(tmp_path / "bikes.mp4")}),
                    encoding="utf-8")
    timeline = otio.adapters.read_from_file(str(path))
    (track,) = timeline.tracks
    (clip,) = list(track)
    assert timeline.name == "bikes" and clip.media_reference.target_url == (tmp_path / "bikes.mp4").as_uri()
    assert clip.available_range().duration.to_seconds() == 20.0 and clip.source_range.duration.to_seconds() == 20.0
    markers = [(m.name, m.marked_range.start_time.to_seconds(), m.marked_range.end_time_exclusive().to_seconds(),
                m.metadata["psftr"]["score"]) for m in clip.markers]
    assert markers == [(d["label"], *d["segment"], d["score"]) for d in BIKES]


def test_otio_without_media_is_a_missing_reference_as_long_as_the_last_segment():
    otio = pytest.importorskip("opentimelineio")
    timeline = otio.adapters.read_from_string(render("otio", BIKES), "otio_json")
    (clip,) = list(timeline.tracks[0])
    assert isinstance(clip.media_reference, otio.schema.MissingReference)
    assert clip.available_range().duration.to_seconds() == pytest.approx(12.5)


def test_otio_missing_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentimelineio", None)  # import fails as if not installed
    with pytest.raises(InputError) as err:
        load_otio()
    assert str(err.value) == OTIO_MISSING == "--format otio needs the opentimelineio package: pip install 'psftr[otio]'"
    stream = io.StringIO()
    with pytest.raises(InputError, match=re.escape("psftr[otio]")):
        OTIO_FORMAT.open(stream)
    assert stream.getvalue() == ""


def test_one_video_on_stdout_and_several_refused(capsys, monkeypatch):
    run = ["--features", DEMO, "--actions", "diving", "-q", "--format", "chapters"]
    code, stdout, stderr = run_cli([*run, "synth_test_0000"], capsys, monkeypatch)
    assert code == 0 and stdout.startswith(";FFMETADATA1\n; psftr detections of video synth_test_0000\n"), stderr
    code, stdout, stderr = run_cli([*run, "synth_test_0000", "synth_test_0001"], capsys, monkeypatch)
    assert code == 2 and stdout == "" and "--format chapters holds one video's timeline but there are 2 videos" in stderr


def test_the_registry_does_not_import_opentimelineio():
    code = "import sys, psftr_core.io.formats; print('opentimelineio' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert done.stdout == "False\n", done.stderr


def test_a_video_file_gives_its_own_rate_name_and_duration(tmp_path, tiny_clip_files, capsys, monkeypatch):
    """A 29.97 fps file: drop-frame EDL timecodes, its file name, its duration in the chapters."""
    from fractions import Fraction

    from fixtures_clip import write_video

    video = write_video(tmp_path / "videos" / "clip one.mp4", 90, fps=Fraction(30000, 1001))
    out = tmp_path / "out"
    args = [video, "--actions", "running,jumping", "--threshold", "0", "--top-k", "1", "-q", "--output-dir", out,
            "--format", "edl", "--format", "chapters", "--format", "json", "--clip-config", tiny_clip_files.config,
            "--clip-pretrained", tiny_clip_files.weights, "--device", "cpu", "--cache-dir", tmp_path / "cache"]
    code, _, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0, stderr
    edl = (out / "clip one.edl").read_text(encoding="utf-8")
    assert "FCM: DROP FRAME" in edl and "* FROM CLIP NAME: clip one.mp4" in edl and "timecodes at" not in edl
    chapters = (out / "clip one.ffmetadata").read_text(encoding="utf-8")
    ends = [int(line.split("=")[1]) for line in chapters.splitlines() if line.startswith("END=")]
    assert ends and max(ends) <= 3003  # ms: 90 frames at 29.97 fps
    info = json.loads((out / DETECT_MANIFEST_NAME).read_text(encoding="utf-8"))["info"]["clip one"]
    assert info["fps"] == pytest.approx(30000 / 1001) and info["duration"] == pytest.approx(3.003, abs=1e-3)
