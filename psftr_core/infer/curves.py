"""Score curves over the snippets of one video, and the segments they give.

A curve is one value per snippet ([T], or [T, K] for K classes); snippet ``i`` is
centred at ``snippet_times[i]`` seconds. Plain numpy (torch tensors are accepted where
noted):

- :func:`smooth_1d`: moving-average smoothing along time.
- :func:`contiguous_runs` / :func:`multi_threshold_runs`: group a curve into runs of
  snippets (proposals).
- :func:`outer_inner_contrast`: score a run by its mean minus the mean of its flanks.
- :func:`snippet_bounds` / :func:`runs_to_seconds`: snippet index runs -> seconds.
- :func:`segment_means` / :func:`segment_contrast`: the mean and the outer-inner
  contrast of class curves over any segment given in seconds.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from psftr_core.segments import to_numpy


def smooth_1d(x: Any, window: int) -> np.ndarray:
    """Centred moving average along axis 0 of ``x`` [T] or [T, K].

    Edges repeat the first/last value (so a constant signal stays constant). ``window``
    is in snippets; even windows are rounded up to the next odd size; ``window <= 1``
    returns a float copy.
    """
    x = to_numpy(x, np.float64)
    if window <= 1 or x.shape[0] == 0:
        return x.copy()
    half = int(window) // 2
    pad = [(half, half)] + [(0, 0)] * (x.ndim - 1)
    padded = np.pad(x, pad, mode="edge")
    csum = np.cumsum(padded, axis=0)
    csum = np.concatenate([np.zeros_like(csum[:1]), csum], axis=0)
    width = 2 * half + 1
    return (csum[width:] - csum[:-width]) / width


def contiguous_runs(mask: Any) -> list[tuple[int, int]]:
    """Runs of True in a 1-D boolean ``mask`` as (first, last) indices, inclusive."""
    m = to_numpy(mask, bool).reshape(-1).astype(np.int8)
    if m.size == 0:
        return []
    edges = np.diff(np.concatenate([[0], m, [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def multi_threshold_runs(curve: Any, thresholds: Sequence[float], min_length: int = 1) -> list[tuple[int, int]]:
    """Union of the runs where ``curve`` [T] >= each threshold, duplicates removed.

    Returns (first, last) inclusive index pairs in order of first appearance (lowest
    threshold first), keeping runs of at least ``min_length`` snippets.
    """
    c = to_numpy(curve, np.float64).reshape(-1)
    seen: set[tuple[int, int]] = set()
    runs: list[tuple[int, int]] = []
    for thr in thresholds:
        for run in contiguous_runs(c >= thr):
            if run[1] - run[0] + 1 >= min_length and run not in seen:
                seen.add(run)
                runs.append(run)
    return runs


def outer_inner_contrast(curve: Any, first: int, last: int, ratio: float = 0.25, pad_value: float = 0.0) -> float:
    """Mean of ``curve`` over [first, last] minus the mean over its flanks.

    Each flank has ``max(1, round(ratio * length))`` snippets (the outer-inner contrast
    of AutoLoc). Flank positions outside the sequence take ``pad_value``: the video
    edge counts as background, so a run covering the whole sequence scores its mean
    minus ``pad_value``.
    """
    c = to_numpy(curve, np.float64).reshape(-1)
    length = last - first + 1
    flank = max(1, int(round(ratio * length)))
    inner = float(c[first : last + 1].mean())
    idx = np.concatenate([np.arange(first - flank, first), np.arange(last + 1, last + 1 + flank)])
    inside = (idx >= 0) & (idx < len(c))
    outer_vals = np.where(inside, c[np.clip(idx, 0, len(c) - 1)], pad_value)
    return inner - float(outer_vals.mean())


def snippet_bounds(snippet_times: Any, snippet_seconds: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Start and end time [T] of each snippet from its centre time [T].

    Boundaries sit halfway between neighbouring centres (exactly centre -/+ half a
    snippet for a regular grid); the outer edges extend by half the adjacent spacing.
    ``snippet_seconds`` overrides the spacing at the edges (needed when T = 1; without
    it a single snippet at time t is taken to cover [0, 2t]).
    """
    t = to_numpy(snippet_times, np.float64).reshape(-1)
    if t.size == 0:
        return t.copy(), t.copy()
    mids = (t[1:] + t[:-1]) / 2.0
    if snippet_seconds is not None:
        first_half = last_half = snippet_seconds / 2.0
    elif t.size > 1:
        first_half, last_half = (t[1] - t[0]) / 2.0, (t[-1] - t[-2]) / 2.0
    else:
        first_half = last_half = max(float(t[0]), 0.0)
    starts = np.concatenate([[t[0] - first_half], mids])
    ends = np.concatenate([mids, [t[-1] + last_half]])
    return starts, ends


