"""Does the training-free localizer lose mAP when its score stops depending on the other
action names? ``class_score`` relative (softmax over the vocabulary x gate) against
independent (each name against its own typical level in the video), development data only.

    python -m benchmarks.score_independence [--seeds 1,2] [--transfer 0] [--splits 3]

Datasets: the synthetic generator (``psftr_core.data.synthetic``, feature_dim 256, other
settings default, as ``benchmarks.zero_shot``) for each development data seed (seed 0, the
benchmark's data, is refused), and the shipped demo ``examples/demo``. For each, and each
mode (``LocalizerConfig(class_score=...)``, the other settings default):

- full vocabulary: every class of the dataset asked for at once on every video with ground
  truth, mAP (%) averaged over tIoU 0.3:0.1:0.7 over all classes (``psftr detect
  --actions-file`` with every name, scored);
- zero-shot protocol: ``evaluate_localizer`` (vocabulary = the split's unseen classes, its
  evaluation videos) on the first ``--splits`` splits of 75_25 and 50_50, mean mAP (%);
- F1-best threshold: the score threshold with the best F1 at tIoU 0.5 on the full
  vocabulary (``train.calibration.best_f1_threshold``), what ``psftr detect`` would need
  as its default threshold (today 0.3 for the localizer);
- vocabulary dependence: for every (video, ground-truth class k), the best score of a
  class-k segment with the full vocabulary and with the vocabulary [k] alone (0 when there
  is none); mean and max of |full - alone|. Measured without the ``top_k`` cut (100
  segments per video over all classes), the one step that ties the classes together in
  either mode: a long vocabulary can push a class's weak segments out of the top 100.

Prints one markdown table; about a minute on two CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MODES = ("relative", "independent")
RATIOS = ("75_25", "50_50")
DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo"
FEATURE_DIM = 256  # as benchmarks.zero_shot


def _videos(dataset: Any) -> list[Any]:
    """Every video with ground truth (the localizer is not trained: training videos count too)."""
    return [dataset.videos[v] for v in sorted(dataset.videos) if dataset.videos[v].annotations]


def _text(dataset: Any, names: list[str]) -> np.ndarray:
    return np.stack([np.asarray(dataset.text_embeddings[n], dtype=np.float64) for n in names])


def _detect(dataset: Any, video: Any, names: list[str], cfg: Any) -> list[dict]:
    from psftr_core.infer.localizer import localize

    return localize(dataset.load_features(video.video_id), dataset.snippet_times(video.video_id),
                    _text(dataset, names), names, cfg, duration=video.duration)


def full_vocabulary(dataset: Any, cfg: Any) -> tuple[float, float | None]:
    """mAP (%) with every class asked for, and the F1-best score threshold (tIoU 0.5)."""
    from psftr_core.evaluation.detection_map import evaluate_detections
    from psftr_core.train.calibration import best_f1_threshold

    videos = _videos(dataset)
    names = list(dataset.classes)
    truth = {v.video_id: [{"segment": [a.start, a.end], "label": a.label} for a in v.annotations] for v in videos}
    found = {v.video_id: _detect(dataset, v, names, cfg) for v in videos}
    threshold, _ = best_f1_threshold(truth, found, tiou=0.5)
    return 100.0 * evaluate_detections(truth, found, classes=names).average, threshold


def zero_shot(dataset: Any, cfg: Any, splits: int) -> float:
    """Mean unseen-class mAP (%) of the first ``splits`` splits of each ratio."""
    from psftr_core.evaluation.protocol import evaluate_localizer

    scores = [evaluate_localizer(dataset, ratio, k, localizer=cfg).result.average
              for ratio in RATIOS for k in range(min(splits, len(dataset.splits(ratio))))]
    return 100.0 * float(np.mean(scores))


def vocabulary_dependence(dataset: Any, cfg: Any) -> tuple[float, float]:
    """Mean and max over (video, true class k) of |best class-k score, full vocabulary −
    best class-k score, vocabulary [k]|, without the top-k cut."""
    import dataclasses

    cfg = dataclasses.replace(cfg, top_k=10**9)  # the scores themselves, not the top-k cut over classes
    names = list(dataset.classes)
    gaps = []
    for video in _videos(dataset):
        full = _detect(dataset, video, names, cfg)
        for label in sorted({a.label for a in video.annotations}):
            alone = _detect(dataset, video, [label], cfg)
            gaps.append(abs(_best(full, label) - _best(alone, label)))
    return float(np.mean(gaps)), float(np.max(gaps))


def _best(detections: list[dict], label: str) -> float:
    return max((d["score"] for d in detections if d["label"] == label), default=0.0)


def measure(dataset: Any, splits: int) -> dict[str, dict[str, Any]]:
    """Every number of one dataset, by mode."""
    from psftr_core.infer.localizer import LocalizerConfig

    rows = {}
    for mode in MODES:
        cfg = LocalizerConfig(class_score=mode)
        full, threshold = full_vocabulary(dataset, cfg)
        mean_gap, max_gap = vocabulary_dependence(dataset, cfg)
        rows[mode] = {"full": full, "zero_shot": zero_shot(dataset, cfg, splits), "threshold": threshold,
                      "mean_gap": mean_gap, "max_gap": max_gap}
    return rows


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The markdown table: one row per (dataset, mode), then independent − relative."""
    lines = ["| data | score | mAP, full vocabulary | mAP, zero-shot splits | F1-best threshold | "
             "vocabulary dependence: mean / max of abs(Δ top score) |",
             "|---|---|---|---|---|---|"]
    for name, rows in results.items():
        for mode in MODES:
            r = rows[mode]
            threshold = "–" if r["threshold"] is None else f"{r['threshold']:.3f}"
            lines.append(f"| {name} | {mode} | {r['full']:.2f} | {r['zero_shot']:.2f} | {threshold} | "
                         f"{r['mean_gap']:.3f} / {r['max_gap']:.2g} |")
        rel, ind = rows["relative"], rows["independent"]
        lines.append(f"| {name} | independent − relative | {ind['full'] - rel['full']:+.2f} | "
                     f"{ind['zero_shot'] - rel['zero_shot']:+.2f} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2", help="synthetic data seeds (development data; 0 is refused)")
    parser.add_argument("--transfer", type=float, default=0.0, help="the generator's transfer knob (0: raw CLIP "
                        "similarity informative, where the localizer works)")
    parser.add_argument("--splits", type=int, default=3, help="zero-shot splits per ratio")
    parser.add_argument("--no-demo", action="store_true", help="leave out examples/demo")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if 0 in seeds:
        parser.error("data seed 0 is the benchmark's data; use development data (e.g. --seeds 1,2)")
    from psftr_core.data.datasets import load_dataset
    from psftr_core.data.synthetic import SyntheticConfig, generate_dataset

    started = time.time()
    results = {}
    with tempfile.TemporaryDirectory(prefix="psftr-score-independence-") as tmp:
        for seed in seeds:
            folder = generate_dataset(Path(tmp) / f"seed{seed}", SyntheticConfig(
                seed=seed, feature_dim=FEATURE_DIM, transfer=args.transfer))
            results[f"synthetic seed {seed}"] = measure(load_dataset(folder), args.splits)
            print(f"seed {seed} done ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    if not args.no_demo:
        results["examples/demo"] = measure(load_dataset(DEMO), args.splits)
    print(f"Synthetic data: feature_dim {FEATURE_DIM}, transfer {args.transfer:g}, other settings default; "
          f"zero-shot: first {args.splits} splits of {' and '.join(RATIOS)}; mAP (%) averaged over tIoU "
          f"0.3:0.1:0.7; {time.time() - started:.0f} s.\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
