"""Cut videos into model inputs: THUMOS14-style sliding windows or ActivityNet-style resize.

Time convention (used by training targets and by inference alike): snippet ``i`` of a
video covers ``[i * dt, (i + 1) * dt)`` seconds, ``dt`` = seconds per snippet. A window
of snippets ``[start, end)`` therefore covers ``[start * dt, end * dt)`` and a
normalised position ``x`` in ``[0, 1]`` of the window maps to video time
``t_offset + x * t_scale`` with ``t_offset = start * dt`` and ``t_scale = (end - start) * dt``.
Segments inside a window are normalised to its *valid* (unpadded) length, matching the
model's ``pred_segments``.

Sliding windows (method §6): ``slice_size`` snippets, stride
``round(slice_size * (1 - overlap))`` (32 for training at 0.75, 96 for inference at
0.25). When the complete windows do not reach the end of the video, the last window is
moved left to end at the video end in training (a full window) and is a shorter tail
window at inference. A video shorter than one window is a single (short) window.
An instance belongs to a window when at least ``min_integrity`` (75 %) of its duration
lies inside the window; it is then clipped to the window. Training keeps only windows
with at least one instance.

Resize mode (ActivityNet): the whole video is one window, its features resized to a
fixed length by nearest-neighbour sampling.

Everything here is numpy; no torch at import time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Instance:
    """A ground-truth instance in seconds (video time or window-relative time)."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Windowing:
    """How videos become model inputs.

    mode: "sliding" (THUMOS14) or "resize" (ActivityNet).
    slice_size: snippets per sliding window.
    slice_overlap / inference_slice_overlap: overlap fraction between neighbouring
        windows in training / inference.
    resize_length: fixed input length in resize mode.
    min_integrity: fraction of an instance that must lie in a window to keep it.
    """

    mode: str = "sliding"
    slice_size: int = 128
    slice_overlap: float = 0.75
    inference_slice_overlap: float = 0.25
    resize_length: int = 300
    min_integrity: float = 0.75

    def __post_init__(self) -> None:
        if self.mode not in ("sliding", "resize"):
            raise ValueError(f"windowing mode must be 'sliding' or 'resize', not {self.mode!r}")
        if self.slice_size < 1 or self.resize_length < 1:
            raise ValueError("slice_size and resize_length must be >= 1")
        for name in ("slice_overlap", "inference_slice_overlap"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), not {value}")

    def stride(self, training: bool) -> int:
        overlap = self.slice_overlap if training else self.inference_slice_overlap
        return max(1, int(round(self.slice_size * (1.0 - overlap))))


