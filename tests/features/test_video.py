"""Input collection, video ids and shards (psftr_core.features.video)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


import pytest

from psftr_core.errors import InputError
from psftr_core.features.video import assign_video_ids, collect_videos, parse_shard, shard_videos


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


def test_collect_does_not_search_the_excluded_output_folder(tmp_path):
    a = touch(tmp_path / "a.mp4")
    touch(tmp_path / "out" / "features" / "a.npy")
    touch(tmp_path / "out" / "copy.mp4")
    videos, notes = collect_videos([str(tmp_path)], exclude=[tmp_path / "out"])
    assert videos == [a.resolve()] and notes == []


def test_fifos_and_symlink_loops_in_folders_are_skipped_with_a_note(tmp_path):
    good = touch(tmp_path / "v" / "good.mp4")
    os.mkfifo(tmp_path / "v" / "pipe.mp4")  # opening it would block forever
    os.symlink("b.mp4", tmp_path / "v" / "a.mp4")
    os.symlink("a.mp4", tmp_path / "v" / "b.mp4")
    os.symlink(tmp_path / "gone.mp4", tmp_path / "v" / "dangling.mp4")
    videos, notes = collect_videos([str(tmp_path / "v")])
    assert videos == [good.resolve()]
    assert notes == [
        f"skipped {tmp_path / 'v' / 'a.mp4'}: symlink loop",
        f"skipped {tmp_path / 'v' / 'b.mp4'}: symlink loop",
        f"skipped {tmp_path / 'v' / 'dangling.mp4'}: missing, a broken link or unreadable",
        f"skipped {tmp_path / 'v' / 'pipe.mp4'}: not a regular file (named pipe)",
    ]
    # the same entries through a glob
    videos, notes = collect_videos([str(tmp_path / "v" / "*.mp4")])
    assert videos == [good.resolve()] and len(notes) == 4


def test_a_named_fifo_or_symlink_loop_is_bad_input_naming_it(tmp_path):
    os.mkfifo(tmp_path / "pipe.mp4")
    os.symlink("b.mp4", tmp_path / "a.mp4")
    os.symlink("a.mp4", tmp_path / "b.mp4")
    with pytest.raises(InputError, match=r"pipe\.mp4: not a regular file \(named pipe\)"):
        collect_videos([str(tmp_path / "pipe.mp4")])
    with pytest.raises(InputError, match=r"a\.mp4: symlink loop"):
        collect_videos([str(tmp_path / "a.mp4")])


def test_a_symlinked_video_keeps_its_own_name(tmp_path):
    target = touch(tmp_path / "store" / "a1b2c3.mp4")
    link = tmp_path / "videos" / "clip.mp4"
    link.parent.mkdir()
    os.symlink(target, link)
    videos, _ = collect_videos([str(tmp_path / "videos"), str(target)])
    assert videos == [link]  # the target named again is the same file: used once
    assert [v.video_id for v in assign_video_ids(videos)] == ["clip"]
