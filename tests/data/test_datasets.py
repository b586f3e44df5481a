"""Dataset layer: built-in THUMOS14 / ActivityNet protocol and dataset.yaml directories."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml

from psftr_core.data.builtins.thumos14 import THUMOS14_EXCLUDED_VIDEOS
from psftr_core.data.datasets import load_dataset
from psftr_core.data.reference_files import reference_json, reference_path
from psftr_core.data.splits import random_splits
from psftr_core.errors import InputError

_REF = Path(__file__).resolve().parents[3] / "shared" / "data" / "reference" / "gap" / "data" / "Thumos14"
# The independent counts read the upstream file when present, else the shipped copy.
RAW_THUMOS = _REF / "Thumos14_annotations.json"
if not RAW_THUMOS.is_file():
    RAW_THUMOS = reference_path("thumos14_annotations.json")
EXCLUDED_NUMBERS = (270, 1292, 1496, 814, 504)

THUMOS_INFO = reference_json("thumos14_feature_info_8frame.json")


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_logged():
    """Warning messages the dataset loader logs (the CLI prints each as "psftr: warning: ...").

    The handler sits on the data layer's logger (the loading modules' loggers are its
    children), so it sees the records whether or not the CLI's logging setup stopped them
    from reaching the root logger.
    """
    handler = _Messages()
    logger = logging.getLogger("psftr_core.data")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def _raw_thumos() -> dict:
    return json.loads(RAW_THUMOS.read_text("utf-8"))


@pytest.fixture(scope="module")
def thumos_full(tmp_path_factory):
    """Built-in thumos14 over a root with a tiny feature file for every annotated video."""
    root = tmp_path_factory.mktemp("thumos14")
    (root / "features").mkdir()
    for video_id in _raw_thumos()["database"]:
        np.save(root / "features" / f"{video_id}.npy", np.zeros((2, 4), np.float16))
    return load_dataset("thumos14", data_root=root)


# ----------------------------------------------------------------------------- THUMOS14


def test_raw_thumos_file_has_413_videos_and_20_classes():
    raw = _raw_thumos()
    assert len(raw["database"]) == 413
    assert len(raw["classes"]) == 20
    subsets = [v["subset"] for v in raw["database"].values()]
    assert subsets.count("val") == 200 and subsets.count("test") == 213


def test_thumos_protocol(thumos_full):
    ds = thumos_full
    assert ds.name == "thumos14"
    assert ds.classes == _raw_thumos()["classes"]
    assert (ds.train_subset, ds.test_subset) == ("val", "test")
    assert len(ds.videos) == 413 - 5
    # The id format of the excluded videos matches the annotation file.
    assert THUMOS14_EXCLUDED_VIDEOS == tuple(f"video_test_{n:07d}" for n in EXCLUDED_NUMBERS)
    raw_ids = set(_raw_thumos()["database"])
    for video_id in THUMOS14_EXCLUDED_VIDEOS:
        assert video_id in raw_ids
        assert video_id not in ds.videos
    labels = {a.label for v in ds.videos.values() for a in v.annotations}
    assert "Ambiguous" not in labels
    assert labels == set(ds.classes)
    # Instances no longer than one 8-frame snippet are dropped (GAP's rule).
    assert [0.2, 0.2] not in [[a.start, a.end] for a in ds.videos["video_test_0001194"].annotations]
    assert not any(a.start == 108.8 for a in ds.videos["video_test_0001194"].annotations)
    assert ds.videos["video_validation_0000151"].fps == 30.0
    assert ds.videos["video_validation_0000151"].num_features == 125  # from the shipped 8-frame info


def _independent_counts(seen: set[str], unseen: set[str]) -> tuple[int, int, int]:
    """Eval videos, eval instances and train videos, by plain loops over the raw file."""
    eval_videos, eval_instances, train_videos = 0, 0, 0
    for video_id, video in _raw_thumos()["database"].items():
        if video_id in THUMOS14_EXCLUDED_VIDEOS:
            continue
        kept = [
            a["label"]
            for a in video["annotations"]
            if a["segment"][1] - a["segment"][0] > 8 / video["fps"]
        ]
        if video["subset"] == "test":
            hits = [label for label in kept if label in unseen]
            eval_videos += bool(hits)
            eval_instances += len(hits)
        elif video["subset"] == "val":
            train_videos += any(label in seen for label in kept)
    return eval_videos, eval_instances, train_videos


def test_split0_75_25_eval_set_matches_independent_count(thumos_full):
    split = thumos_full.split("75_25", 0)
    assert (len(split.seen), len(split.unseen)) == (15, 5)
    assert not set(split.seen) & set(split.unseen)
    assert set(split.seen) | set(split.unseen) == set(thumos_full.classes)
    n_eval, n_instances, n_train = _independent_counts(set(split.seen), set(split.unseen))
    evaluated = thumos_full.eval_videos(split)
    assert len(evaluated) == n_eval == 50
    assert all(v.subset == "test" for v in evaluated)
    assert all(a.label in split.unseen for v in evaluated for a in v.annotations)
    trained = thumos_full.train_videos(split)
    assert len(trained) == n_train
    assert all(v.subset == "val" and v.annotations for v in trained)
    assert all(a.label in split.seen for v in trained for a in v.annotations)
    gt = thumos_full.ground_truth(split)
    assert sorted(gt) == [v.video_id for v in evaluated]
    assert sum(len(items) for items in gt.values()) == n_instances
    first = gt[min(gt)][0]
    assert set(first) == {"segment", "label"} and first["label"] in split.unseen


@pytest.mark.parametrize("ratio,sizes", [("75_25", (15, 5)), ("50_50", (10, 10))])
def test_all_thumos_splits_load_and_count(thumos_full, ratio, sizes):
    splits = thumos_full.splits(ratio)
    assert len(splits) == 10
    for index, split in enumerate(splits):
        assert split.index == index
        assert (len(split.seen), len(split.unseen)) == sizes
        n_eval, n_instances, n_train = _independent_counts(set(split.seen), set(split.unseen))
        assert len(thumos_full.eval_videos(split)) == n_eval
        assert sum(len(v) for v in thumos_full.ground_truth(split).values()) == n_instances
        assert len(thumos_full.train_videos(split)) == n_train


def test_split_selection_errors(thumos_full):
    with pytest.raises(InputError, match="75_25, 50_50"):
        thumos_full.splits("70_30")
    with pytest.raises(InputError, match="out of range"):
        thumos_full.split("50_50", 10)


# A few real THUMOS14 ids for the small fake roots.
FEW = ["video_validation_0000151", "video_validation_0000152", "video_test_0000004", "video_test_0000006"]


def _tiny_thumos_root(root: Path, ids=FEW, dim: int = 16, features_name: str = "features") -> Path:
    (root / features_name).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for video_id in ids:
        length = THUMOS_INFO[video_id]["snippet_length"]
        np.save(root / features_name / f"{video_id}.npy", rng.standard_normal((length, dim)).astype(np.float16))
    return root


def test_builtin_thumos_tiny_root(tmp_path, warnings_logged):
    root = _tiny_thumos_root(tmp_path / "data")
    ds = load_dataset("thumos14", data_root=root)
    assert sorted(ds.videos) == sorted(FEW)
    warning = warnings_logged
    assert len(warning) == 1 and "404 of 408 videos have no feature file" in warning[0]
    feats = ds.load_features("video_validation_0000151")
    assert feats.dtype == np.float32 and feats.shape == (125, 16)
    assert ds.feature_dim == 16
    # 8 frames per feature at 30 fps: centres at (i + 0.5) * 33.3333 / 125.
    times = ds.snippet_times("video_validation_0000151")
    assert times.shape == (125,)
    np.testing.assert_allclose(times[:3], [0.4 / 3, 0.4, 2 / 3], atol=1e-9)
    np.testing.assert_allclose(times[-1], 124.5 * 8 / 30, atol=1e-9)
    split = ds.split("75_25", 0)  # unseen: BaseballPitch, HammerThrow, PoleVault, SoccerPenalty, ThrowDiscus
    assert [v.video_id for v in ds.train_videos(split)] == ["video_validation_0000151", "video_validation_0000152"]
    assert ds.eval_videos(split) == []  # the two test videos hold seen classes only
    split8 = ds.split("75_25", 8)
    assert "VolleyballSpiking" in split8.unseen and "CricketBowling" in split8.seen
    assert ds.ground_truth(split8) == {
        "video_test_0000006": [{"segment": [18.8, 57.3], "label": "VolleyballSpiking"}]
    }
    split1 = ds.split("75_25", 1)  # CricketBowling and VolleyballSpiking unseen
    gt = ds.ground_truth(split1)
    assert sorted(gt) == ["video_test_0000004", "video_test_0000006"]
    assert [item["segment"] for item in gt["video_test_0000004"]] == [[0.2, 1.1], [11.4, 12.2], [18.6, 20.8], [28.3, 29.7]]


def test_builtin_thumos_accepts_gap_folder_names_and_parent_root(tmp_path, monkeypatch):
    root = _tiny_thumos_root(tmp_path / "thumos14", ids=FEW[:2], features_name="CLIP_feature_8frame")
    # An own info file (16 frames per feature here) replaces the shipped one.
    info = {v: dict(THUMOS_INFO[v]) for v in FEW[:2]}
    (root / "Thumos14_info_8frame.json").write_text(json.dumps(info))
    ds = load_dataset("thumos14", data_root=tmp_path)  # parent of thumos14/
    assert ds.root == root and sorted(ds.videos) == FEW[:2]
    monkeypatch.setenv("PSFTR_DATA", str(tmp_path))
    assert sorted(load_dataset("thumos14").videos) == FEW[:2]


def test_feature_info_mismatch_is_an_error(tmp_path):
    root = tmp_path / "data"
    (root / "features").mkdir(parents=True)
    np.save(root / "features" / "video_test_0000004.npy", np.zeros((63, 8), np.float32))  # 126 expected
    ds = load_dataset("thumos14", data_root=root)
    with pytest.raises(InputError, match="63 features.*snippet_length 126"):
        ds.snippet_times("video_test_0000004")


def test_missing_data_root_names_the_path(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(InputError, match=str(missing)) as info:
        load_dataset("thumos14", data_root=missing)
    assert "features/<video_id>.npy" in str(info.value) and "psftr extract" in str(info.value)
    monkeypatch.delenv("PSFTR_DATA", raising=False)
    with pytest.raises(InputError, match="--data-root DIR or set PSFTR_DATA"):
        load_dataset("thumos14")
    monkeypatch.setenv("PSFTR_DATA", str(tmp_path))
    with pytest.raises(InputError, match=str(tmp_path / "anet")):
        load_dataset("anet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no feature folder in " + str(tmp_path / "empty")):
        load_dataset("thumos14", data_root=tmp_path / "empty")
    with pytest.raises(InputError, match="unknown dataset 'hacs'"):
        load_dataset("hacs")


def test_builtin_with_no_usable_video(tmp_path):
    (tmp_path / "features").mkdir()
    np.save(tmp_path / "features" / "not_a_thumos_video.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(InputError, match="no usable videos"):
        load_dataset("thumos14", data_root=tmp_path)


# ----------------------------------------------------------------------------- ActivityNet

ANET_INFO_IDS = ("v_cByxAZfw_hM", "v_kx0ZSPOOFJ0")  # in the shipped GAP info: 79 / 17 snippets


def _anet_root(root: Path, official: bool) -> Path:
    (root / "features").mkdir(parents=True)
    for video_id, length in zip(ANET_INFO_IDS, (79, 17)):
        np.save(root / "features" / f"{video_id}.npy", np.ones((length, 8), np.float16))
    train, test = ("training", "validation") if official else ("train", "val")
    database = {
        ANET_INFO_IDS[0]: {
            "subset": train,
            "duration": 50.84,
            "annotations": [
                {"segment": [1.0, 1.9], "label": "Arm wrestling"},  # 0.9 s: dropped
                {"segment": [2.0, 3.0], "label": "Arm wrestling"},  # exactly 1 s: dropped
                {"segment": [2.0, 3.5], "label": "Arm wrestling"},
                {"segment": [10.0, 30.0], "label": "Applying sunscreen"},
            ],
        },
        ANET_INFO_IDS[1]: {
            "subset": test,
            "duration": 9.47,
            "annotations": [{"segment": [0.5, 1.4], "label": "BMX"}, {"segment": [3.0, 9.0], "label": "BMX"}],
        },
    }
    if official:  # official file: keys without "v_", no fps, "taxonomy" etc.
        database = {k[2:]: v for k, v in database.items()}
        (root / "activity_net.v1-3.min.json").write_text(json.dumps({"version": "1.3", "database": database}))
    else:
        for video in database.values():
            video["fps"] = 25.0
        (root / "ActivityNet13_annotations.json").write_text(json.dumps({"database": database}))
    return root


def test_anet_gap_keys_match_unprefixed_feature_files(tmp_path):
    root = _anet_root(tmp_path, official=False)
    for path in (root / "features").iterdir():
        path.rename(path.with_name(path.name[2:]))
    ds = load_dataset("anet", data_root=root)
    assert sorted(ds.videos) == sorted(v[2:] for v in ANET_INFO_IDS)
    assert ds.videos["cByxAZfw_hM"].num_features == 79  # info found under the "v_" key


@pytest.mark.parametrize("official", [False, True])
def test_anet_drops_short_instances(tmp_path, official):
    ds = load_dataset("anet", data_root=_anet_root(tmp_path / "anet", official))
    assert len(ds.classes) == 200
    assert (ds.train_subset, ds.test_subset) == (("training", "validation") if official else ("train", "val"))
    assert sorted(ds.videos) == sorted(ANET_INFO_IDS)
    first = ds.videos["v_cByxAZfw_hM"]
    assert [(a.start, a.end, a.label) for a in first.annotations] == [
        (2.0, 3.5, "Arm wrestling"),
        (10.0, 30.0, "Applying sunscreen"),
    ]
    assert [(a.start, a.end) for a in ds.videos["v_kx0ZSPOOFJ0"].annotations] == [(3.0, 9.0)]
    # Timing from the shipped GAP info: 79 snippets over 50.56 s.
    assert first.num_features == 79 and first.feature_seconds == pytest.approx(50.56)
    assert first.fps == 25.0
    np.testing.assert_allclose(ds.snippet_times("v_cByxAZfw_hM")[:2], [0.32, 0.96], atol=1e-9)
    for ratio, sizes in (("75_25", (150, 50)), ("50_50", (100, 100))):
        splits = ds.splits(ratio)
        assert len(splits) == 10
        assert all((len(s.seen), len(s.unseen)) == sizes for s in splits)


def test_anet_requires_its_annotation_file(tmp_path):
    root = _anet_root(tmp_path, official=False)
    (root / "ActivityNet13_annotations.json").unlink()
    with pytest.raises(InputError, match="ActivityNet13_annotations.json.*activity_net.v1-3.min.json"):
        load_dataset("anet", data_root=root)


# ----------------------------------------------------------------------------- dataset.yaml


def _yaml_dataset(root: Path, config: dict | None = None, info: dict | None = None) -> Path:
    """Four classes, three videos: two training, one validation; D = 8."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "feats").mkdir()
    annotations = {
        "classes": ["jump", "run", "swim", "throw"],
        "database": {
            "a": {"subset": "training", "duration": 2.2, "fps": 30.0, "annotations": [
                {"segment": [0.2, 1.0], "label": "jump"}, {"segment": [1.0, 2.0], "label": "run"}]},
            "b": {"subset": "training", "duration": 10.0, "annotations": [
                {"segment": [1.0, 4.0], "label": "swim"}, {"segment": [5.0, 6.0], "label": "dance"}]},
            "c": {"subset": "validation", "duration": 10.0, "annotations": [
                {"segment": [2.0, 3.0], "label": "throw"}, {"segment": [4.0, 8.0], "label": "jump"}]},
            "no_features": {"subset": "validation", "duration": 5.0, "annotations": []},
        },
    }
    (root / "ann.json").write_text(json.dumps(annotations))
    for video_id, length in (("a", 5), ("b", 4), ("c", 4)):
        np.save(root / "feats" / f"{video_id}.npy", np.full((length, 8), 0.5, np.float16))
    config = {"name": "toy", "annotations": "ann.json", "features": "feats", **(config or {})}
    if info is not None:
        (root / "info.json").write_text(json.dumps(info))
        config["feature_info"] = "info.json"
    (root / "dataset.yaml").write_text(yaml.safe_dump(config))
    return root


