"""``psftr evaluate``: score detections with ActivityNet detection mAP.

Modes (chosen by the options given):

- ``--predictions P.json --ground-truth GT.json``: score a results file, no model.
- ``--checkpoint CKPT --dataset D --split R [--split-index K|all]``: run a trained
  checkpoint on the zero-shot protocol (``psftr_core.evaluation.protocol``). With an
  index K, ``CKPT`` is a checkpoint file or a run directory (its ``last.pt``, or
  ``best.pt`` with ``--select best``); with ``all``, the run directory of ``psftr train
  --split-index all`` (``RUN_DIR/split_K/last.pt``), reported as one row per split and
  the mean ± std (population) per threshold, the way zero-shot papers report.
- ``--baseline --dataset D --split R [--split-index K|all]``: score the training-free
  localizer on the same protocol; nothing trained.

Output: the mAP table, or with ``--json`` the ``EvalResult`` (file mode), plus
``model``, ``checkpoint``, ``split_ratio``, ``split_index``, ``epoch`` and
``selection`` (one split), or ``SplitAggregate.to_dict()`` (all splits).
``--save-predictions F.json`` writes the protocol's detections as a results file that
``--predictions F.json`` scores to the same numbers (with ``all``: ``F_split0.json`` ...).
Numbers are from the last epoch; ``--select best`` (best-on-test selection) says so in
the title, on stderr and in the JSON. No torch import at module level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional, Sequence

import typer

from psftr_cli import options
from psftr_core.errors import InputError

DEFAULT_TIOUS_SPEC = "0.3:0.7:0.1"  # THUMOS14


_CLIP_MODEL, _CLIP_PRETRAINED, _CLIP_CONFIG = options.text_tower_options()

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
    checkpoint: Optional[str] = typer.Option(
        None, "--checkpoint", help="PSFTR checkpoint (or run directory) to run on the zero-shot protocol: a path, "
        "hf:OWNER/REPO/FILE[@REVISION] (hub cache) or an https:// URL (with --checkpoint-sha256).",
        metavar="CKPT|REF",
    ),
    checkpoint_sha256: Optional[str] = typer.Option(
        None, "--checkpoint-sha256", help="The checkpoint file's SHA-256, checked before it is loaded (required "
        "for a URL).", metavar="HEX",
    ),
    baseline: bool = typer.Option(
        False, "--baseline", help="Score the training-free localizer on the zero-shot protocol (no checkpoint)."
    ),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", help=f"Built-in dataset ({options.BUILTIN_DATASETS_TEXT}) or a dataset folder.", metavar="NAME|DIR"
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
    device: str = options.device(),
    overrides: Optional[List[str]] = typer.Option(
        None, "--set",
        help="With --checkpoint: change an inference setting, e.g. --set inference.scoring=model (repeatable).",
        metavar="inference.KEY=VALUE",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    per_class: bool = typer.Option(False, "--per-class", help="Also print AP per class."),
    clip_model: Optional[str] = _CLIP_MODEL,
    clip_pretrained: Optional[str] = _CLIP_PRETRAINED,
    clip_config: Optional[Path] = _CLIP_CONFIG,
) -> None:
    """Score detections: mAP at each tIoU threshold and their average."""
    file_mode = predictions is not None or ground_truth is not None
    if sum([file_mode, checkpoint is not None, baseline]) > 1:
        raise InputError("choose one mode: --predictions/--ground-truth, --checkpoint, or --baseline")
    clip = (clip_model, clip_pretrained, clip_config)
    if file_mode and any(v is not None for v in clip):
        raise InputError("--clip-model/--clip-pretrained/--clip-config apply to --checkpoint and --baseline only")
    if file_mode:
        if predictions is None or ground_truth is None:
            raise InputError("--predictions and --ground-truth go together: give both files")
        evaluate_predictions_file(predictions, ground_truth, tious, subset, as_json, per_class)
        return
    if checkpoint is None and not baseline:
        raise InputError(
            "nothing to evaluate: give --predictions FILE.json --ground-truth GT.json, "
            "--checkpoint CKPT --dataset D --split R, or --baseline --dataset D --split R"
        )
    if overrides and checkpoint is None:
        raise InputError("--set applies to --checkpoint evaluation only")
    if checkpoint_sha256 is not None and checkpoint is None:
        raise InputError("--checkpoint-sha256 applies to --checkpoint: give both")
    if checkpoint is not None:
        _check_checkpoint_reference(checkpoint, checkpoint_sha256, split_index, select)
    if dataset is None or split is None:
        raise InputError(f"{'--checkpoint' if checkpoint is not None else '--baseline'} needs --dataset and --split")
    if subset is not None:
        raise InputError("--subset applies to --ground-truth files; the protocol modes use the split's test videos")
    _check_paths_first(dataset, checkpoint, clip_config)
    if save_predictions is not None:  # checked before any work (one file per split with --split-index all)
        from psftr_core.io.paths import prepare_output_file

        _refuse_predictions_over_inputs(save_predictions, [dataset, data_root, checkpoint, clip_config])
        save_predictions = prepare_output_file(save_predictions, "--save-predictions")
    if checkpoint is not None:  # may download: after every check
        from psftr_core.runtime.checkpoint_ref import resolve_checkpoint_ref

        checkpoint = resolve_checkpoint_ref(checkpoint, checkpoint_sha256)
    evaluate_on_protocol(checkpoint, dataset, split, split_index, save_predictions=save_predictions, as_json=as_json,
                         data_root=data_root, select=select, device=device, tious=tious, per_class=per_class,
                         overrides=list(overrides or []), clip=clip)


def _check_paths_first(dataset: str, checkpoint: Optional[str], clip_config: Optional[Path]) -> None:
    """The dataset, a local checkpoint and the CLIP config exist: a typo is said at once,
    not after the seconds torch takes to import."""
    from psftr_core.runtime.checkpoint_ref import is_remote

    options.check_inputs_first(dataset, [("--clip-config", clip_config)])
    if checkpoint is not None and not is_remote(checkpoint) and not Path(checkpoint).expanduser().exists():
        raise InputError(f"checkpoint {checkpoint} does not exist (train one with `psftr train`)")


def _check_checkpoint_reference(checkpoint: str, sha256: Optional[str], split_index: str, select: str) -> None:
    """A malformed reference or checksum is refused before any work; a reference names one
    file, so the run-directory forms (all splits, ``--select best``) need a local folder."""
    from psftr_core.runtime.checkpoint_ref import check_reference, is_remote, normalise_sha256

    check_reference(checkpoint)
    normalise_sha256(sha256)
    if is_remote(checkpoint) and split_index.strip().lower() == "all":
        raise InputError(f"--checkpoint {checkpoint}: a reference names one checkpoint file; --split-index all "
                         "needs a local run directory (RUN_DIR/split_K/last.pt)")
    if is_remote(checkpoint) and select != "last":
        raise InputError(f"--checkpoint {checkpoint}: --select applies to a local run directory; name the file "
                         "you want (e.g. best.pt) in the reference")


def _refuse_predictions_over_inputs(save_predictions: Path, read: Sequence[Any]) -> None:
    """Exit 2 naming both when ``--save-predictions`` (or one of its per-split files) is
    a file this run reads: the dataset's ground truth and other files, the checkpoint."""
    from psftr_core.io.paths import files_in, files_under, refuse_outputs_over_inputs

    inputs: list[Path] = []
    for item in read:
        if item is None:
            continue
        path = Path(item)
        inputs.extend(files_under(path) if path.is_dir() else [path])
    pattern = f"{save_predictions.stem}_split"
    per_split = [p for p in files_in(save_predictions.parent or Path(".")) if p.name.startswith(pattern)]
    refuse_outputs_over_inputs({"--save-predictions": [save_predictions, *per_split]}, inputs)


