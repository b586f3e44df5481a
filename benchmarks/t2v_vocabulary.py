"""Development check: why text-to-vision costs unseen-class mAP (issue 22).

    python -m benchmarks.t2v_vocabulary --study OUT_DIR [--transfers 0,0.5] [--ratio 75_25] [--splits 2]

The encoder's text-to-vision attention (eq. 1) mixes the vocabulary's text vectors into
every video token. It trains on the seen vocabulary and meets the unseen one at test
time. This script separates "the component hurts" from "the vocabulary shift hurts": for
runs that ``benchmarks.calibration_rules --out OUT_DIR`` trained (development data, text-to-
vision off, the shipped default), it trains the same task with text-to-vision on and
scores CLIP contrast on the unseen classes three ways:

- off: the study's model (no text-to-vision);
- on, unseen vocabulary in the encoder: the normal protocol;
- on, seen vocabulary in the encoder: the encoder (and the decoder's text-to-query) read
  the seen classes' texts, as in training, while the class decision (the CLIP contrast
  curves) still reads the unseen vocabulary; no unseen-class number feeds any choice.

If the last recovers what "off" scores, the loss is the vocabulary shift (the component
as trained); if not, the attention hurts whatever text it reads. Avg mAP 0.3:0.7 in %,
one line per run and the means.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _score(checkpoint: Path, task: dict, encoder_classes: str) -> float:
    from benchmarks.calibration_rules import unseen_predictions
    from psftr_core.runtime.inputs import class_text
    from psftr_core.train import calibration

    def encoder_reads_seen(model, cfg, dataset, split) -> None:
        seen = class_text(dataset, split.seen, None, cfg.data.prompt).float()
        encode = model._encode

        def encode_with_seen(video, mask, text):  # the encoder reads the training vocabulary
            return encode(video, mask, seen[None] if text.dim() == 3 else seen)

        model._encode = encode_with_seen

    predictions, score = unseen_predictions(checkpoint, task, [calibration.PRIOR_CHOICE],
                                            encoder_reads_seen if encoder_classes == "seen" else None)
    return 100 * score(predictions[calibration.PRIOR_CHOICE])


def _run(task: dict) -> dict:
    from benchmarks import zero_shot

    on = dict(task, run_dir=task["run_dir"] + "_t2v",
              overrides=list(task["overrides"]) + ["model.use_text_to_vision=true"])
    result_file = Path(on["run_dir"]) / "t2v_result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    checkpoint, _ = zero_shot.train_task(on, calibrate=False)
    result = {"cell": f"{task['data_seed']}/{task['transfer']:g}/{task['ratio'].replace('_', '/')}",
              "split": task["split"], "off": _score(Path(task["run_dir"]) / "last.pt", task, "unseen"),
              "on, unseen vocabulary in the encoder": _score(checkpoint, on, "unseen"),
              "on, seen vocabulary in the encoder": _score(checkpoint, on, "seen")}
    result_file.write_text(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> int:
    from benchmarks import zero_shot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the calibration study's --out folder")
    parser.add_argument("--transfers", default="0,0.5")
    parser.add_argument("--ratio", default="75_25")
    parser.add_argument("--splits", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    transfers = {float(t) for t in args.transfers.split(",")}
    tasks = []
    from benchmarks.calibration_variants import study_results

    for path in study_results(args.study):
        task = json.loads(path.read_text()).get("task", {})
        if int(task.get("data_seed", 0)) == 0:
            raise SystemExit(f"{path}: not a development run (data seed 0 is the benchmark's)")
        if task["transfer"] in transfers and task["ratio"] == args.ratio and task["split"] < args.splits:
            tasks.append(task)
    results = []
    for result in zero_shot._map(_run, tasks, args.jobs):
        results.append(result)
        print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}), flush=True)
    keys = [k for k in results[0] if k not in ("cell", "split")] if results else []
    print("mean over runs: " + ", ".join(f"{k} {np.mean([r[k] for r in results]):.1f}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
