"""Loading a built-in dataset from its data root, as its descriptor's layout says.

The data root is ``--data-root DIR`` (the dataset's own folder or the folder holding
``<name>/``), else ``$PSFTR_DATA/<name>``. For each part the first file or folder of the
layout that exists wins; missing annotations or feature info fall back to the package
data the layout names. A ``text_embeddings.npz`` in the root replaces the CLIP text tower.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from psftr_core.data.dataset_build import build_dataset
from psftr_core.data.dataset_kind import BuiltinDataset, BuiltinLayout
from psftr_core.data.feature_dataset import FeatureDataset
from psftr_core.data.feature_timing import read_feature_info
from psftr_core.data.reference_files import reference_lines, reference_path
from psftr_core.data.splits import SplitTable
from psftr_core.defaults import DEFAULT_PROMPT
from psftr_core.errors import InputError

DATA_ENV = "PSFTR_DATA"


def _layout_hint(kind: BuiltinDataset, root: str) -> str:
    """What the data root should hold, for the error messages."""
    layout = kind.layout
    names = layout.annotation_files
    annotations = (
        f"optional {root}/{names[0]}"
        if layout.packaged_annotations
        else f"{root}/{names[0]}" + (f" (or {' or '.join(names[1:])})" if names[1:] else "")
    )
    info = f", optional {root}/{layout.info_files[0]}" if layout.info_files else ""
    return (
        f"expected {root}/{layout.feature_dirs[0]}/<video_id>.npy (CLIP features from "
        f"{layout.feature_source}), {annotations}{info}"
    )


def _annotation_choices(layout: BuiltinLayout, root: Path) -> str:
    """The annotation files a root may hold, with what each is where the layout says."""
    if layout.annotation_origins:
        return " or ".join(f"{root}/{name} ({origin})"
                           for name, origin in zip(layout.annotation_files, layout.annotation_origins))
    return " or ".join(f"{root}/{name}" for name in layout.annotation_files)


def _has_npy(directory: Path) -> bool:
    try:
        with os.scandir(directory) as entries:
            return any(e.name.endswith(".npy") for e in entries)
    except OSError:
        return False


def _find_features_dir(kind: BuiltinDataset, root: Path) -> Path | None:
    """The first feature folder of the layout in ``root``, else ``root`` itself if it holds .npy files."""
    for name in kind.layout.feature_dirs:
        if (root / name).is_dir():
            return root / name
    return root if _has_npy(root) else None


def _builtin_root(kind: BuiltinDataset, data_root: str | os.PathLike | None) -> Path:
    """The folder holding a built-in dataset: ``data_root`` (or its ``<name>/``), else ``$PSFTR_DATA/<name>``."""
    if data_root is not None:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise InputError(
                f"dataset {kind.name}: data root {root} does not exist; {_layout_hint(kind, str(root))}"
            )
        # Also accept the parent folder that holds <name>/ (like $PSFTR_DATA).
        if _find_features_dir(kind, root) is None and (root / kind.name).is_dir():
            root = root / kind.name
        return root
    env = os.environ.get(DATA_ENV)
    if not env:
        raise InputError(
            f"dataset {kind.name} needs its CLIP features: pass --data-root DIR or set {DATA_ENV} "
            f"(read from ${DATA_ENV}/{kind.name}); {_layout_hint(kind, 'DIR')}"
        )
    root = Path(env).expanduser() / kind.name
    if not root.is_dir():
        raise InputError(
            f"dataset {kind.name}: {root} does not exist (from ${DATA_ENV}); {_layout_hint(kind, str(root))}"
        )
    return root


def _first_file(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / name for name in names if (root / name).is_file()), None)


def load_builtin(kind: BuiltinDataset, data_root: str | os.PathLike | None) -> FeatureDataset:
    """The built-in dataset ``kind`` read from its data root (see the module docstring)."""
    layout = kind.layout
    root = _builtin_root(kind, data_root)
    features_dir = _find_features_dir(kind, root)
    if features_dir is None:
        raise InputError(f"dataset {kind.name}: no feature folder in {root}; {_layout_hint(kind, str(root))}")

    annotations_path = _first_file(root, layout.annotation_files)
    if annotations_path is None:
        if layout.packaged_annotations is None:
            raise InputError(
                f"dataset {kind.name}: no annotation file in {root}; expected {_annotation_choices(layout, root)}"
            )
        annotations_path = reference_path(layout.packaged_annotations)
    info_path = _first_file(root, layout.info_files)
    if info_path is None and layout.packaged_info is not None:
        info_path = reference_path(layout.packaged_info)

    return build_dataset(
        name=kind.name,
        root=root,
        annotations_path=annotations_path,
        features_dir=features_dir,
        info=read_feature_info(info_path) if info_path is not None else None,
        info_path=info_path,
        classes=reference_lines(layout.classes_file) if layout.classes_file else None,
        subset_choice=layout.subset_pairs,
        # The published ground truth is scored as published (THUMOS14 has instances after
        # their video's end): the benchmark's numbers stay comparable.
        rules=dataclasses.replace(kind.rules, keep_past_end=True),
        feature_fps=None,
        prompt=DEFAULT_PROMPT,
        # precomputed class text (`psftr text-embeddings`): no CLIP weights needed
        text_embeddings_path=root / "text_embeddings.npz" if (root / "text_embeddings.npz").is_file() else None,
        split_table=SplitTable.standard(kind.name) if kind.standard_splits is not None else SplitTable(),
    )
