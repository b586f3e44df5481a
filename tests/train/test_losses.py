"""Loss values on hand examples."""

from __future__ import annotations

import math

import pytest
import torch

from psftr_core.config import TrainConfig
from psftr_core.train.losses import build_criterion, loss_weights, sigmoid_focal_loss, softmax_focal_loss


def _outputs(logits, segments, actionness, saliency):
    return {
        "pred_logits": torch.tensor(logits, dtype=torch.float32),
        "pred_segments": torch.tensor(segments, dtype=torch.float32),
        "pred_actionness": torch.tensor(actionness, dtype=torch.float32)[..., None],
        "saliency_logits": torch.tensor(saliency, dtype=torch.float32),
    }


def test_perfect_prediction_has_zero_losses():
    out = _outputs(
        logits=[[[0.0, 60.0], [0.0, 0.0]]],
        segments=[[[0.3, 0.2], [0.9, 0.1]]],
        actionness=[[30.0, -30.0]],
        saliency=[[-40.0, 40.0, 40.0, -40.0]],
    )
    targets = [{"labels": torch.tensor([1]), "segments": torch.tensor([[0.3, 0.2]])}]
    sal = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    mask = torch.zeros(1, 4, dtype=torch.bool)
    losses = build_criterion(TrainConfig(aux_loss=False))(out, targets, sal, mask)
    for name in ("loss_cls", "loss_seg", "loss_iou", "loss_actionness", "loss_saliency", "loss"):
        assert abs(losses[name].item()) < 1e-6, name


def test_hand_computed_values_and_weighting():
    # one query, one target: L1 |0.2-0.4| = 0.2, IoU 0.2/0.4 = 0.5, p = 0.5
    out = _outputs([[[0.0, 0.0]]], [[[0.5, 0.2]]], [[0.0]], [[0.0, 0.0, 5.0]])
    targets = [{"labels": torch.tensor([0]), "segments": torch.tensor([[0.5, 0.4]])}]
    sal = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[False, False, True]])  # padded frame ignored
    losses = build_criterion(TrainConfig(aux_loss=False))(out, targets, sal, mask)
    log2 = math.log(2)
    expected = {
        "loss_seg": 0.2,
        "loss_iou": 0.5,
        "loss_cls": 0.25 * log2,  # (1-0.5)^2 * -log 0.5
        "loss_actionness": 0.25 * 0.25 * log2,  # alpha * (1-p_t)^2 * CE
        "loss_saliency": log2,  # mean over the 2 valid frames
    }
    for name, value in expected.items():
        assert abs(losses[name].item() - value) < 1e-6, name
    total = 2 * expected["loss_cls"] + 5 * 0.2 + 2 * 0.5 + 3 * expected["loss_actionness"] + 3 * log2
    assert abs(losses["loss"].item() - total) < 1e-5


def test_coefficients_come_from_the_config():
    # The same example with train.salient_loss_coef 3 -> 1 and cls_loss_coef 2 -> 0: the
    # total drops by 2 log 2 (saliency) + 2 * 0.25 log 2 (classification).
    out = _outputs([[[0.0, 0.0]]], [[[0.5, 0.2]]], [[0.0]], [[0.0, 0.0, 5.0]])
    targets = [{"labels": torch.tensor([0]), "segments": torch.tensor([[0.5, 0.4]])}]
    sal, mask = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[False, False, True]])
    default = build_criterion(TrainConfig(aux_loss=False))(out, targets, sal, mask)["loss"].item()
    lighter = build_criterion(TrainConfig(aux_loss=False, salient_loss_coef=1.0, cls_loss_coef=0.0))
    log2 = math.log(2)
    assert abs(lighter(out, targets, sal, mask)["loss"].item() - (default - 2 * log2 - 0.5 * log2)) < 1e-5


def test_normalised_by_number_of_instances_in_the_batch():
    # two windows, three instances; every matched query has L1 error 0.1 in width
    out = _outputs(
        [[[0.0, 0.0]] * 3, [[0.0, 0.0]] * 3],
        [[[0.2, 0.1], [0.6, 0.1], [0.9, 0.9]], [[0.5, 0.3], [0.1, 0.9], [0.1, 0.9]]],
        [[0.0] * 3, [0.0] * 3],
        [[0.0], [0.0]],
    )
    targets = [
        {"labels": torch.tensor([0, 1]), "segments": torch.tensor([[0.2, 0.2], [0.6, 0.2]])},
        {"labels": torch.tensor([1]), "segments": torch.tensor([[0.5, 0.2]])},
    ]
    crit = build_criterion(TrainConfig(aux_loss=False))
    losses = crit(out, targets, torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.bool))
    assert abs(losses["loss_seg"].item() - 0.1) < 1e-6  # 0.3 / 3 instances
    # an explicit (e.g. global DDP) normaliser replaces the local count
    losses = crit(out, targets, torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.bool), num_instances=1.5)
    assert abs(losses["loss_seg"].item() - 0.2) < 1e-6


def test_aux_losses_use_separate_matching_per_layer():
    final = _outputs([[[0.0, 0.0], [0.0, 0.0]]], [[[0.3, 0.2], [0.8, 0.2]]], [[0.0, 0.0]], [[0.0]])
    # earlier layer: the query order is swapped, its own matching must still find L1 = 0
    aux = {k: final[k].flip(1) for k in ("pred_logits", "pred_segments", "pred_actionness")}
    final["aux_outputs"] = [aux]
    targets = [{"labels": torch.tensor([0]), "segments": torch.tensor([[0.8, 0.2]])}]
    losses = build_criterion(TrainConfig())(final, targets, torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.bool))
    assert losses["loss_seg"].item() < 1e-6 and losses["loss_seg_0"].item() < 1e-6
    assert set(losses) >= {"loss_cls_0", "loss_iou_0", "loss_actionness_0"}
    w = loss_weights(TrainConfig())
    manual = w["loss_saliency"] * losses["loss_saliency"] + sum(
        w[n] * (losses[n] + losses[n + "_0"]) for n in ("loss_cls", "loss_seg", "loss_iou", "loss_actionness")
    )
    assert abs(losses["loss"].item() - manual.item()) < 1e-6