def test_yaml_dataset_loads_with_feature_fps(tmp_path, warnings_logged):
    root = _yaml_dataset(tmp_path / "toy", {"feature_fps": 2.0, "colour": "blue"})
    ds = load_dataset(root)
    err = "\n".join(warnings_logged)
    assert "ignoring unknown keys: colour" in err
    assert "1 of 4 videos have no feature file" in err
    assert "dropped 1 instances whose label is not a dataset class: dance" in err
    assert ds.name == "toy" and ds.root == root and ds.feature_fps == 2.0
    assert ds.classes == ["jump", "run", "swim", "throw"]
    assert (ds.train_subset, ds.test_subset) == ("training", "validation")
    assert sorted(ds.videos) == ["a", "b", "c"]
    assert ds.prompt == "a video of a person doing {}" and ds.text_embeddings is None
    # (i + 0.5) / feature_fps, clipped to the 2.2 s duration.
    np.testing.assert_allclose(ds.snippet_times("a"), [0.25, 0.75, 1.25, 1.75, 2.2])
    assert ds.videos["a"].num_features == 5 and ds.videos["a"].feature_seconds == pytest.approx(2.2)
    assert ds.videos["b"].feature_seconds == pytest.approx(2.0)
    feats = ds.load_features("b")
    assert feats.dtype == np.float32 and feats.shape == (4, 8) and float(feats[0, 0]) == 0.5
    # Also reachable through the dataset.yaml path itself.
    assert sorted(load_dataset(root / "dataset.yaml").videos) == ["a", "b", "c"]


