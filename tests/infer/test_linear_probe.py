"""Reference probes: the ridge actionness, its Platt scaling and the actionness × similarity
detector (probe A raw, probe B through the learned visual->text map), on hand-made data."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from psftr_core.data.feature_dataset import Annotation
from psftr_core.errors import InputError
from psftr_core.infer.linear_probe import fit_actionness, platt_scaling
from psftr_core.infer.probes import ProbeConfig, detections_from_scores, fit_actionness_probe


class _MemoryDataset:
    """The part of FeatureDataset the probes read: one snippet per second (snippet i
    covers [i, i + 1) s, centre i + 0.5), features held in memory."""

    def __init__(self) -> None:
        self.features: dict[str, np.ndarray] = {}
        self.videos: list[SimpleNamespace] = []

    def add(self, video_id: str, features: np.ndarray, annotations: list[tuple[str, float, float]]) -> None:
        self.features[video_id] = features
        self.videos.append(SimpleNamespace(video_id=video_id, duration=float(len(features)),
                                           annotations=[Annotation(s, e, label) for label, s, e in annotations]))

    def snippet_times(self, video_id: str) -> np.ndarray:
        return np.arange(len(self.features[video_id])) + 0.5

    def load_features(self, video_id: str) -> np.ndarray:
        return self.features[video_id]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _toy_actionness_data() -> tuple[_MemoryDataset, np.ndarray, np.ndarray]:
    """Seen class "a" frames near e0, background near e1, an instance of "b" (not seen) near e2.

    Returns the dataset, all unit features [n, 4] in video order and the 0/1 target [n]
    ("a" only: "b" is unknown when fitting on the seen classes).
    """
    rng = np.random.default_rng(0)
    data = _MemoryDataset()
    xs, ys = [], []
    for video_id, spans in (("v0", [("a", 5.0, 14.9), ("b", 20.0, 25.0)]), ("v1", [("a", 0.0, 8.0)])):
        base = np.tile(np.eye(4)[1], (30, 1))
        target = np.zeros(30)
        for label, start, end in spans:
            first, last = int(start), int(np.floor(end - 0.5))  # snippets whose centre lies in [start, end]
            base[first : last + 1] = np.eye(4)[0 if label == "a" else 2]
            target[first : last + 1] = float(label == "a")
        feats = base + 0.1 * rng.standard_normal((30, 4))
        data.add(video_id, feats, spans)
        xs.append(_unit(feats))
        ys.append(target)
    return data, np.concatenate(xs), np.concatenate(ys)


def test_ridge_actionness_is_the_closed_form_ridge_on_seen_classes_only():
    data, x, y = _toy_actionness_data()
    ridge = 0.5
    fitted = fit_actionness(data, data.videos, ["a"], ridge=ridge)
    # The same problem as least squares on the augmented system: [X 1; sqrt(λn)·(I 0)] (w, b) = (y, 0).
    n, dim = x.shape
    system = np.vstack([np.hstack([x, np.ones((n, 1))]),
                        np.hstack([np.sqrt(ridge * n) * np.eye(dim), np.zeros((dim, 1))])])
    expected = np.linalg.lstsq(system, np.concatenate([y, np.zeros(dim)]), rcond=None)[0]
    np.testing.assert_allclose(fitted.weight, expected[:dim], atol=1e-10)
    assert fitted.bias == pytest.approx(expected[dim], abs=1e-10)


def test_ridge_actionness_separates_inside_from_outside_at_the_default_ridge():
    data, x, y = _toy_actionness_data()
    fitted = fit_actionness(data, data.videos, ["a"])  # λ = 10
    p = np.concatenate([fitted.predict(data.load_features(v.video_id)) for v in data.videos])
    assert p[y == 1].min() > 0.5 and p[y == 0].max() < 0.5
    assert ((p > 0) & (p < 1)).all()
    # the instance of "b" was not read: its e2 frames are background like the e1 frames
    assert fitted.predict(np.eye(4)[2:3])[0] < 0.5 and fitted.predict(np.eye(4)[0:1])[0] > 0.5
    with pytest.raises(InputError, match="inside"):
        fit_actionness(data, data.videos, ["c"])  # no snippet inside a seen-class instance


def test_platt_scaling_matches_the_hand_computed_optimum():
    # Two output values with 1/4 and 3/4 positives. Platt's smoothed targets (5/6 and 1/6
    # for 4 positives and 4 negatives) make the mean target 1/3 at f = 0 and 2/3 at f = 1,
    # so sigmoid(c) = 1/3 and sigmoid(a + c) = 2/3: c = -ln 2, a = 2 ln 2.
    outputs = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    targets = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=float)
    scale, offset = platt_scaling(outputs, targets)
    assert scale == pytest.approx(2 * np.log(2), abs=1e-8) and offset == pytest.approx(-np.log(2), abs=1e-8)
    # separable data still give a finite, increasing map
    scale, offset = platt_scaling(np.array([-1.0, -0.5, 0.5, 1.0]), np.array([0.0, 0.0, 1.0, 1.0]))
    assert np.isfinite([scale, offset]).all() and scale > 0


# A world where class meaning lives in a 3-d latent space: texts in dims 0-2; a frame of an
# action carries the latent in dims 0-2 (aligned: raw similarity works) or in dims 3-5
# (rotated: a copy of the text space orthogonal to every text, so only a learned map
# transfers), plus actionness in dim 6; background lies in dims 7-15.
SEEN = {f"seen{i}": sign * np.eye(3)[i // 2] for i, sign in zip(range(6), (1, -1) * 3)}  # ±e1, ±e2, ±e3
UNSEEN = {"unseen_a": _unit(np.array([1.0, 1.0, 0.0])), "unseen_b": _unit(np.array([0.0, 1.0, -1.0]))}
DIM = 16


def _text(latent: np.ndarray) -> np.ndarray:
    return np.concatenate([latent, np.zeros(DIM - 3)])


def _video(rng: np.random.Generator, length: int, instances: list[tuple[str, int, int]], rotated: bool) -> np.ndarray:
    """[length, DIM] features; instance (class, first, last) covers snippets first..last."""
    feats = np.zeros((length, DIM))
    feats[:, 7:] = _unit(rng.standard_normal((length, DIM - 7)))  # background
    for name, first, last in instances:
        latent = {**SEEN, **UNSEEN}[name]
        meaning = slice(3, 6) if rotated else slice(0, 3)
        feats[first : last + 1] = 0.0
        feats[first : last + 1, meaning] = latent
        feats[first : last + 1, 6] = 1.0
        feats[first : last + 1, 7:] = 0.05 * rng.standard_normal((last - first + 1, DIM - 7))
    return feats


def _world(rotated: bool) -> tuple[_MemoryDataset, np.ndarray]:
    """Training videos (one per seen class, instance at 10-25 s) and a test video
    [60, DIM] with unseen_a at 8-20 s (snippets 8..19) and unseen_b at 32-50 s (32..49)."""
    rng = np.random.default_rng(1)
    data = _MemoryDataset()
    for name in SEEN:
        data.add(f"train_{name}", _video(rng, 40, [(name, 10, 24)], rotated), [(name, 10.0, 25.0)])
    test = _video(rng, 60, [("unseen_a", 8, 19), ("unseen_b", 32, 49)], rotated)
    return data, test


SEEN_TEXT = {name: _text(latent) for name, latent in SEEN.items()}
NAMES = list(UNSEEN)
UNSEEN_TEXT = np.stack([_text(UNSEEN[name]) for name in NAMES])
TRUTH = {"unseen_a": [8.0, 20.0], "unseen_b": [32.0, 50.0]}


def _found(detections: list[dict]) -> dict[str, list[float]]:
    """The best-scoring detection's segment per label."""
    best: dict[str, list[float]] = {}
    for det in detections:  # highest score first
        best.setdefault(det["label"], det["segment"])
    return best


