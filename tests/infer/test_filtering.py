"""The one filter stage (psftr_core.infer.filtering): known answers, its settings, and
the equalities that let it replace the two stages it was made of."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from psftr_core.config import InferenceConfig
from psftr_core.infer.candidates import Candidates, localizer_candidates
from psftr_core.infer.filtering import FilterSettings, filter_detections
from psftr_core.infer.localizer import LocalizerConfig, localize
from psftr_core.infer.nms import nms

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


def candidates(rows, windows=None) -> Candidates:
    """``rows``: (start, end, class index, score)."""
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return Candidates(arr[:, :2], arr[:, 3], arr[:, 2].astype(np.int64), ["a", "b"],
                      None if windows is None else np.array(windows))


def kept(found: Candidates, settings: FilterSettings, duration=None) -> list[tuple]:
    return [(*d["segment"], d["label"], d["score"]) for d in filter_detections(found, settings, duration)]


def test_cross_window_nms_only_suppresses_across_windows():
    found = candidates([(0, 10, 0, 0.9), (1, 10, 0, 0.8), (0.5, 10, 0, 0.7), (0, 10, 1, 0.6)], windows=[0, 0, 1, 1])
    # plain: every overlapping "a" under the best one goes; "b" is another class
    assert kept(found, FilterSettings(nms_iou=0.5)) == [(0, 10, "a", 0.9), (0, 10, "b", 0.6)]
    # the paper's: the same-window duplicate (0.8) stays, the other window's (0.7) goes
    assert kept(found, FilterSettings(nms_iou=0.5, cross_window=True)) == [
        (0, 10, "a", 0.9), (1, 10, "a", 0.8), (0, 10, "b", 0.6)]
    # candidates from no windows (the localizer) all compete in either mode
    no_windows = candidates([(0, 10, 0, 0.9), (1, 10, 0, 0.8)])
    assert kept(no_windows, FilterSettings(nms_iou=0.5, cross_window=True)) == [(0, 10, "a", 0.9)]


def test_lengths_scores_and_ties():
    found = candidates([(3, 3, 0, 0.5), (2, 4, 1, 0.5), (5, 6, 0, float("nan")), (7, 9, 0, 0.5), (1, 8, 1, 0.2)])
    # min_duration None (evaluation): the empty segment stays; NaN never does; ties keep the input order
    assert kept(found, FilterSettings(nms_iou=None)) == [
        (3, 3, "a", 0.5), (2, 4, "b", 0.5), (7, 9, "a", 0.5), (1, 8, "b", 0.2)]
    assert kept(found, FilterSettings(nms_iou=None, min_duration=0.0)) == [
        (2, 4, "b", 0.5), (7, 9, "a", 0.5), (1, 8, "b", 0.2)]
    assert kept(found, FilterSettings(nms_iou=None, min_duration=2.5, score_threshold=0.3)) == []
    assert kept(found, FilterSettings(nms_iou=None, min_duration=2.5)) == [(1, 8, "b", 0.2)]
    assert kept(found, FilterSettings(nms_iou=None, min_duration=0.0), duration=8.5) == [
        (2, 4, "b", 0.5), (7, 8.5, "a", 0.5), (1, 8, "b", 0.2)]


def test_settings_come_from_one_place():
    assert FilterSettings.from_inference(InferenceConfig()) == FilterSettings(nms_iou=0.4)
    paper = FilterSettings.from_inference(InferenceConfig(nms="cross_window", nms_iou=0.3, score_threshold=0.1))
    assert (paper.nms_iou, paper.cross_window, paper.score_threshold, paper.top_k) == (0.3, True, 0.1, None)
    localizer = FilterSettings.from_inference(InferenceConfig(method="localizer", score_threshold=0.2))
    assert (localizer.nms_iou, localizer.cross_window, localizer.top_k) == (0.5, False, 100)
    assert localizer.score_threshold == 0.2 and localizer.min_duration is None
    assert FilterSettings.of_localizer(LocalizerConfig(nms_threshold=0.3, top_k=7)) == FilterSettings(0.3, top_k=7)


def _random_candidates(rng, n=300, windows=True) -> Candidates:
    starts = rng.uniform(0, 60, n)
    seg = np.stack([starts, starts + rng.uniform(0.5, 12, n)], axis=1)
    scores = np.round(rng.uniform(0, 1, n), 2)  # many ties
    return Candidates(seg, scores, rng.integers(0, 2, n), ["a", "b"], rng.integers(0, 4, n) if windows else None)


@pytest.mark.parametrize("cross_window", [False, True])
def test_thresholds_commute_with_nms_and_nms_at_a_looser_tiou_changes_nothing(cross_window):
    """Why evaluation's outputs did not change when its threshold moved before NMS, and
    why detect's old second NMS (0.5 after the model's 0.4) removed nothing."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        found = _random_candidates(rng)
        thresholds = {"a": 0.3, "b": 0.55}
        # the old order: NMS over everything, then the thresholds
        keep = nms(found.segments, found.scores, found.classes, 0.4,
                   windows=found.windows if cross_window else None)
        rows = [(float(found.segments[i, 0]), float(found.segments[i, 1]), found.class_names[found.classes[i]],
                 float(found.scores[i])) for i in keep]
        old = [row for row in rows if row[3] >= thresholds[row[2]]]
        assert kept(found, FilterSettings(nms_iou=0.4, cross_window=cross_window, thresholds=thresholds)) == old
        if cross_window:
            continue
        again = Candidates.from_detections(filter_detections(found, FilterSettings(nms_iou=0.4)), ["a", "b"])
        assert kept(again, FilterSettings(nms_iou=0.5)) == kept(found, FilterSettings(nms_iou=0.4))