@dataclass
class WindowSpec:
    """One model input cut from a video.

    start/end: snippet index range [start, end) of the source features.
    t_offset/t_scale: window <-> video time mapping (see module docstring).
    resize_to: when set, features[start:end] are resized to this many snippets.
    instances: kept instances, window-relative seconds, clipped to the window.
    """

    video_id: str
    start: int
    end: int
    t_offset: float
    t_scale: float
    resize_to: int | None = None
    instances: list[Instance] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Number of snippets the model sees for this window (before padding)."""
        return self.resize_to if self.resize_to is not None else self.end - self.start

    def to_video_time(self, normalised: np.ndarray) -> np.ndarray:
        """Map normalised window positions (any shape) to seconds of video time."""
        return self.t_offset + np.asarray(normalised, dtype=np.float64) * self.t_scale


def window_ranges(num_snippets: int, size: int, stride: int, training: bool) -> list[tuple[int, int]]:
    """Snippet ranges [start, end) of the sliding windows over a video of ``num_snippets``.

    >>> window_ranges(300, 128, 96, training=False)
    [(0, 128), (96, 224), (192, 300)]
    """
    if num_snippets <= 0:
        return []
    if num_snippets <= size:
        return [(0, num_snippets)]
    complete = (num_snippets - size) // stride + 1
    ranges = [(i * stride, i * stride + size) for i in range(complete)]
    if ranges[-1][1] < num_snippets:
        # Training: a full window ending at the video end; inference: the shorter tail
        # continuing the stride (a shorter window keeps the time grid of the others).
        tail_start = num_snippets - size if training else complete * stride
        ranges.append((tail_start, num_snippets))
    return ranges


def instances_in_window(
    instances: Sequence[Instance], t_start: float, t_end: float, min_integrity: float = 0.75
) -> list[Instance]:
    """Instances with >= ``min_integrity`` of their duration inside [t_start, t_end).

    Kept instances are clipped to the window and returned in window-relative seconds.
    Zero-length instances are kept when they lie inside the window.
    """
    kept: list[Instance] = []
    for inst in instances:
        length = inst.end - inst.start
        if length <= 0:
            if t_start <= inst.start < t_end:
                kept.append(Instance(inst.start - t_start, inst.start - t_start, inst.label))
            continue
        lo, hi = max(inst.start, t_start), min(inst.end, t_end)
        if hi <= lo:
            continue
        # Small epsilon so an instance with exactly 75 % inside is kept despite rounding.
        if (hi - lo) / length >= min_integrity - 1e-9:
            kept.append(Instance(lo - t_start, hi - t_start, inst.label))
    return kept


def make_windows(
    video_id: str,
    num_snippets: int,
    snippet_seconds: float,
    instances: Sequence[Instance],
    windowing: Windowing,
    training: bool,
) -> list[WindowSpec]:
    """All model inputs of one video.

    In training, sliding windows without a kept instance are dropped (the resize-mode
    window of a video is dropped when the video has no instance).
    """
    if num_snippets <= 0:
        return []
    if windowing.mode == "resize":
        t_scale = num_snippets * snippet_seconds
        kept = instances_in_window(instances, 0.0, t_scale, min_integrity=windowing.min_integrity)
        if training and not kept:
            return []
        return [WindowSpec(video_id, 0, num_snippets, 0.0, t_scale, windowing.resize_length, kept)]

    windows: list[WindowSpec] = []
    stride = windowing.stride(training)
    for start, end in window_ranges(num_snippets, windowing.slice_size, stride, training):
        t_offset, t_scale = start * snippet_seconds, (end - start) * snippet_seconds
        kept = instances_in_window(instances, t_offset, t_offset + t_scale, windowing.min_integrity)
        if training and not kept:
            continue
        windows.append(WindowSpec(video_id, start, end, t_offset, t_scale, None, kept))
    return windows


def resize_nearest(features: np.ndarray, length: int) -> np.ndarray:
    """Resize [T, D] features to [length, D] by nearest-neighbour sampling.

    Output position j takes input ``floor(j * T / length)`` (the rule of
    ``torch.nn.functional.interpolate(mode="nearest")``), so upsampling repeats rows and
    downsampling drops rows.
    """
    num = features.shape[0]
    if num == length:
        return features
    index = np.floor(np.arange(length) * (num / length)).astype(np.int64)
    return features[np.clip(index, 0, num - 1)]


def normalised_targets(window: WindowSpec) -> np.ndarray:
    """Kept instances as [N, 2] (centre, width) normalised to the window, float32."""
    if not window.instances:
        return np.zeros((0, 2), dtype=np.float32)
    se = np.array([[i.start, i.end] for i in window.instances], dtype=np.float64) / window.t_scale
    se = np.clip(se, 0.0, 1.0)
    cw = np.stack([(se[:, 0] + se[:, 1]) / 2.0, se[:, 1] - se[:, 0]], axis=1)
    return cw.astype(np.float32)


def saliency_targets(segments_cw: np.ndarray, length: int) -> np.ndarray:
    """Per-snippet saliency target [length] float32: 1 inside any instance, else 0.

    Snippet j (centre ``(j + 0.5) / length`` in normalised window time) is salient when
    its centre lies in a segment [c - w/2, c + w/2]. A segment shorter than a snippet
    that contains no centre still marks the snippet holding its centre, so every
    instance has at least one salient snippet.
    """
    target = np.zeros(length, dtype=np.float32)
    if length == 0:
        return target
    centres = (np.arange(length) + 0.5) / length
    for c, w in np.asarray(segments_cw, dtype=np.float64).reshape(-1, 2):
        inside = (centres >= c - w / 2.0) & (centres <= c + w / 2.0)
        if not inside.any():
            inside[min(int(math.floor(c * length)), length - 1)] = True
        target[inside] = 1.0
    return target
