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

Temporary files are named ``.psftr-<8 random characters>.tmp`` in the target's folder
(never longer, so a target name of up to 255 bytes still works), and a writer holds an
advisory lock (``flock``) on its own while it writes. A process killed with ``kill -9``
leaves its temporary file behind: the first atomic write of a later process into that
folder removes the ones of this pattern that nobody holds locked and that are older
than :data:`STALE_TEMP_SECONDS` (the age guards the instant between creating a file
and locking it; without ``flock``, e.g. on Windows, only files older than a day go).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterator

from psftr_core.errors import OutputError
from psftr_core.io.paths import write_error

TEMP_PREFIX = ".psftr-"
TEMP_SUFFIX = ".tmp"
STALE_TEMP_SECONDS = 60.0  # unlocked temp files older than this belong to a dead process
STALE_TEMP_SECONDS_WITHOUT_LOCKS = 86400.0

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

_cleaned_folders: set[str] = set()  # folders already swept by this process


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
        remove_stale_temp_files(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as err:
        raise write_error(path, err) from err
    _lock(fd)  # marks the temp file as live for other processes' sweeps
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


def _lock(fd: int) -> None:
    """Hold an exclusive flock on ``fd`` (released when it is closed); best effort."""
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _is_stale(path: str, now: float) -> bool:
    """Nobody holds ``path`` locked and it is old enough not to be a file just created."""
    try:
        age = now - os.stat(path, follow_symlinks=False).st_mtime
    except OSError:
        return False
    if fcntl is None:
        return age > STALE_TEMP_SECONDS_WITHOUT_LOCKS
    if age <= STALE_TEMP_SECONDS:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live writer holds it
    finally:
        os.close(fd)
    return True


def remove_stale_temp_files(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files that dead writers left in ``folder`` (module docstring),
    once per folder and process; returns the names removed. Never raises."""
    key = os.path.abspath(folder)
    if key in _cleaned_folders:
        return []
    _cleaned_folders.add(key)
    removed = []
    now = time.time()
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(TEMP_PREFIX) and e.name.endswith(TEMP_SUFFIX)]
    except OSError:
        return removed
    for entry in entries:
        if entry.is_file(follow_symlinks=False) and _is_stale(entry.path, now):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


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
