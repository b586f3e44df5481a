"""The training-free localizer: planted segments, degenerate inputs, synthetic-data mAP."""

from __future__ import annotations

import numpy as np
import pytest

from psftr_core.infer.localizer import LocalizerConfig, class_curves, localize
from psftr_core.errors import InputError
from psftr_core.segments import tiou_matrix

FPS = 3.75
NAMES = ["jump", "run", "swim", "throw", "kick"]


def _planted(T: int = 100, D: int = 64, first: int = 30, last: int = 59, k: int = 2, seed: int = 0):
    """Noise frames, with frames first..last equal to class k's text direction (+ a little noise)."""
    rng = np.random.default_rng(seed)
    text = rng.standard_normal((len(NAMES), D)) * 0.4
    feats = rng.standard_normal((T, D))
    feats[first : last + 1] = 3.0 * text[k] / np.linalg.norm(text[k]) + 0.1 * rng.standard_normal((last - first + 1, D))
    times = (np.arange(T) + 0.5) / FPS
    truth = [first / FPS, (last + 1) / FPS]  # start of the first snippet .. end of the last
    return feats, times, text, truth


def test_finds_a_planted_segment_with_the_right_label():
    feats, times, text, truth = _planted()
    out = localize(feats, times, text, NAMES, duration=100 / FPS)
    assert out, "no detections"
    top = out[0]
    assert top["label"] == "swim"
    assert tiou_matrix([top["segment"]], [truth])[0, 0] >= 0.9
    scores = [d["score"] for d in out]
    assert scores == sorted(scores, reverse=True) and all(np.isfinite(scores))
    assert all(0.0 <= d["segment"][0] <= d["segment"][1] <= 100 / FPS for d in out)


def test_single_class_vocabulary_still_localizes():
    # a softmax over one class is always 1; the per-class background gate must do the work
    feats, times, text, truth = _planted(first=55, last=79, k=3)
    out = localize(feats, times, text[3:4], ["throw"])
    assert out[0]["label"] == "throw"
    assert tiou_matrix([out[0]["segment"]], [truth])[0, 0] >= 0.9


def test_single_snippet_constant_and_zero_inputs_are_finite():
    rng = np.random.default_rng(1)
    text = rng.standard_normal((3, 16))
    frame = rng.standard_normal((1, 16))
    # one snippet cannot stand out in time: z = 0, gate = sigmoid(-2 * 1) on top of the softmax
    cos = (frame / np.linalg.norm(frame)) @ (text / np.linalg.norm(text, axis=1, keepdims=True)).T
    softmax = np.exp(100 * (cos - cos.max())) / np.exp(100 * (cos - cos.max())).sum()
    np.testing.assert_allclose(class_curves(frame, text, LocalizerConfig()), softmax / (1 + np.exp(2.0)))
    one = localize(frame, [0.5], text, ["a", "b", "c"], duration=1.0)
    assert len(one) >= 1 and all(np.isfinite(d["score"]) for d in one)
    assert all(d["segment"] == [0.0, 1.0] for d in one)

    constant = np.tile(rng.standard_normal(16), (40, 1))
    times = (np.arange(40) + 0.5) / FPS
    for feats in (constant, np.zeros((40, 16))):
        curves = class_curves(feats, text, LocalizerConfig())
        assert np.isfinite(curves).all()
        out = localize(feats, times, text, ["a", "b", "c"])
        assert all(np.isfinite(d["score"]) and np.isfinite(d["segment"]).all() for d in out)
    assert localize(np.zeros((0, 16)), [], text, ["a", "b", "c"]) == []


def test_top_k_and_plain_softmax_option():
    feats, times, text, _ = _planted()
    assert len(localize(feats, times, text, NAMES, LocalizerConfig(top_k=3))) <= 3
    plain = localize(feats, times, text, NAMES, LocalizerConfig(use_gate=False))
    assert plain[0]["label"] == "swim"


def test_bad_inputs_raise_input_error():
    feats, times, text, _ = _planted()
    with pytest.raises(InputError):
        localize(feats, times, text[:, :10], NAMES)  # width mismatch
    with pytest.raises(InputError):
        localize(feats, times[:-1], text, NAMES)  # times do not match T
    with pytest.raises(InputError):
        localize(feats, times, text, NAMES[:2])  # names do not match K
    bad = feats.copy()
    bad[3, 3] = np.nan
    with pytest.raises(InputError):
        localize(bad, times, text, NAMES)


def _random_predictions(dataset, videos, classes, seed=0):
    """100 random segments of 2-30 s with random labels and scores per video."""
    rng = np.random.default_rng(seed)
    out = {}
    for rec in videos:
        length = np.exp(rng.uniform(np.log(2), np.log(30), 100))
        start = rng.uniform(0, 1, 100) * np.maximum(rec.duration - length, 0)
        out[rec.video_id] = [{"segment": [float(s), float(s + l)], "label": classes[rng.integers(len(classes))],
                              "score": float(rng.random())} for s, l in zip(start, length)]
    return out


def test_beats_random_segments_on_unseen_classes_of_synthetic_data(tmp_path):
    from psftr_core.data.datasets import load_dataset
    from psftr_core.evaluation.detection_map import evaluate_detections
    from psftr_core.data.synthetic import SyntheticConfig, generate_dataset

    root = generate_dataset(tmp_path / "data", SyntheticConfig(
        seed=0, num_classes=12, num_groups=4, feature_dim=128, num_train_videos=2, num_test_videos=24,
        video_seconds=(30.0, 60.0), num_splits=1))
    ds = load_dataset(root)
    split = ds.split("75_25", 0)
    videos = ds.eval_videos(split)
    text = np.stack([ds.text_embeddings[c] for c in split.unseen])
    preds = {rec.video_id: localize(ds.load_features(rec.video_id), ds.snippet_times(rec.video_id), text,
                                    split.unseen, duration=rec.duration) for rec in videos}
    truth = ds.ground_truth(split)
    ours = evaluate_detections(truth, preds, classes=split.unseen).average
    chance = evaluate_detections(truth, _random_predictions(ds, videos, split.unseen), classes=split.unseen).average
    assert ours > 0.25 and ours > 3 * chance, (ours, chance)
