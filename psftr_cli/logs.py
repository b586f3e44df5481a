"""Where the core's log records go: one line each on stderr, optionally a log file.

``psftr_core`` never prints; it logs to ``logging.getLogger("psftr_core.<module>")``.
Warnings reach stderr as ``psftr: warning: ...``; with ``-v`` info records too; with
``--log-file`` every record (debug included) is appended to the file with a timestamp.

A log file that cannot be written (full disk, EIO) is not a traceback nor Python's
"--- Logging error ---": logging to it stops, and the run ends with one line naming it
(:func:`take_log_file_failure`, reported by ``psftr_cli.main.run``).
"""

from __future__ import annotations

import contextlib
import logging
import sys

from psftr_core.io.paths import os_error_reason


class _StderrFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"psftr: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"psftr: warning: {message}"
        return f"psftr: {message}"


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (tests capture it per call)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


class _LogFile(logging.FileHandler):
    """``--log-file``: the first failed write stops logging to the file and is kept in ``failure``."""

    def __init__(self, path: str) -> None:
        # backslashreplace: a file name that is not UTF-8 (surrogate escapes) is logged, not an error
        super().__init__(path, encoding="utf-8", errors="backslashreplace")
        self.failure: str | None = None
        self.failure_told = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.failure is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        err = sys.exc_info()[1]
        if not isinstance(err, OSError):
            super().handleError(record)  # a bad format string in our code: logging's report
            return
        self.failure = f"cannot write to the log file {self.baseFilename}: {os_error_reason(err)}"
        with contextlib.suppress(OSError):  # what is still buffered has nowhere to go either
            self.close()


def take_log_file_failure() -> str | None:
    """Why ``--log-file`` stopped taking records (None: it did not); told once, so a
    later in-process run does not report it again."""
    for handler in logging.getLogger("psftr_core").handlers:
        if isinstance(handler, _LogFile) and handler.failure is not None and not handler.failure_told:
            handler.failure_told = True
            return handler.failure
    return None


def configure_logging(verbose: bool = False, log_file: str | None = None) -> None:
    """Route ``psftr_core`` records: stderr (warnings, or info with ``verbose``) and ``log_file``."""
    logger = logging.getLogger("psftr_core")
    for handler in list(logger.handlers):
        if getattr(handler, "_psftr", False):
            logger.removeHandler(handler)
            with contextlib.suppress(OSError):  # a log file that failed in an earlier in-process run
                handler.close()
    console = _CurrentStderr()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(_StderrFormatter())
    console._psftr = True  # type: ignore[attr-defined]
    logger.addHandler(console)
    if log_file:
        to_file = _LogFile(log_file)
        to_file.setLevel(logging.DEBUG)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        to_file._psftr = True  # type: ignore[attr-defined]
        logger.addHandler(to_file)
    logger.setLevel(logging.DEBUG if log_file else (logging.INFO if verbose else logging.WARNING))
    logger.propagate = False
