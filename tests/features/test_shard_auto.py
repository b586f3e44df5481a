"""``--shard auto``: the shard of a Slurm array task and/or a RANK/WORLD_SIZE launch.

The coverage tests run the shard selection of every task of a faked array (the
environment monkeypatched as Slurm sets it) over one folder: every video exactly once.
One real ``psftr extract --shard auto`` run (tiny CLIP) checks the command path, and
that a final run without ``--shard`` after a "dead" task extracts the rest and
publishes the merged files (the merge command documented in docs/extract.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cli_runner import run_cli
from psftr_core.errors import InputError
from psftr_core.features.video import assign_video_ids, collect_videos, parse_shard, shard_videos

pytestmark = pytest.mark.usefixtures("torch_one_thread")

LAUNCH_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                    "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP", "RANK", "WORLD_SIZE")


@pytest.fixture()
def clean_env(monkeypatch):
    """No launcher variables from the machine running the tests."""
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def fake_array_task(monkeypatch, task_id: int, task_ids: list[int], step: int) -> None:
    """The variables Slurm sets in each task of ``sbatch --array=MIN-MAX:STEP``."""
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task_id))
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", str(len(task_ids)))
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", str(task_ids[0]))
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", str(task_ids[-1]))
    monkeypatch.setenv("SLURM_ARRAY_TASK_STEP", str(step))


def folder_of_videos(folder: Path, count: int) -> list:
    folder.mkdir()
    for i in range(count):
        (folder / f"clip{i:02d}.mp4").touch()  # selection never opens the files
    paths, _ = collect_videos([str(folder)])
    return assign_video_ids(paths)


@pytest.mark.parametrize("task_ids, step", [
    (list(range(0, 8)), 1),        # --array=0-7
    (list(range(1, 16, 2)), 2),    # --array=1-15:2
    (list(range(8, 11)), 1),       # --array=8-10
], ids=["0-7", "1-15:2", "8-10"])
def test_every_video_once_over_a_slurm_array(tmp_path, clean_env, task_ids, step):
    videos = folder_of_videos(tmp_path / "videos", 21)
    taken, shards = [], []
    for task_id in task_ids:
        fake_array_task(clean_env, task_id, task_ids, step)
        shard = parse_shard("auto")
        shards.append(shard)
        taken += [v.video_id for v in shard_videos(videos, *shard)]
    assert shards == [(k, len(task_ids)) for k in range(len(task_ids))]
    assert sorted(taken) == sorted(v.video_id for v in videos) and len(taken) == len(set(taken)) == 21


def test_ranks_inside_array_tasks_compose(tmp_path, clean_env):
    """2 array tasks x 2 ranks each (torchrun in every task): 4 shards, every video once."""
    videos = folder_of_videos(tmp_path / "videos", 9)
    taken, shards = [], []
    for task_id in (0, 1):
        fake_array_task(clean_env, task_id, [0, 1], 1)
        for rank in (0, 1):
            clean_env.setenv("RANK", str(rank))
            clean_env.setenv("WORLD_SIZE", "2")
            shards.append(parse_shard("auto"))
            taken += [v.video_id for v in shard_videos(videos, *shards[-1])]
    assert shards == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert sorted(taken) == sorted(v.video_id for v in videos) and len(taken) == len(set(taken))


def test_auto_falls_back_to_rank_then_one_shard(clean_env, caplog):
    clean_env.setenv("RANK", "2")
    clean_env.setenv("WORLD_SIZE", "3")
    assert parse_shard("auto") == (2, 3)
    clean_env.delenv("RANK")
    clean_env.delenv("WORLD_SIZE")
    with caplog.at_level(logging.WARNING, logger="psftr_core.features.video"):
        assert parse_shard("auto") == (0, 1)
    assert "--shard auto" in caplog.text and "SLURM_ARRAY_TASK_ID" in caplog.text
    assert "shard 0/1" in caplog.text


@pytest.mark.parametrize("env, named", [
    ({"SLURM_ARRAY_TASK_ID": "3"}, "SLURM_ARRAY_TASK_COUNT"),
    ({"SLURM_ARRAY_TASK_ID": "three", "SLURM_ARRAY_TASK_COUNT": "8"}, "SLURM_ARRAY_TASK_ID='three'"),
    ({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "8"}, "SLURM_ARRAY_TASK_ID=8"),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1",
      "SLURM_ARRAY_TASK_STEP": "2"}, "SLURM_ARRAY_TASK_STEP=2"),  # 4 is not 1 + 2k
    # --array=0,2,7 (or a resubmitted subset): not a regular range, the tasks would miss videos
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0",
      "SLURM_ARRAY_TASK_MAX": "7", "SLURM_ARRAY_TASK_STEP": "1"}, "SLURM_ARRAY_TASK_MAX=7"),
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "0"}, "SLURM_ARRAY_TASK_COUNT=0"),
    ({"WORLD_SIZE": "4"}, "RANK"),
    ({"RANK": "4", "WORLD_SIZE": "4"}, "RANK/WORLD_SIZE '4/4'"),
], ids=["count-missing", "id-not-a-number", "id-past-count", "id-off-step", "list-with-gaps",
        "count-zero", "rank-missing", "rank-past-world"])
def test_inconsistent_environment_is_refused_naming_the_variables(clean_env, env, named):
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(InputError, match="--shard auto") as refused:
        parse_shard("auto")
    assert named in str(refused.value)


def extract_args(videos: Path, out: Path, clip, *more: str) -> list[str]:
    return [str(videos), "--output", str(out), "--clip-config", str(clip.config),
            "--clip-pretrained", str(clip.weights), "--device", "cpu", "--batch-size", "4", "-q", *more]


def test_extract_shard_auto_then_merge_after_a_dead_task(tmp_path, clean_env, tiny_clip_files, make_video,
                                                           capsys):
    videos = tmp_path / "videos"
    for i in range(3):
        make_video(videos / f"v{i}.mp4", 16)
    out = tmp_path / "feats"
    fake_array_task(clean_env, 0, [0, 1], 1)  # task 0 of --array=0-1; task 1 "dies" before starting
    code, _, err = run_cli(extract_args(videos, out, tiny_clip_files, "--shard", "auto"), capsys, clean_env,
                           command="extract")
    assert code == 0, err
    assert sorted(json.loads((out / "feature_info.json").read_text())) == ["v0", "v2"]
    assert sorted(p.stem for p in (out / "features").iterdir()) == ["v0", "v2"]

    for name in LAUNCH_VARIABLES:
        clean_env.delenv(name, raising=False)
    before = (out / "features" / "v0.npy").read_bytes()
    code, _, err = run_cli(extract_args(videos, out, tiny_clip_files), capsys, clean_env, command="extract")
    assert code == 0, err  # the merge run: extracts what the dead task left, publishes all
    assert sorted(json.loads((out / "feature_info.json").read_text())) == ["v0", "v1", "v2"]
    assert json.loads((out / "manifest.json").read_text())["num_videos"] == 3
    assert (out / "features" / "v0.npy").read_bytes() == before  # finished videos are skipped


def test_extract_shard_auto_refuses_a_bad_array_before_writing(tmp_path, clean_env, tiny_clip_files, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").touch()
    clean_env.setenv("SLURM_ARRAY_TASK_ID", "5")
    clean_env.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    out = tmp_path / "feats"
    code, _, err = run_cli(extract_args(videos, out, tiny_clip_files, "--shard", "auto"), capsys, clean_env,
                           command="extract")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("psftr: error: --shard auto:")
    assert "SLURM_ARRAY_TASK_ID=5" in lines[0] and "Traceback" not in err
    assert not out.exists()
