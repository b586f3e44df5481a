"""``psftr_core.io.clips``: one short video per segment, stream-copied or re-encoded.

The source videos are generated: 6 s at 25 fps, a keyframe every 25 frames (one per
second), frame i showing i in binary as 8 black/white stripes (robust to the lossy
codec, so a decoded frame names its source frame exactly), with a 16 kHz AAC track.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from psftr_core.errors import InputError
from psftr_core.infer.results import Segment
from psftr_core.io.clips import CLIPS_MANIFEST_NAME, write_clips
from psftr_core.io.output_dir import id_hash

av = pytest.importorskip("av")

FPS, FRAMES, WIDTH, HEIGHT, AUDIO_RATE = 25, 150, 64, 48, 16000


def encode_numbered_video(path: Path, b_frames: bool = False, audio: bool = True, rotation: int = 0) -> Path:
    """Frame i shows i in binary (bit b: stripe b white); a keyframe every 25 frames."""
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.options = {"g": "25", "keyint_min": "25", "sc_threshold": "0", "crf": "18",
                     "preset": "veryfast" if b_frames else "ultrafast", **({"bf": "2"} if b_frames else {})}
    if rotation:
        video.set_display_rotation(rotation)
    sound = container.add_stream("aac", rate=AUDIO_RATE) if audio else None
    if sound is not None:
        sound.layout = "mono"
    sample = 0
    for i in range(FRAMES):
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        for bit in range(8):
            if (i >> bit) & 1:
                image[:, bit * 8:(bit + 1) * 8] = 255
        for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
        while sound is not None and sample < (i + 1) * AUDIO_RATE // FPS:
            tone = 0.3 * np.sin(2 * np.pi * 440 * (sample + np.arange(1024)) / AUDIO_RATE)
            frame = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = AUDIO_RATE, sample
            for packet in sound.encode(frame):
                container.mux(packet)
            sample += 1024
    for stream in (video, sound):
        for packet in stream.encode() if stream is not None else []:
            container.mux(packet)
    container.close()
    return path


def frame_number(gray: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if gray[:, bit * 8 + 2:(bit + 1) * 8 - 2].mean() > 128)


def decoded(path: Path) -> tuple[list[float], list[int], float | None, float]:
    """(frame times s, source frame numbers, audio seconds or None, rotation) of a clip."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times, numbers, rotation = [], [], 0.0
        for frame in container.decode(stream):
            times.append(float(frame.pts * stream.time_base))
            numbers.append(frame_number(frame.to_ndarray(format="gray")))
            rotation = rotation or frame.rotation
    audio = None
    with av.open(str(path)) as container:
        if container.streams.audio:
            audio = sum(f.samples for f in container.decode(audio=0)) / container.streams.audio[0].rate
    return times, numbers, audio, rotation


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return encode_numbered_video(tmp_path_factory.mktemp("src") / "match.mp4")


def seg(label: str, start: float, end: float) -> dict:
    return {"label": label, "start": start, "end": end, "score": 0.9}


def test_segment_on_a_keyframe_is_stream_copied(video, tmp_path):
    [clip] = write_clips(tmp_path, "match", video, [Segment("match", "diving", 2.0, 3.0, 0.8)])
    assert clip.path == tmp_path / "match" / "diving_2.000.mp4"
    assert (clip.method, clip.status, clip.actual_start, clip.actual_end) == ("copy", "written", 2.0, 3.0)
    times, numbers, audio, _ = decoded(clip.path)
    assert numbers == list(range(50, 75))  # 25 frames, from source frame 50, none lost
    assert times[0] == 0.0  # the clip's own timeline starts at 0
    assert audio == pytest.approx(1.0, abs=0.07)  # AAC packets of 64 ms at 16 kHz


