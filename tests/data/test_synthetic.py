"""The synthetic CLIP-like dataset generator: determinism, file formats, structure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from psftr_core.errors import InputError
from psftr_core.data.synthetic import SyntheticConfig, generate_dataset, synthetic_config_from_dict

SMALL = dict(num_classes=8, num_groups=3, feature_dim=64, num_train_videos=6, num_test_videos=8,
             video_seconds=(30.0, 60.0), num_splits=10)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synth") / "data", SyntheticConfig(seed=3, **SMALL))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path, small):
    again = generate_dataset(tmp_path / "again", SyntheticConfig(seed=3, **SMALL))
    assert _files(again) == _files(small)
    other = generate_dataset(tmp_path / "other", SyntheticConfig(seed=4, **SMALL))
    first = sorted((small / "features").glob("*.npy"))[0].name
    assert not np.array_equal(np.load(small / "features" / first), np.load(other / "features" / first))
    assert (small / "annotations.json").read_bytes() != (other / "annotations.json").read_bytes()


def test_files_follow_formats_md(small):
    meta = yaml.safe_load((small / "dataset.yaml").read_text())
    assert meta["annotations"] == "annotations.json" and meta["features"] == "features"
    assert meta["train_subset"] == "training" and meta["test_subset"] == "validation"
    assert meta["feature_fps"] == 3.75 and "{}" in meta["prompt"]
    for key in ("feature_info", "text_embeddings", "splits"):
        assert (small / meta[key]).is_file()

    ann = json.loads((small / "annotations.json").read_text())
    info = json.loads((small / "feature_info.json").read_text())
    classes = ann["classes"]
    assert len(classes) == 8 and len(set(classes)) == 8
    db = ann["database"]
    assert sum(r["subset"] == "training" for r in db.values()) == 6
    assert sum(r["subset"] == "validation" for r in db.values()) == 8
    for vid, rec in db.items():
        feats = np.load(small / "features" / f"{vid}.npy")
        assert feats.dtype == np.float16 and feats.ndim == 2 and feats.shape[1] == 64
        entry = info[vid]
        assert set(entry) == {"snippet_length", "snippet_duration", "video_fps", "frame_length"}
        assert entry["snippet_length"] == feats.shape[0]
        assert entry["frame_length"] // 8 == feats.shape[0]  # one feature per 8 frames
        assert entry["snippet_duration"] == pytest.approx(feats.shape[0] * 8 / 30.0)
        assert rec["fps"] == 30.0 and 30.0 <= rec["duration"] <= 60.0
        assert rec["duration"] == pytest.approx(entry["frame_length"] / 30.0)
        assert np.linalg.norm(feats.astype(np.float32), axis=1).mean() == pytest.approx(10.0, rel=0.05)
        assert len(rec["annotations"]) >= 1
        ends = [0.0]
        for a in rec["annotations"]:
            s, e = a["segment"]
            assert a["label"] in classes
            assert 2.0 - 1e-3 <= e - s <= 30.0 + 1e-3  # instances of 2-30 s
            assert ends[-1] <= s and e <= rec["duration"]  # sorted, non-overlapping, inside
            ends.append(e)

    with np.load(small / "text_embeddings.npz") as npz:
        assert sorted(npz.files) == sorted(classes)
        for name in classes:
            assert npz[name].shape == (64,) and npz[name].dtype == np.float32
            assert np.linalg.norm(npz[name]) == pytest.approx(8.0, rel=0.15)


def test_splits_are_disjoint_cover_all_classes_and_rotate(small):
    classes = json.loads((small / "annotations.json").read_text())["classes"]
    splits = json.loads((small / "splits.json").read_text())
    assert set(splits) == {"75_25", "50_50"}
    for ratio, n_unseen in (("75_25", 2), ("50_50", 4)):
        assert len(splits[ratio]) == 10
        for split in splits[ratio]:
            assert len(split["unseen"]) == n_unseen
            assert not set(split["seen"]) & set(split["unseen"])
            assert sorted(split["seen"] + split["unseen"]) == sorted(classes)
        # every class is unseen in some split, and the splits are not all the same
        assert set().union(*(s["unseen"] for s in splits[ratio])) == set(classes)
        assert len({tuple(s["unseen"]) for s in splits[ratio]}) > 1


def test_test_videos_mix_seen_and_unseen_classes(small):
    db = json.loads((small / "annotations.json").read_text())["database"]
    split = json.loads((small / "splits.json").read_text())["75_25"][0]
    tests = [r for r in db.values() if r["subset"] == "validation"]
    assert all(len({a["label"] for a in r["annotations"]}) >= 2 for r in tests)
    mixed = [r for r in tests
             if {a["label"] for a in r["annotations"]} & set(split["unseen"])
             and {a["label"] for a in r["annotations"]} & set(split["seen"])]
    assert mixed, "some test video must hold both seen and unseen instances"


def _frame_text_stats(root: Path) -> tuple[float, float, float]:
    """Mean cosine of action frames with their own text, with other texts, and the
    share of action frames whose best text is their own."""
    ann = json.loads((root / "annotations.json").read_text())
    classes = ann["classes"]
    with np.load(root / "text_embeddings.npz") as npz:
        text = _unit(np.stack([npz[c] for c in classes]).astype(np.float64))
    own, other, top1 = [], [], []
    for vid, rec in ann["database"].items():
        feats = _unit(np.load(root / "features" / f"{vid}.npy").astype(np.float64))
        times = (np.arange(len(feats)) + 0.5) * 8 / 30.0
        cos = feats @ text.T
        for a in rec["annotations"]:
            s, e = a["segment"]
            inside = (times >= s + 1) & (times <= e - 1)  # away from the soft boundaries
            if not inside.any():
                continue
            k = classes.index(a["label"])
            own.append(cos[inside, k].mean())
            other.append(np.delete(cos[inside], k, axis=1).mean())
            top1.append((cos[inside].argmax(axis=1) == k).mean())
    return float(np.mean(own)), float(np.mean(other)), float(np.mean(top1))


def test_frames_match_their_text_better_but_not_perfectly(small):
    own, other, top1 = _frame_text_stats(small)
    assert own > other + 0.05
    assert 1.0 / 8 < top1 < 0.95  # above chance, not perfectly aligned


def test_default_geometry_is_in_the_clip_regime(tmp_path):
    # D = 512 as CLIP ViT-B/16: own-text cosine ~0.25-0.35, other texts ~0.15-0.2
    root = generate_dataset(tmp_path / "d512", SyntheticConfig(num_train_videos=4, num_test_videos=4))
    own, other, _ = _frame_text_stats(root)
    assert 0.24 < own < 0.35 and 0.14 < other < 0.23


def test_loads_with_dataset_loader(small):
    from psftr_core.data.datasets import load_dataset

    ds = load_dataset(small)
    assert len(ds.classes) == 8 and len(ds.videos) == 14
    assert ds.train_subset == "training" and ds.test_subset == "validation"
    assert ds.feature_dim == 64 and set(ds.text_embeddings) == set(ds.classes)
    vid = sorted(ds.videos)[0]
    feats = ds.load_features(vid)
    times = ds.snippet_times(vid)
    assert feats.shape[0] == len(times)
    assert times[0] == pytest.approx(0.5 * 8 / 30.0) and times[1] - times[0] == pytest.approx(8 / 30.0)
    split = ds.split("75_25", 0)
    assert len(split.unseen) == 2 and len(ds.splits("50_50")) == 10
    truth = ds.ground_truth(split)
    assert truth and all(seg["label"] in split.unseen for segs in truth.values() for seg in segs)


def test_rerun_replaces_its_own_output_but_refuses_a_foreign_dataset(tmp_path):
    root = generate_dataset(tmp_path / "d", SyntheticConfig(seed=1, **{**SMALL, "num_test_videos": 3}))
    generate_dataset(root, SyntheticConfig(seed=1, **{**SMALL, "num_test_videos": 2}))
    assert not (root / "features" / "synth_test_0002.npy").exists()  # stale feature removed
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "dataset.yaml").write_text("annotations: a.json\nfeatures: f\n")
    with pytest.raises(InputError):
        generate_dataset(foreign, SyntheticConfig(**SMALL))


def test_recorded_config_rebuilds_the_generator_config(small):
    recorded = json.loads((small / "synthetic_config.json").read_text())
    assert recorded["generator_version"] == 1
    assert synthetic_config_from_dict(recorded["config"]) == SyntheticConfig(seed=3, **SMALL)


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError):
        SyntheticConfig(num_classes=1).validate()
    with pytest.raises(ValueError):
        SyntheticConfig(instance_seconds=(10.0, 2.0)).validate()
    with pytest.raises(ValueError):
        SyntheticConfig(split_ratios=("75-25",)).validate()


TRANSFER = dict(num_classes=16, num_groups=4, feature_dim=128, num_train_videos=40, num_test_videos=30,
                video_seconds=(30.0, 60.0), num_splits=3, split_ratios=("75_25",))


def _unseen_frame_accuracy(root: Path) -> tuple[float, float, float]:
    """Share of unseen-class action frames classified right among the unseen classes, over
    the splits: by raw cosine, by a ridge map fitted on seen-class frames without the
    identity prior (the linear probe), and chance."""
    from psftr_core.data.datasets import load_dataset
    from psftr_core.infer.linear_probe import fit_linear_probe

    ds = load_dataset(root)
    raw, ridge, chance = [], [], []
    for split in ds.splits("75_25"):
        probe = fit_linear_probe(ds, ds.train_videos(split), {c: ds.text_embeddings[c] for c in split.seen},
                                 prior=False)
        text = _unit(np.stack([ds.text_embeddings[c] for c in split.unseen]).astype(np.float64))
        frames, labels = [], []
        for video in ds.eval_videos(split):
            times, feats = ds.snippet_times(video.video_id), ds.load_features(video.video_id).astype(np.float64)
            for a in video.annotations:
                inside = (times >= a.start + 1) & (times <= a.end - 1)  # away from the soft boundaries
                frames.append(feats[inside])
                labels += [split.unseen.index(a.label)] * int(inside.sum())
        x, y = np.concatenate(frames), np.asarray(labels)
        raw.append(np.mean((_unit(x) @ text.T).argmax(axis=1) == y))
        ridge.append(np.mean((_unit(probe.transform(x)) @ text.T).argmax(axis=1) == y))
        chance.append(1.0 / len(split.unseen))
    return float(np.mean(raw)), float(np.mean(ridge)), float(np.mean(chance))


def test_transfer_moves_the_best_classifier_from_raw_cosine_to_a_map_learned_on_seen_classes(tmp_path):
    raw0, ridge0, chance = _unseen_frame_accuracy(generate_dataset(tmp_path / "t0", SyntheticConfig(**TRANSFER)))
    raw1, ridge1, _ = _unseen_frame_accuracy(
        generate_dataset(tmp_path / "t1", SyntheticConfig(transfer=1.0, **TRANSFER)))
    # transfer 0: raw cosine is good; a map learned on seen classes knows the groups at most
    assert raw0 > 3 * chance and raw0 > ridge0 + 0.2, (raw0, ridge0)
    # transfer 1: raw cosine is near chance; the learned map transfers to unseen classes
    assert raw1 < 1.5 * chance and ridge1 > 2 * chance and ridge1 > raw1 + 0.25, (raw1, ridge1)


def test_transfer_changes_only_the_geometry_and_zero_is_version_1(tmp_path):
    cfg = dict(SMALL, num_test_videos=2)
    zero, half = (generate_dataset(tmp_path / str(t), SyntheticConfig(seed=3, transfer=t, **cfg)) for t in (0.0, 0.5))
    for name in ("annotations.json", "splits.json", "feature_info.json"):  # same videos and instances
        assert (zero / name).read_bytes() == (half / name).read_bytes()
    first = sorted((zero / "features").glob("*.npy"))[0].name
    assert not np.array_equal(np.load(zero / "features" / first), np.load(half / "features" / first))
    assert "transfer" not in json.loads((zero / "synthetic_config.json").read_text())["config"]  # as version 1
    recorded = json.loads((half / "synthetic_config.json").read_text())
    assert synthetic_config_from_dict(recorded["config"]) == SyntheticConfig(seed=3, transfer=0.5, **cfg)
    with pytest.raises(ValueError, match="transfer"):
        SyntheticConfig(transfer=1.5).validate()