def test_unlabelled_dataset_loads_for_detection_but_has_no_splits(tmp_path):
    """``classes: []`` (what ``psftr extract`` writes) is a dataset without labels."""
    root = _yaml_dataset(tmp_path / "toy", {"feature_fps": 2.0})
    data = json.loads((root / "ann.json").read_text())
    data["classes"] = []
    for entry in data["database"].values():
        entry["annotations"] = []
    (root / "ann.json").write_text(json.dumps(data))
    ds = load_dataset(root)
    assert ds.classes == [] and sorted(ds.videos) == ["a", "b", "c"]
    np.testing.assert_allclose(ds.snippet_times("b"), [0.25, 0.75, 1.25, 1.75])
    with pytest.raises(InputError, match="has no classes.*psftr detect --features"):
        ds.split("75_25", 0)


def test_yaml_dataset_feature_info_and_uniform_timing(tmp_path):
    info = {"b": {"snippet_length": 4, "snippet_duration": 3.0, "video_fps": 25.0, "frame_length": 75}}
    ds = load_dataset(_yaml_dataset(tmp_path / "toy", info=info))
    np.testing.assert_allclose(ds.snippet_times("b"), [0.375, 1.125, 1.875, 2.625])
    assert ds.videos["b"].fps == 25.0 and ds.videos["b"].feature_seconds == 3.0
    # No info entry and no feature_fps: spread evenly over the 10 s duration.
    np.testing.assert_allclose(ds.snippet_times("c"), [1.25, 3.75, 6.25, 8.75])


