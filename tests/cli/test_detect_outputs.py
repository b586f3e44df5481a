"""``psftr detect`` outputs written as each video finishes: JSON Lines streaming, SRT and
WebVTT, ``--output-dir`` with resume, ``--report``, format rules.

Video decoding is replaced by a fake one, :class:`FakeDecoder`, passed in as detect's
``extractor`` (the CLI takes it from the click context: ``app(obj={"extractor": ...})``;
deterministic features per file name; calls are counted); the text side uses the tiny
random-weight CLIP of tests/fixtures_clip.py. So these tests are fast and show exactly
which videos were decoded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from psftr_core.io.formats import OUTPUT_FORMATS as _REGISTRY

from psftr_core.errors import PsftrError
from psftr_core.features.pipeline import ExtractedVideo
from psftr_core.io.output_dir import DETECT_MANIFEST_NAME
from psftr_core.io.formats import read_video_file
from cli_runner import run_cli

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"
NAMES = ["a", "b", "c", "d", "e"]
ACTIONS = "riding a bike,walking,a car"

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def fake_features(path, dim: int = 64, count: int = 48):
    """What the fake video source 'decodes': features seeded by the file name."""
    rng = np.random.default_rng(zlib.crc32(Path(path).name.encode("utf-8")))
    features = rng.standard_normal((count, dim)).astype(np.float32)
    features[count // 3: count // 2] += 3 * rng.standard_normal(dim).astype(np.float32)  # a distinct stretch
    times = (np.arange(count) + 0.5) * 0.32
    meta = {"duration": count * 0.32, "frame_length": count * 8, "video_fps": 25.0, "snippet_duration": 0.32}
    return features, times, meta


class FakeDecoder:
    """An ``extractor`` for detect (the signature of ``extract_video_features``).

    ``calls`` collects the decoded file names (as each video is taken from it); the video
    named ``b`` waits for the file ``release`` to exist; video number ``interrupt_at``
    (1-based) raises KeyboardInterrupt, as Ctrl-C would; videos named in ``broken`` come
    out as corrupt.
    """

    def __init__(self, release: Path | None = None, interrupt_at: int | None = None, broken: tuple = ()):
        self.calls: list[str] = []
        self.release, self.interrupt_at, self.broken = release, interrupt_at, broken

    def __call__(self, handle, paths, sampling, pipeline=None):
        for path in paths:
            self.calls.append(Path(path).name)
            if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
                raise KeyboardInterrupt
            if self.release is not None and Path(path).stem == "b":
                deadline = time.monotonic() + 120
                while not self.release.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            if Path(path).stem in self.broken:
                yield ExtractedVideo(Path(path), error="corrupt")
            else:
                yield ExtractedVideo(Path(path), *fake_features(path, dim=handle.embed_dim))


def run_detect(args, capsys, monkeypatch, extractor: FakeDecoder) -> tuple[int, str, str]:
    """``psftr detect ARGS`` in-process with ``extractor`` decoding the videos: as
    ``cli_runner.run_cli`` (and ``psftr_cli.main.run``, whose error lines it repeats),
    with the extractor in the click context."""
    from psftr_cli.main import app

    monkeypatch.setattr(sys, "argv", ["psftr", "detect", *map(str, args)])
    code = 0
    try:
        app(obj={"extractor": extractor})
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except PsftrError as err:
        print(f"psftr: error: {err}", file=sys.stderr)
        code = err.exit_code
    out, err = capsys.readouterr()
    return code, out, err


def make_videos(folder: Path, names=NAMES) -> Path:
    """Stand-in video files (distinct content, so the feature cache keeps them apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.mp4").write_bytes(name.encode("utf-8") * 512)
    return folder


@pytest.fixture()
def fake_source() -> FakeDecoder:
    return FakeDecoder()


def clip_args(tiny_clip_files, cache: Path) -> list[str]:
    return ["--clip-config", str(tiny_clip_files.config), "--clip-pretrained", str(tiny_clip_files.weights),
            "--cache-dir", str(cache), "--device", "cpu"]


def tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- JSON Lines on stdout


def test_jsonl_lines_reach_stdout_before_the_run_ends(tmp_path, tiny_clip_files):
    """A real subprocess: video ``a``'s lines are readable while ``b`` is still 'decoding'."""
    videos = make_videos(tmp_path / "videos", ["a", "b"])
    release = tmp_path / "release"
    script = ("import sys, pathlib, test_detect_outputs as t\n"
              "decoder = t.FakeDecoder(release=pathlib.Path(sys.argv[1]))\n"
              "from psftr_cli.main import app\n"
              "sys.argv = ['psftr', 'detect', *sys.argv[2:]]\n"
              "app(obj={'extractor': decoder})\n")
    cmd = [sys.executable, "-c", script, str(release), str(videos), "--actions", ACTIONS, "--threshold", "0",
           "--format", "jsonl", *clip_args(tiny_clip_files, tmp_path / "cache")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "cli"), str(REPO / "tests")])}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        first = proc.stdout.readline()  # blocks until video a's lines are flushed
        assert first, proc.stderr.read()
        assert not release.exists() and proc.poll() is None  # b is still held back
        record = json.loads(first)
        assert record["video"] == "a" and set(record) == {"video", "label", "start", "end", "score"}
        release.touch()
        rest, stderr = proc.communicate(timeout=120)
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    records = [json.loads(line) for line in (first + rest).splitlines()]
    assert [r["video"] for r in records] == sorted(r["video"] for r in records)
    assert {r["video"] for r in records} == {"a", "b"}
    assert "videos: 2, failed: 0" in stderr


