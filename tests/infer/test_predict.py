"""The inference path: windows -> video time, padding, merging the windows of a video."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from psftr_core.config import InferenceConfig, ModelConfig
from psftr_core.data.slicing import Windowing, make_windows
from psftr_core.infer.filtering import FilterSettings, filter_detections
from psftr_core.infer.predict import (
    VideoWindows, merge_windows, pad_windows, predict_windows, video_windows, window_input,
)
from psftr_core.infer.scoring import PostProcess, WindowDetections
from psftr_core.model import PSFTR


def _windows():
    return make_windows("v", 300, 1.0, [], Windowing(), training=False)  # (0,128) (96,224) (192,300)


def test_time_mapping_of_each_window():
    w0, w1, w2 = _windows()
    np.testing.assert_allclose(w0.to_video_time([0.8125, 0.9375]), [104.0, 120.0])
    np.testing.assert_allclose(w1.to_video_time([8 / 128, 24 / 128]), [104.0, 120.0])
    np.testing.assert_allclose(w2.to_video_time([0.5, 1.0]), [246.0, 300.0])


def test_merge_windows_keeps_every_candidate_with_its_window_and_the_filter_merges():
    dets = [
        WindowDetections(0, np.array([[104.0, 120.0]]), np.array([1]), np.array([0.6])),
        WindowDetections(1, np.array([[104.5, 120.0], [200.0, 210.0]]), np.array([1, 0]), np.array([0.7, 0.3])),
    ]
    found = merge_windows(dets, ["a", "b"])
    assert found.windows.tolist() == [0, 1, 1] and found.classes.tolist() == [1, 1, 0]
    assert found.scores.tolist() == [0.6, 0.7, 0.3] and found.segments[0].tolist() == [104.0, 120.0]
    out = filter_detections(found, FilterSettings(nms_iou=0.4))
    assert out == [{"segment": [104.5, 120.0], "label": "b", "score": 0.7},
                   {"segment": [200.0, 210.0], "label": "a", "score": 0.3}]
    assert len(merge_windows([], ["a"])) == 0
    assert filter_detections(found, FilterSettings(nms_iou=0.4, score_threshold=0.5)) == out[:1]


class _StubModel(torch.nn.Module):
    """Predicts one fixed segment per window with query 0 sure of class 0."""

    def __init__(self, segment):
        super().__init__()
        self.segment = torch.tensor(segment)

    def forward(self, features, mask, text):
        b = features.shape[0]
        segs = torch.tensor([[0.5, 0.1], [0.5, 0.1]]).repeat(b, 1, 1)
        segs[:, 0] = self.segment
        logits = torch.zeros(b, 2, 2)
        logits[:, 0, 0] = 10.0
        return {"pred_segments": segs, "pred_logits": logits}


def test_predict_windows_maps_and_clips_to_video_time():
    windows = _windows()
    video = VideoWindows("v", np.zeros((300, 4), np.float32), np.arange(300) + 0.5, 290.0, windows)
    model = _StubModel([0.875, 0.125])  # (0.8125, 0.9375) of each window
    out = predict_windows(model, [video], torch.zeros(2, 4), PostProcess(topk=1, contrast_weight=0.0), 128)
    got = [d.segments[0].tolist() for d in out["v"]]
    np.testing.assert_allclose(got, [[104.0, 120.0], [200.0, 216.0], [279.75, 290.0]])  # last clipped
    assert [d.window_index for d in out["v"]] == [0, 1, 2]


def test_windows_are_cut_resized_and_padded_to_the_fixed_length():
    features = np.arange(10, dtype=np.float64)[:, None].repeat(2, axis=1)  # row i = (i, i)
    sliding = make_windows("v", 10, 1.0, [], Windowing(slice_size=4), training=False)[2]
    (resized,) = make_windows("v", 10, 1.0, [], Windowing(mode="resize", resize_length=5), training=False)
    cut, squeezed = window_input(features, sliding), window_input(features, resized)
    assert cut.dtype == np.float32 and cut[:, 0].tolist() == [6.0, 7.0, 8.0, 9.0]  # (6, 10) at stride 3
    assert squeezed[:, 0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]  # nearest: row floor(j * 10 / 5)
    padded, mask = pad_windows([cut[:2], cut[:3]], 4)
    assert padded.shape == (2, 4, 2) and mask.tolist() == [[False, False, True, True], [False, False, False, True]]
    assert padded[0, :2, 0].tolist() == [6.0, 7.0] and padded[0, 2:].abs().sum() == 0 and padded[1, 3].abs().sum() == 0
    assert pad_windows([cut], 2)[0].shape == (1, 4, 2)  # never shorter than the longest window


def test_batch_composition_does_not_change_the_detections():
    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig(), feature_dim=8, text_dim=8, hidden_dim=16, num_heads=2, num_groups=4,
                              enc_layers=1, dec_layers=1, num_queries=4, dim_feedforward=16, roi_size=4)
    model = PSFTR(cfg)
    windowing = Windowing(slice_size=16)
    rng = np.random.default_rng(0)
    videos = [video_windows(f"v{i}", rng.normal(size=(n, 8)).astype(np.float32), np.arange(n) + 0.5, float(n),
                            windowing) for i, n in enumerate((40, 9, 25))]
    text = torch.as_tensor(rng.normal(size=(3, 8)), dtype=torch.float32)
    for scoring in ("model", "contrast"):
        post = PostProcess.from_config(cfg, InferenceConfig(scoring=scoring, topk=5))
        one = predict_windows(model, videos, text, post, 16, batch_size=1)
        mixed = predict_windows(model, videos, text, post, 16, batch_size=4)
        assert list(one) == ["v0", "v1", "v2"] and all(one.values())
        for video in one:
            a, b = merge_windows(one[video], ["a", "b", "c"]), merge_windows(mixed[video], ["a", "b", "c"])
            assert a.classes.tolist() == b.classes.tolist() and a.windows.tolist() == b.windows.tolist()
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
            np.testing.assert_allclose(a.segments, b.segments, atol=1e-4)
