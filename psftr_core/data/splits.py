"""Zero-shot class splits: which classes are seen (trained on) and unseen (evaluated).

Three sources, all returning ``Split`` objects indexed 0..N-1 per ratio:

- the 10 standard splits per ratio that every published zero-shot TAL work uses for
  THUMOS14 and ActivityNet1.3 (package data ``data/reference/zero_shot_splits.json``,
  derived from the GAP/STALE ``splits/`` lists), or those another built-in ships: its
  descriptor's ``standard_splits`` (``psftr_core.data.builtins``) names the file and key;
- a dataset directory's own ``splits.json``:
  ``{"75_25": [{"seen": [...], "unseen": [...]}, ...], "50_50": [...]}``;
- 10 seeded random splits for a dataset without either (``random_splits``).

``SplitTable`` is the choice made for one dataset (which source, and the lists).

Random split algorithm (deterministic on every machine and Python >= 3.2): for split
index ``i`` of ratio ``r``, ``rng = random.Random(f"{seed}/{r}/{i}")`` (a str seed is
hashed with SHA-512, independent of PYTHONHASHSEED and numpy), the class names are
sorted, ``rng.shuffle``d, the first ``n_seen = round(K * fraction)`` (clamped to
[1, K-1]; fraction 0.75 for 75_25, 0.5 for 50_50) are seen and the rest unseen; both
lists are returned sorted. The default seed is ``DEFAULT_SPLIT_SEED = 0``.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from psftr_core.data.builtins import builtin_dataset, standard_split_names
from psftr_core.data.reference_files import reference_json
from psftr_core.errors import InputError
from psftr_core.io.json_file import read_json_file

RATIOS = ("75_25", "50_50")
SEEN_FRACTION = {"75_25": 0.75, "50_50": 0.5}
NUM_STANDARD_SPLITS = 10
DEFAULT_SPLIT_SEED = 0

# Keys of each ratio in the package-data JSON of standard splits.
_PACKAGE_RATIO_KEY = {"75_25": "train_75_test_25", "50_50": "train_50_test_50"}


@dataclass
class Split:
    """One zero-shot split: train on ``seen`` classes, evaluate on ``unseen``."""

    ratio: str
    index: int
    seen: list[str]
    unseen: list[str]


def check_ratio(ratio: Any) -> str:
    """Return ``ratio`` if it is one of ``RATIOS``, else raise InputError listing them."""
    if ratio not in RATIOS:
        raise InputError(f"unknown split ratio {ratio!r}: use one of {', '.join(RATIOS)}")
    return ratio


@functools.lru_cache(maxsize=4)
def _package_splits(file: str) -> dict:
    return reference_json(file)


def standard_splits(dataset: str, ratio: str) -> list[Split]:
    """The published splits of built-in ``dataset`` (e.g. "thumos14", "anet") for ``ratio``."""
    check_ratio(ratio)
    kind = builtin_dataset(dataset.lower())
    packaged = kind.standard_splits if kind is not None else None
    if packaged is None:
        raise InputError(
            f"no standard splits for dataset {dataset!r}: they exist for "
            f"{', '.join(standard_split_names())}"
        )
    entries = _package_splits(packaged.file)["datasets"][packaged.key]["splits"][_PACKAGE_RATIO_KEY[ratio]]
    return [
        Split(ratio, int(e["split_id"]), list(e["seen"]), list(e["unseen"]))
        for e in sorted(entries, key=lambda e: int(e["split_id"]))
    ]


def _name_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where} must be a list of class names")
    return list(value)


def load_splits_file(path: str | Path) -> dict[str, list[Split]]:
    """Read a dataset's ``splits.json`` into ``{ratio: [Split, ...]}`` (structure checked)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"splits file {path} does not exist")
    data = read_json_file(path, "splits")
    if not isinstance(data, dict) or not data:
        raise InputError(f"splits file {path} must map a ratio ({', '.join(RATIOS)}) to a list of splits")
    result: dict[str, list[Split]] = {}
    for ratio, entries in data.items():
        if ratio not in RATIOS:
            raise InputError(f"splits file {path}: unknown ratio {ratio!r}: use one of {', '.join(RATIOS)}")
        if not isinstance(entries, list) or not entries:
            raise InputError(f"splits file {path}: {ratio!r} must be a non-empty list of splits")
        splits = []
        for index, entry in enumerate(entries):
            where = f"splits file {path}: {ratio}[{index}]"
            if not isinstance(entry, dict) or "seen" not in entry or "unseen" not in entry:
                raise InputError(f"{where} must be an object with 'seen' and 'unseen' lists")
            seen = _name_list(entry["seen"], f"{where}.seen")
            unseen = _name_list(entry["unseen"], f"{where}.unseen")
            splits.append(Split(ratio, index, seen, unseen))
        result[ratio] = splits
    return result


