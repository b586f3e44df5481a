"""Exceptions that carry the command-line exit code (0 ok, 1 failure, 2 bad input, 3 partial).

Library code raises these; the CLI turns them into one line on stderr and the
exit code, so bad input never ends in a traceback.
"""

from __future__ import annotations


class PsftrError(Exception):
    """A failure the user can act on. Exit code 1."""

    exit_code = 1


class InputError(PsftrError):
    """Bad usage or bad input (missing file, garbled JSON, unknown class...). Exit code 2."""

    exit_code = 2


class OutputError(InputError, OSError):
    """An output path that cannot be written (read-only, a file where a folder is meant,
    no space...). Exit code 2, like other bad input.

    Also an ``OSError`` (``errno``, ``strerror`` in words, ``filename``), so code that
    carries on without an optional output on ``OSError`` (a cache) still does.
    """

    def __init__(self, message: str, errno: int | None = None, reason: str | None = None,
                 filename: str | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.strerror = reason
        self.filename = filename

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PartialFailure(PsftrError):
    """Some inputs failed, the rest were written. Exit code 3."""

    exit_code = 3


def error_text(err: BaseException, limit: int = 300) -> str:
    """``err``'s message on one line, cut at ``limit`` characters (its type name if empty).

    For wrapping third-party errors (decord, torch, open_clip) into a one-line message.
    """
    text = " ".join(str(err).split())
    return (text[:limit] + "...") if len(text) > limit else (text or type(err).__name__)
