"""``metrics.jsonl``: one JSON object per line, appended as training goes.

Records carry ``"event"``: ``"iter"`` (loss terms of a logged iteration), ``"epoch"``
(mean loss terms, lr, seconds) or ``"eval"`` (mAP of a periodic evaluation), and the
1-based ``"epoch"`` they belong to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from psftr_core.io.atomic import write_text


class MetricsLog:
    """Append-only ``metrics.jsonl`` (written by rank 0 only: ``enabled``)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_after(self, epoch: int) -> None:
        """Drop records of epochs after ``epoch`` (left by an interrupted run)."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if int(record.get("epoch", 0)) <= epoch:
                kept.append(line)
        write_text(self.path, "".join(k + "\n" for k in kept))


def read_metrics(path: str | os.PathLike, event: str | None = None) -> list[dict]:
    """Records of a ``metrics.jsonl`` (optionally one event kind)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if event is None or record.get("event") == event:
                records.append(record)
    return records