def random_splits(
    classes: Iterable[str], ratio: str, count: int = NUM_STANDARD_SPLITS, seed: int = DEFAULT_SPLIT_SEED
) -> list[Split]:
    """``count`` seeded random splits of ``classes`` (algorithm in the module docstring)."""
    check_ratio(ratio)
    names = sorted(set(classes))
    if len(names) < 2:
        raise InputError(f"random zero-shot splits need at least 2 classes, the dataset has {len(names)}")
    n_seen = min(max(int(len(names) * SEEN_FRACTION[ratio] + 0.5), 1), len(names) - 1)
    splits = []
    for index in range(count):
        rng = random.Random(f"{seed}/{ratio}/{index}")
        order = list(names)
        rng.shuffle(order)
        splits.append(Split(ratio, index, sorted(order[:n_seen]), sorted(order[n_seen:])))
    return splits


def validate_split(split: Split, classes: Iterable[str], source: str) -> None:
    """InputError unless seen/unseen are non-empty, disjoint, and all in ``classes``."""
    known = set(classes)
    where = f"{source} split {split.ratio}[{split.index}]"
    for group in (split.seen, split.unseen):
        for name in group:
            if name not in known:
                raise InputError(f"{where} names class {name!r}, which is not a class of the dataset")
    if not split.seen or not split.unseen:
        raise InputError(f"{where} needs at least one seen and one unseen class")
    both = sorted(set(split.seen) & set(split.unseen))
    if both:
        raise InputError(f"{where} lists {both[0]!r} as both seen and unseen")


def select_split(splits: list[Split], ratio: str, index: Any, source: str) -> Split:
    """Pick ``splits[index]`` with a clear InputError when the index is out of range."""
    if isinstance(index, bool) or not isinstance(index, int):
        try:
            index = int(str(index))
        except ValueError:
            raise InputError(f"split index must be an integer, got {index!r}") from None
    if not 0 <= index < len(splits):
        raise InputError(
            f"split index {index} out of range: {source} has {len(splits)} splits for ratio "
            f"{ratio} (0..{len(splits) - 1})"
        )
    return splits[index]


@dataclass
class SplitTable:
    """The zero-shot splits a dataset offers.

    ``table`` holds fixed lists per ratio (the standard splits or a ``splits.json``);
    without it every ratio gets the seeded random splits of the dataset's classes.
    ``source`` says which: ``"standard:<name>"``, the path of a splits.json, or ``"random"``.
    """

    source: str = "random"
    table: dict[str, list[Split]] | None = None

    @classmethod
    def standard(cls, dataset: str) -> SplitTable:
        """The published splits of built-in ``dataset`` (e.g. "thumos14") for every ratio."""
        return cls(f"standard:{dataset}", {ratio: standard_splits(dataset, ratio) for ratio in RATIOS})

    @classmethod
    def from_file(cls, path: str | Path) -> SplitTable:
        return cls(str(path), load_splits_file(path))

    def validate(self, classes: Iterable[str]) -> None:
        """InputError unless every listed split is valid for ``classes`` (see ``validate_split``)."""
        known = list(classes)
        for splits in (self.table or {}).values():
            for split in splits:
                validate_split(split, known, self.source)

    def splits(self, ratio: str, classes: Iterable[str], owner: str) -> list[Split]:
        """All splits of ``ratio``, index order; ``owner`` names the dataset in errors."""
        if self.table is None:
            return random_splits(classes, ratio)
        if ratio not in self.table:
            raise InputError(f"{owner}: {self.source} has no {ratio} splits (it has {', '.join(self.table)})")
        return list(self.table[ratio])
