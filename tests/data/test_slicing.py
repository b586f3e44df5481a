"""Windows, the 75 % instance-integrity rule, resize and saliency targets on hand examples."""

from __future__ import annotations

import numpy as np
import pytest

from psftr_core.data.slicing import (
    Instance,
    Windowing,
    instances_in_window,
    make_windows,
    normalised_targets,
    resize_nearest,
    saliency_targets,
    window_ranges,
)


def test_training_windows_of_300_snippets_stride_32_last_right_aligned():
    w = Windowing()
    assert w.stride(training=True) == 32
    assert window_ranges(300, 128, 32, training=True) == [
        (0, 128), (32, 160), (64, 192), (96, 224), (128, 256), (160, 288), (172, 300)
    ]


def test_inference_windows_of_300_snippets_stride_96_short_tail():
    w = Windowing()
    assert w.stride(training=False) == 96
    assert window_ranges(300, 128, 96, training=False) == [(0, 128), (96, 224), (192, 300)]


def test_windows_that_fit_exactly_and_short_videos():
    assert window_ranges(224, 128, 96, training=False) == [(0, 128), (96, 224)]
    assert window_ranges(50, 128, 32, training=True) == [(0, 50)]
    assert window_ranges(0, 128, 32, training=True) == []


def test_integrity_rule_keeps_75_percent_and_clips():
    # window [0, 128) s; instance 116-132 has exactly 12/16 = 75 % inside -> kept, clipped
    kept = instances_in_window([Instance(116, 132, "a")], 0.0, 128.0)
    assert kept == [Instance(116, 128, "a")]
    # 70 % inside -> dropped
    assert instances_in_window([Instance(100, 140, "a")], 0.0, 128.0) == []
    # fully inside a later window -> window-relative seconds
    assert instances_in_window([Instance(100, 140, "a")], 32.0, 160.0) == [Instance(68, 108, "a")]
    # outside
    assert instances_in_window([Instance(200, 210, "a")], 0.0, 128.0) == []


def test_training_keeps_only_windows_with_an_instance_and_inference_keeps_all():
    inst = [Instance(100.0, 140.0, "jump")]
    train = make_windows("v", 300, 1.0, inst, Windowing(), training=True)
    assert [(w.start, w.end) for w in train] == [(32, 160), (64, 192), (96, 224)]
    assert train[0].instances == [Instance(68.0, 108.0, "jump")]
    test = make_windows("v", 300, 1.0, inst, Windowing(), training=False)
    assert [(w.start, w.end) for w in test] == [(0, 128), (96, 224), (192, 300)]
    assert test[2].t_offset == 192.0 and test[2].t_scale == 108.0 and test[2].length == 108


def test_window_time_mapping_with_fractional_snippet_seconds():
    # 8 frames at 30 fps per snippet
    dt = 8 / 30
    (w,) = [x for x in make_windows("v", 300, dt, [], Windowing(), training=False) if x.start == 96]
    np.testing.assert_allclose(w.to_video_time(np.array([0.0, 0.5, 1.0])), [96 * dt, 160 * dt, 224 * dt])


def test_normalised_targets_are_centre_width_of_the_window():
    inst = [Instance(100.0, 140.0, "jump")]
    (w,) = [x for x in make_windows("v", 300, 1.0, inst, Windowing(), training=True) if x.start == 32]
    np.testing.assert_allclose(normalised_targets(w), [[0.6875, 0.3125]])


def test_resize_mode_one_window_per_video():
    w = Windowing(mode="resize", resize_length=100)
    (win,) = make_windows("v", 37, 0.5, [Instance(2.0, 4.0, "x")], w, training=True)
    assert (win.start, win.end, win.length, win.t_offset, win.t_scale) == (0, 37, 100, 0.0, 18.5)
    assert make_windows("v", 37, 0.5, [], w, training=True) == []
    assert len(make_windows("v", 37, 0.5, [], w, training=False)) == 1


def test_resize_nearest_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    feats = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    np.testing.assert_array_equal(resize_nearest(feats, 3), feats[[0, 1, 3]])
    for length in (3, 7, 12):
        expected = torch.nn.functional.interpolate(torch.from_numpy(feats).T[None], size=length)[0].T.numpy()
        np.testing.assert_array_equal(resize_nearest(feats, length), expected)


def test_saliency_targets():
    np.testing.assert_array_equal(saliency_targets(np.array([[0.5, 0.5]]), 4), [0, 1, 1, 0])
    # an instance shorter than a snippet still marks the snippet holding its centre
    np.testing.assert_array_equal(saliency_targets(np.array([[0.1, 0.01]]), 4), [1, 0, 0, 0])
    np.testing.assert_array_equal(saliency_targets(np.zeros((0, 2)), 3), [0, 0, 0])
