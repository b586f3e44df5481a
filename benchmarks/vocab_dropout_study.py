"""Development study of issue 22: does class dropout of the training vocabulary
(``train.vocab_dropout``) change what removing text-to-vision does to unseen-class mAP?

    python -m benchmarks.vocab_dropout_study --out DIR [--seed 1] [--splits 3] [--epochs 10]

On the synthetic generator's development data (data seed 1 by default; seed 0, the
benchmark's data, is refused), transfer 0.5, ratio 75_25, the first ``--splits`` splits,
four variants of the small PSFTR of ``benchmarks.zero_shot`` are trained without
calibration: (a) default, (b) no text-to-vision, (c) class dropout 0.5, (d) both. Each
checkpoint is scored on the unseen classes (mAP averaged over tIoU 0.3:0.7) with two
fixed scorings: the paper's mix (w_c = 0, w_r = 0.5) and the learned logits (w_c = 0,
w_r = 0). Trainings run ``--jobs`` at a time, one torch thread each; finished trainings
are kept in ``DIR`` (a rerun only trains what is missing). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.zero_shot import RESULT_FILE, SMALL_MODEL, Settings, _map, cached_result, mean_std, train_task

STUDY_VARIANTS: dict[str, tuple[str, ...]] = {
    "(a) default": (),
    "(b) no text-to-vision": ("model.use_text_to_vision=false",),
    "(c) vocab dropout 0.5": ("train.vocab_dropout=0.5",),
    "(d) both": ("model.use_text_to_vision=false", "train.vocab_dropout=0.5"),
}
SCORINGS: dict[str, tuple[str, ...]] = {
    "paper's mix": ("inference.contrast_weight=0", "inference.roi_weight=0.5"),
    "learned logits": ("inference.contrast_weight=0", "inference.roi_weight=0"),
}
TRANSFER, RATIO = 0.5, "75_25"


def _train_and_score(task: dict) -> dict:
    return cached_result(Path(task["run_dir"]) / RESULT_FILE, task, _fresh)


def _fresh(task: dict) -> dict:
    from psftr_core.evaluation.protocol import evaluate_checkpoint

    checkpoint, seconds = train_task(task, calibrate=False)
    scores = {name: evaluate_checkpoint(checkpoint, task["data_dir"], task["ratio"], task["split"], device="cpu",
                                        overrides=list(overrides)).result.average
              for name, overrides in SCORINGS.items()}
    return {"variant": task["variant"], "split": task["split"], "scores": scores, "train_seconds": seconds}


def study_tasks(settings: Settings, data_dir: Path, out_dir: Path) -> list[dict]:
    """Every training: split × variant (same learning-rate drop as ``benchmarks.zero_shot``)."""
    drop = (f"train.lr_drop_epochs={max(1, settings.epochs - 2)}",)
    return [{"variant": variant, "ratio": RATIO, "split": split, "data_dir": str(data_dir),
             "epochs": settings.epochs, "seed": 0, "overrides": settings.model_overrides + overrides + drop,
             "run_dir": str(out_dir / "runs" / variant.split(")")[0].strip("(") / f"{RATIO}_split{split}")}
            for split in range(settings.splits) for variant, overrides in STUDY_VARIANTS.items()]


def study_table(results: list[dict], splits: int) -> str:
    """Markdown table: mean ± std (population, over splits) and the per-split numbers, in %."""
    lines = ["| variant | " + " | ".join(f"{s} (mean ± std; per split)" for s in SCORINGS) + " | train s (mean) |",
             "|---|" + "---|" * len(SCORINGS) + "---|"]
    for variant in STUDY_VARIANTS:
        rows = sorted((r for r in results if r["variant"] == variant), key=lambda r: r["split"])
        if not rows:
            continue
        cells = []
        for scoring in SCORINGS:
            values = [100 * r["scores"][scoring] for r in rows]
            mean, std = mean_std(values)
            cells.append(f"{mean:.1f} ± {std:.1f}; " + " / ".join(f"{v:.1f}" for v in values))
        seconds = sum(r["train_seconds"] for r in rows) / len(rows)
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    lines.append("")
    lines.append(f"Unseen-class mAP (%), tIoU 0.3:0.7 averaged; transfer {TRANSFER:g}, ratio {RATIO}, "
                 f"splits 0-{splits - 1}, no calibration.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1, help="data seed (development data; 0 is refused)")
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    if args.seed == 0:
        parser.error("data seed 0 is the benchmark's data; use development data (e.g. --seed 1)")
    from psftr_core.data.synthetic import generate_dataset

    settings = Settings(seed=args.seed, transfers=(TRANSFER,), ratios=(RATIO,), splits=args.splits,
                        epochs=args.epochs, jobs=args.jobs, model_overrides=SMALL_MODEL)
    out = Path(args.out)
    started = time.time()
    data_dir = generate_dataset(out / f"data_seed{args.seed}_transfer{TRANSFER:g}", settings.synthetic_config(TRANSFER))
    tasks = study_tasks(settings, data_dir, out)
    results = []
    for done, result in enumerate(_map(_train_and_score, tasks, settings.jobs), 1):
        results.append(result)
        print(f"[{done}/{len(tasks)}] split {result['split']} {result['variant']}: "
              + ", ".join(f"{k} {100 * v:.1f}" for k, v in result["scores"].items())
              + f" ({result['train_seconds']:.0f} s; {time.time() - started:.0f} s so far)", flush=True)
    print(study_table(results, settings.splits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
