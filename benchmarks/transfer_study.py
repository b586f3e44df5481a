"""Development study of issue 22: which model change makes PSFTR's learned path transfer
to unseen classes, measured against the actionness probes, on development data only.

    python -m benchmarks.transfer_study --out DIR [--seed 1] [--splits 2] [--transfers 0 0.5 1]

On the synthetic generator's development data (data seed 1 by default; seed 0, the
benchmark's data, is refused), ratio ``--ratio`` (75_25), the first ``--splits`` splits of
each transfer value, the small PSFTR of ``benchmarks.zero_shot`` is trained without
calibration in each variant of ``STUDY_VARIANTS`` and its checkpoint is scored on the
unseen classes (mAP averaged over tIoU 0.3:0.7) with each fixed scoring of
``benchmarks.zero_shot.FIXED_SCORINGS``; the two actionness probes and the localizer are
scored on the same videos. Trainings run ``--jobs`` at a time, one torch thread each;
finished ones are kept in ``DIR`` (a rerun only trains what is missing). Prints one
markdown table per transfer value: mean over splits, and the per-split numbers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.zero_shot import (FIXED_SCORINGS, RESULT_FILE, SMALL_MODEL,
                                  Settings, _map, _references, cached_result, cell_key, mean_std, train_task)

STUDY_VARIANTS: dict[str, tuple[str, ...]] = {
    "paper": (),
    "map": ("model.use_visual_text_map=true",),
    "map, no t2v": ("model.use_visual_text_map=true", "model.use_text_to_vision=false"),
    "no t2v": ("model.use_text_to_vision=false",),
}


def _train_and_score(task: dict) -> dict:
    return cached_result(Path(task["run_dir"]) / RESULT_FILE, task, _fresh)


def _fresh(task: dict) -> dict:
    from psftr_core.evaluation.protocol import evaluate_checkpoint
    from psftr_core.train.calibration import Candidate

    if task["variant"] == "references":
        return {**task, "scores": _references(Path(task["data_dir"]), task["ratio"], task["split"], 0.3),
                "train_seconds": 0.0}
    checkpoint, seconds = train_task(task, calibrate=False)
    scores = {row: evaluate_checkpoint(checkpoint, task["data_dir"], task["ratio"], task["split"], device="cpu",
                                       overrides=Candidate("psftr", w_c, w_r, nms).overrides()).result.average
              for row, (w_c, w_r, nms) in FIXED_SCORINGS.items()}
    return {**task, "scores": scores, "train_seconds": seconds}


def study_tasks(settings: Settings, variants: dict[str, tuple[str, ...]], data_dirs: dict[str, Path], ratio: str,
                out_dir: Path) -> list[dict]:
    """Every job: the references, then each variant, per transfer value and split."""
    drop = (f"train.lr_drop_epochs={max(1, settings.epochs - 2)}",)
    tasks = []
    for transfer in settings.transfers:
        for split in range(settings.splits):
            for variant, overrides in {"references": (), **variants}.items():
                slug = variant.replace(" ", "_").replace(",", "")
                tasks.append({"transfer": transfer, "variant": variant, "ratio": ratio, "split": split,
                              "data_dir": str(data_dirs[cell_key(transfer)]), "epochs": settings.epochs, "seed": 0,
                              "overrides": list(settings.model_overrides + overrides + drop),
                              "run_dir": str(out_dir / "runs" / f"transfer{cell_key(transfer)}" / slug
                                             / f"{ratio}_split{split}")})
    return tasks


def study_tables(results: list[dict], transfers: tuple[float, ...], variants: list[str], ratio: str) -> str:
    """One markdown table per transfer value: rows = (variant, scoring), mean and per split (%)."""
    lines = []
    for transfer in transfers:
        lines += [f"### transfer {transfer:g}, {ratio}", "", "| variant | scoring | mean | per split |", "|---|---|---:|---|"]
        for variant in ["references", *variants]:
            rows = sorted((r for r in results if r["transfer"] == transfer and r["variant"] == variant),
                          key=lambda r: r["split"])
            if not rows:
                continue
            for scoring in rows[0]["scores"]:
                values = [100 * r["scores"][scoring] for r in rows]
                mean, _ = mean_std(values)
                lines.append(f"| {variant} | {scoring} | {mean:.1f} | " + " / ".join(f"{v:.1f}" for v in values) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1, help="data seed (development data; 0 is refused)")
    parser.add_argument("--splits", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ratio", default="75_25")
    parser.add_argument("--transfers", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--variants", nargs="+", default=list(STUDY_VARIANTS), choices=list(STUDY_VARIANTS))
    parser.add_argument("--set", dest="extra", action="append", default=[],
                        help="VARIANT=KEY=VALUE[;KEY=VALUE]: an extra variant (repeatable)")
    args = parser.parse_args(argv)
    if args.seed == 0:
        parser.error("data seed 0 is the benchmark's data; use development data (e.g. --seed 1)")
    from psftr_core.data.synthetic import generate_dataset

    variants = {name: STUDY_VARIANTS[name] for name in args.variants}
    for extra in args.extra:
        name, _, overrides = extra.partition("=")
        variants[name] = tuple(o for o in overrides.split(";") if o)
    settings = Settings(seed=args.seed, transfers=tuple(args.transfers), ratios=(args.ratio,), splits=args.splits,
                        epochs=args.epochs, jobs=args.jobs, model_overrides=SMALL_MODEL)
    out = Path(args.out)
    started = time.time()
    data_dirs = {cell_key(t): generate_dataset(out / f"data_seed{args.seed}_transfer{cell_key(t)}",
                                               settings.synthetic_config(t)) for t in settings.transfers}
    tasks = study_tasks(settings, variants, data_dirs, args.ratio, out)
    results = []
    for done, result in enumerate(_map(_train_and_score, tasks, settings.jobs), 1):
        results.append(result)
        print(f"[{done}/{len(tasks)}] transfer {result['transfer']:g} split {result['split']} {result['variant']}: "
              + ", ".join(f"{k.replace('PSFTR, ', '')} {100 * v:.1f}" for k, v in result["scores"].items())
              + f" ({result['train_seconds']:.0f} s; {time.time() - started:.0f} s so far)", flush=True)
    print(study_tables(results, settings.transfers, list(variants), args.ratio))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
