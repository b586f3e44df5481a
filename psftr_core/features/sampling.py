"""Which frames of a video to encode: one per stride window, or one per 1/F seconds.

Plans are made from the decoder's per-frame timestamps (start, end in seconds, first
frame at 0), so variable frame rates are sampled by time, not by frame count:

* stride S: feature i covers frames [i*S, (i+1)*S) and looks at its centre frame
  i*S + S//2; T = floor(num_frames / S) (the THUMOS14 CLIP feature convention,
  ``snippet_length = floor(frame_length / 8)``). The feature's time is the start
  timestamp of that frame, which for constant frame rate is the window's centre.
* fps F: feature k covers [k/F, (k+1)/F) seconds and looks at the frame whose start
  timestamp is nearest to the centre (k + 0.5)/F; T = floor(duration * F). Above the
  video's own rate (``FPS_TOLERANCE`` allowed, for variable rates) the video gets one
  feature per frame instead, with a warning (``plan_video``): repeated frames add no
  information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psftr_core.errors import InputError, PsftrError

FPS_TOLERANCE = 1.05  # --fps may exceed frames/duration by 5% (variable-rate phone videos)


@dataclass
class SamplePlan:
    """Which frames to decode for the features of one video.

    indices: int64 [T] frame index per feature (non-decreasing).
    times: float64 [T] seconds, the time each feature stands for.
    """

    indices: np.ndarray
    times: np.ndarray
    frame_length: int
    video_fps: float
    duration: float  # seconds of video (end of the last frame)
    snippet_duration: float  # seconds covered by the T features

    @property
    def num_features(self) -> int:
        return int(len(self.indices))


class SamplingError(PsftrError):
    """A video too short for one feature: that video fails."""


def plan_samples(timestamps: np.ndarray, stride: int | None = None, fps: float | None = None) -> SamplePlan:
    """Frames to sample from per-frame timestamps [N, 2] (start, end) in seconds."""
    if (stride is None) == (fps is None):
        raise InputError("give exactly one of --stride and --fps")
    ts = np.asarray(timestamps, dtype=np.float64).reshape(-1, 2)
    n = len(ts)
    duration = float(ts[-1, 1]) if n else 0.0
    video_fps = n / duration if duration > 0 else 0.0
    if stride is not None:
        if stride < 1:
            raise InputError(f"--stride must be at least 1, got {stride}")
        count = n // stride
        indices = np.arange(count, dtype=np.int64) * stride + stride // 2
        times = ts[indices, 0] if count else np.zeros(0)
        covered = float(ts[count * stride - 1, 1]) if count else 0.0
    else:
        if not fps > 0:
            raise InputError(f"--fps must be positive, got {fps}")
        count = int(np.floor(duration * fps + 1e-9))
        times = (np.arange(count) + 0.5) / fps
        starts = ts[:, 0]
        # nearest frame start to each centre time (starts are sorted for decoded order)
        right = np.clip(np.searchsorted(starts, times), 0, max(n - 1, 0))
        left = np.clip(right - 1, 0, max(n - 1, 0))
        pick_left = np.abs(starts[left] - times) <= np.abs(starts[right] - times)
        indices = np.where(pick_left, left, right).astype(np.int64) if n else np.zeros(0, np.int64)
        covered = count / fps
    return SamplePlan(
        indices=indices,
        times=np.asarray(times, dtype=np.float64),
        frame_length=n,
        video_fps=video_fps,
        duration=duration,
        snippet_duration=covered,
    )


def plan_video(timestamps: np.ndarray, name: str, stride: int | None = None,
               fps: float | None = None) -> tuple[SamplePlan, str | None]:
    """The plan for one video and a warning when ``fps`` had to be lowered.

    ``fps`` above the video's own rate (``FPS_TOLERANCE`` allowed) is lowered to that
    rate, one feature per frame (as ``stride=1``: each frame once, at its start time),
    with a warning saying so; repeating frames would only pretend to a finer time
    resolution. SamplingError when no feature fits.
    """
    plan = plan_samples(timestamps, stride=stride, fps=fps)
    warning = None
    if fps is not None and plan.video_fps > 0 and fps > plan.video_fps * FPS_TOLERANCE:
        warning = (
            f"{name} has {plan.video_fps:.3g} frames per second, fewer than --fps {fps:g}: "
            f"its features are one per frame ({plan.video_fps:.3g} per second), not {fps:g}"
        )
        plan = plan_samples(timestamps, stride=1)
    if plan.num_features == 0:
        rate = f"--stride {stride}" if stride is not None else f"--fps {fps:g}"
        raise SamplingError(
            f"{name} is too short for one feature at {rate} ({plan.frame_length} frames, {plan.duration:.2f} s)"
        )
    return plan, warning
