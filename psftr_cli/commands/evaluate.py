"""``psftr evaluate``: score detections with ActivityNet detection mAP.

Modes (chosen by the options given):
- ``--predictions P.json --ground-truth GT.json``: score a results file, no model.
- ``--checkpoint CKPT --dataset D --split R [--split-index K|all]``: run a trained
  checkpoint on the zero-shot protocol (``evaluate_checkpoint.py``).
- ``--baseline --dataset D --split R [--split-index K|all]``: score the training-free
  localizer on the same protocol.

Structure: the command parses options and ``_dispatch`` picks a mode; the file mode
returns an ``EvalResult`` that ``_report`` prints (table or ``--json``), the protocol
modes print their own result. No torch import at module level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from psftr_core.errors import InputError

if TYPE_CHECKING:
    from psftr_core.evaluation.detection_map import EvalResult

DEFAULT_TIOUS_SPEC = "0.3:0.7:0.1"  # THUMOS14


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _warn_about(result: "EvalResult") -> None:
    """One stderr line per kind of input that was ignored or could not be matched."""
    counts = result.counts
    console = _stderr()
    lines = []
    ignored = counts["ignored_predictions_unknown_label"]
    if ignored:
        shown = ", ".join(repr(label) for label in result.ignored_labels[:5])
        more = f" and {len(result.ignored_labels) - 5} more" if len(result.ignored_labels) > 5 else ""
        lines.append(
            f"ignored {ignored} prediction(s) whose label is not an evaluated class: {shown}{more}"
        )
    if counts["predictions_on_videos_without_ground_truth"]:
        lines.append(
            f"{counts['predictions_on_videos_without_ground_truth']} prediction(s) are on videos "
            "without ground truth; scored as false positives"
        )
    if counts["ground_truth_videos_without_predictions"]:
        lines.append(
            f"{counts['ground_truth_videos_without_predictions']} of {counts['ground_truth_videos']} "
            "ground-truth videos have no predictions"
        )
    if result.classes_without_predictions:
        lines.append(
            f"{len(result.classes_without_predictions)} class(es) have no predictions (AP 0): "
            + ", ".join(result.classes_without_predictions[:5])
            + (" ..." if len(result.classes_without_predictions) > 5 else "")
        )
    if result.classes_without_ground_truth:
        lines.append(
            f"{len(result.classes_without_ground_truth)} requested class(es) have no ground truth "
            "and are left out of the mean"
        )
    for line in lines:
        console.print(f"warning: {line}", markup=False, soft_wrap=True)


def _evaluate_predictions_file(
    predictions: Path, ground_truth: Path, tious: tuple[float, ...], subset: Optional[str]
) -> "EvalResult":
    from psftr_core.evaluation.detection_map import evaluate_detections, load_ground_truth
    from psftr_core.io.export import read_results_json

    gt = load_ground_truth(ground_truth, subset=subset)
    preds = read_results_json(predictions)
    return evaluate_detections(gt, preds, tious=tious)


def _dispatch(
    predictions: Optional[Path],
    ground_truth: Optional[Path],
    tious_spec: Optional[str],
    subset: Optional[str],
    protocol: dict,
    as_json: bool,
    per_class: bool,
) -> Optional["EvalResult"]:
    """Run the mode the options ask for; returns the result only in predictions-file mode."""
    checkpoint, baseline, dataset = protocol["checkpoint"], protocol["baseline"], protocol["dataset"]
    file_mode = predictions is not None or ground_truth is not None
    if sum([file_mode, checkpoint is not None, baseline]) > 1:
        raise InputError("choose one mode: --predictions/--ground-truth, --checkpoint, or --baseline")
    if file_mode:
        if predictions is None or ground_truth is None:
            raise InputError("--predictions and --ground-truth go together: give both files")
        from psftr_core.evaluation.detection_map import parse_tious

        tious = parse_tious(tious_spec or DEFAULT_TIOUS_SPEC)
        return _evaluate_predictions_file(predictions, ground_truth, tious, subset)
    if checkpoint is None and not baseline:
        raise InputError(
            "nothing to evaluate: give --predictions FILE.json --ground-truth GT.json, "
            "--checkpoint CKPT --dataset D --split R, or --baseline --dataset D --split R"
        )
    if protocol["overrides"] and checkpoint is None:
        raise InputError("--set applies to --checkpoint evaluation only")
    if dataset is None or protocol["split"] is None:
        raise InputError(f"{'--checkpoint' if checkpoint is not None else '--baseline'} needs --dataset and --split")
    if subset is not None:
        raise InputError("--subset applies to --ground-truth files; the protocol modes use the split's test videos")
    from psftr_cli.commands import evaluate_checkpoint as protocol_modes

    common = dict(dataset=dataset, split=protocol["split"], split_index=protocol["split_index"],
                  save_predictions=protocol["save_predictions"], as_json=as_json, data_root=protocol["data_root"],
                  tious=tious_spec, per_class=per_class)
    if baseline:
        protocol_modes.run_baseline_evaluation(**common)
    else:
        protocol_modes.run_checkpoint_evaluation(checkpoint, select=protocol["select"], device=protocol["device"],
                                                 overrides=protocol["overrides"], **common)
    return None


def _report(result: "EvalResult", as_json: bool, per_class: bool, title: Optional[str] = None) -> None:
    _warn_about(result)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    from rich.console import Console

    from psftr_cli.render import render_map_table

    render_map_table(result, Console(highlight=False), per_class=per_class, title=title)


def evaluate(
    predictions: Optional[Path] = typer.Option(
        None, "--predictions", help="Results JSON to score (ActivityNet results schema).", metavar="FILE.json"
    ),
    ground_truth: Optional[Path] = typer.Option(
        None, "--ground-truth", help="Annotation JSON ({\"database\": ...}) to score against.", metavar="GT.json"
    ),
    tious: Optional[str] = typer.Option(
        None,
        "--tious",
        help="tIoU thresholds: a list (0.3,0.5) or start:stop:step (0.5:0.95:0.05). Default 0.3:0.7:0.1.",
        metavar="LIST",
    ),
    subset: Optional[str] = typer.Option(
        None, "--subset", help="Only ground-truth videos of this subset (e.g. test).", metavar="NAME"
    ),
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="PSFTR checkpoint (or run directory) to run on the zero-shot protocol.",
        metavar="CKPT",
    ),
    baseline: bool = typer.Option(
        False, "--baseline", help="Score the training-free localizer on the zero-shot protocol (no checkpoint)."
    ),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", help="Built-in dataset (thumos14, anet) or a dataset folder.", metavar="NAME|DIR"
    ),
    split: Optional[str] = typer.Option(None, "--split", help="Zero-shot split ratio.", metavar="75_25|50_50"),
    split_index: str = typer.Option(
        "0", "--split-index", help="Which split (0-9), or 'all' for mean ± std over the splits.", metavar="K|all"
    ),
    save_predictions: Optional[Path] = typer.Option(
        None, "--save-predictions", help="Also write the detections as a results JSON.", metavar="FILE.json"
    ),
    data_root: Optional[Path] = typer.Option(
        None, "--data-root", help="Folder with the built-in dataset's features (default $PSFTR_DATA/<name>).",
        metavar="DIR",
    ),
    select: str = typer.Option(
        "last", "--select",
        help="Checkpoint of a run directory: last (reported numbers) or best (best-on-test, optimistic).",
        metavar="last|best",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda.", metavar="auto|cpu|cuda"),
    overrides: Optional[List[str]] = typer.Option(
        None, "--set",
        help="With --checkpoint: change an inference setting, e.g. --set inference.scoring=model (repeatable).",
        metavar="inference.KEY=VALUE",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    per_class: bool = typer.Option(False, "--per-class", help="Also print AP per class."),
) -> None:
    """Score detections: mAP at each tIoU threshold and their average."""
    protocol = dict(checkpoint=checkpoint, baseline=baseline, dataset=dataset, split=split, split_index=split_index,
                    save_predictions=save_predictions, data_root=data_root, select=select, device=device,
                    overrides=list(overrides or []))
    result = _dispatch(predictions, ground_truth, tious, subset, protocol, as_json, per_class)
    if result is not None:
        _report(result, as_json=as_json, per_class=per_class)
