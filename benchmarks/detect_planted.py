"""Does ``psftr detect --checkpoint`` find planted unseen-class actions?

On a generated synthetic feature dataset (``psftr_core.data.synthetic``), train PSFTR on the
seen classes of one zero-shot split (or reuse ``--checkpoint``), then run
``psftr_core.infer.detect.detect`` (what ``psftr detect --features DIR --checkpoint CKPT``
runs) on the split's evaluation videos with the *unseen* classes as the vocabulary, and
count the planted unseen-class instances that a detected segment of the same label
covers with tIoU >= 0.5. The training-free localizer runs on the same videos for
comparison.

    python -m benchmarks.detect_planted --out /tmp/psftr_planted --epochs 10
    python -m benchmarks.detect_planted --out /tmp/psftr_planted --checkpoint RUN/last.pt

Prints one JSON object: per model, at the default score threshold and with no threshold,
the found / planted count, the recall and the number of segments output.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from benchmarks.zero_shot import SMALL_MODEL, add_synthetic_run_arguments  # the benchmark's model, so the numbers compare
from psftr_core.segments import tiou_matrix


def planted_recall(report, truth: dict[str, list[dict]], min_tiou: float = 0.5) -> dict:
    """Planted instances found by a same-label segment with tIoU >= ``min_tiou``."""
    by_video: dict[str, list] = {}
    for seg in report.segments:
        by_video.setdefault(seg.video, []).append(seg)
    planted = found = 0
    for video, instances in truth.items():
        for inst in instances:
            planted += 1
            found += any(
                s.label == inst["label"] and tiou_matrix([[s.start, s.end]], [inst["segment"]])[0, 0] >= min_tiou
                for s in by_video.get(video, [])
            )
    return {"found": found, "planted": planted, "recall": round(found / max(planted, 1), 4),
            "segments": len(report.segments)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_synthetic_run_arguments(parser, out="/tmp/psftr_planted", feature_dim=256)
    parser.add_argument("--checkpoint", default=None, help="reuse a checkpoint trained on --data")
    parser.add_argument("--data", default=None, help="reuse a generated dataset folder")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from psftr_core.train.run import TrainRequest, train
    from psftr_core.data.datasets import load_dataset
    from psftr_core.infer.detect import detect
    from psftr_core.data.synthetic import SyntheticConfig, generate_dataset

    out = Path(args.out)
    if args.data:
        data_dir = Path(args.data)
    else:
        data_dir = generate_dataset(out / "data", SyntheticConfig(
            seed=args.seed, feature_dim=args.feature_dim, num_train_videos=args.train_videos,
            num_test_videos=args.test_videos))
    dataset = load_dataset(data_dir)
    split = dataset.split(args.split, args.split_index)

    train_seconds = None
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    overrides = list(SMALL_MODEL) + [f"train.lr_drop_epochs={max(1, args.epochs - 2)}"] + args.overrides
    if checkpoint is None:
        shutil.rmtree(out / "run", ignore_errors=True)
        request = TrainRequest(dataset=str(data_dir), ratio=args.split, split_index=args.split_index,
                               output=out / "run", epochs=args.epochs, seed=args.seed, overrides=overrides,
                               device="cpu")
        started = time.time()
        (result,) = train(request)
        train_seconds = round(time.time() - started, 1)
        checkpoint = result.checkpoint

    videos = [r.video_id for r in dataset.eval_videos(split)]
    truth = dataset.ground_truth(split)  # unseen-class instances of those videos
    results = {}
    for name, extra in (("psftr", {"checkpoint": checkpoint}), ("training_free", {})):
        for label, threshold in (("default_threshold", None), ("no_threshold", 0.0)):
            started = time.time()
            report = detect(videos, list(split.unseen), features_dir=data_dir, threshold=threshold,
                            device="cpu", **extra)
            entry = planted_recall(report, truth)
            entry["threshold"] = report.stats["threshold"]
            entry["seconds"] = round(time.time() - started, 1)
            results.setdefault(name, {})[label] = entry

    json.dump({
        "dataset": {"feature_dim": dataset.feature_dim, "eval_videos": len(videos),
                    "split": f"{args.split}/{args.split_index}", "unseen": list(split.unseen)},
        "checkpoint": str(checkpoint),
        "epochs": args.epochs if args.checkpoint is None else None,
        "overrides": overrides if args.checkpoint is None else None,
        "train_seconds": train_seconds,
        "min_tiou": 0.5,
        "results": results,
    }, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
