"""Reading JSON input files: any problem is one InputError line naming the file.

Files whose name ends in ``.gz`` are read through gzip (the packaged ActivityNet
feature info is stored that way).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

from psftr_core.errors import InputError


def read_json_file(path: str | os.PathLike, what: str) -> Any:
    """Parse the JSON file at ``path``; ``what`` names it in errors (e.g. "annotations")."""
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                text = handle.read()
        else:
            text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{what} file {path} is a directory, expected a JSON file") from None
    except UnicodeDecodeError:
        raise InputError(f"{what} file {path} is not UTF-8 text, expected JSON") from None
    except (OSError, EOFError) as err:  # EOFError: a truncated .gz
        raise InputError(f"cannot read {what} file {path}: {getattr(err, 'strerror', None) or err}") from None
    if not text.strip():
        raise InputError(f"{what} file {path} is empty, expected JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"cannot read {what} file {path}: it is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