def evaluate_predictions_file(predictions: Path, ground_truth: Path, tious: Optional[str], subset: Optional[str],
                              as_json: bool, per_class: bool) -> None:
    """Score a results file against a ground-truth file and print the result."""
    from psftr_core.evaluation.detection_map import evaluate_detections, load_ground_truth, parse_tious
    from psftr_core.io.export import read_results_json

    thresholds = parse_tious(tious or DEFAULT_TIOUS_SPEC)
    gt = load_ground_truth(ground_truth, subset=subset)
    result = evaluate_detections(gt, read_results_json(predictions), tious=thresholds)
    _show_result(result, as_json, per_class, result.to_dict(), title=None)


def evaluate_on_protocol(
    checkpoint: Optional[Path],
    dataset: str,
    split: str,
    split_index: str,
    save_predictions: Optional[Path] = None,
    as_json: bool = False,
    data_root: Optional[Path] = None,
    select: str = "last",
    device: str = "auto",
    tious: Optional[str] = None,
    per_class: bool = False,
    overrides: Sequence[str] = (),
    clip: Sequence[Any] = (None, None, None),
) -> None:
    """Evaluate a checkpoint (or, with ``checkpoint=None``, the training-free localizer) on
    one split or all splits (``split_index="all"``) and print the result. ``clip``:
    (``--clip-model``, ``--clip-pretrained``, ``--clip-config``), None where not given."""
    from psftr_core.data.datasets import load_dataset
    from psftr_core.data.splits import check_ratio
    from psftr_core.evaluation import protocol
    from psftr_core.evaluation.detection_map import parse_tious
    from psftr_core.runtime.clip_source import ClipRequest
    from psftr_cli.render import stderr_console

    clip = ClipRequest(*clip)
    if checkpoint is not None:
        protocol.check_selection(select)
    check_ratio(split)
    thresholds = parse_tious(tious) if tious else None
    data = load_dataset(dataset, data_root=data_root)
    index = protocol.parse_split_index(split_index)
    if index is None:
        console = stderr_console()

        def on_split(k: int, count: int) -> None:
            console.print(f"evaluating split {k + 1}/{count}", markup=False)

        if checkpoint is None:
            agg = protocol.evaluate_localizer_all_splits(data, split, on_split=on_split, tious=thresholds, clip=clip)
        else:
            agg = protocol.evaluate_all_splits(checkpoint, data, split, selection=select, on_split=on_split,
                                               device=device, tious=thresholds, overrides=overrides, clip=clip)
        _show_aggregate(agg, split, save_predictions, as_json, data.name)
    elif checkpoint is None:
        _show_split(protocol.evaluate_localizer(data, split, index, tious=thresholds, clip=clip), split,
                    save_predictions, as_json, per_class, data.name)
    else:
        path = protocol.resolve_checkpoint(checkpoint, select)
        ev = protocol.evaluate_checkpoint(path, data, split, index, device=device, tious=thresholds,
                                          selection=select, overrides=overrides, clip=clip)
        _show_split(ev, split, save_predictions, as_json, per_class, data.name)


