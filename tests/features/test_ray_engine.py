"""``--engine ray``: the Ray actor pool gives the features of one process, survives a
worker that dies, and without Ray installed says how to install it (no traceback)."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest

from psftr_core.errors import InputError
from fixtures_ray import RAY_VIDEOS
from psftr_core.features.extract import ExtractOptions, extract_features

pytestmark = pytest.mark.usefixtures("torch_one_thread")

NUM_VIDEOS = RAY_VIDEOS


def _options(clip_files) -> ExtractOptions:
    return ExtractOptions(clip_config=str(clip_files.config), clip_pretrained=str(clip_files.weights),
                          device="cpu", dtype="float32")


def _extract(videos: Path, out: Path, clip_files, **kwargs):
    return extract_features([str(videos)], out, _options(clip_files), **kwargs)


def _feature_files(out: Path) -> dict[str, np.ndarray]:
    return {p.stem: np.load(p) for p in sorted((out / "features").glob("*.npy"))}


def _assert_same_folder(ray_out: Path, local_out: Path) -> None:
    ray_features, local_features = _feature_files(ray_out), _feature_files(local_out)
    assert sorted(ray_features) == [f"v{i}" for i in range(NUM_VIDEOS)]
    assert sorted(ray_features) == sorted(local_features)
    for vid, local in local_features.items():
        np.testing.assert_array_equal(ray_features[vid], local)
    for name in ("feature_info.json", "annotations.json"):
        assert json.loads((ray_out / name).read_text()) == json.loads((local_out / name).read_text())
    assert not [p for p in ray_out.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def local_folder(tmp_path_factory, six_videos, tiny_clip_files) -> Path:
    out = tmp_path_factory.mktemp("local") / "feats"
    _extract(six_videos, out, tiny_clip_files)
    return out


def test_engine_ray_without_ray_says_how_to_install(tmp_path, monkeypatch, video_folder, tiny_clip_files):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    from psftr_core.features.ray_extract import RayEngine

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(InputError, match=r"pip install 'psftr\[ray\]'"):
        RayEngine()  # made before extract_features reads or writes anything


@pytest.mark.slow
def test_two_ray_workers_give_the_one_process_features(tmp_path, local_ray, six_videos, tiny_clip_files,
                                                       local_folder):
    from psftr_core.features.ray_extract import RayEngine, RayOptions

    out = tmp_path / "feats"
    summary = _extract(six_videos, out, tiny_clip_files, engine=RayEngine(RayOptions(workers=2)))
    assert summary.ids("done") == [f"v{i}" for i in range(NUM_VIDEOS)]
    _assert_same_folder(out, local_folder)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_videos"] == NUM_VIDEOS
    assert manifest["settings_sha256"] == json.loads((local_folder / "manifest.json").read_text())["settings_sha256"]

    again = _extract(six_videos, out, tiny_clip_files, engine=RayEngine(RayOptions(workers=2)))
    assert again.ids("skipped") == [f"v{i}" for i in range(NUM_VIDEOS)]


@pytest.mark.slow
def test_a_worker_that_dies_is_retried_and_every_video_is_there_once(tmp_path, local_ray, six_videos,
                                                                     tiny_clip_files, local_folder, monkeypatch):
    from psftr_core.features.ray_extract import RayEngine, RayOptions
    from psftr_core.features.ray_pool import EXIT_ONCE_ENV

    marker = tmp_path / "died"
    monkeypatch.setenv(EXIT_ONCE_ENV, str(marker))
    out = tmp_path / "feats"
    summary = _extract(six_videos, out, tiny_clip_files, engine=RayEngine(RayOptions(workers=2)))
    assert marker.exists()  # a worker did die
    assert sorted(r.video_id for r in summary.results) == [f"v{i}" for i in range(NUM_VIDEOS)]
    assert summary.ids("done") == [f"v{i}" for i in range(NUM_VIDEOS)]
    assert sorted(p.stem for p in (out / "info").glob("*.json")) == [f"v{i}" for i in range(NUM_VIDEOS)]
    _assert_same_folder(out, local_folder)


def test_cli_ray_flags_without_engine_ray_and_ray_missing_exit_2(tmp_path, monkeypatch, capfd, video_folder,
                                                                tiny_clip_files):
    from train_helpers import psftr_main

    out = tmp_path / "feats"
    common = [str(video_folder), "--output", str(out), "--clip-config", str(tiny_clip_files.config),
              "--clip-pretrained", str(tiny_clip_files.weights), "--device", "cpu", "--quiet"]
    capfd.readouterr()
    assert psftr_main(["extract", *common, "--workers", "2"]) == 2
    err = capfd.readouterr().err
    assert "psftr: error: --workers is for --engine ray" in err and "Traceback" not in err
    assert psftr_main(["extract", *common, "--engine", "spark"]) == 2
    assert "psftr: error: --engine spark: expected local or ray" in capfd.readouterr().err

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "ray" else real_import(name, *a, **k))
    assert psftr_main(["extract", *common, "--engine", "ray"]) == 2
    err = capfd.readouterr().err
    assert err.strip().splitlines()[-1] == ("psftr: error: --engine ray needs Ray, which is not installed: "
                                            "pip install 'psftr[ray]'")
    assert not out.exists()
