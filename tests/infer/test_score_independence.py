"""The localizer's ``class_score``: relative scores share the vocabulary, independent ones
are a name's alone (known curves and scores, the same segment under two vocabularies)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from psftr_core.errors import InputError
from psftr_core.infer.localizer import LocalizerConfig, class_curves, independent_evidence, localize
from psftr_core.segments import tiou_matrix

FPS = 3.75
INDEPENDENT = LocalizerConfig(class_score="independent")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _frames_with_cosines(cos: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Features [T, 2] whose cosine with the one text [1, 2] (the x axis) is ``cos[t]``."""
    c = np.asarray(cos, dtype=np.float64)
    return np.stack([c, np.sqrt(1.0 - c**2)], axis=1), np.array([[1.0, 0.0]])


def _video_with_related_names(seed: int = 0):
    """Noise frames; snippets 30..59 of 100 show "a". Texts of "b" and "c" share part of
    "a"'s direction, so they also rise there (what a softmax over the names sorts out)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(64)
    text = np.stack([a, a + 0.8 * rng.standard_normal(64), a + 0.8 * rng.standard_normal(64)])
    feats = rng.standard_normal((100, 64))
    feats[30:60] = 3.0 * a / np.linalg.norm(a) + 0.3 * rng.standard_normal((30, 64))
    return feats, (np.arange(100) + 0.5) / FPS, text


def _best(detections: list[dict], label: str) -> dict:
    return max((d for d in detections if d["label"] == label), key=lambda d: d["score"])


def test_independent_score_does_not_change_with_the_other_names():
    feats, times, text = _video_with_related_names()
    alone = localize(feats, times, text[:1], ["a"], INDEPENDENT, duration=100 / FPS)
    with_others = localize(feats, times, text, ["a", "b", "c"], INDEPENDENT, duration=100 / FPS)
    mine = [d for d in with_others if d["label"] == "a"]
    assert len(mine) == len(alone) >= 1
    for x, y in zip(alone, mine):  # same segments, same scores, same order
        assert x["segment"] == pytest.approx(y["segment"], abs=1e-9)
        assert x["score"] == pytest.approx(y["score"], abs=1e-6)
    assert tiou_matrix([_best(alone, "a")["segment"]], [[30 / FPS, 60 / FPS]])[0, 0] >= 0.85


def test_relative_score_changes_with_the_other_names():
    feats, times, text = _video_with_related_names()
    alone = _best(localize(feats, times, text[:1], ["a"], duration=100 / FPS), "a")
    shared = _best(localize(feats, times, text, ["a", "b", "c"], duration=100 / FPS), "a")
    assert abs(alone["score"] - shared["score"]) > 0.01


def test_independent_curve_is_the_sigmoid_of_the_cosine_above_its_median():
    # median 0.2; elevations 0, 0, 0, 0.04 (= the margin: 0.5), 0.1; slope 100 (CLIP's scale)
    feats, text = _frames_with_cosines([0.2, 0.2, 0.2, 0.24, 0.3])
    expected = [_sigmoid(-4.0)] * 3 + [0.5, _sigmoid(6.0)]
    cfg = LocalizerConfig(class_score="independent", smooth_window=1)
    np.testing.assert_allclose(class_curves(feats, text, cfg)[:, 0], expected, atol=1e-12)
    cos = np.array([[0.2, 0.5], [0.2, 0.5], [0.3, 0.5]])  # column by column: the other column changes nothing
    np.testing.assert_allclose(independent_evidence(cos, 100.0, 0.04)[:, 0], [_sigmoid(-4)] * 2 + [_sigmoid(6)])
    np.testing.assert_allclose(independent_evidence(cos, 100.0, 0.04)[:, 1], [_sigmoid(-4)] * 3)


def test_independent_segment_of_a_step_scores_inside_minus_flanks():
    # 40 snippets at cosine 0.2, snippets 10..19 at 0.3: curve sigmoid(6) inside, sigmoid(-4) around
    feats, text = _frames_with_cosines([0.3 if 10 <= t < 20 else 0.2 for t in range(40)])
    times = (np.arange(40) + 0.5) / FPS
    cfg = LocalizerConfig(class_score="independent", smooth_window=1)
    (top, *_) = localize(feats, times, text, ["step"], cfg, duration=40 / FPS)
    assert top["segment"] == pytest.approx([10 / FPS, 20 / FPS])
    assert top["score"] == pytest.approx(_sigmoid(6.0) - _sigmoid(-4.0), abs=1e-9)


def test_constant_features_give_no_independent_segment():
    feats, text = _frames_with_cosines([0.25] * 30)
    np.testing.assert_allclose(class_curves(feats, text, INDEPENDENT), _sigmoid(-4.0), atol=1e-12)
    assert localize(feats, (np.arange(30) + 0.5) / FPS, text, ["x"], INDEPENDENT) == []


def test_default_is_relative():
    assert LocalizerConfig().class_score == "relative"


@pytest.mark.parametrize("settings", [{"class_score": "absolute"}, {"class_score": None},
                                      {"independent_margin": float("nan")}, {"independent_margin": "0.04"}])
def test_bad_class_score_settings_are_input_errors(settings):
    with pytest.raises(InputError, match="relative or independent|independent_margin"):
        LocalizerConfig(**settings)
