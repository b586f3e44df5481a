"""What one zero-shot split feeds the model: windows of its videos and its classes' text.

Training uses the split's training videos with the seen classes; evaluation uses its
evaluation videos with the unseen classes as the vocabulary.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from psftr_core.data.windows import WindowDataset, windowing_from_config
from psftr_core.errors import InputError
from psftr_core.features.text import TextTower
from psftr_core.runtime.text_source import class_text_embeddings


def training_windows(dataset: Any, split: Any, data_cfg: Any) -> WindowDataset:
    """Training windows of ``split`` (seen-class targets); InputError when there are none."""
    windows = WindowDataset(dataset, dataset.train_videos(split), split.seen, windowing_from_config(data_cfg),
                            training=True)
    if len(windows) == 0:
        raise InputError(
            f"dataset {dataset.name}, split {split.ratio}/{split.index}: no training window holds a seen-class "
            f"instance (subset {dataset.train_subset!r}); check the annotations and the split"
        )
    return windows


def evaluation_windows(dataset: Any, split: Any, data_cfg: Any) -> WindowDataset:
    """Inference windows of the evaluation videos of ``split`` (unseen-class vocabulary)."""
    return WindowDataset(dataset, dataset.eval_videos(split), split.unseen, windowing_from_config(data_cfg),
                         training=False)


def class_text(dataset: Any, class_names: Sequence[str], tower: TextTower | None = None, prompt: str | None = None,
               cache_dir: Any = None) -> torch.Tensor:
    """[K, D] float32 CPU tensor of the classes' text embeddings, by the one text rule of
    ``psftr_core.runtime.text_source``: ``tower`` is the run's choice
    (``class_text_tower``), None to choose now (the dataset's table if it has every
    class, else the features' CLIP); on ``prompt``, else the dataset's.
    """
    array = class_text_embeddings(dataset, class_names, tower, prompt=prompt, cache_dir=cache_dir)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
