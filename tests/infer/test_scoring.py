"""Scoring of raw model outputs: top-k (query, class) pairs, calibrated scores in video time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from psftr_core.config import InferenceConfig, ModelConfig
from psftr_core.data.slicing import Windowing, make_windows
from psftr_core.errors import InputError
from psftr_core.infer.scoring import PostProcess, VideoCurves, WindowBatch, resolved_weights, topk_pairs


def test_topk_pairs_orders_query_class_pairs():
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.05, 0.0]])
    segments = torch.tensor([[0.5, 0.2], [0.2, 0.6], [0.9, 0.1]])
    se, cls, sc = topk_pairs(scores, segments, k=3)
    assert cls.tolist() == [1, 0, 1] and torch.allclose(sc, torch.tensor([0.9, 0.8, 0.2]))
    # (0.2, 0.6) -> (-0.1, 0.5) clipped to the window
    torch.testing.assert_close(se, torch.tensor([[0.4, 0.6], [0.0, 0.5], [0.0, 0.5]]))
    se, cls, sc = topk_pairs(scores, segments, k=100)  # fewer pairs than k
    assert len(sc) == 6


def test_calibrated_scoring_is_actionness_times_the_segment_mean_of_the_curves():
    windows = make_windows("v", 300, 1.0, [], Windowing(), training=False)  # (0,128) (96,224) (192,300)
    # query 0: (0.8125, 0.9375) of the window
    outputs = {"pred_segments": torch.tensor([[[0.875, 0.125], [0.5, 0.1]]]), "pred_logits": torch.zeros(1, 2, 2)}
    outputs["pred_actionness"] = torch.tensor([[[0.0], [-20.0]]])  # σ = 0.5 and ~0
    times = np.arange(300) + 0.5  # one snippet per second
    curves = np.zeros((300, 2))
    curves[104:120, 1] = 0.8  # class 1 is on during [104, 120) s
    batch = WindowBatch(None, None, None, windows[:1], [0], [300.0], [VideoCurves(curves, times)])
    found = PostProcess(topk=1, contrast_weight=1.0)(outputs, batch)
    (det,) = found
    np.testing.assert_allclose(det.segments, [[104.0, 120.0]])
    assert det.classes.tolist() == [1] and det.scores[0] == pytest.approx(0.5 * 0.8)
    # half and half with the learned softmax (0.5 for each class): σ(a)·(0.5·0.5 + 0.5·C)
    (mixed,) = PostProcess(topk=2, contrast_weight=0.5)(outputs, batch)
    assert mixed.classes.tolist() == [1, 0]
    np.testing.assert_allclose(mixed.scores, [0.5 * (0.25 + 0.5 * 0.8), 0.5 * 0.25], rtol=1e-6)


def test_post_process_from_config_takes_the_model_roi_settings_and_the_inference_settings():
    model = ModelConfig(roi_size=4, roi_samples_per_bin=3, roi_logit_weight=0.25, logit_scale=50.0)
    post = PostProcess.from_config(model, InferenceConfig(scoring="model", topk=7))
    assert (post.contrast_weight, post.topk, post.roi_weight, post.roi_size, post.roi_samples_per_bin,
            post.logit_scale) == (0.0, 7, 0.25, 4, 3, 50.0)
    assert PostProcess.from_config(dataclasses.replace(model, use_roi_logits=False)).roi_weight == 0.0
    calibrated = PostProcess.from_config(model)  # the InferenceConfig default
    assert calibrated.contrast_weight == 1.0 and calibrated.needs_curves
    # explicit weights win over the model's mix and over the scoring shorthand
    explicit = PostProcess.from_config(model, InferenceConfig(scoring="model", roi_weight=1.0, contrast_weight=0.3))
    assert (explicit.roi_weight, explicit.contrast_weight) == (1.0, 0.3)
    assert resolved_weights(dataclasses.replace(model, use_roi_logits=False), InferenceConfig(roi_weight=0.5)) == (
        0.5, 1.0)
    assert not PostProcess.from_config(model, InferenceConfig(contrast_weight=0.0)).needs_curves
    with pytest.raises(ValueError, match="roi_weight"):
        PostProcess(roi_weight=1.5)
    with pytest.raises(InputError, match="feature_dim"):  # ROI logits compare features with text
        PostProcess.from_config(dataclasses.replace(model, feature_dim=256, spde_variant="none", use_roi_logits=False),
                                InferenceConfig(roi_weight=0.5, contrast_weight=0.0))


def test_model_scoring_mixes_learned_and_roi_logits_with_the_weight():
    # Snippets 0-3 along e0, 4-7 along e1; query 0 covers [0.5, 3.5] snippets (centres of 0 and 3),
    # so ROIAlign samples only e0 and its ROI logits are (50, 0).
    features = torch.tensor([[[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4])
    outputs = {"pred_logits": torch.zeros(1, 1, 2), "pred_segments": torch.tensor([[[2.0 / 8, 3.0 / 8]]])}
    text = torch.eye(2)
    post = PostProcess(roi_weight=0.5, contrast_weight=0.0, roi_size=2, logit_scale=50.0)
    roi = post.roi_logits(features, None, outputs["pred_segments"], text)
    torch.testing.assert_close(roi, torch.tensor([[[50.0, 0.0]]]))
    torch.testing.assert_close(post.class_logits(outputs, features, None, text), torch.tensor([[[25.0, 0.0]]]))
    mixed = torch.tensor([[[25.0, 0.0]]])
    torch.testing.assert_close(post.class_scores(outputs, features, None, text), mixed.softmax(-1))
    off = PostProcess(roi_weight=0.0, contrast_weight=0.0)
    torch.testing.assert_close(off.class_scores(outputs, features, None, text), torch.full((1, 1, 2), 0.5))
