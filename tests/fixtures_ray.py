"""Fixtures of the ``--engine ray`` tests (loaded as a pytest plugin from conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

RAY_VIDEOS = 6  # generated videos of 16, 24, ... 56 frames: v0.mp4 ... v5.mp4


@pytest.fixture(scope="module")
def six_videos(tmp_path_factory, make_video) -> Path:
    folder = tmp_path_factory.mktemp("ray_videos")
    for i in range(RAY_VIDEOS):
        make_video(folder / f"v{i}.mp4", 16 + 8 * i)
    return folder


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for the module (skipped where Ray is not installed)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