def test_yaml_dataset_random_splits_and_protocol(tmp_path):
    ds = load_dataset(_yaml_dataset(tmp_path / "toy"))
    assert ds.split_source == "random"
    splits = ds.splits("50_50")
    assert splits == random_splits(["jump", "run", "swim", "throw"], "50_50")
    assert splits == load_dataset(tmp_path / "toy").splits("50_50")  # same seed, same splits
    for split in splits + ds.splits("75_25"):
        assert set(split.seen) | set(split.unseen) == set(ds.classes)
    split = next(s for s in splits if "jump" in s.unseen and "throw" in s.seen)
    assert [v.video_id for v in ds.eval_videos(split)] == ["c"]
    assert ds.ground_truth(split) == {"c": [{"segment": [4.0, 8.0], "label": "jump"}]}
    train = {v.video_id: [a.label for a in v.annotations] for v in ds.train_videos(split)}
    assert all(label in split.seen for labels in train.values() for label in labels)


def test_yaml_dataset_own_splits_and_text_embeddings(tmp_path):
    root = _yaml_dataset(tmp_path / "toy", {"splits": "splits.json", "text_embeddings": "text.npz",
                                            "prompt": "someone is {}", "test_subset": "validation"})
    (root / "splits.json").write_text(json.dumps({"75_25": [{"seen": ["jump", "run", "swim"], "unseen": ["throw"]}]}))
    np.savez(root / "text.npz", **{c: np.full(8, i, np.float32) for i, c in enumerate(["jump", "run", "swim", "throw"])})
    ds = load_dataset(root)
    assert ds.prompt == "someone is {}"
    assert sorted(ds.text_embeddings) == ["jump", "run", "swim", "throw"]
    assert float(ds.text_embeddings["swim"][0]) == 2.0
    split = ds.split("75_25", 0)
    assert split.unseen == ["throw"]
    assert ds.ground_truth(split) == {"c": [{"segment": [2.0, 3.0], "label": "throw"}]}
    assert [v.video_id for v in ds.train_videos(split)] == ["a", "b"]
    with pytest.raises(InputError, match="no 50_50 splits"):
        ds.splits("50_50")
    with pytest.raises(InputError, match="out of range"):
        ds.split("75_25", 1)
    (root / "splits.json").write_text(json.dumps({"75_25": [{"seen": ["jump", "hop"], "unseen": ["throw"]}]}))
    with pytest.raises(InputError, match="'hop'"):
        load_dataset(root)
    (root / "splits.json").write_text(json.dumps({"75_25": [{"seen": ["jump"], "unseen": ["throw"]}]}))
    np.savez(root / "text.npz", jump=np.zeros(8, np.float32))
    with pytest.raises(InputError, match="no vector for class 'run'"):
        load_dataset(root)


