"""Prompt ensembling on synthetic data: one noisy text view per class against the mean of
several, measured as unseen-class mAP of the small PSFTR (development data only).

    python -m benchmarks.text_views --out DIR [--seed 1] [--views 5] [--noise 0.6] [--splits 2] [--epochs 6]

The generator (``SyntheticConfig.text_views``, ``text_view_noise``) gives each class
``--views`` noisy views of its true text embedding (``text_views.npz``). Three copies of
one dataset differ only in ``text_embeddings.npz``: view 0 alone (one description), the
normalised mean of all views (what ``psftr detect`` does with several descriptions), and
the true text (the bound). The same model (``benchmarks.zero_shot.SMALL_MODEL``, no
calibration, training seed 0) is trained on each for the first ``--splits`` splits of
``--ratio`` and scored on the unseen classes (mAP averaged over tIoU 0.3:0.7, the
default scoring). Data seed 0 is the benchmark's data and is refused. Prints a markdown
table.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.zero_shot import SMALL_MODEL, mean_std, train_task

TEXTS = ("one view", "mean of the views", "true text (bound)")
DATA = {"feature_dim": 128, "num_train_videos": 48, "num_test_videos": 24}


def text_tables(data_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """The three ``text_embeddings`` tables of the study, by row name."""
    from psftr_core.data.synthetic import TEXT_VIEWS_FILE, _build_world, synthetic_config_from_dict
    import json

    cfg = synthetic_config_from_dict(json.loads((data_dir / "synthetic_config.json").read_text())["config"])
    with np.load(data_dir / TEXT_VIEWS_FILE) as views:
        by_name = {name: views[name] for name in views.files}
    true_text = _build_world(cfg).text  # the features' geometry: what the views are noisy copies of
    names = cfg.class_names()
    return {
        TEXTS[0]: {name: by_name[name][0] for name in names},
        TEXTS[1]: {name: _mean_view(by_name[name]) for name in names},
        TEXTS[2]: {name: true_text[k].astype(np.float32) for k, name in enumerate(names)},
    }


def _mean_view(views: np.ndarray) -> np.ndarray:
    """The normalised mean of unit views, at the views' mean norm (the models normalise anyway)."""
    unit = views / np.linalg.norm(views, axis=1, keepdims=True)
    mean = unit.mean(axis=0)
    return (mean / np.linalg.norm(mean) * np.linalg.norm(views, axis=1).mean()).astype(np.float32)


def dataset_copies(data_dir: Path, out: Path) -> dict[str, Path]:
    """One copy of the dataset per text table (features shared through a symlink)."""
    from psftr_core.features.text import save_text_embeddings

    copies = {}
    for row, table in text_tables(data_dir).items():
        copy = out / f"data_{row.split()[0]}"
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir(parents=True)
        for item in data_dir.iterdir():
            if item.name == "features":
                (copy / "features").symlink_to(item.resolve(), target_is_directory=True)
            elif item.name != "text_embeddings.npz":
                shutil.copy2(item, copy / item.name)
        save_text_embeddings(copy / "text_embeddings.npz", table)
        copies[row] = copy
    return copies


def score(data_dir: Path, run_dir: Path, ratio: str, split: int, epochs: int) -> float:
    """Unseen-class mAP (%) of the small PSFTR trained on ``data_dir``'s split."""
    from psftr_core.evaluation.protocol import evaluate_checkpoint

    task = {"data_dir": str(data_dir), "ratio": ratio, "split": split, "run_dir": str(run_dir), "epochs": epochs,
            "seed": 0, "overrides": list(SMALL_MODEL) + [f"train.lr_drop_epochs={max(1, epochs - 2)}"]}
    checkpoint, _ = train_task(task, calibrate=False)
    return 100 * float(evaluate_checkpoint(checkpoint, str(data_dir), ratio, split, device="cpu").result.average)


def view_cosines(data_dir: Path) -> tuple[float, float]:
    """Mean cosine to the true text of one view and of the mean of the views."""
    tables = text_tables(data_dir)

    def cos(row: str) -> float:
        return float(np.mean([_cos(tables[row][n], tables[TEXTS[2]][n]) for n in tables[row]]))

    return cos(TEXTS[0]), cos(TEXTS[1])


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1, help="data seed (development data; 0 is refused)")
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--ratio", default="75_25")
    parser.add_argument("--splits", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args(argv)
    if args.seed == 0:
        parser.error("data seed 0 is the benchmark's data; use development data (e.g. --seed 1)")
    from psftr_core.data.synthetic import SyntheticConfig, generate_dataset

    started = time.time()
    data_dir = generate_dataset(args.out / f"data_seed{args.seed}", SyntheticConfig(
        seed=args.seed, text_views=args.views, text_view_noise=args.noise, **DATA))
    copies = dataset_copies(data_dir, args.out)
    scores = {row: [score(copies[row], args.out / "runs" / row.split()[0] / f"split{s}", args.ratio, s, args.epochs)
                    for s in range(args.splits)] for row in TEXTS}
    one, mean = view_cosines(data_dir)
    print(f"data seed {args.seed}, {args.views} views, noise {args.noise} (cos to the true text: one view "
          f"{one:.3f}, mean {mean:.3f}); ratio {args.ratio}, splits 0-{args.splits - 1}, {args.epochs} epochs; "
          f"{time.time() - started:.0f} s\n")
    print("| class text | unseen mAP (%) mean ± sd | per split |\n|---|---|---|")
    for row in TEXTS:
        mu, sd = mean_std(scores[row])
        print(f"| {row} | {mu:.2f} ± {sd:.2f} | {', '.join(f'{v:.2f}' for v in scores[row])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