def test_jsonl_to_a_file_equals_stdout(tmp_path, tiny_clip_files, fake_source, capsys, monkeypatch):
    videos = make_videos(tmp_path / "videos", ["a", "b"])
    base = [videos, "--actions", ACTIONS, "--threshold", "0", "--format", "jsonl",
            *clip_args(tiny_clip_files, tmp_path / "cache")]
    code, stdout, stderr = run_detect(base, capsys, monkeypatch, fake_source)
    assert code == 0, stderr
    code, _, stderr = run_detect([*base, "--output", tmp_path / "out.jsonl"], capsys, monkeypatch, fake_source)
    assert code == 0, stderr
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == stdout
    assert stdout.count("\n") >= 2
    assert fake_source.calls == ["a.mp4", "b.mp4"]  # the second run came from the feature cache


# ----------------------------------------------------------------------------- SRT and WebVTT


def test_srt_and_vtt_files_parse_and_round_trip_to_the_millisecond(tmp_path, tiny_clip_files, fake_source,
                                                                    capsys, monkeypatch):
    srt = pytest.importorskip("srt")
    webvtt = pytest.importorskip("webvtt")
    videos = make_videos(tmp_path / "videos", ["a", "b"])
    out = tmp_path / "out"
    args = [videos, "--actions", ACTIONS, "--threshold", "0", "--output-dir", out, "--format", "srt",
            "--format", "vtt", "--format", "jsonl", *clip_args(tiny_clip_files, tmp_path / "cache")]
    code, stdout, stderr = run_detect(args, capsys, monkeypatch, fake_source)
    assert code == 0, stderr
    assert stdout == ""  # with --output-dir, data goes to stdout only with --output -
    assert sorted(p.name for p in out.iterdir()) == [DETECT_MANIFEST_NAME, "a.jsonl", "a.srt", "a.vtt",
                                                     "b.jsonl", "b.srt", "b.vtt"]
    for video in ("a", "b"):
        segments = read_video_file(out / f"{video}.jsonl", "jsonl")[video]
        assert segments
        order = sorted(segments, key=lambda d: (d["segment"][0], d["segment"][1], d["label"], -d["score"]))
        cues = list(srt.parse((out / f"{video}.srt").read_text(encoding="utf-8")))
        captions = webvtt.read(str(out / f"{video}.vtt")).captions
        assert len(cues) == len(captions) == len(segments)
        for det, cue, caption in zip(order, cues, captions):
            start, end = det["segment"]
            assert cue.start == timedelta(milliseconds=round(start * 1000))
            assert cue.end == timedelta(milliseconds=round(end * 1000))
            assert caption.start_time.in_milliseconds() == round(start * 1000)
            assert caption.end_time.in_milliseconds() == round(end * 1000)
            assert cue.content == caption.text == f"{det['label']} ({det['score']:.3f})"


