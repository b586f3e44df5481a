"""Protocol modes of ``psftr evaluate``: ``--checkpoint CKPT`` or ``--baseline``, with
``--dataset D --split R --split-index K|all``.

``run_checkpoint_evaluation`` / ``run_baseline_evaluation`` are called by
``psftr_cli.commands.evaluate`` when ``--checkpoint`` / ``--baseline`` is given. All the work is in ``psftr_core.train.engine``; this module only
resolves paths, prints and writes files. No torch import at module level.

- ``--split-index K``: ``CKPT`` is a checkpoint file, or a run directory (its
  ``last.pt``, or ``best.pt`` with ``--select best``). Prints the mAP table (or the
  EvalResult JSON with ``--json``, plus ``checkpoint``, ``split_ratio``,
  ``split_index``, ``epoch`` and ``selection`` keys).
- ``--split-index all``: ``CKPT`` is the run directory of ``psftr train --split-index
  all`` (``RUN_DIR/split_K/last.pt``); prints one row per split and the mean ± std
  (population) per threshold, the way zero-shot papers report; ``--json`` prints
  ``SplitAggregate.to_dict()``.
- ``--save-predictions F.json`` writes the detections as an ActivityNet results file
  that ``psftr evaluate --predictions F.json`` scores to the same numbers; with
  ``all``, one file per split: ``F_split0.json`` ... .
- ``--baseline`` scores the training-free localizer (``psftr_core.infer.localizer``) on the
  same evaluation videos and unseen-class vocabulary; no checkpoint, nothing trained.
- Numbers are from the last epoch. ``--select best`` (best-on-test selection, only for
  runs trained with ``--eval-every``) is reported as such in the title and the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import typer

from psftr_core.errors import InputError

SELECTION_NOTE = "best-on-test checkpoint selection (optimistic: chosen on the evaluation data)"


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def resolve_checkpoint(checkpoint: Path, select: str) -> Path:
    """A checkpoint file from a file or run-directory argument."""
    if checkpoint.is_dir():
        path = checkpoint / f"{select}.pt"
        if not path.is_file():
            extra = " (best.pt exists only for runs trained with --eval-every)" if select == "best" else ""
            raise InputError(f"run directory {checkpoint} has no {select}.pt{extra}")
        return path
    if select == "best" and checkpoint.name == "last.pt":
        best = checkpoint.with_name("best.pt")
        if not best.is_file():
            raise InputError(f"--select best: {best} does not exist (it is written only with --eval-every)")
        return best
    return checkpoint


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


def _title(ratio: str, index: Any, epoch: Optional[int], select: str, baseline: bool = False) -> str:
    if baseline:
        return f"Training-free localizer zero-shot mAP (%), split {ratio}/{index}"
    what = f"PSFTR zero-shot mAP (%), split {ratio}/{index}"
    if select == "best":
        return f"{what}, {SELECTION_NOTE}"
    return f"{what}, last epoch" + (f" ({epoch})" if epoch is not None else "")


def render_aggregate(agg: Any, console: Any, ratio: str) -> None:
    """One row per split and mean ± std per threshold (percent)."""
    from rich.table import Table

    from psftr_cli.render import _print

    if agg.per_split and agg.per_split[0].checkpoint is None:
        title = f"Training-free localizer zero-shot mAP (%) over {len(agg.per_split)} splits of {ratio}"
    else:
        title = f"PSFTR zero-shot mAP (%) over {len(agg.per_split)} splits of {ratio}, " + (
            SELECTION_NOTE if agg.selection == "best" else "last epoch of each split"
        )
    table = Table(title=title, title_justify="left")
    table.add_column("split", no_wrap=True)
    for t in agg.tious:
        table.add_column(str(t), justify="right", no_wrap=True)
    table.add_column("Avg", justify="right", no_wrap=True)
    for ev in agg.per_split:
        table.add_row(str(ev.split_index), *[f"{100 * v:.2f}" for v in ev.result.mAP], f"{100 * ev.result.average:.2f}")
    table.add_section()
    table.add_row(
        "mean ± std",
        *[f"{100 * m:.2f} ± {100 * s:.2f}" for m, s in zip(agg.mean, agg.std)],
        f"{100 * agg.average_mean:.2f} ± {100 * agg.average_std:.2f}",
    )
    _print(console, table)


def _is_all(split_index: str) -> bool:
    return str(split_index).strip().lower() == "all"


def _split_number(split_index: str) -> int:
    try:
        return int(str(split_index))
    except ValueError:
        raise InputError(f"--split-index must be an integer or 'all', got {split_index!r}") from None


def _print_aggregate(agg: Any, split: str, save_predictions: Optional[Path], as_json: bool) -> None:
    if save_predictions is not None:
        for ev in agg.per_split:
            _write_predictions(split_predictions_path(save_predictions, ev.split_index), ev, split)
    if agg.selection == "best":
        _stderr().print(f"note: {SELECTION_NOTE}", markup=False)
    if as_json:
        typer.echo(json.dumps(agg.to_dict(), indent=2))
        return
    from rich.console import Console

    render_aggregate(agg, Console(highlight=False), split)


def _print_one(ev: Any, split: str, save_predictions: Optional[Path], as_json: bool, per_class: bool) -> None:
    from psftr_cli.commands.evaluate import _warn_about

    if save_predictions is not None:
        _write_predictions(save_predictions, ev, split)
    _warn_about(ev.result)
    if ev.selection == "best":
        _stderr().print(f"note: {SELECTION_NOTE}", markup=False)
    if as_json:
        typer.echo(json.dumps({**ev.to_dict(), "split_ratio": split}, indent=2))
        return
    from rich.console import Console

    from psftr_cli.render import render_map_table

    render_map_table(ev.result, Console(highlight=False), per_class=per_class,
                     title=_title(split, ev.split_index, ev.epoch, ev.selection, baseline=ev.checkpoint is None))


def _prepare(dataset: str, split: str, data_root: Optional[Path], tious: Optional[str]) -> tuple[Any, Any]:
    from psftr_core.data.datasets import load_dataset
    from psftr_core.evaluation.detection_map import parse_tious
    from psftr_core.data.splits import check_ratio

    check_ratio(split)
    thresholds = parse_tious(tious) if tious else None
    return load_dataset(dataset, data_root=data_root), thresholds


def run_checkpoint_evaluation(
    checkpoint: Path,
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
) -> None:
    """Evaluate a checkpoint (or the 10 split checkpoints of a run) and print the result."""
    from psftr_core.train import engine

    if select not in engine.SELECTIONS:
        raise InputError(f"--select must be last or best, got {select!r}")
    data, thresholds = _prepare(dataset, split, data_root, tious)
    if _is_all(split_index):
        console = _stderr()
        agg = engine.evaluate_all_splits(
            checkpoint, data, split, device=device, tious=thresholds, selection=select,
            on_split=lambda k, n: console.print(f"evaluating split {k + 1}/{n}", markup=False), overrides=overrides,
        )
        _print_aggregate(agg, split, save_predictions, as_json)
        return
    index = _split_number(split_index)
    path = resolve_checkpoint(checkpoint, select)
    ev = engine.evaluate_checkpoint(path, data, split, index, device=device, tious=thresholds, selection=select,
                                    overrides=overrides)
    _print_one(ev, split, save_predictions, as_json, per_class)


def run_baseline_evaluation(
    dataset: str,
    split: str,
    split_index: str,
    save_predictions: Optional[Path] = None,
    as_json: bool = False,
    data_root: Optional[Path] = None,
    tious: Optional[str] = None,
    per_class: bool = False,
) -> None:
    """Score the training-free localizer on one split (or all) and print the result."""
    from psftr_core.train import engine

    data, thresholds = _prepare(dataset, split, data_root, tious)
    if _is_all(split_index):
        console = _stderr()
        agg = engine.evaluate_baseline_all_splits(
            data, split, tious=thresholds,
            on_split=lambda k, n: console.print(f"evaluating split {k + 1}/{n}", markup=False),
        )
        _print_aggregate(agg, split, save_predictions, as_json)
        return
    ev = engine.evaluate_baseline(data, split, _split_number(split_index), tious=thresholds)
    _print_one(ev, split, save_predictions, as_json, per_class)
