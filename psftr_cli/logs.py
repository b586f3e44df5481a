"""Where the core's log records go: one line each on stderr, optionally a log file.

``psftr_core`` never prints; it logs to ``logging.getLogger("psftr_core.<module>")``.
Warnings reach stderr as ``psftr: warning: ...``; with ``-v`` info records too; with
``--log-file`` every record (debug included) is appended to the file with a timestamp.
"""

from __future__ import annotations

import logging
import sys


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


def configure_logging(verbose: bool = False, log_file: str | None = None) -> None:
    """Route ``psftr_core`` records: stderr (warnings, or info with ``verbose``) and ``log_file``."""
    logger = logging.getLogger("psftr_core")
    for handler in list(logger.handlers):
        if getattr(handler, "_psftr", False):
            logger.removeHandler(handler)
            handler.close()
    console = _CurrentStderr()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(_StderrFormatter())
    console._psftr = True  # type: ignore[attr-defined]
    logger.addHandler(console)
    if log_file:
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setLevel(logging.DEBUG)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        to_file._psftr = True  # type: ignore[attr-defined]
        logger.addHandler(to_file)
    logger.setLevel(logging.DEBUG if log_file else (logging.INFO if verbose else logging.WARNING))
    logger.propagate = False
