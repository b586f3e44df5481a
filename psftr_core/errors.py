"""Exceptions that carry the command-line exit code of formats.md.

Library code raises these; the CLI turns them into one line on stderr and the
exit code, so bad input never ends in a traceback.
"""


class PsftrError(Exception):
    """A failure the user can act on. Exit code 1."""

    exit_code = 1


class InputError(PsftrError):
    """Bad usage or bad input (missing file, garbled JSON, unknown class...). Exit code 2."""

    exit_code = 2


class PartialFailure(PsftrError):
    """Some inputs failed, the rest were written. Exit code 3."""

    exit_code = 3


def error_text(err: BaseException, limit: int = 300) -> str:
    """``err``'s message on one line, cut at ``limit`` characters (its type name if empty).

    For wrapping third-party errors (decord, torch, open_clip) into a one-line message.
    """
    text = " ".join(str(err).split())
    return (text[:limit] + "...") if len(text) > limit else (text or type(err).__name__)