def test_one_nms_judges_each_segment_once():
    """NMS at 0.4 then at 0.3 (detect with --nms-iou 0.3 before) is not NMS at 0.3: in
    the first pass A (kept) removed B; in the second C removed A. Judged once, A goes
    first and B, which C barely overlaps, stays."""
    found = candidates([(0, 10, 0, 0.9), (5, 15, 0, 0.8), (7, 17, 0, 0.7)])  # C, A, B
    # tIoU(C, A) = 5/15 = 0.33, tIoU(A, B) = 8/12 = 0.67, tIoU(C, B) = 3/17 = 0.18
    first = Candidates.from_detections(filter_detections(found, FilterSettings(nms_iou=0.4)), ["a", "b"])
    assert kept(first, FilterSettings(nms_iou=0.3)) == [(0, 10, "a", 0.9)]
    assert kept(found, FilterSettings(nms_iou=0.3)) == [(0, 10, "a", 0.9), (7, 17, "a", 0.7)]


def test_localizer_candidates_through_its_filter_are_the_localizer():
    from psftr_core.data.datasets import load_dataset

    ds = load_dataset(DEMO)
    names = ["diving", "rowing", "pole vault"]
    text = np.stack([ds.text_embeddings[n] for n in names])
    for video in sorted(ds.videos)[:4]:
        features, times, duration = ds.load_features(video), ds.snippet_times(video), ds.videos[video].duration
        for cfg in (LocalizerConfig(), LocalizerConfig(nms_threshold=0.3, top_k=2)):
            found = localizer_candidates(features, times, duration, text, names, cfg)
            expected = localize(features, times, text, names, cfg, duration=duration)
            assert filter_detections(found, FilterSettings.of_localizer(cfg), duration) == expected
            assert len(found) >= len(expected)


def test_drop_nested_keeps_the_stronger_of_nested_same_label_segments():
    # the bikes.mp4 case: 0.96-5.76 holds 1.92-2.56 and 3.84-5.44 (tIoU 0.13 and 0.33: NMS keeps all)
    found = candidates([(0.96, 5.76, 0, 0.6), (1.92, 2.56, 0, 0.5), (3.84, 5.44, 0, 0.7), (2.0, 3.0, 1, 0.4),
                        (5.0, 7.0, 0, 0.3)])
    assert len(kept(found, FilterSettings(nms_iou=0.5))) == 5
    # 3.84-5.44 (0.7) is strongest: 0.96-5.76 holds it and goes, which frees 1.92-2.56;
    # "b" is another label; 5.0-7.0 only overlaps
    assert kept(found, FilterSettings(nms_iou=0.5, drop_nested=True)) == [
        (3.84, 5.44, "a", 0.7), (1.92, 2.56, "a", 0.5), (2.0, 3.0, "b", 0.4), (5.0, 7.0, "a", 0.3)]
    # top-k counts what is left after the nested ones went
    assert kept(found, FilterSettings(nms_iou=0.5, drop_nested=True, top_k=2)) == [
        (3.84, 5.44, "a", 0.7), (1.92, 2.56, "a", 0.5)]
    # ends equal within a millisecond count as nested
    touching = candidates([(1.0, 4.0, 0, 0.9), (1.0004, 4.0004, 0, 0.8)])
    assert kept(touching, FilterSettings(nms_iou=None, drop_nested=True)) == [(1.0, 4.0, "a", 0.9)]