def test_yaml_dataset_can_reuse_standard_splits(tmp_path, warnings_logged):
    root = _tiny_thumos_root(tmp_path / "own")
    raw = reference_path("thumos14_annotations.json")
    config = {"annotations": str(raw), "features": "features", "splits": "thumos14",
              "train_subset": "val", "test_subset": "test", "feature_fps": 3.75}
    (root / "dataset.yaml").write_text(yaml.safe_dump(config))
    ds = load_dataset(root)
    assert ds.split_source == "standard:thumos14"
    assert ds.split("50_50", 3) == load_dataset("thumos14", data_root=root).split("50_50", 3)
    assert "409 of 413 videos have no feature file" in "\n".join(warnings_logged)
    np.testing.assert_allclose(ds.snippet_times("video_test_0000004")[:2], [0.4 / 3, 0.4])


def test_yaml_dataset_standard_splits_keyword(tmp_path):
    # `splits: thumos14` reuses the standard lists; they need THUMOS class names.
    with pytest.raises(InputError, match="not a class of the dataset"):
        load_dataset(_yaml_dataset(tmp_path / "toy", {"splits": "thumos14"}))


def test_yaml_dataset_bad_inputs(tmp_path):
    root = _yaml_dataset(tmp_path / "toy")
    config = yaml.safe_load((root / "dataset.yaml").read_text())
    del config["features"]
    (root / "dataset.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match="needs 'features'"):
        load_dataset(root)
    (root / "dataset.yaml").write_text("annotations: [unclosed")
    with pytest.raises(InputError, match="is not valid YAML"):
        load_dataset(root)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"annotations": "ann.json", "features": "feats",
                                                        "train_subset": "train"}))
    with pytest.raises(InputError, match="train_subset 'train' matches no video"):
        load_dataset(root)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"annotations": "ann.json", "features": "feats",
                                                        "prompt": "no placeholder"}))
    with pytest.raises(InputError, match="prompt"):
        load_dataset(root)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"annotations": "ann.json", "features": "nothing_here"}))
    with pytest.raises(InputError, match="nothing_here"):
        load_dataset(root)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"annotations": "ann.json", "features": "feats"}))
    (root / "ann.json").write_text("{garbled")
    with pytest.raises(InputError, match="cannot read annotations"):
        load_dataset(root)
    with pytest.raises(InputError, match="has no dataset.yaml"):
        load_dataset(tmp_path)