def test_segment_off_a_keyframe_is_re_encoded_frame_exact(video, tmp_path):
    [clip] = write_clips(tmp_path, "match", video, [seg("diving", 2.2, 3.0)])
    assert (clip.method, clip.actual_start, clip.actual_end) == ("encode", 2.2, 3.0)
    times, numbers, audio, _ = decoded(clip.path)
    assert numbers == list(range(55, 75))  # 20 frames from frame 55 (2.2 s)
    assert times[0] == 0.0 and times[-1] == pytest.approx(0.76)
    assert 0.8 <= audio <= 0.8 + 0.064  # trimmed to the sample, padded to a whole AAC frame


def test_copy_starts_at_the_keyframe_before_and_encode_at_the_frame_showing(video, tmp_path):
    [copied] = write_clips(tmp_path / "c", "match", video, [seg("diving", 2.2, 3.0)], method="copy")
    assert (copied.method, copied.start, copied.actual_start, copied.actual_end) == ("copy", 2.2, 2.0, 3.0)
    assert decoded(copied.path)[1] == list(range(50, 75))
    [encoded] = write_clips(tmp_path / "e", "match", video, [seg("diving", 5.5, 6.0)], method="encode")
    assert (encoded.actual_start, encoded.actual_end) == (5.48, 6.0)  # frame 137 shows 5.48-5.52
    assert decoded(encoded.path)[1] == list(range(137, 150))


def test_copy_with_b_frames_keeps_every_frame_up_to_the_end(tmp_path):
    source = encode_numbered_video(tmp_path / "b.mp4", b_frames=True, audio=False)
    with av.open(str(source)) as container:  # the generator did make B-frames (pts out of order)
        pts = [p.pts for p in container.demux(video=0) if p.size]
    assert pts != sorted(pts)
    [clip] = write_clips(tmp_path / "out", "b", source, [seg("x", 2.0, 2.9)], method="copy")
    numbers = decoded(clip.path)[1]
    assert numbers[0] == 50 and numbers == list(range(50, 50 + len(numbers)))  # all decodable, in order
    assert numbers[-1] >= 72 and clip.actual_end == pytest.approx((numbers[-1] + 1) / FPS)  # covers 2.88-2.92


def test_padding_is_clamped_to_the_video(video, tmp_path):
    clips = write_clips(tmp_path, "match", video, [seg("long jump", 5.3, 5.8), seg("run", 0.2, 0.9)], padding=0.5)
    first, last = clips  # time order
    assert (first.path.name, first.start, first.end, first.method) == ("run_0.200.mp4", 0.0, 1.4, "copy")
    assert (last.path.name, last.start, last.end, last.method) == ("long_jump_5.300.mp4", 4.8, 6.0, "encode")
    assert decoded(first.path)[1] == list(range(0, 35))
    assert decoded(last.path)[1] == list(range(120, 150))


def test_rerun_skips_and_a_changed_list_rewrites_and_removes(video, tmp_path):
    folder = tmp_path / "match"
    first = write_clips(tmp_path, "match", video, [seg("dive", 2.0, 3.0), seg("jump", 4.0, 5.0)])
    stamps = {c.path.name: c.path.stat().st_mtime_ns for c in first}
    time.sleep(0.01)
    again = write_clips(tmp_path, "match", video, [seg("dive", 2.0, 3.0), seg("jump", 4.0, 5.0)])
    assert [c.status for c in again] == ["skipped", "skipped"]
    assert [(c.method, c.actual_start, c.actual_end) for c in again] == [("copy", 2.0, 3.0), ("copy", 4.0, 5.0)]
    assert {c.path.name: c.path.stat().st_mtime_ns for c in again} == stamps
    (folder / "notes.txt").write_text("mine")
    (folder / "other.mp4").write_bytes(b"not ours")
    changed = write_clips(tmp_path, "match", video, [seg("swim", 1.0, 1.5), seg("dive", 2.0, 2.5)])
    assert [(c.path.name, c.status) for c in changed] == [("swim_1.000.mp4", "written"), ("dive_2.000.mp4", "written")]
    assert len(decoded(folder / "dive_2.000.mp4")[1]) == 13  # 2.0-2.5 now
    assert not (folder / "jump_4.000.mp4").exists()  # no longer asked for: removed
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "other.mp4").read_bytes() == b"not ours"
    manifest = json.loads((folder / CLIPS_MANIFEST_NAME).read_text())
    assert sorted(manifest["clips"]) == ["dive_2.000.mp4", "swim_1.000.mp4"]
    padded = write_clips(tmp_path, "match", video, [seg("swim", 1.0, 1.5)], padding=0.1)
    assert [(c.status, c.start, c.end) for c in padded] == [("written", 0.9, 1.6)]  # other settings: rewritten


