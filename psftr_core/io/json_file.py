"""Reading JSON input files: any problem is one InputError line naming the file.

Files whose name ends in ``.gz`` are read through gzip (the packaged ActivityNet
feature info is stored that way). With ``unique_keys`` a key given twice in one object
is refused: plain ``json`` keeps the last one silently (a video id listed twice would
lose its first entry).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from psftr_core.errors import InputError
from psftr_core.io.text_file import read_input_text


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that refuses a key given twice in one object."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def read_json_file(path: str | os.PathLike, what: str, unique_keys: bool = False) -> Any:
    """Parse the JSON file at ``path``; ``what`` names it in errors (e.g. "annotations").

    ``unique_keys``: InputError naming the key when an object holds a key twice.
    """
    path = Path(path)
    text = read_input_text(path, f"{what} file", "JSON")
    if not text.strip():
        raise InputError(f"{what} file {path} is empty, expected JSON")
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs if unique_keys else None)
    except _DuplicateKey as err:
        raise InputError(
            f"{what} file {path} has the key {err.key!r} twice in one object (e.g. a video id listed twice): "
            f"each key may appear once; merge or remove one of them"
        ) from None
    except json.JSONDecodeError as err:
        raise InputError(
            f"cannot read {what} file {path}: it is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
