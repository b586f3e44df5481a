"""Input collection, video ids, shards, sampling plans and decoding (psftr_core.features.video)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fixtures_clip import frame_level
from psftr_core.errors import InputError
from psftr_core.features.video import (
    VideoDecodeError,
    VideoSource,
    assign_video_ids,
    collect_videos,
    parse_shard,
    plan_samples,
    shard_videos,
)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- collection


def test_collect_folder_recursive_skips_non_video_and_hidden(tmp_path):
    a = touch(tmp_path / "a.mp4")
    b = touch(tmp_path / "sub" / "deeper" / "b.MKV")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".hidden.mp4")
    touch(tmp_path / ".cache" / "c.mp4")
    videos, notes = collect_videos([str(tmp_path)])
    assert videos == [a.resolve(), b.resolve()]
    assert len(notes) == 1 and "notes.txt" in notes[0] and "not a video" in notes[0]


def test_collect_duplicates_once_globs_and_list_files(tmp_path):
    a = touch(tmp_path / "v" / "a.mp4")
    b = touch(tmp_path / "v" / "b.avi")
    c = touch(tmp_path / "w" / "c.mov")
    listing = tmp_path / "lists" / "videos.txt"
    listing.parent.mkdir()
    listing.write_text("# my videos\n\n../w/c.mov\n../v/a.mp4\n", encoding="utf-8")
    videos, notes = collect_videos([str(a), str(tmp_path / "v"), str(tmp_path / "v" / "*.avi"), f"@{listing}"])
    assert videos == [a.resolve(), b.resolve(), c.resolve()]
    assert notes == []


def test_collect_missing_inputs_name_the_path(tmp_path):
    with pytest.raises(InputError, match="input not found: .*nope.mp4"):
        collect_videos([str(tmp_path / "nope.mp4")])
    with pytest.raises(InputError, match=r"no files match .*\*\.mp4"):
        collect_videos([str(tmp_path / "*.mp4")])
    with pytest.raises(InputError, match="list file not found"):
        collect_videos([f"@{tmp_path / 'missing.txt'}"])
    listing = tmp_path / "l.txt"
    listing.write_text("gone.mp4\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 1 of"):
        collect_videos([f"@{listing}"])


def test_video_ids_are_stems_and_collisions_get_a_path_hash(tmp_path):
    paths = [tmp_path / "x" / "clip.mp4", tmp_path / "y" / "Clip.avi", tmp_path / "y" / "other.mp4"]
    ids = assign_video_ids(paths)
    expected_hash = hashlib.sha1(str(paths[0].resolve()).encode()).hexdigest()[:8]
    assert ids[0].video_id == f"clip-{expected_hash}"
    assert ids[1].video_id.startswith("Clip-") and ids[1].video_id != ids[0].video_id
    assert ids[2].video_id == "other"
    # the same inputs in another order give the same ids
    again = {v.path: v.video_id for v in assign_video_ids(list(reversed(paths)))}
    assert again == {v.path: v.video_id for v in ids}


def test_shards_partition_and_env(tmp_path):
    videos = assign_video_ids([tmp_path / f"v{i}.mp4" for i in range(7)])
    parts = [shard_videos(videos, i, 3) for i in range(3)]
    ids = [v.video_id for part in parts for v in part]
    assert sorted(ids) == sorted(v.video_id for v in videos) and len(ids) == len(set(ids))
    assert [v.video_id for v in parts[1]] == ["v1", "v4"]
    assert parse_shard("2/5") == (2, 5)
    assert parse_shard(None, env={"RANK": "1", "WORLD_SIZE": "4"}) == (1, 4)
    assert parse_shard(None, env={}) == (0, 1)
    for bad in ("3/3", "a/b", "1", "-1/2"):
        with pytest.raises(InputError):
            parse_shard(bad)


# ----------------------------------------------------------------------------- sampling


def test_plan_by_stride_uses_centre_frames():
    ts = np.stack([np.arange(50) / 25, (np.arange(50) + 1) / 25], axis=1)
    plan = plan_samples(ts, stride=8)
    assert plan.num_features == 6  # floor(50 / 8)
    assert plan.indices.tolist() == [4, 12, 20, 28, 36, 44]
    np.testing.assert_allclose(plan.times, np.array([4, 12, 20, 28, 36, 44]) / 25)
    assert plan.frame_length == 50 and plan.video_fps == pytest.approx(25.0)
    assert plan.snippet_duration == pytest.approx(48 / 25)  # snippet_length * 8 / fps
    assert plan.duration == pytest.approx(2.0)


def test_plan_by_fps_picks_nearest_frames_on_variable_rate():
    # frames start at irregular times (variable frame rate)
    starts = np.array([0.0, 0.1, 0.3, 0.35, 0.9, 1.2, 1.7, 2.05])
    ts = np.stack([starts, np.append(starts[1:], 2.1)], axis=1)
    plan = plan_samples(ts, fps=2)
    # duration 2.1 s -> 4 features centred at 0.25, 0.75, 1.25, 1.75 s
    assert plan.num_features == 4
    np.testing.assert_allclose(plan.times, [0.25, 0.75, 1.25, 1.75])
    assert plan.indices.tolist() == [2, 4, 5, 6]  # nearest starts 0.3, 0.9, 1.2, 1.7
    assert plan.snippet_duration == pytest.approx(2.0)


def test_plan_rejects_bad_sampling():
    ts = np.zeros((4, 2))
    with pytest.raises(InputError):
        plan_samples(ts, stride=0)
    with pytest.raises(InputError):
        plan_samples(ts, stride=8, fps=2)


# ----------------------------------------------------------------------------- decoding


def test_decoded_frames_are_the_planned_ones(tmp_path, make_video):
    path = make_video(tmp_path / "levels.mp4", 24, fps=25)
    source = VideoSource(path)
    assert source.num_frames == 24
    np.testing.assert_allclose(source.timestamps[:, 0], np.arange(24) / 25, atol=1e-4)
    indices = [1, 5, 5, 13, 22]
    chunks = list(source.iter_frames(indices, chunk=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    frames = np.concatenate(chunks)
    assert frames.dtype == np.uint8 and frames.shape == (5, 64, 96, 3)
    # the grey background (below the moving square) identifies the frame index
    levels = frames[:, 32:, :, :].mean(axis=(1, 2, 3))
    np.testing.assert_allclose(levels, [frame_level(i) for i in indices], atol=3)


def test_bikes_matches_get_batch(bikes_video):
    import decord

    source = VideoSource(bikes_video)
    plan = source.plan(stride=8)
    assert source.num_frames == 250 and plan.num_features == 31
    assert plan.video_fps == pytest.approx(25.0)
    ours = np.concatenate(list(source.iter_frames(plan.indices, chunk=16)))
    reference = decord.VideoReader(str(bikes_video)).get_batch(plan.indices.tolist()).asnumpy()
    assert np.array_equal(ours, reference)
    # dropping the read-ahead between chunks (keyframes at 0, 30, 76, 137, 187, 242)
    again = VideoSource(bikes_video)
    chunks = []
    for chunk in again.iter_frames(plan.indices, chunk=3):
        chunks.append(chunk)
        again.release_readahead()
    assert np.array_equal(np.concatenate(chunks), reference)


def test_corrupt_and_empty_files_raise_decode_error(tmp_path):
    rng = np.random.default_rng(0)
    corrupt = touch(tmp_path / "corrupt.mp4", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = touch(tmp_path / "empty.mp4", b"")
    for path in (corrupt, empty):
        with pytest.raises(VideoDecodeError, match=path.name):
            VideoSource(path)


def test_release_readahead_between_chunks_keeps_frames_right(tmp_path, make_video):
    import decord

    path = tmp_path / "gop.mp4"
    make_video(path, 24, fps=25)
    source = VideoSource(path)
    indices = [2, 3, 9, 9, 15, 20, 23]
    frames = []
    for chunk in source.iter_frames(indices, chunk=2):
        frames.append(chunk)
        source.release_readahead()  # as the engine does before waiting
    frames = np.concatenate(frames)
    reference = decord.VideoReader(str(path)).get_batch(indices).asnumpy()
    assert np.array_equal(frames, reference)
    assert not source.is_open  # released after the last chunk


def test_collect_does_not_search_the_excluded_output_folder(tmp_path):
    a = touch(tmp_path / "a.mp4")
    touch(tmp_path / "out" / "features" / "a.npy")
    touch(tmp_path / "out" / "copy.mp4")
    videos, notes = collect_videos([str(tmp_path)], exclude=[tmp_path / "out"])
    assert videos == [a.resolve()] and notes == []
