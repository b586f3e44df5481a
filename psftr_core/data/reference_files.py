"""Files shipped with psftr in ``psftr_core/data/reference/``: class lists, the THUMOS14
annotations, GAP's feature info and the standard zero-shot splits, each named by the
descriptor of its built-in dataset (``psftr_core.data.builtins``)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any


def reference_path(name: str) -> Path:
    """Path of the shipped file ``name`` (e.g. ``thumos14_classes.txt``)."""
    return Path(str(resources.files("psftr_core").joinpath("data", "reference", name)))


def reference_lines(name: str) -> list[str]:
    """The non-blank lines of a shipped text file, stripped (a class list: one name a line)."""
    text = reference_path(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def reference_json(name: str) -> Any:
    """A shipped JSON file, parsed."""
    return json.loads(reference_path(name).read_text(encoding="utf-8"))
