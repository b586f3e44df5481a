"""Exclusive advisory locks on a lock file (``fcntl.flock``), for folders one process writes.

The kernel drops a ``flock`` when its process dies, so a lock left by a killed run
(``kill -9``, an out-of-memory kill) never blocks the next one; a stale lock file is just
a file. :func:`held_lock` refuses at once when another process holds the lock
(:class:`LockHeld`, with the holder's pid when it wrote one) and removes the lock file
when it is done. Where ``fcntl`` does not exist (Windows) the locks are no-ops.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_log = logging.getLogger(__name__)


class LockHeld(Exception):
    """Another process holds the lock on ``path``; ``pid`` is the pid it wrote (None if unknown)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(f"{path} is locked" + (f" by process {pid}" if pid else ""))
        self.path, self.pid = path, pid


def holder_pid(path: Path) -> int | None:
    """The pid the lock's holder wrote into ``path``; None when unreadable or empty."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def check_unlocked(path: Path) -> None:
    """Raise :class:`LockHeld` if a process holds ``path`` now (a cheap early refusal: it
    does not take the lock, and creates nothing)."""
    if fcntl is None or not path.is_file():
        return
    try:
        handle = open(path, "rb")
    except OSError:
        return
    with handle:
        if not _try_flock(handle.fileno(), path, warn=False):
            raise LockHeld(path, holder_pid(path))
        # leaving the block closes the file, which drops the flock just taken


@contextlib.contextmanager
def held_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created with this process's pid in it) for the
    block, or raise :class:`LockHeld` at once. The file is removed on leaving."""
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = _open_locked(path)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        # Unlink while still holding the lock: a process that opened the old file meanwhile
        # sees it is gone (_open_locked's inode check) and retries on a new one.
        with contextlib.suppress(OSError):
            os.unlink(path)
        handle.close()  # closing drops the flock


def _open_locked(path: Path):
    """``path`` opened and flocked, retrying while the file we locked is not the one at ``path``."""
    while True:
        handle = open(path, "a+", encoding="ascii")
        if not _try_flock(handle.fileno(), path):
            handle.close()
            raise LockHeld(path, holder_pid(path))
        if _same_file(handle.fileno(), path):
            return handle
        handle.close()  # its holder removed it between our open and our flock


def _try_flock(fd: int, path: Path, warn: bool = True) -> bool:
    """Take the flock without waiting: False when another process holds it. A file system
    without flock support (some network mounts) gets a warning (``warn``) and no lock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EACCES):
            return False
        if warn:
            _log.warning("cannot lock %s (%s); going on without a lock", path, os.strerror(err.errno or 0))
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False