def test_losses_backpropagate_to_all_outputs():
    out = _outputs([[[0.1, 0.2]]], [[[0.5, 0.2]]], [[0.0]], [[0.0, 1.0]])
    for v in out.values():
        v.requires_grad_(True)
    targets = [{"labels": torch.tensor([1]), "segments": torch.tensor([[0.4, 0.3]])}]
    build_criterion(TrainConfig())(out, targets, torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2, dtype=torch.bool))["loss"].backward()
    for name, v in out.items():
        assert v.grad is not None and v.grad.abs().sum() > 0, name


def test_focal_primitives():
    # p_t = 0.5 -> CE log 2 scaled by 0.25 (gamma 2)
    v = sigmoid_focal_loss(torch.tensor([0.0]), torch.tensor([1.0]), alpha=-1, gamma=2)
    assert abs(v.item() - 0.25 * math.log(2)) < 1e-7
    v = softmax_focal_loss(torch.tensor([[0.0, 0.0, 0.0, 0.0]]), torch.tensor([2]), gamma=0)
    assert abs(v.item() - math.log(4)) < 1e-6


def test_cross_entropy_class_loss_and_matching_cost():
    # The example above with train.cls_loss=ce: loss_cls = -log 0.5 (no focal factor), and
    # the matcher's class cost is DETR's -p.
    out = _outputs([[[0.0, 0.0]]], [[[0.5, 0.2]]], [[0.0]], [[0.0, 0.0, 5.0]])
    targets = [{"labels": torch.tensor([0]), "segments": torch.tensor([[0.5, 0.4]])}]
    sal, mask = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[False, False, True]])
    ce = build_criterion(TrainConfig(aux_loss=False, cls_loss="ce"))
    assert abs(ce(out, targets, sal, mask)["loss_cls"].item() - math.log(2)) < 1e-6
    cost = ce.matcher.cost_matrices(out, targets)[0]
    focal = build_criterion(TrainConfig(aux_loss=False)).matcher.cost_matrices(out, targets)[0]
    # same segment terms (5 * 0.2 L1, 2 * -0.5 IoU); class term 6 * -0.5 vs the focal cost
    assert cost.item() == pytest.approx(6 * -0.5 + 5 * 0.2 + 2 * -0.5, abs=1e-6)
    pos, neg = 0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)
    assert focal.item() == pytest.approx(6 * (pos - neg) + 5 * 0.2 + 2 * -0.5, abs=1e-5)


def test_models_without_actionness_or_saliency_heads_have_no_such_terms():
    out = _outputs([[[0.0, 0.0]]], [[[0.5, 0.2]]], [[0.0]], [[0.0, 0.0, 5.0]])
    targets = [{"labels": torch.tensor([0]), "segments": torch.tensor([[0.5, 0.4]])}]
    sal, mask = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[False, False, True]])
    criterion = build_criterion(TrainConfig(aux_loss=True))
    bare = {k: v for k, v in out.items() if k not in ("pred_actionness", "saliency_logits")}
    bare["aux_outputs"] = [{"pred_logits": out["pred_logits"], "pred_segments": out["pred_segments"]}]
    losses = criterion(bare, targets, sal, mask)
    assert "loss_actionness" not in losses and "loss_saliency" not in losses and "loss_actionness_0" not in losses
    log2 = math.log(2)
    one_layer = 2 * 0.25 * log2 + 5 * 0.2 + 2 * 0.5
    assert losses["loss"].item() == pytest.approx(2 * one_layer, abs=1e-5)  # last layer + one auxiliary


def test_snippet_labels_follow_the_instances_of_each_window():
    from psftr_core.train.losses import snippet_labels

    # Window 0: 8 valid snippets (centres 1/16, 3/16, ...), one instance of class 2 over
    # [0.25, 0.75] -> snippets 2..5; window 1: 4 valid of 8, class 0 over [0, 0.5] -> snippets 0, 1.
    mask = torch.tensor([[False] * 8, [False] * 4 + [True] * 4])
    targets = [{"labels": torch.tensor([2]), "segments": torch.tensor([[0.5, 0.5]])},
               {"labels": torch.tensor([0]), "segments": torch.tensor([[0.25, 0.5]])}]
    assert snippet_labels(targets, mask).tolist() == [[-1, -1, 2, 2, 2, 2, -1, -1], [0, 0, -1, -1, -1, -1, -1, -1]]


def test_snippet_class_loss_is_the_cross_entropy_of_labelled_snippets_per_valid_snippet():
    from psftr_core.train.losses import SetCriterion

    mask = torch.tensor([[False, False, False, True]])
    targets = [{"labels": torch.tensor([1]), "segments": torch.tensor([[1 / 6, 1 / 3]])}]  # snippet 0 of 3
    logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, 0.0], [0.0, 0.0], [9.0, 9.0]]])
    # Snippet 0 has class 1 with p = 3/4; 3 valid snippets normalise.
    loss = SetCriterion.snippet_class_loss(logits, targets, mask, num_frames=3.0)
    assert loss.item() == pytest.approx(-math.log(0.75) / 3)
    assert TrainConfig().snippet_cls_loss_coef == loss_weights(TrainConfig())["loss_snippet_cls"]
