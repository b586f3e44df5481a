"""Any name the file system allows: short temp names, stale temp files, ids, decoding."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from psftr_core.features import feature_folder
from psftr_core.features.decoders import open_video, probe_video
from psftr_core.features.video import MAX_ID_BYTES, assign_video_ids
from psftr_core.io import atomic
from psftr_core.io.output_dir import id_hash, safe_stem, video_file_name

NON_UTF8 = os.fsdecode(b"bad\xffname.mp4")


def test_a_255_byte_target_name_is_written_and_no_temp_file_is_left(tmp_path):
    target = tmp_path / ("x" * 250 + ".json")  # 255 bytes: the temp name must not be longer
    atomic.write_json(target, {"ok": 1})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert os.listdir(tmp_path) == [target.name]


def _temp_file(folder: Path, age: float) -> Path:
    path = folder / f"{atomic.TEMP_PREFIX}dead1234{atomic.TEMP_SUFFIX}"
    path.write_bytes(b"half")
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_a_dead_writers_old_temp_file_is_removed_by_the_next_write(tmp_path):
    stale = _temp_file(tmp_path, age=atomic.STALE_TEMP_SECONDS + 5)
    other = tmp_path / ".other.tmp"  # not our pattern: never touched
    other.write_bytes(b"someone else's")
    atomic.write_text(tmp_path / "out.txt", "new")
    assert not stale.exists() and other.exists()


def test_a_fresh_or_locked_temp_file_is_kept(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    fresh = _temp_file(tmp_path, age=1)
    assert atomic.remove_stale_temp_files(tmp_path) == [] and fresh.exists()
    live = tmp_path / f"{atomic.TEMP_PREFIX}live5678{atomic.TEMP_SUFFIX}"
    live.write_bytes(b"being written")
    old = time.time() - 3600
    os.utime(live, (old, old))
    with open(live, "rb") as handle:  # another writer, still alive, holds its lock
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        atomic._cleaned_folders.discard(os.path.abspath(tmp_path))
        assert atomic.remove_stale_temp_files(tmp_path) == []
    assert live.exists()


def test_ids_keep_the_name_and_are_plain_text(tmp_path):
    names = [NON_UTF8, "two\nlines.mp4", "l" * 251 + ".mp4", "vidéo 1.mp4"]
    ids = [video.video_id for video in assign_video_ids([tmp_path / name for name in names])]
    assert ids[0] == "bad\\xffname" and ids[1] == "two\nlines" and ids[3] == "vidéo 1"
    assert len(ids[2].encode()) == MAX_ID_BYTES and ids[2].startswith("l" * 200) and "~" in ids[2]
    for video_id in ids:
        video_id.encode("utf-8")  # no lone surrogates: JSON and CSV take it
        assert video_file_name(video_id, "json") == f"{video_id}.json"  # the dataset format's name


def test_one_mapping_from_id_to_file_name():
    assert video_file_name("a/b", "npy") == f"{safe_stem('a/b')}~{id_hash('a/b')}.npy"
    long_name = video_file_name("z" * 300, "json")
    assert len(long_name.encode()) <= 255 and long_name.endswith(".json")
    assert video_file_name(os.fsdecode(b"\xff"), "npy").endswith(".npy")


@pytest.mark.parametrize("decoder", ["pyav", "decord", "auto"])
def test_a_non_utf8_file_name_decodes(tmp_path, make_video, decoder):
    if decoder == "decord":
        pytest.importorskip("decord")
    path = tmp_path / NON_UTF8
    make_video(tmp_path / "plain.mp4", 12)
    os.rename(tmp_path / "plain.mp4", path)
    assert probe_video(path).width == 96
    source = open_video(path, decoder)
    frames = np.concatenate(list(source.iter_frames([0, 5, 11])))
    source.close()
    assert source.num_frames == 12 and frames.shape == (3, 64, 96, 3)


def test_extracting_into_a_dataset_keeps_only_entries_with_intact_features(tmp_path):
    out = tmp_path / "data"
    (out / "features").mkdir(parents=True)
    np.save(out / "features" / "kept.npy", np.zeros((4, 8), np.float16))
    np.save(out / "features" / "short.npy", np.zeros((3, 8), np.float16))  # not the listed length
    entry = {"snippet_length": 4, "snippet_duration": 4.0, "video_fps": 25.0, "frame_length": 100}
    previous = {"kept": entry, "short": entry, "gone": entry, "ours": entry}
    records = {"ours": {"video_id": "ours"}}
    assert feature_folder._kept_entries(out, previous, records) == {"kept": entry}