def test_subtitles_on_stdout_need_a_single_video(tmp_path, tiny_clip_files, fake_source, capsys, monkeypatch):
    videos = make_videos(tmp_path / "videos", ["a", "b"])
    common = ["--actions", ACTIONS, "--threshold", "0", *clip_args(tiny_clip_files, tmp_path / "cache")]
    code, stdout, stderr = run_detect([videos, "--format", "vtt", *common], capsys, monkeypatch, fake_source)
    assert code == 2 and stdout == "" and "--output-dir" in stderr and "2 videos" in stderr
    assert fake_source.calls == []  # refused before any video was decoded
    code, stdout, stderr = run_detect([videos / "a.mp4", "--format", "srt", *common], capsys, monkeypatch, fake_source)
    assert code == 0, stderr
    assert re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n", stdout)


@pytest.mark.parametrize("args, message", [
    (["--format", "all"], "need --output-dir"),
    (["--format", "json", "--format", "csv"], "need --output-dir"),
    (["--format", "xml"], f"--format must be one of {', '.join(_REGISTRY)} or all"),
])
def test_format_rules(args, message, capsys, monkeypatch):
    code, stdout, stderr = run_cli(["--features", DEMO, "--actions", "diving", *args], capsys, monkeypatch)
    assert code == 2 and stdout == "" and message in stderr and "Traceback" not in stderr


# ----------------------------------------------------------------------------- --output-dir and resume


def test_interrupted_output_dir_resumes_to_the_same_files(tmp_path, tiny_clip_files, capsys, monkeypatch):
    videos = make_videos(tmp_path / "videos")

    def detect_into(decoder: FakeDecoder, out: Path, cache: str, *extra):
        args = [videos, "--actions", ACTIONS, "--threshold", "0", "--output-dir", out, "--format", "all",
                *extra, *clip_args(tiny_clip_files, tmp_path / cache)]
        return run_detect(args, capsys, monkeypatch, decoder)

    # Uninterrupted reference run, with a whole-run JSON Lines file and a report.
    decoder = FakeDecoder()
    code, _, stderr = detect_into(decoder, tmp_path / "full", "cache1", "--output", tmp_path / "full.jsonl",
                                  "--report", tmp_path / "full.html")
    assert code == 0, stderr
    assert decoder.calls == [f"{n}.mp4" for n in NAMES]

    # Ctrl-C while the third video decodes: two videos are finished, the rest untouched.
    code, _, stderr = detect_into(FakeDecoder(interrupt_at=3), tmp_path / "part", "cache2", "--output",
                                  tmp_path / "part.jsonl", "--report", tmp_path / "part.html")
    assert code == 130 and "interrupted" in stderr
    names = sorted(p.name for p in (tmp_path / "part").iterdir())
    assert names == sorted([DETECT_MANIFEST_NAME] + [f"{v}.{ext}" for v in "ab" for ext in {f.extension for f in _REGISTRY.values()}])
    assert not (tmp_path / "part.jsonl").exists()  # --output is atomic: nothing half-written
    assert "(interrupted: 2 of 5 videos)" in (tmp_path / "part.html").read_text(encoding="utf-8")

    # Re-run with the same settings (an empty feature cache, so nothing hides a decode).
    decoder = FakeDecoder()
    code, _, stderr = detect_into(decoder, tmp_path / "part", "cache3", "--output", tmp_path / "part.jsonl",
                                  "--report", tmp_path / "part.html")
    assert code == 0, stderr
    assert decoder.calls == ["c.mp4", "d.mp4", "e.mp4"]  # only the unfinished videos were decoded
    assert "already done: 2" in stderr
    assert tree(tmp_path / "part") == tree(tmp_path / "full")  # byte for byte, manifest included
    assert (tmp_path / "part.jsonl").read_bytes() == (tmp_path / "full.jsonl").read_bytes()
    assert (tmp_path / "part.html").read_bytes() == (tmp_path / "full.html").read_bytes()

    # Other settings: everything is redone.
    decoder = FakeDecoder()
    code, _, stderr = detect_into(decoder, tmp_path / "part", "cache4", "--min-duration", "0.5")
    assert code == 0, stderr
    assert len(decoder.calls) == len(NAMES)


