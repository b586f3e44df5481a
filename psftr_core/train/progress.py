"""What a training run reports while it runs.

Two channels, both fed by :class:`TrainingReporter` on rank 0: :class:`TrainEvent`
objects to the caller's ``on_progress`` callback (the CLI draws them on stderr; the
core never prints), and the records of ``RUN_DIR/metrics.jsonl``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from psftr_core.train.metrics_log import MetricsLog

_log = logging.getLogger(__name__)


@dataclass
class TrainEvent:
    """One progress report of ``psftr_core.train.run.train`` to ``on_progress``.

    ``kind``:

    - ``"epoch_start"``: ``iterations`` in this epoch, its ``lr``;
    - ``"iteration"``: ``iteration`` (1-based) is done, ``losses`` = its loss terms;
    - ``"evaluation"``: ``average_map`` of the periodic evaluation;
    - ``"epoch_end"``: ``losses`` = the epoch's mean loss terms, ``seconds`` since it started;
    - ``"already_trained"``: nothing to do, ``checkpoint`` already holds ``epoch`` epochs;
    - ``"calibration"``: the calibration is done (or was skipped, or, with ``reused``,
      read back from an earlier run); ``calibration`` = its record
      (``psftr_core.train.calibration.calibration_record``).

    ``epoch`` is 1-based, of ``epochs``; ``split_index`` is the split being trained;
    ``stage`` is ``"train"`` for the model being trained or ``"calibration"`` for the
    calibration model trained before it.
    """

    kind: str
    split_index: int
    epoch: int
    epochs: int
    iteration: int = 0
    iterations: int = 0
    lr: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)
    average_map: float | None = None
    seconds: float = 0.0
    checkpoint: Path | None = None
    stage: str = "train"
    calibration: dict | None = None
    reused: bool = False


TrainProgressCallback = Callable[[TrainEvent], None]


class TrainingReporter:
    """Reports one split's training to ``on_progress`` and to ``metrics`` (pass None / a
    disabled log on ranks other than 0). ``log_every``: iterations between ``"iter"``
    records (0 = none); ``stage``: the events' ``stage``."""

    def __init__(self, metrics: MetricsLog, on_progress: TrainProgressCallback | None, log_every: int,
                 split_index: int, epochs: int, stage: str = "train") -> None:
        self.metrics, self.on_progress, self.log_every = metrics, on_progress, log_every
        self.split_index, self.epochs, self.stage = split_index, epochs, stage
        self.epoch, self.iterations, self.lr, self.started = 0, 0, 0.0, time.time()

    def already_trained(self, epochs_done: int, checkpoint: Path) -> None:
        self.epoch = epochs_done
        self._send("already_trained", checkpoint=checkpoint)

    def epoch_start(self, epoch: int, iterations: int, lr: float) -> None:
        """(1-based) ``epoch`` begins: ``iterations`` steps at learning rate ``lr``."""
        self.epoch, self.iterations, self.lr, self.started = epoch, iterations, lr, time.time()
        self._send("epoch_start")

    def iteration(self, iteration: int, terms: dict[str, float]) -> None:
        """After each step (the ``on_iteration`` of ``train_one_epoch``)."""
        self._send("iteration", iteration=iteration, losses=terms)
        if self.log_every and iteration % self.log_every == 0:
            self.metrics.write({"event": "iter", "epoch": self.epoch, "iter": iteration, "lr": self.lr,
                                **{k: round(v, 6) for k, v in terms.items()}})

    def epoch_trained(self, means: dict[str, float]) -> None:
        """The epoch's steps are done; ``means``: its mean loss terms."""
        self.metrics.write({"event": "epoch", "epoch": self.epoch, "iters": self.iterations, "lr": self.lr,
                            "seconds": round(time.time() - self.started, 3), **means})

    def evaluation(self, result: Any) -> None:
        """``result``: the ``EvalResult`` of the periodic evaluation."""
        self.metrics.write({"event": "eval", "epoch": self.epoch, "tious": result.tious, "mAP": result.mAP,
                            "average": result.average})
        self._send("evaluation", average_map=result.average)

    def epoch_end(self, means: dict[str, float]) -> None:
        """The epoch is complete (evaluated if due), about to be saved."""
        self._send("epoch_end", losses=means, seconds=time.time() - self.started)
        _log.debug("split %d: epoch %d/%d, loss %.4f", self.split_index, self.epoch, self.epochs, means["loss"])

    def calibrated(self, record: dict, reused: bool = False) -> None:
        """The calibration ``record`` is ready (``reused``: read back, not computed now)."""
        self._send("calibration", calibration=record, reused=reused)

    def _send(self, kind: str, **fields: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(TrainEvent(kind, self.split_index, self.epoch, self.epochs, iterations=self.iterations,
                                        lr=self.lr, stage=self.stage, **fields))
