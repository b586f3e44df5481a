"""The built-in dataset registry: each built-in is one descriptor, read by loading, splits,
presets, evaluation tIoUs and the CLIP convention; a new one is a new descriptor plus its
entry in ``psftr_core.data.builtins.BUILTINS``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from psftr_core.config import load_config, preset, preset_for_dataset, preset_names
from psftr_core.data import builtins
from psftr_core.data.dataset_kind import BuiltinDataset, BuiltinLayout, ClipProvenance, LoadingRules
from psftr_core.data.datasets import load_dataset
from psftr_core.data.splits import standard_splits
from psftr_core.errors import InputError
from psftr_core.evaluation.detection_map import ANET_TIOUS, THUMOS_TIOUS
from psftr_core.evaluation.protocol import default_tious
from psftr_core.runtime.clip_source import builtin_clip, builtin_release

# A toy built-in as a new file would define it: classes from its annotations, no
# package data, no standard splits, its own tIoUs, CLIP and preset.
TOY = BuiltinDataset(
    name="toy",
    aliases=("toy-set",),
    layout=BuiltinLayout(feature_dirs=("feats",), annotation_files=("toy.json",), subset_pairs=(("fit", "eval"),)),
    rules=LoadingRules(ignore_labels=frozenset({"noise"}), frames_per_feature=4),
    tious=(0.25, 0.75),
    clip=ClipProvenance("ViT-B-32", "laion2b_s34b_b79k", "tag:laion2b_s34b_b79k"),
    preset={"model": {"num_queries": 7}, "train": {"epochs": 3, "lr_drop_epochs": [2]}},
)


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(builtins.BUILTINS, "toy", TOY)


def _toy_root(tmp_path):
    root = tmp_path / "toy"
    (root / "feats").mkdir(parents=True)
    database = {
        "a": {"subset": "fit", "duration": 8.0, "fps": 10.0,
              "annotations": [{"segment": [1.0, 3.0], "label": "hop"}, {"segment": [4.0, 5.0], "label": "noise"}]},
        "b": {"subset": "eval", "duration": 6.0, "fps": 10.0,
              "annotations": [{"segment": [2.0, 4.0], "label": "skip"}]},
    }
    (root / "toy.json").write_text(json.dumps({"database": database}), encoding="utf-8")
    for video_id in database:
        np.save(root / "feats" / f"{video_id}.npy", np.zeros((20, 4), np.float32))
    return root


def test_the_builtins_are_thumos14_and_anet_with_their_benchmarks():
    assert builtins.builtin_names() == ("thumos14", "anet") and preset_names() == ("thumos14", "anet", "small")
    assert builtins.BUILTINS["thumos14"].tious == THUMOS_TIOUS and default_tious("thumos14") == THUMOS_TIOUS
    assert builtins.BUILTINS["anet"].tious == ANET_TIOUS and default_tious("anet") == ANET_TIOUS
    assert default_tious(None) == default_tious("my_videos") == THUMOS_TIOUS
    assert builtins.standard_split_names() == ("thumos14", "anet")
    assert builtins.builtin_known_as("ActivityNet13") is builtins.BUILTINS["anet"]
    assert builtins.builtin_dataset("ANET") is None  # exact names; callers lower them
    for name in ("thumos14", "anet"):
        assert builtin_clip(name) == ("ViT-B-16", "openai", "tag:openai")


def test_a_registered_builtin_is_loadable_scored_and_configured(tmp_path, toy_registered):
    dataset = load_dataset("Toy", data_root=_toy_root(tmp_path))
    assert (dataset.name, dataset.classes, sorted(dataset.videos)) == ("toy", ["hop", "skip"], ["a", "b"])
    assert (dataset.train_subset, dataset.test_subset, dataset.frames_per_feature) == ("fit", "eval", 4)
    assert [(a.start, a.end, a.label) for a in dataset.videos["a"].annotations] == [(1.0, 3.0, "hop")]
    assert dataset.snippet_times("a")[:2].tolist() == pytest.approx([0.2, 0.6])  # (i + 0.5) * 4 frames / 10 fps
    assert dataset.split_source == "random"

    assert default_tious("toy") == (0.25, 0.75)
    cfg = preset("toy")
    assert (cfg.model.num_queries, cfg.train.epochs, cfg.train.lr_drop_epochs) == (7, 3, (2,))
    assert cfg.model.dec_layers == preset("thumos14").model.dec_layers  # the rest: the defaults
    assert preset_for_dataset("TOY-SET") == "toy" and "toy" in preset_names()
    config_file = tmp_path / "cfg.yaml"
    config_file.write_text("preset: toy\n", encoding="utf-8")
    assert load_config(config_file) == cfg

    release = SimpleNamespace(name="toy", split_source="standard:toy")
    assert builtin_release(release) == "toy"
    assert builtin_clip("toy") == ("ViT-B-32", "laion2b_s34b_b79k", "tag:laion2b_s34b_b79k")
    assert builtin_release(dataset) is None  # no standard splits: not the release by convention


def test_a_registered_builtin_appears_in_the_messages(tmp_path, toy_registered):
    with pytest.raises(InputError, match="use thumos14 or anet or toy, or a folder"):
        load_dataset("hacs")
    with pytest.raises(InputError, match="valid presets: thumos14, anet, toy"):
        preset("kinetics")
    with pytest.raises(InputError, match="no standard splits for dataset 'toy': they exist for thumos14, anet$"):
        standard_splits("toy", "75_25")
    empty = tmp_path / "empty"
    empty.mkdir()
    np.save(empty / "a.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(InputError, match=r"no annotation file in .*; expected .*empty/toy\.json$"):
        load_dataset("toy", data_root=empty)


def test_without_registration_the_toy_is_unknown():
    with pytest.raises(InputError, match="unknown dataset 'toy'"):
        load_dataset("toy")
    with pytest.raises(InputError, match="unknown preset 'toy'"):
        preset("toy")
    assert default_tious("toy") == THUMOS_TIOUS and preset_for_dataset("toy") == "thumos14"
