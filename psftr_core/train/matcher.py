"""Hungarian matching between predicted queries and ground-truth instances.

Cost of assigning query q to instance n of one window:

    cost_class * C_cls(q, n) + cost_segment * L1((c, w)_q, (c, w)_n) + cost_iou * (-IoU)

with the focal-style classification cost of Deformable DETR applied to the softmax
probability ``p`` of the instance's class (the model's class scores are a softmax over
the vocabulary): ``C_cls = α (1-p)^γ (-log p) - (1-α) p^γ (-log(1-p))``; with a
cross-entropy class loss (``train.cls_loss="ce"``) DETR's ``C_cls = -p``.
The assignment is solved exactly per window with ``scipy.optimize.linear_sum_assignment``.
The weights come from the run's config (:func:`build_matcher`); there are no defaults here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from psftr_core.segments import pairwise_iou, segment_cw_to_se


class HungarianMatcher:
    """One-to-one assignment of queries to instances, per window.

    Call with model outputs (``pred_logits`` [B, Nq, K], ``pred_segments`` [B, Nq, 2])
    and targets (list of B dicts with ``labels`` [N_b] long and ``segments`` [N_b, 2]
    (c, w)). Returns B pairs ``(query_idx, target_idx)`` of int64 tensors, sorted by
    query index.
    """

    def __init__(self, *, cost_class: float, cost_segment: float, cost_iou: float, focal_alpha: float,
                 focal_gamma: float, focal_cost: bool = True) -> None:
        self.cost_class, self.cost_segment, self.cost_iou = cost_class, cost_segment, cost_iou
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.focal_cost = focal_cost  # False: DETR's -p

    @torch.no_grad()
    def cost_matrices(self, outputs: dict, targets: list[dict]) -> list[torch.Tensor]:
        """The [Nq, N_b] cost matrix of each window (float32, CPU)."""
        prob = outputs["pred_logits"].float().softmax(-1)  # [B, Nq, K]
        segments = outputs["pred_segments"].float()  # [B, Nq, 2]
        matrices = []
        for b, target in enumerate(targets):
            labels = target["labels"].to(prob.device)
            tgt = target["segments"].to(segments.device).float()
            if labels.numel() == 0:
                matrices.append(torch.zeros(prob.shape[1], 0))
                continue
            p = prob[b][:, labels]  # [Nq, N]
            if self.focal_cost:
                pos = self.focal_alpha * (1 - p) ** self.focal_gamma * -(p + 1e-8).log()
                neg = (1 - self.focal_alpha) * p**self.focal_gamma * -(1 - p + 1e-8).log()
                cost_cls = pos - neg
            else:
                cost_cls = -p
            cost_l1 = torch.cdist(segments[b], tgt, p=1)
            cost_iou = -pairwise_iou(segment_cw_to_se(segments[b]), segment_cw_to_se(tgt))
            cost = self.cost_class * cost_cls + self.cost_segment * cost_l1 + self.cost_iou * cost_iou
            matrices.append(cost.cpu())
        return matrices

    @torch.no_grad()
    def __call__(self, outputs: dict, targets: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        indices = []
        for cost in self.cost_matrices(outputs, targets):
            indices.append(assign(cost))
        return indices


def build_matcher(train_cfg: Any) -> HungarianMatcher:
    """The matcher of a run, from the ``train`` section of its config (``set_cost_*``,
    ``focal_*``, ``cls_loss``)."""
    return HungarianMatcher(cost_class=train_cfg.set_cost_class, cost_segment=train_cfg.set_cost_seg,
                            cost_iou=train_cfg.set_cost_iou, focal_alpha=train_cfg.focal_alpha,
                            focal_gamma=train_cfg.focal_gamma, focal_cost=train_cfg.cls_loss == "focal")


def assign(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment for a [Nq, N] cost matrix.

    Returns (query_idx, target_idx), int64, sorted by query index. Non-finite costs
    (from a diverging model) are replaced by a large finite value so scipy still solves.
    """
    matrix = cost.detach().cpu().double().numpy()
    if matrix.size == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty.clone()
    matrix = np.nan_to_num(matrix, nan=1e6, posinf=1e6, neginf=-1e6)
    rows, cols = linear_sum_assignment(matrix)
    order = np.argsort(rows, kind="stable")
    return torch.as_tensor(rows[order], dtype=torch.int64), torch.as_tensor(cols[order], dtype=torch.int64)
