"""ActivityNet detection mAP: hand-computed cases, tie rules, thresholds, files, and a
comparison with an independent loop implementation of the official rules."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from psftr_core.errors import InputError
from psftr_core.evaluation.detection_map import (
    ANET_TIOUS,
    THUMOS_TIOUS,
    evaluate_detections,
    load_ground_truth,
    parse_tious,
)

THUMOS_GT = Path(__file__).resolve().parents[2] / "psftr_core" / "data" / "reference" / "thumos14_annotations.json"


def gt(*segments, label="A"):
    return [{"segment": list(s), "label": label} for s in segments]


def pred(segment, score, label="A"):
    return {"segment": list(segment), "label": label, "score": score}


# --------------------------------------------------------------------------- basics


def test_precision_envelope_hand_computed():
    # Ranks: TP, FP, TP -> precision 1, 1/2, 2/3; envelope at the TPs 1 and 2/3.
    ground = {"v1": gt((0, 10), (20, 30))}
    preds = {"v1": [pred((0, 10), 0.9), pred((50, 60), 0.8), pred((20, 30), 0.7)]}
    result = evaluate_detections(ground, preds, tious=[0.5])
    assert result.mAP == pytest.approx([(1 + 2 / 3) / 2], abs=1e-12)
    assert result.average == pytest.approx(5 / 6, abs=1e-12)


def test_envelope_uses_later_higher_precision():
    # Ranks: FP, TP, TP, FP -> precision 0, 1/2, 2/3, 1/2; envelope at the TPs 2/3, 2/3.
    ground = {"v1": gt((0, 10), (20, 30), (40, 50))}
    preds = {"v1": [pred((100, 110), 0.9), pred((0, 10), 0.8), pred((20, 30), 0.7), pred((200, 210), 0.6)]}
    result = evaluate_detections(ground, preds, tious=[0.5])
    assert result.mAP[0] == pytest.approx((2 / 3 + 2 / 3) / 3, abs=1e-12)


def test_thresholds_are_matched_independently():
    # At 0.5 the first prediction (tIoU 0.6) takes the instance; at 0.7 it cannot,
    # so the second one (tIoU 1) does: AP 1 and 1/2.
    ground = {"v1": gt((0, 10))}
    preds = {"v1": [pred((0, 6), 0.9), pred((0, 10), 0.8)]}
    result = evaluate_detections(ground, preds, tious=[0.5, 0.7])
    assert result.mAP == pytest.approx([1.0, 0.5], abs=1e-12)
    assert result.average == pytest.approx(0.75, abs=1e-12)
    assert result.per_class == {"A": pytest.approx([1.0, 0.5], abs=1e-12)}


def test_prediction_takes_highest_tiou_instance_not_first_listed():
    # g0 [0,10], g1 [2,12]. p1 = [2,12] has tIoU 2/3 with g0 and 1 with g1 -> takes g1.
    # p2 = [4,14]: g1 is taken, tIoU with g0 is 6/14 < 0.5 -> FP. AP = 1/2.
    # (Taking the first listed instance above the threshold would give AP 1.)
    ground = {"v1": gt((0, 10), (2, 12))}
    preds = {"v1": [pred((2, 12), 0.9), pred((4, 14), 0.8)]}
    assert evaluate_detections(ground, preds, tious=[0.5]).mAP[0] == pytest.approx(0.5, abs=1e-12)


# --------------------------------------------------------------------------- required cases


def test_duplicate_ground_truth_two_predictions_both_match():
    ground = {"v1": gt((0, 10), (0, 10))}
    preds = {"v1": [pred((0, 10), 0.9), pred((0, 10), 0.8)]}
    assert evaluate_detections(ground, preds, tious=[0.5]).mAP == [1.0]


def test_duplicate_ground_truth_single_prediction_matches_one():
    ground = {"v1": gt((0, 10), (0, 10))}
    preds = {"v1": [pred((0, 10), 0.9)]}
    assert evaluate_detections(ground, preds, tious=[0.5]).mAP == [0.5]


def test_tiou_exactly_at_threshold_is_a_true_positive():
    # [0,5] vs [0,10]: tIoU = 0.5 exactly -> TP at 0.5, FP at 0.6.
    ground = {"v1": gt((0, 10))}
    preds = {"v1": [pred((0, 5), 0.9)]}
    assert evaluate_detections(ground, preds, tious=[0.5, 0.6]).mAP == [1.0, 0.0]


def test_tiou_at_threshold_despite_float_rounding():
    # Exactly 0.3 in decimal, but 0.2999999999999998 in float arithmetic.
    ground = {"v1": gt((1.1, 1.4))}
    preds = {"v1": [pred((1.1, 2.1), 0.9)]}
    assert evaluate_detections(ground, preds, tious=[0.3, 0.4]).mAP == [1.0, 0.0]


def test_class_without_predictions_scores_zero_in_the_mean():
    ground = {"v1": gt((0, 10)) + gt((20, 30), label="B")}
    preds = {"v1": [pred((0, 10), 0.9)]}
    result = evaluate_detections(ground, preds, tious=[0.5])
    assert result.per_class == {"A": [1.0], "B": [0.0]}
    assert result.mAP == [0.5]
    assert result.counts["classes"] == 2
    assert result.counts["classes_without_predictions"] == 1
    assert result.classes_without_predictions == ["B"]


def test_predictions_on_video_without_ground_truth_are_counted_false_positives():
    # Ranks: FP (video v2 has no ground truth), TP -> precision at the TP = 1/2.
    ground = {"v1": gt((0, 10)), "v3": []}
    preds = {"v2": [pred((0, 10), 0.9)], "v3": [pred((0, 10), 0.85)], "v1": [pred((0, 10), 0.8)]}
    result = evaluate_detections(ground, preds, tious=[0.5])
    assert result.mAP[0] == pytest.approx(1 / 3, abs=1e-12)
    assert result.counts["predictions_on_videos_without_ground_truth"] == 2
    assert result.counts["evaluated_predictions"] == 3


def test_ground_truth_video_without_predictions_lowers_recall():
    ground = {"v1": gt((0, 10)), "v2": gt((0, 10))}
    preds = {"v1": [pred((0, 10), 0.9)]}
    result = evaluate_detections(ground, preds, tious=[0.5])
    assert result.mAP == [0.5]
    assert result.counts["ground_truth_videos"] == 2
    assert result.counts["ground_truth_videos_without_predictions"] == 1


def test_unknown_label_is_ignored_and_counted():
    ground = {"v1": gt((0, 10))}
    preds = {"v1": [pred((0, 10), 0.95, label="Zzz"), pred((0, 10), 0.9)]}
    result = evaluate_detections(ground, preds, tious=[0.5])
    assert result.mAP == [1.0]
    assert result.counts["predictions"] == 2
    assert result.counts["ignored_predictions_unknown_label"] == 1
    assert result.ignored_labels == ["Zzz"]


def test_classes_argument_restricts_the_mean():
    ground = {"v1": gt((0, 10)) + gt((20, 30), label="B")}
    preds = {"v1": [pred((0, 10), 0.9), pred((20, 30), 0.8, label="B")]}
    result = evaluate_detections(ground, preds, tious=[0.5], classes=["B", "C"])
    assert result.per_class == {"B": [1.0]}
    assert result.counts["ignored_predictions_unknown_label"] == 1
    assert result.counts["ignored_ground_truth_instances"] == 1
    assert result.classes_without_ground_truth == ["C"]


def test_no_predictions_at_all_gives_zero():
    result = evaluate_detections({"v1": gt((0, 10))}, {}, tious=THUMOS_TIOUS)
    assert result.mAP == [0.0] * 5 and result.average == 0.0


def test_to_dict_schema():
    result = evaluate_detections({"v1": gt((0, 10))}, {"v1": [pred((0, 10), 0.5)]}, tious="0.3,0.5")
    data = result.to_dict()
    assert set(data) == {"tious", "mAP", "average", "per_class", "counts"}
    assert data["tious"] == [0.3, 0.5] and data["mAP"] == [1.0, 1.0] and data["average"] == 1.0
    assert data["per_class"] == {"A": [1.0, 1.0]}
    json.dumps(data)  # plain Python types only


# --------------------------------------------------------------------------- tie rules


def test_score_ties_keep_list_order():
    ground = {"v1": gt((0, 10))}
    fp_first = {"v1": [pred((50, 60), 0.5), pred((0, 10), 0.5)]}
    tp_first = {"v1": [pred((0, 10), 0.5), pred((50, 60), 0.5)]}
    assert evaluate_detections(ground, fp_first, tious=[0.5]).mAP == [0.5]
    assert evaluate_detections(ground, tp_first, tious=[0.5]).mAP == [1.0]


def test_score_ties_keep_video_order_of_the_mapping():
    ground = {"v1": gt((0, 10))}
    fp_first = {"v2": [pred((0, 10), 0.5)], "v1": [pred((0, 10), 0.5)]}
    tp_first = {"v1": [pred((0, 10), 0.5)], "v2": [pred((0, 10), 0.5)]}
    assert evaluate_detections(ground, fp_first, tious=[0.5]).mAP == [0.5]
    assert evaluate_detections(ground, tp_first, tious=[0.5]).mAP == [1.0]


def test_equal_tiou_takes_first_listed_ground_truth():
    # p1 [5,15] overlaps [0,10] and [10,20] equally (1/3) and takes the first listed;
    # p2 equals [0,10]: if that is taken, p2 is a FP.
    preds = {"v1": [pred((5, 15), 0.9), pred((0, 10), 0.8)]}
    first_is_0_10 = evaluate_detections({"v1": gt((0, 10), (10, 20))}, preds, tious=[0.3])
    first_is_10_20 = evaluate_detections({"v1": gt((10, 20), (0, 10))}, preds, tious=[0.3])
    assert first_is_0_10.mAP == [0.5]
    assert first_is_10_20.mAP == [1.0]


# --------------------------------------------------------------------------- thresholds


def test_parse_tious_exact_decimals():
    assert parse_tious("0.3:0.7:0.1") == (0.3, 0.4, 0.5, 0.6, 0.7)
    assert parse_tious("0.5:0.95:0.05") == ANET_TIOUS
    assert parse_tious("0.1:0.3:0.1") == (0.1, 0.2, 0.3)  # float arange would miss or overshoot
    assert parse_tious("0.3, 0.5") == (0.3, 0.5)
    assert parse_tious("0.5") == (0.5,)
    assert parse_tious("0.1,0.3:0.5:0.1") == (0.1, 0.3, 0.4, 0.5)
    assert parse_tious("0.3:0.75:0.1") == (0.3, 0.4, 0.5, 0.6, 0.7)  # stop not on the grid
    assert THUMOS_TIOUS == (0.3, 0.4, 0.5, 0.6, 0.7)


@pytest.mark.parametrize(
    "spec", ["", "abc", "0", "1.5", "-0.1", "0.3:0.1:0.1", "0.3:0.5:0", "0.3,,0.5", "0.3,0.3", "0.3:0.5", "nan"]
)
def test_parse_tious_rejects(spec):
    with pytest.raises(InputError):
        parse_tious(spec)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "entry, message",
    [
        (pred((6, 5), 0.5), "reversed"),
        (pred((0, float("nan")), 0.5), "finite"),
        (pred((0, 5), float("inf")), "score"),
        ({"segment": [0, 5], "label": "A"}, "score"),
        ({"segment": [0, 5], "score": 0.5}, "expected"),
        (pred((0, 5), True), "score"),
    ],
)
def test_bad_prediction_names_the_video(entry, message):
    with pytest.raises(InputError, match=message) as info:
        evaluate_detections({"v1": gt((0, 10))}, {"video_x": [entry]}, tious=[0.5])
    assert "video_x" in str(info.value) and "\n" not in str(info.value)


def test_bad_ground_truth_segment_names_the_video():
    with pytest.raises(InputError, match="video_g.*reversed"):
        evaluate_detections({"video_g": gt((10, 0))}, {}, tious=[0.5])


def test_no_ground_truth_instances_is_an_input_error():
    with pytest.raises(InputError):
        evaluate_detections({"v1": []}, {}, tious=[0.5])


# --------------------------------------------------------------------------- ground-truth files


def _write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_load_ground_truth_subset_and_ambiguous(tmp_path):
    database = {
        "a": {"subset": "val", "annotations": gt((0, 5))},
        "b": {"subset": "test", "annotations": gt((1, 2)) + gt((3, 4), label="Ambiguous")},
        "c": {"subset": "test", "annotations": gt((3, 4), label="Ambiguous")},
    }
    path = _write(tmp_path, "gt.json", {"database": database})
    assert load_ground_truth(path, subset="test") == {
        "b": [{"segment": [1.0, 2.0], "label": "A"}],
        "c": [],
    }
    assert set(load_ground_truth(path)) == {"a", "b", "c"}
    with pytest.raises(InputError, match="subset 'train'.*test, val"):
        load_ground_truth(path, subset="train")


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("   \n", "empty"),
        ('{"database": {', "not valid JSON"),
        ("[1, 2]", "not an annotation file"),
        ('{"database": {"v": {"subset": "test", "annotations": [{"segment": [3, 1], "label": "A"}]}}}', "reversed"),
        ('{"database": {"v": {"subset": "test", "annotations": []}}}', "no annotated instances"),
        ('{"database": {"v": 5}}', "annotations"),
    ],
)
def test_load_ground_truth_bad_files(tmp_path, content, message):
    path = _write(tmp_path, "gt.json", content)
    with pytest.raises(InputError, match=message) as info:
        load_ground_truth(path)
    assert "\n" not in str(info.value)


def test_load_ground_truth_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_ground_truth(tmp_path / "nope.json")


def test_load_real_thumos_test_subset():
    raw = json.loads(THUMOS_GT.read_text())["database"]
    expected_videos = [v for v, r in raw.items() if r["subset"] == "test"]
    expected_instances = sum(
        1 for v in expected_videos for a in raw[v]["annotations"] if a["label"] != "Ambiguous"
    )
    ground = load_ground_truth(THUMOS_GT, subset="test")
    assert list(ground) == expected_videos and len(ground) == 213
    assert sum(len(x) for x in ground.values()) == expected_instances
    # Scoring the ground truth against itself gives AP 1 for every class.
    preds = {v: [dict(a, score=1.0) for a in anns] for v, anns in ground.items()}
    result = evaluate_detections(ground, preds, tious=THUMOS_TIOUS)
    assert len(result.per_class) == 20
    assert result.mAP == pytest.approx([1.0] * 5, abs=1e-12)


# --------------------------------------------------------------------------- property test


def _reference_tiou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / ((a[1] - a[0]) + (b[1] - b[0]) - inter)


def _reference_ap(ground, preds, thr):
    """The official rules as a plain loop: per class, rank, greedy match, interpolate."""
    labels = sorted({g["label"] for gs in ground.values() for g in gs})
    aps = []
    for label in labels:
        gts = [(v, tuple(g["segment"])) for v, gs in ground.items() for g in gs if g["label"] == label]
        ranked = sorted(
            ((p["score"], v, tuple(p["segment"])) for v, ps in preds.items() for p in ps if p["label"] == label),
            reverse=True,
        )
        used = [False] * len(gts)
        flags = []
        for _, video, seg in ranked:
            best, best_j = -1.0, None
            for j, (gv, gseg) in enumerate(gts):
                if gv != video or used[j]:
                    continue
                value = _reference_tiou(seg, gseg)
                if value > best:
                    best, best_j = value, j
            if best_j is not None and best >= thr - 1e-9:
                used[best_j] = True
                flags.append(1)
            else:
                flags.append(0)
        # Official interpolation: pad, envelope from the right, sum over recall changes.
        tp_run, precision, recall = 0, [], []
        for rank, flag in enumerate(flags, start=1):
            tp_run += flag
            precision.append(tp_run / rank)
            recall.append(tp_run / len(gts))
        mprec = [0.0] + precision + [0.0]
        mrec = [0.0] + recall + [1.0]
        for i in range(len(mprec) - 2, -1, -1):
            mprec[i] = max(mprec[i], mprec[i + 1])
        aps.append(sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1]))
    return labels, aps


def _random_instance(rng: np.random.Generator):
    labels = [f"c{k}" for k in range(int(rng.integers(1, 5)))]
    ground, preds = {}, {}
    for v in range(int(rng.integers(1, 7))):
        video = f"vid{v}"
        segments = []
        for _ in range(int(rng.integers(0, 6))):
            start = float(rng.uniform(0, 100))
            segments.append({"segment": [start, start + float(rng.uniform(1, 30))], "label": str(rng.choice(labels))})
        if segments and rng.random() < 0.3:
            segments.append(dict(segments[0]))  # duplicate ground truth
        ground[video] = segments
    for v in range(int(rng.integers(1, 9))):  # some videos have no ground truth
        video = f"vid{v}"
        dets = []
        for _ in range(int(rng.integers(0, 15))):
            if ground.get(video) and rng.random() < 0.6:
                base = ground[video][int(rng.integers(len(ground[video])))]
                jitter = rng.normal(0, 3, size=2)
                start, end = base["segment"][0] + jitter[0], base["segment"][1] + jitter[1]
                if end - start < 0.5:
                    end = start + 0.5
                label = base["label"] if rng.random() < 0.8 else str(rng.choice(labels))
            else:
                start = float(rng.uniform(0, 100))
                end = start + float(rng.uniform(1, 30))
                label = str(rng.choice(labels))
            dets.append({"segment": [float(start), float(end)], "label": label, "score": float(rng.random())})
        preds[video] = dets
    return ground, preds


def test_matches_independent_loop_implementation():
    rng = np.random.default_rng(20240607)
    compared = 0
    for _ in range(30):
        ground, preds = _random_instance(rng)
        if not any(ground.values()):
            continue
        scores = [p["score"] for ps in preds.values() for p in ps]
        assert len(set(scores)) == len(scores)  # no ties: the loop may rank them freely
        tious = random.Random(compared).choice([THUMOS_TIOUS, ANET_TIOUS, (0.1, 0.9)])
        result = evaluate_detections(ground, preds, tious=tious)
        for t_index, thr in enumerate(tious):
            labels, aps = _reference_ap(ground, preds, thr)
            assert list(result.per_class) == labels
            for label, ap in zip(labels, aps):
                assert result.per_class[label][t_index] == pytest.approx(ap, abs=1e-9)
            assert result.mAP[t_index] == pytest.approx(sum(aps) / len(aps), abs=1e-9)
        compared += 1
    assert compared >= 25


def test_zero_length_prediction_is_a_false_positive_not_an_error():
    # A degenerate model output [5, 5] inside GT [0, 10]: intersection 0 -> tIoU 0 -> FP.
    # The second prediction [0, 10] is then the only TP at rank 2: AP = precision 1/2.
    gt = {"v": [{"segment": [0.0, 10.0], "label": "A"}]}
    preds = {"v": [pred((5, 5), 0.9), pred((0, 10), 0.8)]}
    result = evaluate_detections(gt, preds, tious=[0.5])
    assert result.mAP == pytest.approx([0.5])
