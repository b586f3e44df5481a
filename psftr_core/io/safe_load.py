"""Reading a user's torch file without running code from it, failures said in psftr's words.

``torch.load(..., weights_only=True)`` refuses a pickle that would build Python objects
(and so run code), but its message ends with the advice to retry with
``weights_only=False``, which is how such a file *would* run its code. That advice is
never passed on: :func:`load_tensors` turns torch's errors into one line that names the
file and what it is.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

from psftr_core.errors import InputError


class UnsafeFileError(Exception):
    """Internal marker: torch refused the file's pickle (it holds Python objects)."""


def load_tensors(path: str | os.PathLike, what: str, map_location: Any = "cpu", damaged_hint: str = "",
                 mmap: bool = False) -> Any:
    """The content of torch file ``path`` (tensors and plain data only).

    ``what`` names the file for the user ("checkpoint", "CLIP weights file"). Raises
    ``InputError``: the file holds other Python objects (never unpickled), or it is
    empty, damaged or not a torch file (``damaged_hint`` says what to do then).
    ``mmap``: map a zip file's storages instead of reading them (a check of the pickle).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise InputError(f"cannot read {what} {path}: the file is empty")
    try:
        return _torch_load(path, map_location, mmap and zipfile.is_zipfile(path))
    except UnsafeFileError:
        raise InputError(not_plain_weights_message(path, what)) from None
    except Exception:  # torch's RuntimeError / EOFError / zip errors of a damaged file
        raise InputError(damaged_file_message(path, what) + damaged_hint) from None


def check_tensors_only(path: str | os.PathLike, what: str) -> None:
    """Refuse ``path`` unless it loads as tensors and plain data; cheap for zip files
    (``torch.save``'s format: the storages are mapped, not read; older non-zip files
    cannot be mapped and are read)."""
    load_tensors(path, what, map_location="cpu", mmap=True)


def damaged_file_message(path: str | os.PathLike, what: str) -> str:
    return f"cannot read {what} {path}: the file is damaged, truncated or not written by torch.save"


def not_plain_weights_message(path: str | os.PathLike, what: str) -> str:
    return (f"{what} {path} is not a plain weights file: it holds Python objects other than tensors "
            "(psftr loads only tensors and plain data, never runs code from a file)")


def _torch_load(path: Path, map_location: Any, mmap: bool) -> Any:
    import torch

    try:
        with warnings.catch_warnings():  # torch's warnings (pickle protocol, ...) stay inside
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if refused_by_weights_only(err):
            raise UnsafeFileError() from None
        raise


def refused_by_weights_only(err: BaseException) -> bool:
    """torch's weights-only unpickler refused an object (a global, a class to build), as
    opposed to bytes that are no pickle torch writes (damaged, or not a torch file)."""
    text = str(err)
    not_a_torch_pickle = ("Unsupported operand", "String is too long")
    return "Weights only load failed" in text and not any(words in text for words in not_a_torch_pickle)
