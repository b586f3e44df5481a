"""Segment utilities: tIoU, NMS, smoothing, grouping, contrast, index -> seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psftr_core.infer.segment_ops import (
    contiguous_runs,
    multi_threshold_runs,
    nms,
    outer_inner_contrast,
    runs_to_seconds,
    smooth_1d,
    snippet_bounds,
    tiou_matrix,
)


def test_tiou_matrix_hand_computed():
    a = [[0, 10], [5, 15]]
    b = [[0, 10], [10, 20], [2, 4]]
    expected = [[1.0, 0.0, 0.2], [1 / 3, 1 / 3, 0.0]]
    np.testing.assert_allclose(tiou_matrix(a, b), expected)
    assert tiou_matrix(a, b).shape == (2, 3)
    # zero-length against itself: 0, not NaN; empty inputs give empty matrices
    assert tiou_matrix([[3, 3]], [[3, 3]])[0, 0] == 0.0
    assert tiou_matrix(np.zeros((0, 2)), b).shape == (0, 3)


def test_nms_classwise_versus_global():
    segments = [[0, 10], [1, 11], [20, 30], [0, 10]]
    scores = [0.9, 0.8, 0.7, 0.6]
    labels = ["a", "a", "a", "b"]
    # [1, 11] overlaps [0, 10] with tIoU 9/11 > 0.5 -> suppressed; [0, 10] of class b
    # survives only class-wise.
    assert nms(segments, scores, None, 0.5).tolist() == [0, 2]
    assert nms(segments, scores, labels, 0.5).tolist() == [0, 2, 3]
    assert nms(segments, scores, labels, 0.5, max_keep=2).tolist() == [0, 2]
    # the threshold is strict: tIoU exactly 0.5 is kept
    assert nms([[0, 10], [0, 5]], [1.0, 0.9], None, 0.5).tolist() == [0, 1]
    assert nms([[0, 10], [0, 5]], [1.0, 0.9], None, 0.49).tolist() == [0]


def test_nms_ties_are_deterministic_by_index():
    # equal scores: the lower index wins and comes first
    assert nms([[0, 10], [0, 10]], [0.5, 0.5], None, 0.5).tolist() == [0]
    assert nms([[0, 1], [5, 6], [9, 10]], [0.5, 0.5, 0.9], None, 0.5).tolist() == [2, 0, 1]
    # integer class ids work the same as names; NaN scores rank last
    assert nms([[0, 1], [5, 6]], [float("nan"), 0.1], [0, 1], 0.5).tolist() == [1, 0]
    assert nms(np.zeros((0, 2)), np.zeros(0), None, 0.5).tolist() == []


def test_nms_accepts_torch_and_returns_torch():
    keep = nms(torch.tensor([[0.0, 10.0], [1.0, 11.0]]), torch.tensor([0.2, 0.9]), torch.tensor([0, 0]), 0.5)
    assert isinstance(keep, torch.Tensor) and keep.dtype == torch.long
    assert keep.tolist() == [1]


def test_smooth_1d():
    np.testing.assert_allclose(smooth_1d([0, 0, 3, 0, 0], 3), [0, 1, 1, 1, 0])
    np.testing.assert_allclose(smooth_1d(np.full((4, 2), 7.0), 5), np.full((4, 2), 7.0))  # edges repeat
    np.testing.assert_allclose(smooth_1d([1.0, 2.0], 9), [13 / 9, 14 / 9])  # window longer than T
    np.testing.assert_allclose(smooth_1d([1, 2, 3], 1), [1, 2, 3])


def test_runs_and_multi_threshold_grouping():
    assert contiguous_runs([0, 1, 1, 0, 1]) == [(1, 2), (4, 4)]
    assert contiguous_runs([]) == []
    curve = [0.1, 0.5, 0.9, 0.5, 0.1, 0.6]
    # 0.4 -> (1,3) and (5,5); 0.8 -> (2,2); 0.45 repeats runs already found
    assert multi_threshold_runs(curve, [0.4, 0.45, 0.8]) == [(1, 3), (5, 5), (2, 2)]
    assert multi_threshold_runs(curve, [0.4], min_length=2) == [(1, 3)]


def test_outer_inner_contrast():
    curve = [0, 0, 1, 1, 1, 1, 0, 0.5]
    # run 2..5 (4 snippets), flanks of round(0.25*4)=1: c[1]=0, c[6]=0
    assert outer_inner_contrast(curve, 2, 5, 0.25) == pytest.approx(1.0)
    # flanks of 2: c[0], c[1], c[6], c[7] -> mean 0.125
    assert outer_inner_contrast(curve, 2, 5, 0.5) == pytest.approx(0.875)
    # at the start the missing flank counts as pad_value 0: inner 0, outer (0 + c[2]=1) / 2
    assert outer_inner_contrast(curve, 0, 1, 0.5) == pytest.approx(-0.5)
    assert outer_inner_contrast([0.3], 0, 0) == pytest.approx(0.3)


def test_snippet_times_to_seconds():
    times = (np.arange(10) + 0.5) * 0.5  # 0.25, 0.75, ... 4.75
    np.testing.assert_allclose(runs_to_seconds([(2, 4), (0, 9)], times), [[1.0, 2.5], [0.0, 5.0]])
    np.testing.assert_allclose(runs_to_seconds([(0, 9)], times, duration=4.8), [[0.0, 4.8]])
    np.testing.assert_allclose(runs_to_seconds([(0, 0)], [0.5]), [[0.0, 1.0]])  # T = 1
    np.testing.assert_allclose(runs_to_seconds([(0, 0)], [2.0], snippet_seconds=1.0), [[1.5, 2.5]])
    starts, ends = snippet_bounds([1.0, 2.0, 4.0])  # irregular: boundaries halfway between
    np.testing.assert_allclose(starts, [0.5, 1.5, 3.0])
    np.testing.assert_allclose(ends, [1.5, 3.0, 5.0])
    assert runs_to_seconds([], times).shape == (0, 2)
