"""Atomic file writes: write to a temporary file in the same folder, then rename.

A crash or Ctrl-C in the middle leaves either the old file or no file, never a
half-written one. A write that fails (read-only folder, a file where a folder is meant,
disk full...) raises :class:`~psftr_core.errors.OutputError` naming the path and the
reason in words, with the temporary file removed and the old file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from psftr_core.errors import OutputError
from psftr_core.io.paths import write_error


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _read_umask()


def _final_mode(path: Path) -> int:
    """Mode of the file we replace, or what ``open()`` would give a new file.

    ``mkstemp`` creates 0600 files; without this every output would be private.
    """
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of ``path``; rename it over ``path`` on clean exit.

    Missing parent folders are created. On any exception (including KeyboardInterrupt)
    the temporary file is removed and ``path`` is left untouched; an ``OSError`` (from
    here or from writing to the handle) becomes an ``OutputError`` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise write_error(path, err) from err
    try:
        os.chmod(tmp, _final_mode(path))
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise write_error(path, err) from err
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=indent, ensure_ascii=False)
        handle.write("\n")


def save_npy(path: str | os.PathLike, array: Any) -> None:
    """``numpy.save`` atomically (no ``.npy`` suffix is appended to the temp name)."""
    import numpy as np

    with atomic_open(path, "wb") as handle:
        np.save(handle, array)


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` atomically: an interrupted save keeps the previous checkpoint."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