def runs_to_seconds(
    runs: Sequence[tuple[int, int]],
    snippet_times: Any,
    duration: float | None = None,
    snippet_seconds: float | None = None,
) -> np.ndarray:
    """Convert inclusive snippet-index runs to [N, 2] segments in seconds.

    start = start of the first snippet, end = end of the last snippet (see
    :func:`snippet_bounds`), clipped to [0, duration] when ``duration`` is given
    (and to >= 0 always).
    """
    starts, ends = snippet_bounds(snippet_times, snippet_seconds)
    if len(runs) == 0:
        return np.zeros((0, 2), dtype=np.float64)
    r = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
    seg = np.stack([starts[r[:, 0]], ends[r[:, 1]]], axis=1)
    upper = np.inf if duration is None else float(duration)
    return np.clip(seg, 0.0, upper)


def _curve_arrays(curves: Any, times: Any, segments: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 curves [T, K], times [T] and segments [N, 2]."""
    return (np.asarray(curves, dtype=np.float64), np.asarray(times, dtype=np.float64).reshape(-1),
            np.asarray(segments, dtype=np.float64).reshape(-1, 2))


def _no_snippets(curves: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """[N, K] zeros: the value of every segment of a video without snippets."""
    return np.zeros((len(segments), curves.shape[1] if curves.ndim == 2 else 0))


def segment_means(curves: np.ndarray, times: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Mean of the class curves over each segment: curves [T, K], times [T] (seconds,
    increasing), segments [N, 2] (start, end seconds) -> [N, K].

    A segment averages the snippets whose centre time lies in [start, end]; one that
    holds no centre takes the snippet nearest to its midpoint.
    """
    curves, times, segments = _curve_arrays(curves, times, segments)
    if len(times) == 0:
        return _no_snippets(curves, segments)
    cumulative = np.concatenate([np.zeros((1, curves.shape[1])), np.cumsum(curves, axis=0)])
    first = np.searchsorted(times, segments[:, 0], side="left")
    last = np.searchsorted(times, segments[:, 1], side="right")
    count = last - first
    means = (cumulative[last] - cumulative[first]) / np.maximum(count, 1)[:, None]
    empty = count <= 0
    if empty.any():
        mid = segments[empty].mean(axis=1)
        nearest = np.abs(times[None, :] - mid[:, None]).argmin(axis=1)  # ties: the earlier snippet
        means[empty] = curves[nearest]
    return means


def segment_contrast(curves: np.ndarray, times: np.ndarray, segments: np.ndarray,
                     ratio: float = 0.25) -> np.ndarray:
    """Outer-inner contrast of the class curves for segments in seconds -> [N, K].

    ``max(0, mean inside − mean of the two flanks)``, each flank ``ratio`` × the
    segment's length: :func:`outer_inner_contrast` for any segment in seconds, not only
    runs of snippets. Beyond the video the curve counts as 0. curves [T, K], times [T],
    segments [N, 2] (start, end).
    """
    curves, times, segments = _curve_arrays(curves, times, segments)
    if len(times) == 0:
        return _no_snippets(curves, segments)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    edge = np.zeros((1, curves.shape[1]))
    padded = np.concatenate([edge, curves, edge])
    padded_times = np.concatenate([[times[0] - step], times, [times[-1] + step]])
    inner = segment_means(curves, times, segments)
    start, end = segments[:, 0], segments[:, 1]
    flank = ratio * np.maximum(end - start, 0.0)
    left = segment_means(padded, padded_times, np.stack([start - flank, start], axis=-1))
    right = segment_means(padded, padded_times, np.stack([end, end + flank], axis=-1))
    return np.maximum(inner - 0.5 * (left + right), 0.0)
