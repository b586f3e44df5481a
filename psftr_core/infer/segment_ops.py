"""Segment utilities shared by the training-free localizer, inference and ``detect``.

Everything here is plain numpy (torch tensors are accepted where noted), so it runs
anywhere without compiled ops:

- :func:`tiou_matrix`: 1-D temporal IoU between two sets of segments.
- :func:`nms`: greedy non-maximum suppression, class-wise when labels are given.
- :func:`smooth_1d`: moving-average smoothing along time.
- :func:`contiguous_runs` / :func:`multi_threshold_runs`: group a score curve into runs.
- :func:`outer_inner_contrast`: score a run by its mean minus the mean of its flanks.
- :func:`runs_to_seconds`: snippet index runs -> segments in seconds.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from psftr_core.segments import tiou_matrix, to_numpy as _to_numpy


def nms(
    segments: Any,
    scores: Any,
    labels: Any = None,
    iou_threshold: float = 0.5,
    max_keep: int | None = None,
) -> Any:
    """Greedy 1-D non-maximum suppression.

    Args:
        segments: [N, 2] (start, end), numpy or torch.
        scores: [N]. NaN scores rank below every finite score.
        labels: [N] class ids or names, or None. With labels, a segment only suppresses
            segments of the same label (class-wise NMS); without, all segments compete.
        iou_threshold: a segment is dropped when its tIoU with an already kept segment
            (of the same label) is strictly greater than this.
        max_keep: stop after keeping this many (None = no limit).

    Returns:
        Indices of the kept segments in decreasing score order; ties in score are broken
        by the original index (lower first), so the result is deterministic. A numpy
        int64 array, or a torch long tensor on the input's device when ``segments`` is a
        torch tensor.
    """
    seg = _to_numpy(segments, np.float64).reshape(-1, 2)
    sc = _to_numpy(scores, np.float64).reshape(-1)
    if len(sc) != len(seg):
        raise ValueError(f"nms: {len(seg)} segments but {len(sc)} scores")
    sc = np.where(np.isnan(sc), -np.inf, sc)
    if labels is None:
        lab = np.zeros(len(seg), dtype=np.int64)
    else:
        raw = _to_numpy(labels).reshape(-1)
        if len(raw) != len(seg):
            raise ValueError(f"nms: {len(seg)} segments but {len(raw)} labels")
        _, lab = np.unique(raw, return_inverse=True)
        lab = lab.reshape(-1)

    order = np.argsort(-sc, kind="stable")  # stable: equal scores keep index order
    start, end = seg[:, 0], np.maximum(seg[:, 1], seg[:, 0])
    length = end - start
    alive = np.ones(len(seg), dtype=bool)
    keep: list[int] = []
    limit = len(seg) if max_keep is None else max(int(max_keep), 0)
    for pos, i in enumerate(order):
        if len(keep) >= limit:
            break
        if not alive[i]:
            continue
        keep.append(int(i))
        rest = order[pos + 1 :]
        rest = rest[alive[rest] & (lab[rest] == lab[i])]
        if len(rest) == 0:
            continue
        inter = np.clip(np.minimum(end[i], end[rest]) - np.maximum(start[i], start[rest]), 0.0, None)
        union = length[i] + length[rest] - inter
        iou = np.zeros_like(inter)
        np.divide(inter, union, out=iou, where=union > 0)
        alive[rest[iou > iou_threshold]] = False

    kept = np.asarray(keep, dtype=np.int64)
    if type(segments).__module__.startswith("torch"):
        import torch

        return torch.as_tensor(kept, dtype=torch.long, device=segments.device)
    return kept


def smooth_1d(x: Any, window: int) -> np.ndarray:
    """Centred moving average along axis 0 of ``x`` [T] or [T, K].

    Edges repeat the first/last value (so a constant signal stays constant). ``window``
    is in snippets; even windows are rounded up to the next odd size; ``window <= 1``
    returns a float copy.
    """
    x = _to_numpy(x, np.float64)
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
    m = _to_numpy(mask, bool).reshape(-1).astype(np.int8)
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
    c = _to_numpy(curve, np.float64).reshape(-1)
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
    c = _to_numpy(curve, np.float64).reshape(-1)
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
    t = _to_numpy(snippet_times, np.float64).reshape(-1)
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
