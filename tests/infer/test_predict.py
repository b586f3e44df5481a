"""Inference post-processing: top-k pairs, window -> video time, NMS across window overlaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psftr_core.infer.predict import WindowDetections, cross_window_nms, merge_video, predict_windows, topk_pairs
from psftr_core.data.slicing import Windowing, make_windows


def test_topk_pairs_orders_query_class_pairs():
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.05, 0.0]])
    segments = torch.tensor([[0.5, 0.2], [0.2, 0.6], [0.9, 0.1]])
    se, cls, sc = topk_pairs(scores, segments, k=3)
    assert cls.tolist() == [1, 0, 1] and torch.allclose(sc, torch.tensor([0.9, 0.8, 0.2]))
    # (0.2, 0.6) -> (-0.1, 0.5) clipped to the window
    torch.testing.assert_close(se, torch.tensor([[0.4, 0.6], [0.0, 0.5], [0.0, 0.5]]))
    se, cls, sc = topk_pairs(scores, segments, k=100)  # fewer pairs than k
    assert len(sc) == 6


def _windows():
    return make_windows("v", 300, 1.0, [], Windowing(), training=False)  # (0,128) (96,224) (192,300)


def test_time_mapping_of_each_window():
    w0, w1, w2 = _windows()
    np.testing.assert_allclose(w0.to_video_time([0.8125, 0.9375]), [104.0, 120.0])
    np.testing.assert_allclose(w1.to_video_time([8 / 128, 24 / 128]), [104.0, 120.0])
    np.testing.assert_allclose(w2.to_video_time([0.5, 1.0]), [246.0, 300.0])


def test_nms_only_across_windows():
    segments = np.array([[104.0, 120.0], [104.0, 121.0], [105.0, 120.0], [104.0, 120.0], [10.0, 20.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    classes = np.array([0, 0, 0, 1, 0])
    windows = np.array([0, 1, 0, 1, 0])
    keep = cross_window_nms(segments, scores, classes, windows, 0.4)
    # 1 (window 1, same class, tIoU 16/17) is suppressed by 0; 2 is in the same window as 0 -> kept;
    # 3 is another class; 4 does not overlap
    assert keep.tolist() == [0, 2, 3, 4]


def test_merge_video_labels_and_scores():
    dets = [
        WindowDetections(0, np.array([[104.0, 120.0]]), np.array([1]), np.array([0.6])),
        WindowDetections(1, np.array([[104.5, 120.0], [200.0, 210.0]]), np.array([1, 0]), np.array([0.7, 0.3])),
    ]
    out = merge_video(dets, ["a", "b"], 0.4)
    assert out == [{"segment": [104.5, 120.0], "label": "b", "score": 0.7},
                   {"segment": [200.0, 210.0], "label": "a", "score": 0.3}]
    assert merge_video([], ["a"]) == []


class _StubModel(torch.nn.Module):
    """Predicts one fixed segment per window with query 0 sure of class 0."""

    def __init__(self, segment):
        super().__init__()
        self.segment = torch.tensor(segment)

    def forward(self, features, mask, text):
        b = features.shape[0]
        segs = torch.tensor([[0.5, 0.1], [0.5, 0.1]]).repeat(b, 1, 1)
        segs[:, 0] = self.segment
        return {"pred_segments": segs}

    def scores(self, outputs):
        b = outputs["pred_segments"].shape[0]
        s = torch.zeros(b, 2, 2)
        s[:, 0, 0] = 0.9
        return s


def test_predict_windows_maps_and_clips_to_video_time():
    windows = _windows()
    batch = {
        "features": torch.zeros(3, 128, 4),
        "mask": torch.zeros(3, 128, dtype=torch.bool),
        "window_index": torch.tensor([0, 1, 2]),
    }
    model = _StubModel([0.875, 0.125])  # (0.8125, 0.9375) of each window
    out = predict_windows(model, [batch], windows, {"v": 290.0}, torch.zeros(2, 4), topk=1, roi_weight=0.0)
    got = [d.segments[0].tolist() for d in out["v"]]
    np.testing.assert_allclose(got, [[104.0, 120.0], [200.0, 216.0], [279.75, 290.0]])  # last clipped
    assert [d.window_index for d in out["v"]] == [0, 1, 2]


def test_nms_within_windows_also_suppresses_same_window_duplicates():
    segments = np.array([[104.0, 120.0], [104.0, 121.0], [105.0, 120.0], [104.0, 120.0], [10.0, 20.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    classes = np.array([0, 0, 0, 1, 0])
    windows = np.array([0, 1, 0, 1, 0])
    # 2 (same window as 0, tIoU 15/16) now goes too; 3 is another class; 4 does not overlap
    assert cross_window_nms(segments, scores, classes, windows, 0.4, within_windows=True).tolist() == [0, 3, 4]


def test_segment_means_average_the_snippets_inside():
    from psftr_core.infer.localizer import segment_means

    times = np.array([0.5, 1.5, 2.5, 3.5])
    curves = np.array([[0.0, 1.0], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4]])
    got = segment_means(curves, times, np.array([[1.0, 3.0], [0.0, 4.0], [1.9, 2.1], [3.4, 3.6]]))
    # [1, 3] holds snippets 1, 2; all four; [1.9, 2.1] holds none -> nearest to 2.0 is
    # snippet 1 (1.5, tie with 2.5 goes left); [3.4, 3.6] holds snippet 3.
    np.testing.assert_allclose(got, [[0.3, 0.7], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])


def test_calibrated_scoring_is_actionness_times_the_segment_mean_of_the_curves():
    from psftr_core.infer.predict import VideoCurves, window_detections

    windows = _windows()
    model = _StubModel([0.875, 0.125])  # query 0: (0.8125, 0.9375) of each window
    outputs = model(torch.zeros(1, 128, 4), None, None)
    outputs["pred_actionness"] = torch.tensor([[[0.0], [-20.0]]])  # σ = 0.5 and ~0
    times = np.arange(300) + 0.5  # one snippet per second
    curves = np.zeros((300, 2))
    curves[104:120, 1] = 0.8  # class 1 is on during [104, 120) s
    found = window_detections(model, outputs, None, None, None, windows[:1], [0], {"v": 300.0}, topk=1,
                              scoring="calibrated", curves_of=lambda v: VideoCurves(curves, times))
    (det,) = found
    np.testing.assert_allclose(det.segments, [[104.0, 120.0]])
    assert det.classes.tolist() == [1] and det.scores[0] == pytest.approx(0.5 * 0.8)


def test_segment_contrast_prefers_the_segment_that_matches_the_evidence():
    from psftr_core.infer.localizer import segment_contrast

    times = np.arange(40) + 0.5
    curves = np.zeros((40, 1))
    curves[10:20, 0] = 1.0  # evidence on [10, 20) s
    got = segment_contrast(curves, times, np.array([[10.0, 20.0], [12.0, 16.0], [5.0, 25.0], [0.0, 8.0]]))[:, 0]
    # exact: inside 1, flanks 0 -> 1; too short: flanks [11, 12] and [16, 17] are inside the
    # action -> 1 - 1 = 0; too long: inside 10/20, flanks 0 -> 0.5; no evidence -> 0
    np.testing.assert_allclose(got, [1.0, 0.0, 0.5, 0.0])
    # the video edge counts as 0: a segment covering the whole evidence at the start
    edge = np.zeros((40, 1))
    edge[0:8, 0] = 1.0
    assert segment_contrast(edge, times, np.array([[0.0, 8.0]]))[0, 0] == pytest.approx(1.0)
