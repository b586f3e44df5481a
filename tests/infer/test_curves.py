"""Score curves: smoothing, runs, contrast, snippet index runs -> seconds, segment means."""

from __future__ import annotations

import numpy as np
import pytest

from psftr_core.infer.curves import (
    contiguous_runs,
    multi_threshold_runs,
    outer_inner_contrast,
    runs_to_seconds,
    segment_contrast,
    segment_means,
    smooth_1d,
    snippet_bounds,
)


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


def test_segment_means_average_the_snippets_inside():
    times = np.array([0.5, 1.5, 2.5, 3.5])
    curves = np.array([[0.0, 1.0], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4]])
    got = segment_means(curves, times, np.array([[1.0, 3.0], [0.0, 4.0], [1.9, 2.1], [3.4, 3.6]]))
    # [1, 3] holds snippets 1, 2; all four; [1.9, 2.1] holds none -> nearest to 2.0 is
    # snippet 1 (1.5, tie with 2.5 goes left); [3.4, 3.6] holds snippet 3.
    np.testing.assert_allclose(got, [[0.3, 0.7], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])


def test_segment_contrast_prefers_the_segment_that_matches_the_evidence():
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
