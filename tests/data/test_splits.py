"""Zero-shot splits: the shipped standard lists, splits.json files, seeded random splits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from psftr_core.data.reference_files import reference_lines
from psftr_core.data.splits import (
    RATIOS,
    Split,
    SplitTable,
    check_ratio,
    load_splits_file,
    random_splits,
    select_split,
    standard_splits,
    validate_split,
)
from psftr_core.errors import InputError

# The project's reference data (beside the repository, or where PSFTR_REFERENCE_DIR says);
# the tests that compare with it skip without it.
REFERENCE = Path(os.environ.get("PSFTR_REFERENCE_DIR")
                 or Path(__file__).resolve().parents[3] / "shared" / "data" / "reference")


THUMOS_CLASSES = reference_lines("thumos14_classes.txt")
ANET_CLASSES = reference_lines("activitynet13_classes.txt")

SIZES = {
    ("thumos14", "75_25"): (15, 5),
    ("thumos14", "50_50"): (10, 10),
    ("anet", "75_25"): (150, 50),
    ("anet", "50_50"): (100, 100),
}


def test_class_lists_have_the_published_sizes():
    assert len(THUMOS_CLASSES) == len(set(THUMOS_CLASSES)) == 20
    assert len(ANET_CLASSES) == len(set(ANET_CLASSES)) == 200
    assert THUMOS_CLASSES[0] == "BaseballPitch" and "CleanAndJerk" in THUMOS_CLASSES
    assert "Ambiguous" not in THUMOS_CLASSES


@pytest.mark.parametrize("dataset,ratio", sorted(SIZES))
def test_standard_splits_have_published_sizes(dataset, ratio):
    classes = THUMOS_CLASSES if dataset == "thumos14" else ANET_CLASSES
    n_seen, n_unseen = SIZES[(dataset, ratio)]
    splits = standard_splits(dataset, ratio)
    assert [s.index for s in splits] == list(range(10))
    for split in splits:
        assert split.ratio == ratio
        assert (len(split.seen), len(split.unseen)) == (n_seen, n_unseen)
        assert not set(split.seen) & set(split.unseen)
        # Class names match the class list exactly (spaces, case, hyphens).
        assert set(split.seen) | set(split.unseen) == set(classes)
        validate_split(split, classes, "test")
    # The 10 splits are different draws.
    assert len({tuple(s.unseen) for s in splits}) == 10


def test_thumos_split0_75_25_known_unseen_classes():
    split = standard_splits("thumos14", "75_25")[0]
    assert split.unseen == ["BaseballPitch", "HammerThrow", "PoleVault", "SoccerPenalty", "ThrowDiscus"]
    assert len(split.seen) == 15 and "Diving" in split.seen


@pytest.mark.skipif(not (REFERENCE / "gap" / "splits").is_dir(), reason="reference split lists not present")
@pytest.mark.parametrize("folder,dataset", [("THUMOS14", "thumos14"), ("ActivityNet", "anet")])
@pytest.mark.parametrize("ratio,subdir", [("75_25", "train_75_test_25"), ("50_50", "train_50_test_50")])
def test_package_splits_equal_the_upstream_list_files(folder, dataset, ratio, subdir):
    base = REFERENCE / "gap" / "splits" / subdir / folder
    for split in standard_splits(dataset, ratio):
        train = (base / "train" / f"split_{split.index}.list").read_text("utf-8").splitlines()
        test = (base / "test" / f"split_{split.index}.list").read_text("utf-8").splitlines()
        assert split.seen == train
        assert split.unseen == test


def test_check_ratio_lists_valid_values():
    assert check_ratio("75_25") == "75_25"
    with pytest.raises(InputError, match="75_25, 50_50"):
        check_ratio("80_20")
    with pytest.raises(InputError):
        standard_splits("thumos14", "75")
    with pytest.raises(InputError, match="no standard splits"):
        standard_splits("hacs", "75_25")


def test_random_splits_are_seeded_and_cover_all_classes():
    classes = list("gfedcba")  # order of the input must not matter
    first = random_splits(classes, "75_25")
    again = random_splits(sorted(classes), "75_25")
    assert first == again
    assert len(first) == 10
    for split in first:
        assert (len(split.seen), len(split.unseen)) == (5, 2)  # round(7 * 0.75) = 5
        assert set(split.seen) | set(split.unseen) == set(classes)
        assert not set(split.seen) & set(split.unseen)
    # Pinned value: the documented algorithm (random.Random("0/75_25/0") on sorted names).
    assert first[0].seen == ["b", "c", "d", "f", "g"] and first[0].unseen == ["a", "e"]
    halves = random_splits(classes, "50_50")
    assert all((len(s.seen), len(s.unseen)) == (4, 3) for s in halves)  # round(3.5) -> 4
    assert random_splits(classes, "75_25", seed=1) != first


def test_random_splits_need_two_classes_and_keep_one_unseen():
    assert [(len(s.seen), len(s.unseen)) for s in random_splits(["a", "b"], "75_25", count=3)] == [(1, 1)] * 3
    with pytest.raises(InputError, match="at least 2 classes"):
        random_splits(["a"], "50_50")


def test_load_splits_file(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"75_25": [{"seen": ["a", "b", "c"], "unseen": ["d"]}], "50_50": []}))
    with pytest.raises(InputError, match="non-empty list"):
        load_splits_file(path)
    path.write_text(json.dumps({"75_25": [{"seen": ["a", "b", "c"], "unseen": ["d"]}]}))
    table = load_splits_file(path)
    assert table == {"75_25": [Split("75_25", 0, ["a", "b", "c"], ["d"])]}
    path.write_text(json.dumps({"90_10": [{"seen": ["a"], "unseen": ["b"]}]}))
    with pytest.raises(InputError, match="90_10"):
        load_splits_file(path)
    path.write_text(json.dumps({"50_50": [{"seen": "a", "unseen": ["b"]}]}))
    with pytest.raises(InputError, match="list of class names"):
        load_splits_file(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="cannot read splits file"):
        load_splits_file(path)
    with pytest.raises(InputError, match="does not exist"):
        load_splits_file(tmp_path / "missing.json")


def test_validate_split_and_select_split():
    classes = ["a", "b", "c", "d"]
    with pytest.raises(InputError, match="'zz'"):
        validate_split(Split("50_50", 0, ["a", "zz"], ["c", "d"]), classes, "mine")
    with pytest.raises(InputError, match="both seen and unseen"):
        validate_split(Split("50_50", 0, ["a", "b"], ["b", "c"]), classes, "mine")
    with pytest.raises(InputError, match="at least one"):
        validate_split(Split("50_50", 0, ["a", "b"], []), classes, "mine")
    splits = random_splits(classes, "50_50", count=3)
    assert select_split(splits, "50_50", 2, "x") is splits[2]
    assert select_split(splits, "50_50", "1", "x") is splits[1]
    with pytest.raises(InputError, match=r"out of range.*0\.\.2"):
        select_split(splits, "50_50", 3, "x")
    with pytest.raises(InputError, match="out of range"):
        select_split(splits, "50_50", -1, "x")
    with pytest.raises(InputError, match="integer"):
        select_split(splits, "50_50", "all", "x")
    assert RATIOS == ("75_25", "50_50")


def test_split_table_fixed_or_random(tmp_path):
    classes = ["a", "b", "c", "d"]
    assert SplitTable().splits("50_50", classes, "dataset x") == random_splits(classes, "50_50")
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"75_25": [{"seen": ["a", "b", "c"], "unseen": ["d"]}]}))
    table = SplitTable.from_file(path)
    assert table.source == str(path)
    assert table.splits("75_25", classes, "dataset x") == [Split("75_25", 0, ["a", "b", "c"], ["d"])]
    with pytest.raises(InputError, match=r"^dataset x: .*splits\.json has no 50_50 splits \(it has 75_25\)$"):
        table.splits("50_50", classes, "dataset x")
    table.validate(classes)
    with pytest.raises(InputError, match="'d', which is not a class"):
        table.validate(["a", "b", "c"])
    standard = SplitTable.standard("thumos14")
    assert standard.source == "standard:thumos14"
    assert standard.splits("50_50", THUMOS_CLASSES, "x") == standard_splits("thumos14", "50_50")
