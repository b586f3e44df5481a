"""Atomic file writes: write to a temporary file in the same folder, then rename.

A crash or Ctrl-C in the middle leaves either the old file or no file, never a
half-written one. A write that fails (read-only folder, a file where a folder is meant,
disk full...) raises :class:`~psftr_core.errors.OutputError` naming the path and the
reason in words, with the temporary file removed and the old file intact.

Only regular files are replaced. A path that is, or links to, something else (a device
such as ``/dev/null``, a FIFO, ``/dev/stdout``) is opened and written directly: renaming
over it would replace the device node or pipe with a regular file. A symlink to a regular
file (or to a missing one) is written through: the file it points to is replaced
atomically and the link stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
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


def is_special_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` exists (following links) as something other than a regular file or
    a folder: a device, FIFO or socket, which writes must go to directly."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def _direct_open(path: Path, mode: str, **kwargs: Any) -> Iterator[IO]:
    """Write straight to a device or FIFO (no temporary file, no rename, no fsync)."""
    try:
        with open(path, mode, **kwargs) as handle:
            yield handle
            handle.flush()
    except OSError as err:
        if isinstance(err, OutputError):
            raise
        raise write_error(path, err) from err


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of ``path``; rename it over ``path`` on clean exit.

    Missing parent folders are created. On any exception (including KeyboardInterrupt)
    the temporary file is removed and ``path`` is left untouched; an ``OSError`` (from
    here or from writing to the handle) becomes an ``OutputError`` naming ``path``.
    A device, FIFO or ``/dev/stdout`` is written directly, and a symlink through to its
    target (module docstring).
    """
    path = Path(path)
    if is_special_file(path):
        with _direct_open(path, mode, **kwargs) as handle:
            yield handle
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))  # replace the file the link points to, keep the link
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
