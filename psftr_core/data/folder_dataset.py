"""The dataset-folder kind: a folder whose ``dataset.yaml`` names its parts (keys in
docs/datasets.md). ``psftr extract`` output and synthetic data are such folders. No
protocol rules apply (``LoadingRules()``); ``splits:`` may name a built-in's standard
splits (``splits: thumos14``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from psftr_core.data.annotations import finite_number
from psftr_core.data.builtins import builtin_dataset
from psftr_core.data.dataset_build import build_dataset
from psftr_core.data.dataset_kind import LoadingRules
from psftr_core.data.feature_dataset import FeatureDataset
from psftr_core.data.feature_timing import read_feature_info
from psftr_core.data.splits import SplitTable
from psftr_core.defaults import DEFAULT_PROMPT
from psftr_core.errors import InputError

_log = logging.getLogger(__name__)

_YAML_KEYS = {
    "name",
    "annotations",
    "features",
    "feature_info",
    "feature_fps",
    "train_subset",
    "test_subset",
    "text_embeddings",
    "splits",
    "prompt",
}


def _read_dataset_yaml(config_path: Path) -> dict:
    """The mapping in ``dataset.yaml``, with its required keys checked (unknown keys: a warning)."""
    from psftr_core.io.yaml_file import read_yaml_file

    config = read_yaml_file(config_path, "dataset file")  # alias bombs refused, one line naming the file
    if not isinstance(config, dict):
        raise InputError(f"{config_path} must be a YAML mapping with at least 'annotations' and 'features'")
    unknown = sorted(str(k) for k in config if k not in _YAML_KEYS)
    if unknown:
        _log.warning(f"{config_path}: ignoring unknown keys: {', '.join(unknown)}")
    for key in ("annotations", "features"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise InputError(f"{config_path} needs '{key}': a path relative to {config_path.parent}")
    return config


def load_folder_dataset(directory: Path) -> FeatureDataset:
    """The dataset of the folder ``directory``, which holds a ``dataset.yaml``."""
    config_path = directory / "dataset.yaml"
    config = _read_dataset_yaml(config_path)

    def text(key: str) -> str | None:
        value = config.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise InputError(f"{config_path}: '{key}' must be a non-empty string")
        return value

    def path_of(key: str) -> Path | None:
        value = text(key)
        return None if value is None else directory / Path(value).expanduser()

    name = str(config.get("name") or directory.resolve().name)
    feature_fps = config.get("feature_fps")
    if feature_fps is not None:
        feature_fps = finite_number(feature_fps)
        if feature_fps is None or feature_fps <= 0:
            raise InputError(f"{config_path}: 'feature_fps' must be a positive number")
    prompt = text("prompt") or DEFAULT_PROMPT
    _check_prompt(prompt, config_path)

    info_path = path_of("feature_info")
    if info_path is None and (directory / "feature_info.json").is_file():
        info_path = directory / "feature_info.json"
    info = read_feature_info(info_path) if info_path is not None else None

    split_value = text("splits")
    if split_value is not None and builtin_dataset(split_value.lower()) is not None:
        # `splits: thumos14` reuses the standard splits for one's own features.
        split_table = SplitTable.standard(split_value.lower())
    else:
        splits_path = path_of("splits")
        if splits_path is None and (directory / "splits.json").is_file():
            splits_path = directory / "splits.json"
        split_table = SplitTable.from_file(splits_path) if splits_path is not None else SplitTable()

    return build_dataset(
        name=name,
        root=directory,
        annotations_path=path_of("annotations"),  # type: ignore[arg-type]
        features_dir=path_of("features"),  # type: ignore[arg-type]
        info=info,
        info_path=info_path,
        classes=None,
        subset_choice=(text("train_subset"), text("test_subset")),
        rules=LoadingRules(),
        feature_fps=feature_fps,
        prompt=prompt,
        text_embeddings_path=path_of("text_embeddings"),
        split_table=split_table,
    )


def _check_prompt(prompt: str, where: Path) -> None:
    """InputError unless ``prompt`` has one ``{}`` for the class name."""
    try:
        ok = "{}" in prompt and prompt.format("x") != prompt
    except (IndexError, KeyError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{where}: 'prompt' must contain one '{{}}' where the class name goes, got {prompt!r}")

