"""``psftr detect --clips DIR``: a clip per segment, named as the CSV row, holding the
segment's frames; a re-run skips them; what cannot be cut is refused before any work."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import av
import pytest

from cli_runner import run_cli

pytestmark = pytest.mark.usefixtures("torch_one_thread")
FPS = 25


def clip_args(clip_files, cache: Path) -> list:
    return ["--clip-config", clip_files.config, "--clip-pretrained", clip_files.weights, "--device", "cpu",
            "--cache-dir", cache]


def frames_and_duration(path: Path) -> tuple[int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(frame.pts * stream.time_base) for frame in container.decode(stream)]
    return len(times), times[-1] - times[0] + 1 / FPS


def test_clips_hold_each_segment_and_resume(tmp_path, capsys, monkeypatch, make_video, tiny_clip_files):
    video = make_video(tmp_path / "videos" / "ride.mp4", 100, fps=FPS)  # 4 s, one keyframe (at 0)
    clips = tmp_path / "clips"
    args = [video, "--actions", "riding a bike,walking", "--threshold", "0", "--top-k", "3", "--format", "csv",
            "--clips", clips, *clip_args(tiny_clip_files, tmp_path / "cache")]
    code, stdout, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0, stderr
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert len(rows) == 3
    files = sorted((clips / "ride").glob("*.mp4"))
    expected = sorted(f"{r['label'].replace(' ', '_')}_{float(r['start']):.3f}.mp4" for r in rows)
    assert [p.name for p in files] == expected
    for row in rows:
        path = clips / "ride" / f"{row['label'].replace(' ', '_')}_{float(row['start']):.3f}.mp4"
        count, seconds = frames_and_duration(path)
        start, end = float(row["start"]), float(row["end"])
        if start == 0:  # on the keyframe: stream copy, ends at a frame of the end
            assert abs(seconds - (end - start)) <= 2 / FPS
        else:  # re-encoded: the frames shown during the segment
            assert abs(count - round((end - start) * FPS)) <= 1
    assert f"clips: 3 in {clips}" in stderr

    before = {p.name: p.stat().st_mtime_ns for p in files}
    code, _, stderr = run_cli(args, capsys, monkeypatch)  # the features come from the cache, clips are there
    assert code == 0 and "3 already there" in stderr
    assert {p.name: p.stat().st_mtime_ns for p in (clips / "ride").glob("*.mp4")} == before


def test_clip_padding_widens_and_clamps(tmp_path, capsys, monkeypatch, make_video, tiny_clip_files):
    video = make_video(tmp_path / "videos" / "ride.mp4", 100, fps=FPS)
    args = [video, "--actions", "walking", "--threshold", "0", "--top-k", "1", "--format", "csv",
            "--clips", tmp_path / "clips", "--clip-padding", "0.5", *clip_args(tiny_clip_files, tmp_path / "cache")]
    code, stdout, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0, stderr
    (row,) = list(csv.DictReader(io.StringIO(stdout)))
    (path,) = (tmp_path / "clips" / "ride").glob("*.mp4")
    start, end = max(float(row["start"]) - 0.5, 0.0), min(float(row["end"]) + 0.5, 4.0)
    _, seconds = frames_and_duration(path)
    assert seconds == pytest.approx(end - start, abs=2 / FPS)  # copied from 0, or re-encoded to the frame


@pytest.mark.parametrize("args, message", [
    (["--features", "examples/demo", "--actions", "diving", "--clips", "CLIPS"],
     "--clips cuts the video files; --features DIR has features, no videos to cut"),
    (["VIDEO", "--actions", "diving", "--clip-padding", "1"], "--clip-padding applies to --clips DIR: give both"),
    (["VIDEO", "--actions", "diving", "--clips", "CLIPS", "--clip-padding", "-1"],
     "--clip-padding must be a number of seconds >= 0, got -1.0"),
])
def test_clip_options_are_checked_first(tmp_path, capsys, monkeypatch, args, message):
    repo = Path(__file__).resolve().parents[2]
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not decoded: refused first")
    args = [str(video) if a == "VIDEO" else str(tmp_path / "clips") if a == "CLIPS" else
            str(repo / a) if a == "examples/demo" else a for a in args]
    code, _, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 2 and stderr.strip().splitlines()[-1] == f"psftr: error: {message}"
    assert not (tmp_path / "clips").exists()