def scored_by(evaluation: Any) -> str:
    """What made the detections of a ``CheckpointEvaluation``, for its table's title: the
    localizer, or PSFTR and its scoring weights (``psftr_cli.render.psftr_words``)."""
    from psftr_cli.render import LOCALIZER_WORDS, psftr_words

    if evaluation.checkpoint is None:
        return LOCALIZER_WORDS
    inference = evaluation.inference
    if inference is None or evaluation.weights is None:  # an evaluation made without its inference settings
        return "PSFTR"
    if inference.method == "localizer":
        return f"{LOCALIZER_WORDS} (the checkpoint's inference.method)"
    roi_weight, contrast_weight = evaluation.weights  # resolved with the checkpoint's model config
    return psftr_words(roi_weight, contrast_weight, inference.nms)


def split_predictions_path(path: Path, index: int) -> Path:
    """``F.json`` -> ``F_split{index}.json`` (per-split files of ``--split-index all``)."""
    return path.with_name(f"{path.stem}_split{index}{path.suffix or '.json'}")


def _write_predictions(path: Path, evaluation: Any, ratio: str) -> None:
    from psftr_core.io.export import write_results_json

    if evaluation.checkpoint is None:
        what = "training-free localizer (CLIP frame-text similarity, psftr_core.infer.localizer)"
    else:
        what = f"PSFTR checkpoint {evaluation.checkpoint} (epoch {evaluation.epoch})"
    details = f"{what}, zero-shot split {ratio}/{evaluation.split_index}; no external classifier"
    write_results_json(path, evaluation.predictions, details)


def _note_selection(selection: str) -> None:
    from psftr_cli.render import SELECTION_NOTE, stderr_console

    if selection == "best":
        stderr_console().print(f"note: {SELECTION_NOTE}", markup=False)


def _note_localizer(evaluations: Sequence[Any]) -> None:
    """Say so on stderr when a checkpoint's inference is the training-free localizer
    (what a calibration chooses where no scoring of the model beats it)."""
    from psftr_cli.render import stderr_console

    splits = [str(ev.split_index) for ev in evaluations
              if ev.checkpoint is not None and getattr(ev.inference, "method", "psftr") == "localizer"]
    if splits:
        stderr_console().print(
            f"note: inference.method=localizer (split {', '.join(splits)}): these numbers are the training-free "
            "localizer's, as the checkpoint's calibration chose on held-out seen classes; "
            "--set inference.method=psftr scores the model", markup=False)


def _show_result(result: Any, as_json: bool, per_class: bool, document: dict, title: Optional[str],
                 selection: str = "last") -> None:
    """Warnings about ``result`` (and the selection note) on stderr, then ``document`` as
    JSON or the mAP table on stdout."""
    from rich.console import Console

    from psftr_cli.render import render_map_table, warn_about

    warn_about(result)
    _note_selection(selection)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    render_map_table(result, Console(highlight=False), per_class=per_class, title=title)


def _show_split(ev: Any, split: str, save_predictions: Optional[Path], as_json: bool, per_class: bool,
                dataset: Optional[str] = None) -> None:
    from psftr_cli.render import split_title

    if save_predictions is not None:
        _write_predictions(save_predictions, ev, split)
    _note_localizer([ev])
    title = None if as_json else split_title(split, ev, dataset, scored_by(ev))
    _show_result(ev.result, as_json, per_class, {**ev.to_dict(), "split_ratio": split}, title, ev.selection)


def _show_aggregate(agg: Any, split: str, save_predictions: Optional[Path], as_json: bool,
                    dataset: Optional[str] = None) -> None:
    from rich.console import Console

    from psftr_cli.render import render_aggregate

    if save_predictions is not None:
        for ev in agg.per_split:
            _write_predictions(split_predictions_path(save_predictions, ev.split_index), ev, split)
    _note_localizer(agg.per_split)
    _note_selection(agg.selection)
    if as_json:
        typer.echo(json.dumps(agg.to_dict(), indent=2))
        return
    render_aggregate(agg, Console(highlight=False), split, dataset, [scored_by(ev) for ev in agg.per_split])
