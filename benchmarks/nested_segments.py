"""What dropping nested same-label segments (``psftr detect``'s default) costs in mAP.

For a feature dataset (default: examples/demo) and optionally a checkpoint, runs detect
on every video at threshold 0 twice, with nested segments dropped (the default) and kept
(``--keep-nested``), and prints mAP (tIoU 0.3:0.1:0.7) against the dataset's
annotations, with the segment counts at threshold 0 and at the model's default
threshold::

    python -m benchmarks.nested_segments [--features DIR] [--checkpoint FILE]
"""

from __future__ import annotations

import argparse

from psftr_core.data.datasets import load_dataset
from psftr_core.evaluation.detection_map import evaluate_detections
from psftr_core.infer.detect import detect

TIOUS = "0.3:0.7:0.1"


def run(features: str, checkpoint: str | None, keep_nested: bool, threshold: float | None) -> tuple[dict, int]:
    dataset = load_dataset(features)
    report = detect([], list(dataset.classes), features_dir=features, checkpoint=checkpoint,
                    threshold=threshold, keep_nested=keep_nested)
    return report.results(), len(report.segments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="examples/demo")
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args()
    dataset = load_dataset(args.features)
    truth = {video: [{"segment": [a.start, a.end], "label": a.label} for a in info.annotations]
             for video, info in dataset.videos.items()}
    print(f"| {args.features} ({args.checkpoint or 'training-free localizer'}) | mAP 0.3:0.7 | "
          "segments at 0 | at the default threshold |")
    print("|---|---:|---:|---:|")
    for keep in (False, True):
        results, count = run(args.features, args.checkpoint, keep, 0.0)
        _, default_count = run(args.features, args.checkpoint, keep, None)
        mean = evaluate_detections(truth, results, TIOUS).average
        print(f"| nested {'kept' if keep else 'dropped (default)'} | {100 * mean:.2f} | {count} | {default_count} |")


if __name__ == "__main__":
    main()
