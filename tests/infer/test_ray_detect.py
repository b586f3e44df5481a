"""``psftr detect --engine ray``: a Ray pool writes the files of one process (per-video
files, manifest, stream), survives a worker that dies, resumes, and refuses what it
cannot do with one line (exit 2)."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest

from fixtures_ray import RAY_VIDEOS
from train_helpers import psftr_main

pytestmark = pytest.mark.usefixtures("torch_one_thread")

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"
NUM_VIDEOS = RAY_VIDEOS
ACTIONS = "running,jumping,diving"


def _args(videos: Path, out: Path, clip_files) -> list:
    # --threshold 0: random weights score low; every candidate is a segment to compare
    return ["detect", videos, "--actions", ACTIONS, "--threshold", "0", "--output-dir", out / "per_video",
            "--format", "json", "--format", "csv", "--clip-config", clip_files.config,
            "--clip-pretrained", clip_files.weights, "--device", "cpu", "--dtype", "float32",
            "--cache-dir", out / "cache", "--quiet"]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _completed(folder: Path) -> list[str]:
    return sorted(json.loads((folder / ".psftr-detect.json").read_text())["finished"])


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, six_videos, tiny_clip_files) -> Path:
    out = tmp_path_factory.mktemp("ray_detect_local")
    assert psftr_main([*_args(six_videos, out, tiny_clip_files), "-o", out / "all.json"]) == 0
    return out


def _assert_same_outputs(ray_out: Path, local_out: Path) -> None:
    ray_files, local_files = _files(ray_out / "per_video"), _files(local_out / "per_video")
    videos = [f"v{i}" for i in range(NUM_VIDEOS)]
    assert sorted(name for name in ray_files if name.endswith(".json") and name[0] != ".") == [f"{v}.json" for v in videos]
    for name, content in local_files.items():
        if name != ".psftr-detect.json":
            assert ray_files[name] == content, name
    assert _completed(ray_out / "per_video") == _completed(local_out / "per_video") == videos
    # one stream, in id order, every video once: the same lines as one process
    assert (ray_out / "all.json").read_bytes() == (local_out / "all.json").read_bytes()
    assert not [p for p in ray_out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_two_ray_workers_write_the_files_of_one_process(tmp_path, local_ray, six_videos, tiny_clip_files,
                                                        local_run, capfd):
    args = [*_args(six_videos, tmp_path, tiny_clip_files), "-o", tmp_path / "all.json",
            "--engine", "ray", "--workers", "2"]
    assert psftr_main(args) == 0, capfd.readouterr().err
    _assert_same_outputs(tmp_path, local_run)
    results = json.loads((tmp_path / "all.json").read_text())["results"]
    assert sorted(results) == [f"v{i}" for i in range(NUM_VIDEOS)] and all(results.values())

    # a re-run passes every finished video on from its saved file: nothing is detected again
    capfd.readouterr()
    assert psftr_main([arg for arg in args if arg != "--quiet"]) == 0
    assert f"already done: {NUM_VIDEOS}" in capfd.readouterr().err
    assert (tmp_path / "all.json").read_bytes() == (local_run / "all.json").read_bytes()


@pytest.mark.slow
def test_a_detect_worker_that_dies_is_retried_and_every_video_is_there_once(tmp_path, local_ray, six_videos,
                                                                            tiny_clip_files, local_run, monkeypatch):
    from psftr_core.features.ray_pool import EXIT_ONCE_ENV

    marker = tmp_path / "died"
    monkeypatch.setenv(EXIT_ONCE_ENV, str(marker))
    args = [*_args(six_videos, tmp_path, tiny_clip_files), "-o", tmp_path / "all.json",
            "--engine", "ray", "--workers", "2"]
    assert psftr_main(args) == 0
    assert marker.exists()  # a worker did die
    _assert_same_outputs(tmp_path, local_run)


def test_ray_detect_refusals_exit_2_before_any_work(tmp_path, monkeypatch, capfd, video_folder, tiny_clip_files):
    common = ["detect", video_folder, "--actions", ACTIONS, "--clip-config", tiny_clip_files.config,
              "--clip-pretrained", tiny_clip_files.weights, "--device", "cpu", "--quiet",
              "--output-dir", tmp_path / "out"]
    capfd.readouterr()
    assert psftr_main([*common, "--gpus-per-worker", "1"]) == 2
    assert "psftr: error: --gpus-per-worker is for --engine ray (got --engine local)" in capfd.readouterr().err
    assert psftr_main([*common, "--engine", "dask"]) == 2
    assert "psftr: error: --engine dask: expected local or ray" in capfd.readouterr().err
    assert psftr_main([*common, "--engine", "ray", "--workers", "0"]) == 2
    assert "psftr: error: --workers 0: give at least 1" in capfd.readouterr().err

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "ray" else real_import(name, *a, **k))
    assert psftr_main([*common, "--engine", "ray"]) == 2
    err = capfd.readouterr().err
    assert err.strip().splitlines()[-1] == ("psftr: error: --engine ray needs Ray, which is not installed: "
                                            "pip install 'psftr[ray]'")
    assert "Traceback" not in err and not (tmp_path / "out" / ".psftr-detect.json").exists()


def test_ray_detect_on_a_feature_dataset_is_refused(tmp_path, capfd, monkeypatch):
    pytest.importorskip("ray")
    import psftr_core.infer.ray_detect as ray_detect

    monkeypatch.setattr(ray_detect.RayDetectEngine, "attach", lambda *a: pytest.fail("no pool for features"))
    capfd.readouterr()
    args = ["detect", "--features", DEMO, "--actions", "a,b", "--engine", "ray", "-o", tmp_path / "x.json"]
    assert psftr_main(args) == 2
    err = capfd.readouterr().err
    assert "psftr: error: --engine ray runs on video files" in err and "Traceback" not in err
