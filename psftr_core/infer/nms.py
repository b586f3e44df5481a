"""Greedy 1-D non-maximum suppression of temporal segments (plain numpy).

One function serves the three uses: all segments compete (no labels), only segments of
the same class compete (class-wise, ``labels``), and only segments of the same class
from different windows compete (``windows``: merging the detections of overlapping
windows of a video).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from psftr_core.segments import tiou_matrix, to_numpy


def nms(
    segments: Any,
    scores: Any,
    labels: Any = None,
    iou_threshold: float = 0.5,
    max_keep: int | None = None,
    windows: Any = None,
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
        windows: [N] window ids, or None. With windows, a segment only suppresses
            segments of *other* windows: the set prediction of a window has already
            removed its own duplicates, so only where windows overlap do two
            detections compete.

    Returns:
        Indices of the kept segments in decreasing score order; ties in score are broken
        by the original index (lower first), so the result is deterministic. A numpy
        int64 array, or a torch long tensor on the input's device when ``segments`` is a
        torch tensor.
    """
    seg = to_numpy(segments, np.float64).reshape(-1, 2)
    sc = to_numpy(scores, np.float64).reshape(-1)
    if len(sc) != len(seg):
        raise ValueError(f"nms: {len(seg)} segments but {len(sc)} scores")
    sc = np.where(np.isnan(sc), -np.inf, sc)
    lab = _group_ids(labels, len(seg), "labels")
    win = _group_ids(windows, len(seg), "windows")

    order = np.argsort(-sc, kind="stable")  # stable: equal scores keep index order
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
        if windows is not None:
            rest = rest[win[rest] != win[i]]
        if len(rest) == 0:
            continue
        iou = tiou_matrix(seg[i], seg[rest])[0]
        alive[rest[iou > iou_threshold]] = False

    kept = np.asarray(keep, dtype=np.int64)
    if type(segments).__module__.startswith("torch"):
        import torch

        return torch.as_tensor(kept, dtype=torch.long, device=segments.device)
    return kept


def _group_ids(values: Any, n: int, what: str) -> np.ndarray:
    """[N] int ids of labels or windows (any hashable values); all zeros for None."""
    if values is None:
        return np.zeros(n, dtype=np.int64)
    raw = to_numpy(values).reshape(-1)
    if len(raw) != n:
        raise ValueError(f"nms: {n} segments but {len(raw)} {what}")
    return np.unique(raw, return_inverse=True)[1].reshape(-1)
