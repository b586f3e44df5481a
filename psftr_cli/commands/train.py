"""``psftr train``: train PSFTR on the seen classes of a zero-shot split.

Writes ``RUN_DIR/last.pt`` (one split) or ``RUN_DIR/split_K/last.pt`` (``--split-index
all``), plus ``metrics.jsonl``, ``config.yaml`` and ``run.json``; the layout is described
in ``psftr_core.train.engine``. Progress goes to stderr; stdout gets the checkpoint paths, one
per line. Ctrl-C keeps the last complete checkpoint (exit 130); ``--resume`` continues
from it. Under ``torchrun --nproc_per_node N`` the same command trains with
DistributedDataParallel. No torch import at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def train(
    dataset: str = typer.Option(
        ..., "--dataset", help="Built-in dataset (thumos14, anet) or a dataset folder with a dataset.yaml.",
        metavar="NAME|DIR",
    ),
    split: str = typer.Option(..., "--split", help="Zero-shot split ratio: 75_25 or 50_50.", metavar="75_25|50_50"),
    split_index: str = typer.Option(
        "0", "--split-index", help="Which of the splits (0-9), or 'all' for one run per split.", metavar="K|all"
    ),
    output: Path = typer.Option(..., "--output", help="Run directory for checkpoints and logs.", metavar="RUN_DIR"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override the preset's number of epochs."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda.", metavar="auto|cpu|cuda"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (same seed, same losses on CPU)."),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="Hyper-parameters of Table 5: thumos14 or anet (default: by dataset).",
        metavar="thumos14|anet",
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", help="YAML file with model/train/data/inference settings.", metavar="FILE.yaml"
    ),
    overrides: Optional[List[str]] = typer.Option(
        None, "--set", help="Override one setting, e.g. --set model.dec_layers=3 (repeatable).",
        metavar="KEY=VALUE",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in RUN_DIR from its last checkpoint."),
    data_root: Optional[Path] = typer.Option(
        None, "--data-root", help="Folder with the built-in dataset's features (default $PSFTR_DATA/<name>).",
        metavar="DIR",
    ),
    eval_every: int = typer.Option(
        0, "--eval-every",
        help="Evaluate on the split's test videos every N epochs and keep best.pt (0 = never).", metavar="N",
    ),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override train.batch_size."),
    log_every: int = typer.Option(
        10, "--log-every", help="Write the loss terms to RUN_DIR/metrics.jsonl every N iterations (0 = per epoch only).",
        metavar="N",
    ),
) -> None:
    """Train PSFTR on the seen classes of a zero-shot split."""
    from rich.console import Console

    from psftr_core.train import engine

    console = Console(stderr=True, highlight=False)
    from psftr_core.errors import InputError

    if eval_every < 0:
        raise InputError(f"--eval-every must be >= 0, got {eval_every}")
    if log_every < 0:
        raise InputError(f"--log-every must be >= 0, got {log_every}")
    request = engine.TrainRequest(
        dataset=dataset,
        ratio=split,
        split_index=split_index,
        output=output,
        epochs=epochs,
        device=device,
        seed=seed,
        preset=preset,
        config_file=config,
        overrides=list(overrides or []),
        resume=resume,
        data_root=data_root,
        eval_every=eval_every,
        batch_size=batch_size,
        log_every=log_every,
    )
    try:
        results = engine.train(request, console=console)
    except KeyboardInterrupt:
        console.print(
            f"interrupted: the last complete checkpoint under {output} is intact; "
            "continue with the same command plus --resume",
            markup=False,
        )
        raise typer.Exit(130) from None
    if not engine.is_main_process():
        return
    for r in results:
        status = "already complete" if r.skipped else f"{r.epochs_done} epochs in {r.seconds:.0f} s"
        last = f", final loss {r.epoch_losses[-1]:.4f}" if r.epoch_losses else ""
        console.print(f"split {split}/{r.split_index}: {status}{last} -> {r.checkpoint}", markup=False)
        typer.echo(str(r.checkpoint))
