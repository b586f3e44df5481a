"""Training losses of PSFTR (eq. 7-11 of the method).

Terms (unweighted values are reported; the total uses the coefficients):

- ``loss_cls``: on the softmax class distribution of matched queries over the seen
  classes, the focal loss ``-(1 - p_y)^γ log p_y`` (``train.cls_loss="focal"``, the
  default) or the cross-entropy ``-log p_y`` of the method text (``"ce"``). Softmax
  (not per-class sigmoid) because the model's class scores are CLIP-scaled cosines
  whose softmax is the final class distribution; unmatched queries are left to the
  actionness term.
- ``loss_seg``: L1 distance of matched (centre, width) pairs.
- ``loss_iou``: 1 - IoU of matched segments (prediction clamped to the window).
- ``loss_actionness``: sigmoid focal loss (α, γ) of every query's actionness logit
  against 1 for matched queries, 0 for the rest.
- ``loss_saliency``: binary cross-entropy of each valid snippet's saliency logit against
  "inside a ground-truth instance".
- ``loss_snippet_cls`` (only with ``model.use_visual_text_map``): cross-entropy of each
  snippet inside an instance, ``softmax_k(τ · cos(map(x_t), text_k))``, against the
  instance's class, divided by the number of valid snippets. It trains the visual→text map
  as a ridge probe would be fitted (seen-class snippets → their class text), but inside
  the model and jointly with the rest.

The first four are summed over the batch and divided by the number of ground-truth
instances in the (global) batch; saliency is divided by the number of valid snippets.
A model without an actionness head (``model.use_actionness=false``) or a saliency head
(``model.use_saliency=false``) has no such output, and its term is left out.
With auxiliary losses on, the first four are repeated for every earlier decoder layer
(``*_0``, ``*_1``, ...) with a separate matching per layer.

Under DistributedDataParallel, pass the global counts divided by the world size as
``num_instances``/``num_frames``: DDP averages gradients over ranks, so each rank's loss
must be scaled up by the world size to equal the single-process loss of the union batch.

The coefficients and focal parameters come from the run's config (:func:`build_criterion`
reads ``cfg.train``); there are no defaults here.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from psftr_core.segments import paired_iou, segment_cw_to_se
from psftr_core.train.matcher import HungarianMatcher, build_matcher

MATCHED_TERMS = ("loss_cls", "loss_seg", "loss_iou", "loss_actionness")


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Element-wise binary focal loss (RetinaNet) -> same shape as ``logits``."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def softmax_focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float) -> torch.Tensor:
    """Multi-class focal loss ``-(1 - p_y)^γ log p_y`` per row: logits [N, K], labels [N] -> [N]."""
    log_p = logits.log_softmax(-1).gather(1, labels[:, None]).squeeze(1)
    return -((1 - log_p.exp()) ** gamma) * log_p


def snippet_labels(targets: list[dict], mask: torch.Tensor) -> torch.Tensor:
    """Class index of each snippet [B, T] (long; -1 outside every instance and at padding).

    Snippet t of a window with L valid snippets has its centre at (t + 0.5) / L, in the
    units of the targets' (centre, width) segments; where instances overlap, the later
    one in the target list wins.
    """
    B, T = mask.shape
    labels = torch.full((B, T), -1, dtype=torch.long, device=mask.device)
    lengths = (~mask).sum(dim=1)
    for b, target in enumerate(targets):
        centres = (torch.arange(T, device=mask.device, dtype=torch.float32) + 0.5) / lengths[b].clamp(min=1)
        for (c, w), label in zip(target["segments"].float().tolist(), target["labels"].tolist()):
            inside = (centres >= c - w / 2) & (centres <= c + w / 2) & ~mask[b]
            labels[b, inside] = int(label)
    return labels


class SetCriterion:
    """Computes the PSFTR losses for one batch.

    ``outputs``: the model's dict (``pred_logits`` [B,Nq,K], ``pred_segments`` [B,Nq,2],
    ``pred_actionness`` [B,Nq,1], ``saliency_logits`` [B,T], optional ``aux_outputs``).
    ``targets``: list of B dicts with ``labels`` [N_b] (index into the K classes) and
    ``segments`` [N_b, 2] (c, w) normalised to the window.
    ``saliency``: [B, T] float targets; ``mask``: [B, T] bool, True = padding.
    ``weights``: coefficient of each term in the total, by name (``loss_cls``,
    ``loss_seg``, ``loss_iou``, ``loss_actionness``, ``loss_saliency``). ``cls_loss``:
    ``"focal"`` or ``"ce"`` (cross-entropy, i.e. the focal loss with γ = 0).
    ``pred_actionness`` and ``saliency_logits`` may be absent (their terms are then too).
    """

    def __init__(self, matcher: HungarianMatcher, weights: dict[str, float], focal_alpha: float,
                 focal_gamma: float, aux_loss: bool, cls_loss: str = "focal") -> None:
        if cls_loss not in ("focal", "ce"):
            raise ValueError(f"cls_loss must be 'focal' or 'ce', got {cls_loss!r}")
        self.matcher = matcher
        self.weights = dict(weights)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.cls_gamma = focal_gamma if cls_loss == "focal" else 0.0
        self.aux_loss = aux_loss

    def matched_losses(
        self, outputs: dict, targets: list[dict], indices: list[tuple[torch.Tensor, torch.Tensor]], num_instances: float
    ) -> dict[str, torch.Tensor]:
        """The query-level terms for one decoder layer, given its matching (no
        ``loss_actionness`` without ``pred_actionness``)."""
        logits = outputs["pred_logits"].float()
        segments = outputs["pred_segments"].float()
        device = logits.device

        batch_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(indices)]).to(device)
        query_idx = torch.cat([q for q, _ in indices]).to(device)
        labels = torch.cat([t["labels"].to(device)[j] for t, (_, j) in zip(targets, indices)])
        tgt_segments = torch.cat([t["segments"].to(device).float()[j] for t, (_, j) in zip(targets, indices)])

        if query_idx.numel() > 0:
            loss_cls = softmax_focal_loss(logits[batch_idx, query_idx], labels, self.cls_gamma).sum()
            src = segments[batch_idx, query_idx]
            loss_seg = F.l1_loss(src, tgt_segments, reduction="none").sum()
            iou = paired_iou(segment_cw_to_se(src).clamp(0.0, 1.0), segment_cw_to_se(tgt_segments))
            loss_iou = (1 - iou).sum()
        else:
            # Keep the graph connected (DDP needs every parameter to get a gradient).
            loss_cls = loss_seg = loss_iou = logits.sum() * 0.0 + segments.sum() * 0.0

        losses = {
            "loss_cls": loss_cls / num_instances,
            "loss_seg": loss_seg / num_instances,
            "loss_iou": loss_iou / num_instances,
        }
        if "pred_actionness" in outputs:
            actionness = outputs["pred_actionness"].float().squeeze(-1)  # [B, Nq]
            action_target = torch.zeros_like(actionness)
            action_target[batch_idx, query_idx] = 1.0
            loss_act = sigmoid_focal_loss(actionness, action_target, self.focal_alpha, self.focal_gamma).sum()
            losses["loss_actionness"] = loss_act / num_instances
        return losses

    @staticmethod
    def snippet_class_loss(snippet_logits: torch.Tensor, targets: list[dict], mask: torch.Tensor,
                           num_frames: float) -> torch.Tensor:
        """Cross-entropy of each snippet inside a ground-truth instance against that
        instance's class: snippet_logits [B, T, K] -> a scalar, summed and divided by
        ``num_frames`` (the valid snippets, global under DDP, as the saliency term)."""
        labels = snippet_labels(targets, mask)
        inside = labels >= 0
        if not bool(inside.any()):
            return snippet_logits.sum() * 0.0
        ce = F.cross_entropy(snippet_logits.float()[inside], labels[inside], reduction="sum")
        return ce / num_frames

    def saliency_loss(self, saliency_logits: torch.Tensor, saliency: torch.Tensor, mask: torch.Tensor, num_frames: float) -> torch.Tensor:
        valid = (~mask).float()
        bce = F.binary_cross_entropy_with_logits(saliency_logits.float(), saliency.float(), reduction="none")
        return (bce * valid).sum() / num_frames

    def __call__(
        self,
        outputs: dict,
        targets: list[dict],
        saliency: torch.Tensor,
        mask: torch.Tensor,
        num_instances: float | None = None,
        num_frames: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Returns every unweighted term plus ``loss`` (the weighted total to backprop).

        ``num_instances`` / ``num_frames`` default to this batch's counts (at least 1).
        """
        if num_instances is None:
            num_instances = float(sum(len(t["labels"]) for t in targets))
        if num_frames is None:
            num_frames = float((~mask).sum().item())
        num_instances = float(num_instances) if num_instances > 0 else 1.0
        num_frames = float(num_frames) if num_frames > 0 else 1.0

        indices = self.matcher(outputs, targets)
        losses = self.matched_losses(outputs, targets, indices, num_instances)
        if "saliency_logits" in outputs:
            losses["loss_saliency"] = self.saliency_loss(outputs["saliency_logits"], saliency, mask, num_frames)
        if "snippet_logits" in outputs:
            losses["loss_snippet_cls"] = self.snippet_class_loss(outputs["snippet_logits"], targets, mask, num_frames)
        if self.aux_loss:
            for layer, aux in enumerate(outputs.get("aux_outputs") or []):
                aux_indices = self.matcher(aux, targets)
                for name, value in self.matched_losses(aux, targets, aux_indices, num_instances).items():
                    losses[f"{name}_{layer}"] = value
        losses["loss"] = self.weighted_total(losses)
        return losses

    def weighted_total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Saliency (when present) plus every matched term (auxiliary ``*_k`` copies
        included) times its weight."""
        total = self.weights["loss_saliency"] * losses["loss_saliency"] if "loss_saliency" in losses else 0.0
        if "loss_snippet_cls" in losses:
            total = total + self.weights.get("loss_snippet_cls", 0.0) * losses["loss_snippet_cls"]
        for name, value in losses.items():
            base = name.rsplit("_", 1)[0] if name[-1].isdigit() else name
            if base in MATCHED_TERMS:
                total = total + self.weights[base] * value
        return total


def loss_weights(train_cfg: Any) -> dict[str, float]:
    """Coefficient of each loss term, by term name, from the ``train`` section of a config."""
    return {
        "loss_cls": train_cfg.cls_loss_coef,
        "loss_seg": train_cfg.seg_loss_coef,
        "loss_iou": train_cfg.iou_loss_coef,
        "loss_actionness": train_cfg.actionness_loss_coef,
        "loss_saliency": train_cfg.salient_loss_coef,
        "loss_snippet_cls": train_cfg.snippet_cls_loss_coef,
    }


def build_criterion(train_cfg: Any) -> SetCriterion:
    """The loss of a run (with its matcher), from the ``train`` section of its config."""
    return SetCriterion(build_matcher(train_cfg), loss_weights(train_cfg), train_cfg.focal_alpha,
                        train_cfg.focal_gamma, train_cfg.aux_loss, train_cfg.cls_loss)
