"""Development check: does fusing the model's detections with the localizer's help?

    python -m benchmarks.localizer_fusion --study OUT_DIR

Reads the final checkpoints that ``benchmarks.calibration_rules --out OUT_DIR`` trained
(development data: generator seeds other than the benchmark's 0, which this refuses) and
scores on each split's unseen classes: the model's CLIP contrast scoring, the
training-free localizer, and their union (the localizer's scores times ``alpha``) after
class-wise NMS at tIoU 0.5, top 200 per video. Prints one line per cell (mean over
splits, avg mAP 0.3:0.7 in %). Nothing here is used by ``psftr``: it answered the
question "fuse with the localizer instead of switching to it" (issue 22) on development
data, and the answer was no (docs/calibration_rules.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ALPHAS = (0.25, 0.5, 1.0)


def fuse(model: list[dict], localizer: list[dict], alpha: float, iou: float = 0.5, top: int = 200) -> list[dict]:
    """The union of two detection lists of one video (localizer scores × ``alpha``) after class-wise NMS."""
    from psftr_core.infer.nms import nms

    found = list(model) + [{**d, "score": alpha * d["score"]} for d in localizer]
    if not found:
        return []
    segments = np.array([d["segment"] for d in found], dtype=np.float64)
    scores = np.array([d["score"] for d in found], dtype=np.float64)
    keep = nms(segments, scores, [d["label"] for d in found], iou, max_keep=top)
    return [found[i] for i in keep]


def score_run(run_dir: Path, task: dict) -> dict[str, float]:
    from benchmarks.calibration_rules import unseen_predictions
    from psftr_core.train import calibration

    contrast, localizer = calibration.PRIOR_CHOICE, calibration.Candidate("localizer")
    found, score = unseen_predictions(run_dir / "last.pt", task, [contrast, localizer])
    model_found, localizer_found = found[contrast], found[localizer]
    scores = {"CLIP contrast": score(model_found), "localizer": score(localizer_found)}
    for alpha in ALPHAS:
        scores[f"union, alpha {alpha:g}"] = score({v: fuse(d, localizer_found.get(v, []), alpha)
                                                   for v, d in model_found.items()})
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the calibration study's --out folder")
    args = parser.parse_args(argv)
    cells: dict[str, list[dict]] = {}
    from benchmarks.calibration_variants import study_results

    for result_file in study_results(args.study):
        saved = json.loads(result_file.read_text())
        task = saved.get("task", {})
        if not task or int(task.get("data_seed", 0)) == 0:
            raise SystemExit(f"{result_file}: not a development run (data seed 0 is the benchmark's)")
        scores = score_run(result_file.parent, task)
        cell = f"{task['data_seed']}/{task['transfer']:g}/{task['ratio'].replace('_', '/')}"
        cells.setdefault(cell, []).append(scores)
        print(cell, f"split {task['split']}", {k: round(100 * v, 1) for k, v in scores.items()}, flush=True)
    for cell, runs in cells.items():
        print(f"{cell}: " + ", ".join(f"{k} {100 * np.mean([r[k] for r in runs]):.1f}" for k in runs[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
