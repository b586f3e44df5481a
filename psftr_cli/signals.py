"""What ends a run from outside: SIGTERM, and a stdout that takes no more output.

- SIGTERM (Slurm, Kubernetes, ``timeout``, ``kill``) is handled as Ctrl-C: it raises
  :class:`Terminated`, a ``KeyboardInterrupt``, in the main thread, so every command's
  Ctrl-C path runs (finished videos and epochs are saved, ``detect --report`` writes
  the videos done), and the run ends with exit code 143 (128 + SIGTERM) instead of 130.
  A second SIGTERM while that clean-up runs is ignored.
- stdout: a write or flush that fails ends the run once, with no traceback. A reader
  that went away (``| head -1``: EPIPE) ends it silently with exit code 141 (128 +
  SIGPIPE, what ``cat`` or ``grep`` give); any other failure (a full disk, EIO, a closed
  stdout) with one ``psftr: error:`` line naming stdout and exit code 1. The output
  still buffered is dropped, so the interpreter's last flush at exit prints nothing.

Both are context managers used by ``psftr_cli.main.run`` around one command; they put
back what they replaced when it ends, so in-process callers keep their own handler and
stream.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Iterator

from psftr_core.errors import PsftrError
from psftr_core.io.paths import os_error_reason

INTERRUPTED_EXIT = 130  # 128 + SIGINT
TERMINATED_EXIT = 143  # 128 + SIGTERM
BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it ends the command as Ctrl-C does."""


@dataclass
class TermState:
    received: bool = False


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[TermState]:
    """While the block runs, SIGTERM raises :class:`Terminated`; the old handler comes back after."""
    state = TermState()
    if threading.current_thread() is not threading.main_thread():
        yield state  # only the main thread may set handlers (an in-process caller's worker thread)
        return
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        yield state  # the parent chose to shield us from SIGTERM: keep it so
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        if state.received:
            return  # the first one is being handled: let its clean-up finish
        state.received = True
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield state
    finally:
        # None: a handler set outside Python, which signal() cannot put back; the default is closest
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# ----------------------------------------------------------------------------- stdout


class StdoutBroken(PsftrError):
    """stdout failed (exit 1, one line); ``silent`` for a reader that went away (exit 141)."""

    def __init__(self, err: OSError) -> None:
        self.silent = err.errno == errno.EPIPE
        self.exit_code = BROKEN_PIPE_EXIT if self.silent else 1
        super().__init__(f"cannot write to stdout: {os_error_reason(err)}")


class _ClosedStdout(io.TextIOBase):
    """What ``sys.stdout`` is when the process started with it closed (``>&-``): Python leaves None."""

    encoding = "utf-8"  # click and rich ask before writing

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "it is closed")


class _Discard(io.TextIOBase):
    """stdout once it failed: output has nowhere to go, and the run is ending."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        return len(text)


class GuardedStdout:
    """``sys.stdout`` while a command runs: the first failed write or flush raises
    :class:`StdoutBroken`; everything after it is dropped. Other attributes are the
    wrapped stream's (``reconfigure``, ``isatty``, ``encoding``...)."""

    def __init__(self, stream: Any) -> None:
        self.wrapped = stream
        self.failure: StdoutBroken | None = None

    def write(self, text: str) -> int:
        if self.failure is None:
            try:
                return self.wrapped.write(text)
            except OSError as err:
                raise self._fail(err) from None
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.failure is None:
            try:
                self.wrapped.flush()
            except OSError as err:
                raise self._fail(err) from None

    def _fail(self, err: OSError) -> StdoutBroken:
        self.failure = StdoutBroken(err)
        return self.failure

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def _occupy_closed_fd(fd: int) -> None:
    """Put a pipe without a reader on a closed ``fd``, so that files opened later do not get
    it (native code writing to fd 1 would write into them)."""
    try:
        os.fstat(fd)
        return
    except OSError:
        pass
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)  # when read_end is fd, this closes the read end
    for end in {read_end, write_end} - {fd}:
        os.close(end)


@contextlib.contextmanager
def guarded_stdout() -> Iterator[GuardedStdout]:
    """``sys.stdout`` is a :class:`GuardedStdout` while the block runs.

    Put back afterwards if it still works; after a failure a sink stays in its place,
    so the output buffered in the broken stream is never flushed again (no "Exception
    ignored ... BrokenPipeError" at exit).
    """
    original = sys.stdout
    if original is None:
        _occupy_closed_fd(1)
    guard = GuardedStdout(original if original is not None else _ClosedStdout())
    sys.stdout = guard
    try:
        yield guard
    finally:
        if guard.failure is None:
            sys.stdout = original
        else:
            sys.stdout = _Discard()