def test_probe_a_finds_planted_unseen_segments_with_label_and_boundaries():
    data, test = _world(rotated=False)
    probe = fit_actionness_probe(data, data.videos, SEEN_TEXT)
    assert probe.text_map is None
    out = probe.detect(test, np.arange(60) + 0.5, UNSEEN_TEXT, NAMES, duration=60.0)
    assert {d["label"] for d in out[:2]} == set(NAMES)  # the two planted instances come first
    for name, (start, end) in TRUTH.items():
        segment = _found(out)[name]
        assert abs(segment[0] - start) <= 1.0 and abs(segment[1] - end) <= 1.0, (name, segment)
    assert out[0]["score"] > 0.5 and all(d["score"] <= out[0]["score"] for d in out)


def test_probe_b_transfers_a_rotated_text_space_where_probe_a_cannot():
    data, test = _world(rotated=True)
    times = np.arange(60) + 0.5
    probe_a = fit_actionness_probe(data, data.videos, SEEN_TEXT)
    probe_b = fit_actionness_probe(data, data.videos, SEEN_TEXT, mapped=True)
    inside_a, inside_b = slice(8, 20), slice(32, 50)

    # Raw similarity is 0 with every text: probe A's softmax is uniform, its classes tie.
    scores_a = probe_a.class_scores(test, UNSEEN_TEXT)
    np.testing.assert_allclose(scores_a[:, 0], scores_a[:, 1], atol=1e-9)
    # The map learned on the seen classes sends each unseen instance to its own text.
    scores_b = probe_b.class_scores(test, UNSEEN_TEXT)
    assert (scores_b[inside_a, 0] > 0.5).all() and (scores_b[inside_a, 1] < 0.05).all()
    assert (scores_b[inside_b, 1] > 0.5).all() and (scores_b[inside_b, 0] < 0.05).all()
    assert scores_b[inside_a, 0].mean() > 1.5 * scores_a[inside_a, 0].mean()

    out = probe_b.detect(test, times, UNSEEN_TEXT, NAMES, duration=60.0)
    assert {d["label"] for d in out[:2]} == set(NAMES)
    for name, (start, end) in TRUTH.items():
        segment = _found(out)[name]
        assert abs(segment[0] - start) <= 1.0 and abs(segment[1] - end) <= 1.0, (name, segment)


