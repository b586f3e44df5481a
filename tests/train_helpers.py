"""Shared set-up for the training tests: a tiny synthetic dataset and model config."""

from __future__ import annotations

import contextlib
from pathlib import Path

TINY_OVERRIDES = [
    "model.hidden_dim=32",
    "model.num_heads=4",
    "model.num_groups=8",
    "model.dim_feedforward=64",
    "model.enc_layers=1",
    "model.dec_layers=2",
    "model.num_queries=8",
    "model.enc_points=2",
    "model.dec_points=2",
    "model.roi_size=4",
    "train.batch_size=4",
    "train.lr=3e-4",
    "data.slice_size=64",
]


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread: on a shared 2-core machine, 2 intra-op threads that
    compete with other processes are several times slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_tiny_dataset(root: Path, num_splits: int = 2, train_videos: int = 8, test_videos: int = 4,
                      seed: int = 0, **kwargs) -> Path:
    """A synthetic dataset with D = 32, 8 classes and 20-34 s videos (75-127 snippets)."""
    from psftr_core.data.synthetic import SyntheticConfig, generate_dataset

    params = dict(
        seed=seed,
        num_classes=8,
        num_groups=2,
        feature_dim=32,
        num_train_videos=train_videos,
        num_test_videos=test_videos,
        video_seconds=(20.0, 34.0),
        instance_seconds=(2.0, 8.0),
        instances_per_video=(1, 3),
        num_splits=num_splits,
    )
    params.update(kwargs)
    cfg = SyntheticConfig(**params)
    return generate_dataset(root, cfg)


def request(dataset: Path, output: Path, **kwargs):
    from psftr_core.train.run import TrainRequest

    params = dict(dataset=str(dataset), ratio="75_25", split_index=0, output=output, epochs=2, seed=0,
                  overrides=list(TINY_OVERRIDES), device="cpu", log_every=1, calibrate=False,
                  preset="thumos14")  # the tiny datasets would get the small preset: keep the tests on one
    params.update(kwargs)
    return TrainRequest(**params)


def psftr_main(argv: list) -> int:
    """``psftr ARGV`` in-process, as the console script runs it (errors as one
    ``psftr: error:`` line on stderr); returns the exit code."""
    import sys

    from psftr_cli.main import run

    sys.argv = ["psftr", *map(str, argv)]
    try:
        run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def train_window_count(data: Path, overrides: list) -> int:
    """How many training windows split 75_25/0 of ``data`` gives under ``overrides``."""
    from psftr_core.data.datasets import load_dataset
    from psftr_core.data.windows import WindowDataset, windowing_from_config
    from psftr_core.train.run import resolve_config

    dataset = load_dataset(data)
    cfg, _ = resolve_config(dataset, None, None, overrides, 1, 0)
    split = dataset.split("75_25", 0)
    return len(WindowDataset(dataset, dataset.train_videos(split), split.seen, windowing_from_config(cfg.data),
                             training=True))


def console_scripts(*names: str) -> list[Path]:
    """The venv's console scripts ``names`` (beside this Python); skips the test if one is missing."""
    import shutil
    import sys

    import pytest

    paths = [Path(sys.executable).with_name(name) for name in names]
    if any(shutil.which(str(path)) is None for path in paths):
        pytest.skip(f"{' / '.join(names)} console scripts not installed")
    return paths


def iter_losses(run_dir: Path) -> list[float]:
    """The per-iteration losses a run logged in ``metrics.jsonl``."""
    from psftr_core.train.metrics_log import read_metrics

    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl", "iter")]


def tiny_checkpoint(root: Path) -> Path:
    """A real 1-epoch, uncalibrated ``psftr train`` checkpoint of a tiny model on a 32-d
    synthetic dataset (4 training videos) made under ``root``."""
    from psftr_core.train.run import train

    dataset = make_tiny_dataset(root / "data", num_splits=1, train_videos=4, test_videos=2)
    with one_thread():
        (result,) = train(request(dataset, root / "run", epochs=1))
    return Path(result.checkpoint)
