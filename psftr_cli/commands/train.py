"""``psftr train``: train PSFTR on the seen classes of a zero-shot split.

Writes ``RUN_DIR/last.pt`` (one split) or ``RUN_DIR/split_K/last.pt`` (``--split-index
all``), plus ``metrics.jsonl``, ``config.yaml``, ``run.json`` and ``calibration.json``
(layout: ``psftr_core.train.run_dir``). Unless ``--no-calibrate``, a calibration model
first chooses the inference settings on held-out seen classes
(``psftr_core.train.calibration``). Progress goes to stderr (:class:`TrainProgress`
draws the core's ``TrainEvent``s, the calibration's grid as a table); stdout gets the
checkpoint paths, one per line. Ctrl-C keeps the last complete checkpoint (exit 130);
``--resume`` continues from it with the run's own settings (other ``--set``/``--seed``/...
values are refused naming each key; ``--epochs`` may change). A second ``psftr train``
into a run directory in use is refused (``RUN_DIR/.train.lock``). Under ``torchrun --nproc_per_node N`` the same command
trains with DistributedDataParallel. No torch import at module level.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, List, Optional

import typer

from psftr_cli import options
from psftr_core.data.builtins import builtin_names
from psftr_core.errors import InputError


class TrainProgress:
    """Draws training progress on a stderr console.

    On a terminal: a Rich bar per epoch with the iterations, the running epoch mean of
    the loss terms, the lr and the time left in the epoch and in the whole run.
    Otherwise: one line per epoch. Evaluations and skipped splits get a line either way.
    Calibration epochs are labelled as such, and the calibration's grid is drawn as a
    table when it is done. Use as a context manager so that an interrupted run stops the
    bar cleanly.
    """

    SHORT = {"loss": "loss", "loss_cls": "cls", "loss_seg": "l1", "loss_iou": "iou",
             "loss_actionness": "act", "loss_saliency": "sal"}

    def __init__(self, console: Any, ratio: str) -> None:
        self.console, self.ratio = console, ratio
        self.bar: Any = None
        self.task: Any = None
        self.sums: dict[str, float] = {}
        self.started = time.time()

    def __enter__(self) -> "TrainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_bar()

    def __call__(self, event: Any) -> None:
        """``on_progress`` of ``psftr_core.train.run.train``: one ``TrainEvent``."""
        if event.kind == "epoch_start":
            self.start_bar(event)
        elif event.kind == "iteration":
            self.update_bar(event)
        elif event.kind == "evaluation":
            self.stop_bar()
            self.console.print(f"epoch {event.epoch}: eval average mAP {100 * event.average_map:.2f}", markup=False)
        elif event.kind == "epoch_end":
            self.stop_bar()
            if not self.console.is_terminal:
                self.console.print(f"{self.epoch_word(event)} {event.epoch}/{event.epochs}: loss "
                                   f"{event.losses['loss']:.4f} ({event.seconds:.1f} s)", markup=False)
        elif event.kind == "calibration":
            self.stop_bar()
            render_calibration(self.console, event.calibration, event.reused, f"{self.ratio}/{event.split_index}")
        elif event.kind == "already_trained":
            from psftr_cli.render import counted

            self.console.print(f"split {self.ratio}/{event.split_index}: already trained for "
                               f"{counted(event.epoch, 'epoch')} ({event.checkpoint})", markup=False)

    @staticmethod
    def epoch_word(event: Any) -> str:
        return "calibration epoch" if event.stage == "calibration" else "epoch"

    def start_bar(self, event: Any) -> None:
        self.sums, self.started = {}, time.time()
        if not self.console.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.fields[word]} {task.fields[epoch]}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[terms]} lr {task.fields[lr]} run ETA {task.fields[run_eta]}"),
            console=self.console,
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task("train", total=event.iterations, epoch=f"{event.epoch}/{event.epochs}",
                                      terms="", lr="", run_eta="-", word=self.epoch_word(event))

    def update_bar(self, event: Any) -> None:
        if self.bar is None:
            return
        done = event.iteration
        for k, v in event.losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        terms = " ".join(f"{self.SHORT[k]} {self.sums[k] / done:.3f}" for k in self.SHORT if k in self.sums)
        per_iter = (time.time() - self.started) / done
        left = per_iter * ((event.iterations - done) + (event.epochs - event.epoch) * event.iterations)
        eta = time.strftime("%H:%M:%S", time.gmtime(left))
        self.bar.update(self.task, completed=done, terms=terms, lr=f"{event.lr:.1e}", run_eta=eta)

    def stop_bar(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


_CLIP_MODEL, _CLIP_PRETRAINED, _CLIP_CONFIG = options.text_tower_options()

def train(
    dataset: str = typer.Option(
        ..., "--dataset", help=f"Built-in dataset ({options.BUILTIN_DATASETS_TEXT}) or a dataset folder with a dataset.yaml.",
        metavar="NAME|DIR",
    ),
    split: str = typer.Option(..., "--split", help="Zero-shot split ratio: 75_25 or 50_50.", metavar="75_25|50_50"),
    split_index: str = typer.Option(
        "0", "--split-index", help="Which of the splits (0-9), or 'all' for one run per split.", metavar="K|all"
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Run directory for checkpoints and logs.",
                                metavar="RUN_DIR"),
    epochs: Optional[int] = typer.Option(None, "--epochs", metavar="N", show_default="the preset's", help="Number of epochs."),
    device: str = options.device(),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", show_default="train.seed of the config", help="Random seed (same seed, same losses on CPU)."),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="Hyper-parameters of Table 5, one per built-in dataset, or small (default: by "
        "dataset; small for another dataset with fewer than 100 training videos).",
        metavar="|".join((*builtin_names(), "small")), autocompletion=options.choices(*builtin_names(), "small"),
    ),
    prompts: Optional[List[str]] = options.prompt(
        default_text="data.prompt",
        help="Prompt template for the class names ({} is the name); repeat it for several, whose embeddings are "
             "averaged (sets data.prompts)."),
    class_texts: Optional[Path] = typer.Option(
        None, "--class-texts", metavar="FILE", show_default=False,
        help="Descriptions of the classes (YAML name: [text, ...], TSV or GAP's JSON, as detect's --actions-file), "
             "averaged with the prompts (sets data.descriptions_file; stored in the run's config).",
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", help="YAML file with model/train/data/inference settings.", metavar="FILE.yaml"
    ),
    overrides: Optional[List[str]] = typer.Option(
        None, "--set", help="Override one setting, e.g. --set model.dec_layers=3 (repeatable).",
        metavar="KEY=VALUE",
    ),
    resume: bool = typer.Option(
        False, "--resume",
        help="Continue the run in RUN_DIR from its last checkpoint, with its own settings (only --epochs may differ).",
    ),
    data_root: Optional[Path] = typer.Option(
        None, "--data-root", help="Folder with the built-in dataset's features (default $PSFTR_DATA/<name>).",
        metavar="DIR",
    ),
    eval_every: int = typer.Option(
        0, "--eval-every",
        help="Evaluate on the split's test videos every N epochs and keep best.pt (0 = never).", metavar="N",
    ),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", metavar="N", show_default="train.batch_size", help="Windows per batch."),
    log_every: int = typer.Option(
        10, "--log-every", help="Write the loss terms to RUN_DIR/metrics.jsonl every N iterations (0 = per epoch only).",
        metavar="N",
    ),
    calibrate: bool = typer.Option(
        True, "--calibrate/--no-calibrate",
        help="First choose the inference settings on held-out seen classes with a calibration model "
             "(about doubles the training time); --no-calibrate keeps the config's.",
    ),
    clip_model: Optional[str] = _CLIP_MODEL,
    clip_pretrained: Optional[str] = _CLIP_PRETRAINED,
    clip_config: Optional[Path] = _CLIP_CONFIG,
) -> None:
    """Train PSFTR on the seen classes of a zero-shot split."""
    # the files named here exist: a typo is said at once, not after the seconds torch takes to import
    options.check_inputs_first(dataset, [("--config", config), ("--clip-config", clip_config),
                                         ("--class-texts", class_texts)])
    from psftr_cli.render import counted, stderr_console
    from psftr_core.train.distributed import is_main_process
    from psftr_core.train.run import TrainRequest, train as train_splits

    if eval_every < 0:
        raise InputError(f"--eval-every must be >= 0, got {eval_every}")
    if log_every < 0:
        raise InputError(f"--log-every must be >= 0, got {log_every}")
    overrides = [*_text_overrides(prompts, class_texts, dataset), *(overrides or [])]
    request = TrainRequest(dataset=dataset, ratio=split, split_index=split_index, output=output, epochs=epochs,
                           device=device, seed=seed, preset=preset, config_file=config,
                           overrides=list(overrides or []), resume=resume, data_root=data_root,
                           eval_every=eval_every, batch_size=batch_size, log_every=log_every,
                           clip_model=clip_model, clip_pretrained=clip_pretrained, clip_config=clip_config,
                           calibrate=calibrate)
    from psftr_core.io.paths import prepare_output_dir

    request.output = prepare_output_dir(output, "--output")  # before any work: a file or read-only folder is exit 2
    console = stderr_console()
    try:
        with TrainProgress(console, split) as progress:
            results = train_splits(request, on_progress=progress)
    except KeyboardInterrupt:
        saved = sorted(Path(output).rglob("last.pt")) if Path(output).is_dir() else []
        if saved:
            console.print(f"interrupted: the last complete checkpoint ({', '.join(map(str, saved))}) is intact; "
                          "continue with the same command plus --resume", markup=False, soft_wrap=True)
        else:
            console.print("interrupted before the first epoch ended: no checkpoint was written; run the same "
                          "command again to start over", markup=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if not is_main_process():
        return
    for r in results:
        status = "already complete" if r.skipped else f"{counted(r.epochs_done, 'epoch')} in {r.seconds:.0f} s"
        last = f", final loss {r.epoch_losses[-1]:.4f}" if r.epoch_losses else ""
        console.print(f"split {split}/{r.split_index}: {status}{last} -> {r.checkpoint}", markup=False)
        # stdout: one line per checkpoint file of the run (data only, for scripts)
        for path in (r.checkpoint, r.run_dir / "best.pt"):
            if path.is_file():
                typer.echo(str(path))


def _text_overrides(prompts: Optional[List[str]], class_texts: Optional[Path], dataset: str) -> List[str]:
    """``--prompt`` / ``--class-texts`` as the config keys they set (``data.prompt`` for one
    template, ``data.prompts`` for several; ``data.descriptions_file``: relative to the
    dataset folder when the file is in it, so the checkpoint's config holds no machine path,
    else absolute)."""
    from psftr_core.data.datasets import dataset_location
    from psftr_core.data.vocabulary import check_templates

    templates = list(check_templates(prompts or []))
    out = []
    if len(templates) == 1:
        out.append(f"data.prompt={templates[0]}")
    elif templates:
        if any("," in t for t in templates):
            raise InputError("--prompt: with several templates none may contain a comma (put them in a --config "
                             "YAML file as data.prompts)")
        out.append(f"data.prompts=[{', '.join(templates)}]")
    if class_texts is not None:
        file, folder = Path(class_texts).expanduser().resolve(), dataset_location(dataset)
        if isinstance(folder, Path) and file.is_relative_to(folder.resolve()):
            file = file.relative_to(folder.resolve())
        out.append(f"data.descriptions_file={file}")
    return out


def prior_note(record: dict) -> str | None:
    """A line when the calibration kept its prior choice while another setting led on the
    held-out classes (``train.calibration_prior_margin``), else None."""
    margin, prior = record.get("prior_margin"), record.get("prior")
    chosen, grid = record.get("chosen", {}), record.get("grid", [])
    if not margin or chosen.get("name") != prior or not grid:
        return None
    best = max(grid, key=lambda row: row["average_map"])
    lead = 100 * (best["average_map"] - chosen["average_map"])
    if best["name"] == prior or lead <= 0.1:
        return None
    localizer = record.get("localizer_margin")
    if best.get("method") == "localizer" and localizer is not None:
        key, value = "train.calibration_localizer_margin", localizer
        kept = f"keeps it unless the localizer leads by more than {100 * localizer:g} points"
    else:
        key, value = "train.calibration_prior_margin", margin
        kept = ("always keeps it against the model's other settings" if margin >= 1
                else f"keeps it unless another leads by more than {100 * margin:g} points")
    return (f"note: {best['name']} led {prior} by {lead:.1f} points on the held-out classes; the calibration {kept} "
            f"({key}={value:g}; with 3-5 held-out classes such leads did not hold on unseen ones, "
            "docs/calibration_rules.md); evaluate --set tries any setting")


def render_calibration(console: Any, record: dict, reused: bool, split: str) -> None:
    """The calibration of one split on ``console``: why it was skipped, or its grid as a
    table (best first, the chosen setting marked) and the choice."""
    from rich.table import Table

    from psftr_cli.render import counted, print_titled
    from psftr_core.train.calibration import grid_rows

    if record.get("skipped"):
        console.print(f"split {split}: calibration skipped: {record['skipped']}", markup=False)
        return
    held = record["held_out_classes"]
    title = (f"calibration of split {split}{' (reused calibration.json)' if reused else ''}: "
             f"{counted(len(held), 'held-out seen class')}, "
             f"{counted(len(record['held_out_videos']), 'held-out training video')}")
    table = Table()
    table.add_column("inference setting")
    table.add_column("held-out avg mAP", justify="right")
    table.add_column("")
    for name, value, chosen in grid_rows(record):
        table.add_row(name, f"{100 * value:.2f}", "chosen" if chosen else "")
    print_titled(console, title, table)
    chosen = record["chosen"]
    threshold = record.get("score_threshold")
    words = "no match: detect keeps its default" if threshold is None else f"{threshold:.4g}"
    console.print(f"calibration chose: {chosen['name']} (held-out classes: {', '.join(held)}); "
                  f"detect threshold {words}; {record.get('seconds', 0):.0f} s", markup=False)
    note = prior_note(record)
    if note:
        console.print(note, markup=False)
    if chosen["method"] == "localizer":
        console.print("note: no scoring of the model beat the training-free localizer on the held-out classes, so "
                      "this checkpoint's evaluate and detect run the localizer (inference.method=localizer); "
                      "--set inference.method=psftr runs the model", markup=False)