def test_segment_score_contrast_prefers_the_whole_action_and_mean_the_fragment():
    # One class: 0.4 at snippets 8-9 and 20-21, 0.8 at 10-19. Runs: 8..21 (thresholds
    # 0.1-0.4) and 10..19 (0.5-0.8); tIoU 10/14 > 0.5, so NMS keeps one.
    curve = np.zeros((40, 1))
    curve[8:22] = 0.4
    curve[10:20] = 0.8
    times = np.arange(40) + 0.5
    # contrast: 8..21 has mean 9.6/14 and 4-snippet flanks of 0; 10..19 has 0.8 - 0.4
    (whole,) = detections_from_scores(curve, times, ["x"], ProbeConfig())
    assert whole["segment"] == [8.0, 22.0] and whole["score"] == pytest.approx(9.6 / 14)
    (fragment,) = detections_from_scores(curve, times, ["x"], ProbeConfig(segment_score="mean"))
    assert fragment["segment"] == [10.0, 20.0] and fragment["score"] == pytest.approx(0.8)
    with pytest.raises(InputError, match="segment_score"):
        detections_from_scores(curve, times, ["x"], ProbeConfig(segment_score="max"))


def test_probe_rejects_mismatched_inputs_and_returns_nothing_for_an_empty_video():
    data, test = _world(rotated=True)
    probe_b = fit_actionness_probe(data, data.videos, SEEN_TEXT, mapped=True)
    times = np.arange(60) + 0.5
    with pytest.raises(InputError, match="text width"):
        probe_b.detect(test, times, UNSEEN_TEXT[:, :8], NAMES)
    with pytest.raises(InputError, match="class names"):
        probe_b.detect(test, times, UNSEEN_TEXT, NAMES[:1])
    with pytest.raises(InputError, match="snippet times"):
        probe_b.detect(test, times[:10], UNSEEN_TEXT, NAMES)
    assert probe_b.detect(np.zeros((0, DIM)), [], UNSEEN_TEXT, NAMES) == []
