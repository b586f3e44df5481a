"""Hungarian matching on hand-built costs."""

from __future__ import annotations

import torch

from psftr_core.segments import pairwise_iou, segment_cw_to_se
from psftr_core.config import TrainConfig
from psftr_core.train.matcher import assign, build_matcher


def test_assign_hand_cost_matrix():
    # Greedy (row-wise minimum) would take (0,0)=1 then (1,1)=9 -> 10; the optimum is 2+3 = 5.
    cost = torch.tensor([[1.0, 2.0], [3.0, 9.0], [8.0, 8.0]])
    rows, cols = assign(cost)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_assign_empty_and_non_finite():
    rows, cols = assign(torch.zeros(4, 0))
    assert rows.numel() == 0 and cols.numel() == 0
    rows, cols = assign(torch.tensor([[float("nan"), 0.0], [0.0, 5.0]]))
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_pairwise_iou_hand_values():
    a = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    b = torch.tensor([[1.0, 3.0], [0.0, 2.0]])
    iou = pairwise_iou(a, b)
    torch.testing.assert_close(iou, torch.tensor([[1 / 3, 1.0], [0.0, 0.0]]))


def test_matcher_follows_segments_and_classes():
    # 3 queries, 2 targets; query 2 sits on target 0, query 0 on target 1.
    segments = torch.tensor([[[0.8, 0.2], [0.5, 0.9], [0.2, 0.1]]])
    logits = torch.tensor([[[0.0, 5.0], [0.0, 0.0], [5.0, 0.0]]])
    outputs = {"pred_logits": logits, "pred_segments": segments}
    targets = [{"labels": torch.tensor([0, 1]), "segments": torch.tensor([[0.2, 0.1], [0.8, 0.2]])}]
    (rows, cols), = build_matcher(TrainConfig())(outputs, targets)
    assert rows.tolist() == [0, 2] and cols.tolist() == [1, 0]
    # with only the class cost, the classes decide
    (rows, cols), = build_matcher(TrainConfig(set_cost_seg=0, set_cost_iou=0))(outputs, targets)
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 2: 0}


def test_matcher_window_without_targets():
    outputs = {"pred_logits": torch.zeros(2, 3, 2), "pred_segments": torch.full((2, 3, 2), 0.5)}
    targets = [{"labels": torch.zeros(0, dtype=torch.long), "segments": torch.zeros(0, 2)},
               {"labels": torch.tensor([1]), "segments": torch.tensor([[0.5, 0.5]])}]
    out = build_matcher(TrainConfig())(outputs, targets)
    assert out[0][0].numel() == 0 and out[1][0].numel() == 1


def test_cw_to_se():
    torch.testing.assert_close(segment_cw_to_se(torch.tensor([[0.5, 0.2]])), torch.tensor([[0.4, 0.6]]))