def test_feature_files_are_validated(tmp_path):
    root = _yaml_dataset(tmp_path / "toy")
    ds = load_dataset(root)
    np.save(root / "feats" / "b.npy", np.zeros((4, 6), np.float32))  # D differs from "a"
    with pytest.raises(InputError, match=r"b\.npy has D=6.*D=8"):
        ds.load_features("b")
    np.save(root / "feats" / "c.npy", np.zeros(4, np.float32))  # 1-D
    with pytest.raises(InputError, match=r"c\.npy has shape \[4\]"):
        ds.load_features("c")
    (root / "feats" / "c.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match=r"cannot read feature file .*c\.npy"):
        ds.load_features("c")
    with pytest.raises(InputError, match="unknown video"):
        ds.load_features("zzz")


def test_feature_files_with_nan_or_inf_are_named(tmp_path):
    root = _yaml_dataset(tmp_path / "toy")
    ds = load_dataset(root)
    features = np.full((4, 8), 0.5, np.float16)
    features[2, 3], features[3, 0] = np.nan, np.inf
    np.save(root / "feats" / "b.npy", features)
    with pytest.raises(InputError) as info:
        ds.load_features("b")
    assert str(info.value) == (
        f"feature file {root / 'feats' / 'b.npy'} has 2 NaN or infinite values (first in feature 2); re-extract it"
    )
    assert ds.load_features("c").shape == (4, 8)  # the others still load


def _with_early_instances(root: Path) -> None:
    """Video c gets one instance entirely before 0 s, one starting before 0 s, one empty."""
    path = root / "ann.json"
    data = json.loads(path.read_text())
    data["database"]["c"]["annotations"] += [
        {"segment": [-8.0, -2.0], "label": "jump"},
        {"segment": [-1.5, 1.0], "label": "swim"},
        {"segment": [5.0, 5.0], "label": "run"},
    ]
    path.write_text(json.dumps(data))


def test_ground_truth_before_0_s_is_dropped_and_early_starts_clipped(tmp_path, warnings_logged):
    root = _yaml_dataset(tmp_path / "toy")
    _with_early_instances(root)
    ds = load_dataset(root)
    assert [(a.start, a.end, a.label) for a in ds.videos["c"].annotations] == [
        (2.0, 3.0, "throw"), (4.0, 8.0, "jump"), (0.0, 1.0, "swim")]
    assert "dataset toy: dropped 1 instance ending before 0 s" in warnings_logged
    assert "dataset toy: dropped 1 instances with end <= start" in warnings_logged


def test_a_ground_truth_file_follows_the_same_rule_as_a_dataset(tmp_path, caplog):
    from psftr_core.evaluation.detection_map import load_ground_truth

    root = _yaml_dataset(tmp_path / "toy")
    _with_early_instances(root)
    data = json.loads((root / "ann.json").read_text())
    data["database"]["c"]["annotations"].pop()  # a file keeps zero-length instances (official scoring)
    (root / "file.json").write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="psftr_core.evaluation.detection_map"):
        from_file = load_ground_truth(root / "file.json", subset="validation")
    assert [r.getMessage() for r in caplog.records] == [
        f"ground-truth file {root / 'file.json'}: dropped 1 instance ending before 0 s"]
    dataset_gt = [[a.start, a.end] for a in load_dataset(root).videos["c"].annotations]
    assert [item["segment"] for item in from_file["c"]] == dataset_gt == [[2.0, 3.0], [4.0, 8.0], [0.0, 1.0]]


def test_yaml_dataset_without_usable_videos(tmp_path):
    root = _yaml_dataset(tmp_path / "toy")
    for path in (root / "feats").iterdir():
        path.unlink()
    with pytest.raises(InputError, match="no usable videos"):
        load_dataset(root)
