"""NMS of temporal segments: tIoU, global, class-wise and across windows."""

from __future__ import annotations

import numpy as np
import torch

from psftr_core.infer.nms import nms
from psftr_core.segments import tiou_matrix


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


def test_nms_only_across_windows():
    segments = np.array([[104.0, 120.0], [104.0, 121.0], [105.0, 120.0], [104.0, 120.0], [10.0, 20.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    classes = np.array([0, 0, 0, 1, 0])
    windows = np.array([0, 1, 0, 1, 0])
    keep = nms(segments, scores, classes, 0.4, windows=windows)
    # 1 (window 1, same class, tIoU 16/17) is suppressed by 0; 2 is in the same window as 0 -> kept;
    # 3 is another class; 4 does not overlap
    assert keep.tolist() == [0, 2, 3, 4]


def test_nms_within_windows_also_suppresses_same_window_duplicates():
    segments = np.array([[104.0, 120.0], [104.0, 121.0], [105.0, 120.0], [104.0, 120.0], [10.0, 20.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    classes = np.array([0, 0, 0, 1, 0])
    windows = np.array([0, 1, 0, 1, 0])
    # 2 (same window as 0, tIoU 15/16) now goes too; 3 is another class; 4 does not overlap
    assert nms(segments, scores, classes, 0.4).tolist() == [0, 3, 4]
    assert nms(segments, scores, classes, 0.4, windows=windows).tolist() == [0, 2, 3, 4]  # across windows only
