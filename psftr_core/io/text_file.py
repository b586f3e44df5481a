"""Reading a user's text input file (JSON, YAML): every problem is one InputError naming it."""

from __future__ import annotations

import gzip
from pathlib import Path

from psftr_core.errors import InputError


def read_input_text(path: Path, label: str, kind: str) -> str:
    """The UTF-8 text of ``path`` (a name ending in ``.gz`` is read through gzip).

    ``label`` names the file in errors ("annotations file", "config file"); ``kind`` is
    what it should hold ("JSON", "YAML").
    """
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{label} not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{label} {path} is a directory, expected a {kind} file") from None
    except UnicodeDecodeError:
        raise InputError(f"{label} {path} is not UTF-8 text, expected {kind}") from None
    except (OSError, EOFError) as err:  # EOFError: a truncated .gz
        raise InputError(f"cannot read {label} {path}: {getattr(err, 'strerror', None) or err}") from None
