"""Reading ActivityNet-style annotations (``{"classes": [...], "database": {video_id:
{"subset", "duration", "fps", "annotations": [{"segment", "label"}]}}}``) under a
dataset's ``LoadingRules``: which videos, which instances, which classes and subsets.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from psftr_core.data.dataset_kind import LoadingRules
from psftr_core.data.feature_dataset import Annotation
from psftr_core.errors import InputError
from psftr_core.segments import clip_to_video_start


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def parse_annotations(
    data: Any,
    path: Path,
    classes: list[str],
    rules: LoadingRules,
    feature_ids: set[str],
) -> tuple[dict[str, tuple[str, dict, list[Annotation]]], dict[str, Any]]:
    """Validate the ActivityNet-style database; returns {video_id: (key, entry, annotations)} and counts."""
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise InputError(f"annotations {path} must be an object with a 'database' mapping video ids to videos")
    known = set(classes)
    parsed: dict[str, tuple[str, dict, list[Annotation]]] = {}
    counts: dict[str, Any] = {"total": 0, "missing": 0, "unknown": Counter(), "empty": 0, "before_zero": 0,
                              "clipped": 0}
    for key in sorted(data["database"]):
        entry = data["database"][key]
        if not isinstance(entry, dict) or not isinstance(entry.get("subset"), str):
            raise InputError(f"annotations {path}: video {key!r} needs a 'subset' string")
        video_id = _feature_id(key, rules, feature_ids)
        if video_id in rules.excluded_videos:
            continue
        counts["total"] += 1
        if video_id in parsed:  # "abc" and "v_abc" both name the features v_abc.npy
            raise InputError(
                f"annotations {path}: videos {parsed[video_id][0]!r} and {key!r} are both video {video_id!r}; "
                f"keep one of them"
            )
        if video_id not in feature_ids:
            counts["missing"] += 1
            continue
        parsed[video_id] = (key, entry, _video_annotations(entry, key, path, known, rules, counts))
    return parsed, counts


def _feature_id(key: str, rules: LoadingRules, feature_ids: set[str]) -> str:
    """The video id (feature file name) of annotation key ``key``."""
    if rules.v_prefix and key not in feature_ids:
        # Official ActivityNet keys lack GAP's "v_" prefix (or the features do).
        if f"v_{key}" in feature_ids:
            return f"v_{key}"
        if key.startswith("v_") and key[2:] in feature_ids:
            return key[2:]
    return key


def _video_annotations(
    entry: dict, key: str, path: Path, known: set[str], rules: LoadingRules, counts: dict[str, Any]
) -> list[Annotation]:
    """The instances of one video that the rules keep; ``counts`` those dropped or clipped."""
    fps = finite_number(entry.get("fps"))
    raw = entry.get("annotations", [])
    if not isinstance(raw, list):
        raise InputError(f"annotations {path}: video {key!r}: 'annotations' must be a list")
    annotations = []
    for item in raw:
        segment = item.get("segment") if isinstance(item, dict) else None
        label = item.get("label") if isinstance(item, dict) else None
        if (
            not isinstance(segment, (list, tuple))
            or len(segment) != 2
            or finite_number(segment[0]) is None
            or finite_number(segment[1]) is None
            or not isinstance(label, str)
        ):
            raise InputError(
                f"annotations {path}: video {key!r} has an instance without a valid "
                f"'segment' [start, end] in seconds and 'label'"
            )
        start, end = float(segment[0]), float(segment[1])
        if label in rules.ignore_labels:
            continue
        if label not in known:
            counts["unknown"][label] += 1
            continue
        if end - start <= 0:
            counts["empty"] += 1
            continue
        in_video = clip_to_video_start(start, end)
        if in_video is None:
            counts["before_zero"] += 1
            continue
        if in_video[0] != start:
            counts["clipped"] += 1
        start, end = in_video
        length = end - start
        if rules.min_instance_seconds is not None and length <= rules.min_instance_seconds:
            continue
        if rules.min_instance_frames is not None and fps and length <= rules.min_instance_frames / fps:
            continue
        annotations.append(Annotation(start, end, label))
    return annotations


# Seconds an end may pass the duration unremarked: durations are often written with fewer digits.
END_TOLERANCE = 1e-3


def fit_to_duration(video_id: str, annotations: list[Annotation], duration: float,
                    found: dict[str, list[tuple[str, Annotation, float]]]) -> list[Annotation]:
    """The instances of a video that lie in it: those starting at or after its end are dropped
    (listed in ``found["past_end"]``), ends past it clipped to it (``found["end_clipped"]``)."""
    kept = []
    for annotation in annotations:
        if annotation.start >= duration:
            found["past_end"].append((video_id, annotation, duration))
            continue
        if annotation.end > duration + END_TOLERANCE:
            found["end_clipped"].append((video_id, annotation, duration))
            annotation = Annotation(annotation.start, duration, annotation.label)
        kept.append(annotation)
    return kept


def first_instances(found: list[tuple[str, Annotation, float]], limit: int = 3) -> str:
    """The first few instances of an anomaly in words: "v1 at 500-900 s in a 49.6 s video; ..."."""
    text = "; ".join(f"{video} at {a.start:g}-{a.end:g} s in a {duration:.4g} s video"
                     for video, a, duration in found[:limit])
    return text + ("; ..." if len(found) > limit else "")


def classes_from_annotations(data: Any, path: Path) -> list[str]:
    """The file's ``classes`` list (duplicates dropped), else every label that occurs, sorted."""
    if isinstance(data, dict) and "classes" in data:
        classes = data["classes"]
        # An empty list is an unlabelled dataset (what `psftr extract` writes): usable for
        # detection, refused by splits() for training and evaluation.
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise InputError(f"annotations {path}: 'classes' must be a list of class names")
        return list(dict.fromkeys(classes))
    # No class list: every label that occurs is a class.
    labels = set()
    database = data.get("database") if isinstance(data, dict) else None
    if isinstance(database, dict):
        for entry in database.values():
            for item in entry.get("annotations", []) if isinstance(entry, dict) else []:
                if isinstance(item, dict) and isinstance(item.get("label"), str):
                    labels.add(item["label"])
    if not labels:
        raise InputError(f"annotations {path} has no 'classes' list and no labelled instances")
    return sorted(labels)


def choose_subsets(
    name: str,
    choice: Any,
    data: Any,
    path: Path,
) -> tuple[str | None, str | None]:
    """(train, test) subsets: the first candidate pair of a built-in (``choice`` = pairs) that
    matches a subset present, or a dataset.yaml's choice (either None: found by its usual names)."""
    all_subsets = sorted({e.get("subset") for e in data["database"].values() if isinstance(e, dict)})
    if choice and isinstance(choice[0], tuple):  # built-in: candidate (train, test) pairs
        for train, test in choice:
            if train in all_subsets or test in all_subsets:
                return train, test
        expected = " or ".join(f"{t}/{v}" for t, v in choice)
        raise InputError(
            f"dataset {name}: annotations {path} have subsets {', '.join(all_subsets)}; expected {expected}"
        )
    train, test = choice
    for role, value in (("train_subset", train), ("test_subset", test)):
        if value is not None and value not in all_subsets:
            raise InputError(
                f"dataset {name}: {role} {value!r} matches no video in {path} "
                f"(subsets present: {', '.join(all_subsets)})"
            )
    if train is None:
        train = next((s for s in ("training", "train") if s in all_subsets), None)
    if test is None:
        test = next((s for s in ("validation", "val") if s in all_subsets), None)
    return train, test

