"""Zero-shot benchmark on synthetic CLIP-like data: PSFTR, its ablations and two baselines.

    python benchmarks/zero_shot.py            # full run (< 25 min on a 2-core CPU)
    python benchmarks/zero_shot.py --quick    # < 5 min, fewer videos / epochs / splits

Generates a synthetic feature dataset (``psftr_core.data.synthetic``), then for each split
ratio (75_25, 50_50) and each of the first ``--splits`` splits:

- trains the full PSFTR and each ablation (no text-to-vision, no vision-to-text, no
  text-to-query, no SPDE) on the seen classes and scores the unseen classes of the test
  videos (ActivityNet mAP, tIoU 0.3:0.7, averaged), last epoch, default inference;
- scores the full PSFTR checkpoints again with the paper's inference
  (``inference.scoring=model``, ``inference.nms=cross_window``; no retraining);
- scores the training-free localizer (``psftr_core.infer.localizer``) and a learned linear probe
  (``psftr_core.infer.linear_probe``: ridge map fitted on seen-class snippets, then the
  localizer) on the same videos and vocabulary.

Prints the table and writes it, with the command, seed, settings and machine, to
``--markdown`` (default ``docs/benchmarks.md``). Trainings run in ``--jobs`` processes
of one torch thread each. Everything is seeded: the same command gives the same numbers
on the same machine and torch version.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# Small PSFTR for CPU training in about a minute: the paper's layer counts, loss weights
# and dropout, narrower, fewer queries, and a higher learning rate for a short schedule
# (at the paper's 1e-4, 10 epochs on this data are far from converged).
SMALL_MODEL = (
    "model.hidden_dim=64",
    "model.num_groups=8",
    "model.dim_feedforward=128",
    "model.dec_layers=3",
    "model.num_queries=20",
    "train.lr=1e-3",
    "train.batch_size=16",
)

VARIANTS: dict[str, tuple[str, ...]] = {
    "PSFTR": (),
    "no text-to-vision": ("model.use_text_to_vision=false",),
    "no vision-to-text": ("model.use_vision_to_text=false",),
    "no text-to-query": ("model.use_text_to_query=false",),
    "no SPDE": ("model.spde_variant=none",),
}
PAPER_INFERENCE = ("inference.scoring=model", "inference.nms=cross_window")
PAPER_ROW = "PSFTR, paper's inference"
LOCALIZER_ROW = "training-free localizer"
PROBE_ROW = "linear probe + localizer"


@dataclass
class Settings:
    """What one benchmark run does (defaults: the full run)."""

    seed: int = 0
    ratios: tuple[str, ...] = ("75_25", "50_50")
    splits: int = 3
    epochs: int = 10
    variants: tuple[str, ...] = tuple(VARIANTS)
    jobs: int = 2
    probe_ridge: float = 0.3
    model_overrides: tuple[str, ...] = SMALL_MODEL
    data: dict[str, Any] = field(default_factory=lambda: {"feature_dim": 256})

    def synthetic_config(self) -> Any:
        from psftr_core.data.synthetic import SyntheticConfig

        return SyntheticConfig(seed=self.seed, **self.data)


QUICK = Settings(splits=1, epochs=8, data={"feature_dim": 256, "num_train_videos": 80, "num_test_videos": 40})


# ----------------------------------------------------------------------------- tasks


def _train_and_score(task: dict) -> dict:
    """Train one (variant, ratio, split) and score it; runs in a worker process."""
    import torch

    torch.set_num_threads(1)
    import shutil

    from psftr_core.evaluation.protocol import evaluate_checkpoint
    from psftr_core.train.run import TrainRequest, train

    shutil.rmtree(task["run_dir"], ignore_errors=True)  # a benchmark run always starts fresh
    started = time.time()
    request = TrainRequest(
        dataset=task["data_dir"], ratio=task["ratio"], split_index=task["split"], output=task["run_dir"],
        epochs=task["epochs"], seed=task["seed"], overrides=list(task["overrides"]), device="cpu", log_every=0,
    )
    (trained,) = train(request)
    seconds = time.time() - started
    scores = {task["variant"]: evaluate_checkpoint(trained.checkpoint, task["data_dir"], task["ratio"],
                                                   task["split"], device="cpu").result.average}
    if task["variant"] == "PSFTR":
        scores[PAPER_ROW] = evaluate_checkpoint(trained.checkpoint, task["data_dir"], task["ratio"], task["split"],
                                                device="cpu", overrides=PAPER_INFERENCE).result.average
    return {"ratio": task["ratio"], "split": task["split"], "scores": scores, "train_seconds": seconds}


def _baselines(data_dir: Path, ratio: str, split: int, ridge: float) -> dict[str, float]:
    import numpy as np

    from psftr_core.evaluation.protocol import default_tious, evaluate_baseline
    from psftr_core.infer.localizer import localize
    from psftr_core.data.datasets import load_dataset
    from psftr_core.evaluation.detection_map import evaluate_detections
    from psftr_core.infer.linear_probe import fit_linear_probe

    dataset = load_dataset(data_dir)
    localizer = evaluate_baseline(dataset, ratio, split).result.average
    view = dataset.split(ratio, split)
    probe = fit_linear_probe(dataset, dataset.train_videos(view),
                             {c: dataset.text_embeddings[c] for c in view.seen}, ridge)
    names = list(view.unseen)
    text = np.stack([dataset.text_embeddings[c] for c in names])
    predictions = {
        v.video_id: localize(probe.transform(dataset.load_features(v.video_id)), dataset.snippet_times(v.video_id),
                             text, names, duration=v.duration)
        for v in dataset.eval_videos(view)
    }
    probe_map = evaluate_detections(dataset.ground_truth(view), predictions,
                                    tious=default_tious("thumos14"), classes=names).average
    return {LOCALIZER_ROW: localizer, PROBE_ROW: probe_map}


def run(settings: Settings, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """Run the benchmark; returns ``{"rows": {row: {ratio: [mAP per split]}}, ...}`` (mAP in %)."""
    from psftr_core.data.synthetic import generate_dataset

    started = time.time()
    unknown = [v for v in settings.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    data_dir = generate_dataset(out_dir / "data", settings.synthetic_config())
    log(f"dataset: {data_dir} ({time.time() - started:.1f} s)")
    rows: dict[str, dict[str, list[float]]] = {}

    def add(row: str, ratio: str, split: int, value: float) -> None:
        per_split = rows.setdefault(row, {}).setdefault(ratio, [float("nan")] * settings.splits)
        per_split[split] = 100.0 * value

    for ratio in settings.ratios:
        for split in range(settings.splits):
            for row, value in _baselines(data_dir, ratio, split, settings.probe_ridge).items():
                add(row, ratio, split, value)
    log(f"baselines done ({time.time() - started:.1f} s)")

    tasks = [
        {"variant": variant, "ratio": ratio, "split": split, "data_dir": str(data_dir), "epochs": settings.epochs,
         "seed": settings.seed, "overrides": settings.model_overrides + VARIANTS[variant]
         + (f"train.lr_drop_epochs={max(1, settings.epochs - 2)}",),
         "run_dir": str(out_dir / "runs" / variant.replace(" ", "_") / f"{ratio}_split{split}")}
        for ratio in settings.ratios for split in range(settings.splits) for variant in settings.variants
    ]
    train_seconds = []
    for done, result in enumerate(_map(_train_and_score, tasks, settings.jobs), 1):
        for row, value in result["scores"].items():
            add(row, result["ratio"], result["split"], value)
        train_seconds.append(result["train_seconds"])
        log(f"[{done}/{len(tasks)}] {result['ratio']} split {result['split']}: "
            + ", ".join(f"{k} {100 * v:.1f}" for k, v in result["scores"].items())
            + f" ({result['train_seconds']:.0f} s)")
    return {"rows": rows, "seconds": time.time() - started,
            "train_seconds_mean": sum(train_seconds) / max(len(train_seconds), 1)}


def _map(fn: Callable[[dict], dict], tasks: list[dict], jobs: int):
    if jobs <= 1:
        yield from map(fn, tasks)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: fresh interpreters, no forked OpenMP state
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(fn, tasks)


# ----------------------------------------------------------------------------- report


def mean_std(values: list[float]) -> tuple[float, float]:
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std())


def table_lines(results: dict, ratios: tuple[str, ...]) -> list[str]:
    """Markdown table: one row per method, mean ± std (population, over splits) per ratio."""
    order = [PROBE_ROW, LOCALIZER_ROW, PAPER_ROW, *VARIANTS]
    rows = [r for r in order if r in results["rows"]]
    lines = ["| method | " + " | ".join(f"{r.replace('_', '/')} unseen mAP" for r in ratios) + " |",
             "|---|" + "---:|" * len(ratios)]
    for row in rows:
        cells = []
        for ratio in ratios:
            mean, std = mean_std(results["rows"][row][ratio])
            cells.append(f"{mean:.1f} ± {std:.1f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


def findings(results: dict, ratios: tuple[str, ...]) -> list[str]:
    """One line per comparison, computed from the numbers: PSFTR against each reference
    (means), and each ablation against the full model paired by split (the same split's
    data and seed), so split difficulty cancels out."""
    import numpy as np

    rows = results["rows"]
    lines = []
    if "PSFTR" not in rows:
        return lines
    for ratio in ratios:
        name = ratio.replace("_", "/")
        full = np.asarray(rows["PSFTR"][ratio])
        for other in (LOCALIZER_ROW, PROBE_ROW, PAPER_ROW):
            if other in rows:
                mean, _ = mean_std(rows[other][ratio])
                wins = int((full > np.asarray(rows[other][ratio])).sum())
                lines.append(f"- {name}: PSFTR {full.mean():.1f} vs {other} {mean:.1f} "
                             f"({full.mean() - mean:+.1f}; PSFTR ahead on {wins} of {len(full)} splits).")
        for variant in VARIANTS:
            if variant == "PSFTR" or variant not in rows:
                continue
            delta = full - np.asarray(rows[variant][ratio])  # > 0: removing the path costs mAP
            if (delta > 0).all():
                verdict = "the path helps on every split"
            elif (delta < 0).all():
                verdict = "the model is better without it on every split"
            else:
                verdict = "mixed across splits"
            lines.append(f"- {name}: {variant}: {np.mean(rows[variant][ratio]):.1f}; full minus ablation "
                         f"{delta.mean():+.1f} ± {delta.std():.1f} per split ({verdict}).")
    return lines


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
            f"{platform.system()} {platform.release()}")


def markdown(results: dict, settings: Settings, command: str) -> str:
    data = settings.synthetic_config()
    overrides = " ".join(settings.model_overrides)
    lines = [
        "# Zero-shot benchmark (synthetic CLIP-like data)",
        "",
        "Written by `benchmarks/zero_shot.py`; rerun it to update this page.",
        "",
        f"- Command: `{command}`",
        f"- Seed: {settings.seed}; splits per ratio: {settings.splits} (the first ones of the generated "
        "splits.json); mean ± population std over splits.",
        f"- Data: `psftr_core.data.synthetic` defaults except feature_dim={data.feature_dim}, "
        f"{data.num_train_videos} training and {data.num_test_videos} test videos, {data.num_classes} classes "
        f"(generator version and all parameters in the dataset's synthetic_config.json).",
        f"- Training: {settings.epochs} epochs, lr ×0.1 at epoch {max(1, settings.epochs - 2)}, seed "
        f"{settings.seed}, overrides `{overrides}`; last-epoch checkpoints, CPU, one thread per training, "
        f"{settings.jobs} trainings at a time; {results['train_seconds_mean']:.0f} s per training.",
        "- Metric: unseen-class mAP (%) averaged over tIoU 0.3:0.1:0.7, vocabulary = the split's unseen "
        "classes, test videos with unseen ground truth (which also contain seen-class actions).",
        f"- Machine: {machine()}.",
        f"- Wall time: {results['seconds'] / 60:.1f} min.",
        "",
        *table_lines(results, settings.ratios),
        "",
        "Rows: the linear probe maps features into the text space with a ridge regression fitted on "
        f"seen-class snippets (shrunk towards the identity, λ = {settings.probe_ridge}), then runs the "
        "localizer; the training-free localizer is what `psftr detect` uses without a checkpoint; "
        "\"paper's inference\" scores the full PSFTR checkpoints with σ(actionness)·softmax(learned + ROI "
        "logits) and NMS only across windows; the PSFTR rows use the default inference "
        "(`inference.scoring=calibrated`: σ(actionness) × the outer-inner contrast of the video-calibrated "
        "CLIP class curve over the segment, class-wise NMS; see `psftr_core/infer/predict.py`).",
        "",
        "## Findings (computed from the table)",
        "",
        *findings(results, settings.ratios),
        "",
        "## Why the default inference differs from the paper's",
        "",
        "Trained as published, PSFTR scored below the training-free localizer on the unseen classes of "
        "this data (the \"paper's inference\" row). Looking at one trained model stage by stage (75/25 "
        "split 0 of the default D = 512 data, hidden width 128, 16 epochs) showed where it failed: on its "
        "own training videos it localized the seen classes well (82 mAP@0.3), and its class-agnostic "
        "proposals ranked by actionness were good, but (1) the learned class logits fit the seen classes and carried little to unseen ones (learned logits "
        "alone: 11 unseen mAP), (2) the softmax over the vocabulary has no way to say \"none of these\", "
        "so seen-class actions in the test videos were confidently given unseen labels, and (3) with "
        "NMS only across windows, near-duplicate queries of one window all survived. Scoring each "
        "segment with actionness × the outer-inner contrast of CLIP's frame-text evidence, calibrated "
        "against the rest of the video (the training-free localizer's class curves), plus class-wise "
        "NMS, fixes all three without touching training or data: the model decides where actions are, "
        "calibrated CLIP decides which vocabulary class they are. This is `inference.scoring=calibrated`, "
        "the default; `inference.scoring=model inference.nms=cross_window` gives the paper's inference "
        "for any checkpoint (`psftr evaluate --set ...`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, under 5 minutes")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--splits", type=int, default=None, help="splits per ratio")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None, help="trainings at a time (one thread each)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="extra config override for every training, e.g. model.hidden_dim=64 (repeatable)")
    parser.add_argument("--variants", default=None, help="comma-separated subset of: " + ", ".join(VARIANTS))
    parser.add_argument("--markdown", default="docs/benchmarks.md", help="where to write the report ('' = nowhere)")
    parser.add_argument("--results", default=None, help="also save the raw numbers as JSON here")
    parser.add_argument("--render", default=None, metavar="RESULTS.json",
                        help="only rewrite the report from a --results file of the same settings (no training)")
    args = parser.parse_args(argv)

    settings = QUICK if args.quick else Settings()
    changes = {k: v for k, v in {"seed": args.seed, "splits": args.splits, "epochs": args.epochs,
                                 "jobs": args.jobs}.items() if v is not None}
    if args.overrides:
        changes["model_overrides"] = settings.model_overrides + tuple(args.overrides)
    if args.variants:
        changes["variants"] = tuple(v.strip() for v in args.variants.split(","))
    settings = dataclasses.replace(settings, **changes)

    import json
    import tempfile

    from psftr_core.io.atomic import write_json, write_text

    if args.render:
        saved = json.loads(Path(args.render).read_text(encoding="utf-8"))
        results, command = saved["results"], saved["command"]
    else:
        with tempfile.TemporaryDirectory(prefix="psftr-zero-shot-") as tmp:
            out_dir = Path(args.out) if args.out else Path(tmp)
            results = run(settings, out_dir, log=lambda m: print(m, file=sys.stderr, flush=True))
        command = "python benchmarks/zero_shot.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                      " " + " ".join(argv if argv is not None else sys.argv[1:]))
        if args.results:
            write_json(args.results, {"command": command, "settings": dataclasses.asdict(settings),
                                      "results": results})
    report = markdown(results, settings, command)
    print(report)
    if args.markdown:
        write_text(args.markdown, report)


if __name__ == "__main__":
    main()
