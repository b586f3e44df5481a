"""Dataset anomalies (issue 27, mechanism 8): one warning per kind with the count and the
first ids, and a refusal naming the file and the id for what cannot be right."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from psftr_core.data.annotations import parse_annotations
from psftr_core.data.dataset_kind import LoadingRules
from psftr_core.data.datasets import load_dataset
from psftr_core.errors import InputError
from psftr_core.io.json_file import read_json_file


def write_dataset(root: Path, database: dict, widths: dict[str, int] | None = None) -> Path:
    """A dataset.yaml folder: classes A and B, one [4, D] feature file per video (D = 8)."""
    (root / "features").mkdir(parents=True)
    (root / "annotations.json").write_text(json.dumps({"classes": ["A", "B"], "database": database}))
    for video in database:
        np.save(root / "features" / f"{video}.npy", np.ones((4, (widths or {}).get(video, 8)), np.float32))
    (root / "dataset.yaml").write_text(yaml.safe_dump({"annotations": "annotations.json", "features": "features"}))
    return root


def video(*segments: tuple[float, float], duration: float = 10.0) -> dict:
    return {"subset": "validation", "duration": duration,
            "annotations": [{"segment": list(s), "label": "A"} for s in segments]}


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# ----------------------------------------------------------------------------- duplicates


def test_a_key_twice_is_refused_only_when_asked(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"database": {"v1": {"subset": "x"}, "v2": {}, "v1": {"subset": "y"}}}')
    assert read_json_file(path, "annotations")["database"]["v1"] == {"subset": "y"}  # plain JSON: last wins
    with pytest.raises(InputError, match=f"^annotations file {path} has the key 'v1' twice"):
        read_json_file(path, "annotations", unique_keys=True)


def test_a_video_id_twice_in_annotations_json_is_refused(tmp_path):
    root = write_dataset(tmp_path / "ds", {"v1": video((1, 2)), "v2": video((3, 4))})
    text = (root / "annotations.json").read_text()
    (root / "annotations.json").write_text(text.replace('"v2":', '"v1": {"subset": "training"}, "v2":'))
    with pytest.raises(InputError, match=r"annotations\.json has the key 'v1' twice"):
        load_dataset(root)


def test_two_keys_for_one_feature_file_are_refused():
    """With the v_ prefix rule, "abc" and "v_abc" would both be video v_abc: one would be lost."""
    data = {"database": {"abc": video((1, 2)), "v_abc": video((3, 4))}}
    with pytest.raises(InputError, match="videos 'abc' and 'v_abc' are both video 'v_abc'"):
        parse_annotations(data, Path("ann.json"), ["A"], LoadingRules(v_prefix=True), {"v_abc"})


# ----------------------------------------------------------------------------- instances past the end


def test_instances_past_the_end_are_dropped_or_clipped_with_one_warning_per_kind(tmp_path, caplog):
    database = {
        "v1": video((1, 2), (12, 15), (20, 30), duration=10.0),  # two start after the end
        "v2": video((8, 14), (50, 60), (70, 80), duration=9.5),  # one clipped, two after the end
        "v3": video((2, 10.0004), duration=10.0),  # within the rounding tolerance: unchanged
    }
    root = write_dataset(tmp_path / "ds", database)
    with caplog.at_level(logging.WARNING, logger="psftr_core"):
        ds = load_dataset(root)
    dropped, clipped = warnings_of(caplog)
    assert "dropped 4 instances" in dropped and "start after their video ends" in dropped, dropped
    assert "first: v1 at 12-15 s in a 10 s video; v1 at 20-30 s in a 10 s video; v2 at 50-60 s" in dropped
    assert dropped.endswith("; ...)") and str(root / "annotations.json") in dropped
    assert "clipped the end of 1 instance" in clipped and "v2 at 8-14 s in a 9.5 s video" in clipped, clipped
    assert [(a.start, a.end) for a in ds.videos["v1"].annotations] == [(1, 2)]
    assert [(a.start, a.end) for a in ds.videos["v2"].annotations] == [(8, 9.5)]
    assert [(a.start, a.end) for a in ds.videos["v3"].annotations] == [(2, 10.0004)]


def test_a_builtin_keeps_its_published_instances_past_the_end(tmp_path, caplog):
    """THUMOS14's published file has instances after their video's end; the benchmark scores them."""
    (tmp_path / "features").mkdir()
    np.save(tmp_path / "features" / "video_validation_0000856.npy", np.ones((311, 8), np.float16))
    with caplog.at_level(logging.WARNING, logger="psftr_core"):
        ds = load_dataset("thumos14", data_root=tmp_path)
    record = ds.videos["video_validation_0000856"]
    assert any(a.start > record.duration for a in record.annotations)
    assert not [w for w in warnings_of(caplog) if "after their video" in w or "clipped the end" in w]


# ----------------------------------------------------------------------------- feature files


def test_a_truncated_feature_file_is_refused_when_the_dataset_loads(tmp_path):
    root = write_dataset(tmp_path / "ds", {"v1": video((1, 2)), "v2": video((3, 4))})
    path = root / "features" / "v2.npy"
    path.write_bytes(path.read_bytes()[:-40])  # a video nobody uses yet: still refused
    with pytest.raises(InputError, match=rf"feature file {path} is truncated: .*\[4, 8\] float32 \(128 bytes\) "
                                         r"but it holds 88"):
        load_dataset(root)


def test_a_feature_file_of_another_width_is_named_with_both_widths(tmp_path):
    database = {"v1": video((1, 2)), "v2": video((3, 4)), "v3": video((5, 6))}
    root = write_dataset(tmp_path / "ds", database, widths={"v1": 6})  # the first video: once D's source
    with pytest.raises(InputError, match=rf"feature file {root / 'features' / 'v1.npy'} has D=6, but the other 2 "
                                         r"feature files have D=8"):
        load_dataset(root)


def test_a_width_disagreeing_with_the_text_names_a_feature_file(tmp_path):
    from psftr_core.infer.detect import _check_widths
    from psftr_core.infer.feature_sources import DatasetSource

    root = write_dataset(tmp_path / "ds", {"v1": video((1, 2)), "v2": video((3, 4))})
    source = DatasetSource(root, [])
    with pytest.raises(InputError, match=rf"\(e\.g\. {root / 'features' / 'v1.npy'}\) gives 8-d features but the "
                                         r"text embeddings \(CLIP x\) are 16-d"):
        _check_widths(source, None, SimpleNamespace(feature_dim=None), np.zeros((1, 16)), "CLIP x")