def test_unsafe_labels_and_ids_get_safe_distinct_names(video, tmp_path):
    clips = write_clips(tmp_path, "cam/1:x", video, [seg("a/b: c", 1.0, 1.5), seg("Dive", 2.0, 2.5),
                                                     seg("dive", 2.0, 2.5), seg("dive", 2.0, 2.5)])
    names = sorted(c.path.relative_to(tmp_path).as_posix() for c in clips)
    assert names == ["cam_1_x/Dive_2.000.mp4", "cam_1_x/a_b__c_1.000.mp4",
                     "cam_1_x/dive_2.000~2.mp4", "cam_1_x/dive_2.000~3.mp4"]
    assert all(c.path.is_file() for c in clips)
    [other] = write_clips(tmp_path, "cam_1_x", video, [seg("run", 1.0, 1.5)])  # same safe stem, other id
    assert other.path.parent.name == f"cam_1_x~{id_hash('cam_1_x')}"


def test_segments_outside_the_video_give_no_clip(video, tmp_path):
    assert write_clips(tmp_path, "match", video, [seg("late", 6.5, 8.0), seg("backwards", 3.0, 3.0)]) == []
    assert not (tmp_path / "match").exists()


def test_bad_input_is_one_line_naming_it(video, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    for path, reason in ((broken, "not a video or corrupt"), (tmp_path / "gone.mp4", "no such file")):
        with pytest.raises(InputError) as caught:
            write_clips(tmp_path / "out", "v", path, [seg("a", 0.0, 1.0)])
        assert str(caught.value) == f"cannot cut clips from {path.name}: {reason}"
    for kwargs in ({"method": "fast"}, {"padding": -1.0}, {"padding": float("nan")}):
        with pytest.raises(InputError):
            write_clips(tmp_path / "out", "v", video, [seg("a", 0.0, 1.0)], **kwargs)
    with pytest.raises(InputError, match="segment 1"):
        write_clips(tmp_path / "out", "v", video, [{"label": "a", "start": "soon", "end": 1.0}])


def test_a_crash_leaves_no_half_clip_and_stale_temp_files_are_swept(video, tmp_path, monkeypatch):
    import psftr_core.io.clips as clips

    folder = tmp_path / "match"
    folder.mkdir()
    stale = folder / ".psftr-deadbeef.tmp"  # what a writer killed with -9 leaves
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 300, time.time() - 300))

    def crash(container, handle, *args):
        handle.write(b"\0" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(clips, "_encode_frames", crash)
    with pytest.raises(KeyboardInterrupt):
        write_clips(tmp_path, "match", video, [seg("dive", 2.2, 3.0)])
    assert sorted(p.name for p in folder.iterdir()) == [CLIPS_MANIFEST_NAME]  # no clip, no temp file
    monkeypatch.undo()
    [clip] = write_clips(tmp_path, "match", video, [seg("dive", 2.2, 3.0)])
    assert clip.status == "written" and len(decoded(clip.path)[1]) == 20


def test_rotation_is_kept(tmp_path):
    source = encode_numbered_video(tmp_path / "r.mp4", audio=False, rotation=90)
    copied, encoded = write_clips(tmp_path / "out", "r", source, [seg("a", 1.0, 1.4), seg("b", 2.2, 2.6)])
    assert (copied.method, encoded.method) == ("copy", "encode")
    for clip in (copied, encoded):
        _, numbers, audio, rotation = decoded(clip.path)
        assert (rotation, audio, len(numbers)) == (90, None, 10)
