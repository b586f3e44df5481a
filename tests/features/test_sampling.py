"""Sampling plans from decoder timestamps (psftr_core.features.sampling)."""

from __future__ import annotations

import numpy as np
import pytest

from psftr_core.errors import InputError
from psftr_core.features.sampling import SamplingError, plan_samples, plan_video


def constant_rate(frames: int, fps: float) -> np.ndarray:
    return np.stack([np.arange(frames) / fps, (np.arange(frames) + 1) / fps], axis=1)


def test_plan_by_stride_uses_centre_frames():
    plan = plan_samples(constant_rate(50, 25), stride=8)
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


def test_fps_above_the_video_rate_is_lowered_to_it_with_a_warning():
    ts = constant_rate(50, 25)  # 2 s at 25 fps
    plan, warning = plan_video(ts, "alpha.mp4", fps=50)
    assert plan.num_features == 50 and plan.indices.tolist() == list(range(50))  # one per frame, none twice
    np.testing.assert_allclose(plan.times, np.arange(50) / 25)  # each frame's start
    assert plan.snippet_duration == pytest.approx(2.0)
    assert "alpha.mp4" in warning and "25 frames per second" in warning and "--fps 50" in warning
    plan, warning = plan_video(ts, "alpha.mp4", fps=26)  # within the 5% tolerance (variable rates)
    assert warning is None and plan.num_features == 52
    plan, warning = plan_video(ts, "alpha.mp4", stride=8)
    assert warning is None and plan.num_features == 6


def test_too_short_for_one_feature():
    with pytest.raises(SamplingError, match=r"short\.mp4 is too short for one feature at --stride 8 \(5 frames"):
        plan_video(constant_rate(5, 25), "short.mp4", stride=8)