def test_output_dir_names_keep_unicode_and_never_collide(tmp_path, tiny_clip_files, fake_source, capsys,
                                                        monkeypatch):
    videos = make_videos(tmp_path / "videos", ["東京 ride", "a:b", "a_b"])
    out = tmp_path / "out"
    args = [videos, "--actions", ACTIONS, "--threshold", "0", "--output-dir", out, "--format", "json",
            *clip_args(tiny_clip_files, tmp_path / "cache")]
    code, _, stderr = run_detect(args, capsys, monkeypatch, fake_source)
    assert code == 0, stderr
    manifest = json.loads((out / DETECT_MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["stems"]["東京 ride"] == "東京 ride"
    assert len({stem.casefold() for stem in manifest["stems"].values()}) == 3
    for video, stem in manifest["stems"].items():
        doc = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
        assert list(doc["results"]) == [video]


def test_corrupt_video_is_retried_on_the_next_run(tmp_path, tiny_clip_files, capsys, monkeypatch):
    videos = make_videos(tmp_path / "videos", ["a", "b"])
    broken_b = FakeDecoder(broken=("b",))
    args = [videos, "--actions", ACTIONS, "--output-dir", tmp_path / "out", "--format", "csv",
            *clip_args(tiny_clip_files, tmp_path / "cache")]
    code, _, stderr = run_detect(args, capsys, monkeypatch, broken_b)
    assert code == 3 and "b.mp4: corrupt" in stderr
    broken_b.calls.clear()
    code, _, stderr = run_detect(args, capsys, monkeypatch, broken_b)
    assert code == 3 and broken_b.calls == ["b.mp4"]  # a is done; b is tried again
    assert "1 of 2 inputs failed" in stderr


# ----------------------------------------------------------------------------- --report


def report_json(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="psftr-data">(.*?)</script>', text, re.S).group(1))


def test_report_links_videos_relative_to_the_page(tmp_path, tiny_clip_files, fake_source, capsys, monkeypatch):
    videos = make_videos(tmp_path / "videos", ["a", "b"])
    page = tmp_path / "review" / "page.html"
    args = [videos, "--actions", ACTIONS, "--threshold", "0", "--report", page, "--output", tmp_path / "s.json",
            *clip_args(tiny_clip_files, tmp_path / "cache")]
    code, _, stderr = run_detect(args, capsys, monkeypatch, fake_source)
    assert code == 0, stderr
    data = report_json(page)
    results = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["results"]
    assert data["actions"] == ACTIONS.split(",")
    assert [v["id"] for v in data["videos"]] == ["a", "b"]
    for video in data["videos"]:
        assert video["src"] == f"../videos/{video['id']}.mp4"
        assert video["duration"] == pytest.approx(48 * 0.32)
        expected = sorted([d["segment"][0], d["segment"][1], data["actions"].index(d["label"]), d["score"]]
                          for d in results[video["id"]])
        assert video["segments"] == expected


def test_report_of_a_feature_run_has_lanes_only(tmp_path, capsys, monkeypatch):
    page = tmp_path / "demo.html"
    args = ["--features", DEMO, "--actions", "diving,long jump", "--report", page, "-q", "--output", tmp_path / "d.csv"]
    code, _, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0, stderr
    data = report_json(page)
    assert len(data["videos"]) == 18 and all(v["src"] is None for v in data["videos"])
    assert sum(len(v["segments"]) for v in data["videos"]) == len((tmp_path / "d.csv").read_text().splitlines()) - 1
    assert all(v["duration"] for v in data["videos"])
