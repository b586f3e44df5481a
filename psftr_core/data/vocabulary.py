"""The action vocabulary of ``psftr detect``: parse, clean and de-duplicate names.

Rules (the same for ``--actions`` and ``--actions-file``):

- ``--actions "a,b"`` splits on commas; it may be given several times.
- ``--actions-file F`` holds one action per line (UTF-8, a BOM is tolerated), so names may
  contain commas. Blank lines are skipped and a line whose first non-blank character is
  ``#`` is a comment. ``#`` elsewhere in a line is part of the name.
- Each name is Unicode-NFC normalised, trimmed, and runs of whitespace become one space.
  Names with control characters are rejected, and so are names made only of invisible
  characters (zero-width, format characters such as U+200B or U+FEFF, blank look-alikes
  such as U+3164): no one could tell such an action from another in the output.
- Duplicates are dropped case-insensitively (Unicode case folding); the first spelling
  wins. Order is first appearance: names from ``--actions`` come before the file's.
- An empty vocabulary is an ``InputError`` (exit code 2).
- Names may be of any length; messages and tables show at most :data:`DISPLAY_CHARS`
  characters of one (:func:`display_name`), outputs keep it whole.

Per-action thresholds: ``--threshold 0.3`` sets the global score threshold and
``--threshold "pole vault=0.5"`` one action's (the last ``=`` separates name and value,
so names may contain ``=``); names are matched like the vocabulary (case-insensitive).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from psftr_core.errors import InputError

DISPLAY_CHARS = 60  # longest action name shown whole in messages, tables and images
# Characters that draw nothing but are neither format (Cf) nor space characters: Hangul
# fillers, the braille blank, variation selectors (checked by range below).
BLANK_LOOKALIKES = frozenset("\u115f\u1160\u3164\uffa0\u2800")
VARIATION_SELECTORS = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0))


def display_name(name: str, limit: int = DISPLAY_CHARS) -> str:
    """``name`` for display: cut to ``limit`` characters, the last one an ellipsis.

    >>> display_name("x" * 100, 8)
    'xxxxxxx…'
    """
    return name if len(name) <= limit else name[: limit - 1] + "…"


def clean_name(name: str) -> str:
    """NFC-normalise, trim and collapse whitespace; ``""`` for a blank name. ``InputError``
    for a control character or a name made only of invisible characters.

    >>> clean_name("  Pole\\t  Vault ")
    'Pole Vault'
    """
    text = _collapsed(name)
    if text and all(is_invisible(ch) for ch in text):
        raise InputError(f"action name '{escaped(display_name(text))}' is made only of invisible characters: "
                         "give a visible name")
    return text


def _collapsed(name: str) -> str:
    """NFC-normalised, trimmed, whitespace collapsed; ``InputError`` on a control character."""
    text = " ".join(unicodedata.normalize("NFC", name).split())
    bad = [ch for ch in text if unicodedata.category(ch) == "Cc"]
    if bad:
        raise InputError(f"action name {display_name(text)!r} contains control character {bad[0]!r}: remove it")
    return text


def is_invisible(ch: str) -> bool:
    """Whether ``ch`` draws nothing: a format character (Cf: zero-width space and joiners,
    word joiner, BOM...), a space or separator, a variation selector or a blank look-alike."""
    return (unicodedata.category(ch) in ("Cf", "Zs", "Zl", "Zp") or ch.isspace() or ch in BLANK_LOOKALIKES
            or any(ord(ch) in block for block in VARIATION_SELECTORS))


def escaped(text: str) -> str:
    """``text`` with every character other than printable ASCII written as a Python escape
    (``\\u200b``), so a message shows what an invisible name holds."""
    return "".join(ch if ch == " " or (ch.isascii() and ch.isprintable()) else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"


def name_key(name: str) -> str:
    """Identity of an action for de-duplication and look-ups (case-insensitive). Also of
    names :func:`clean_name` refuses as invisible: a table (text embeddings) may hold one."""
    return unicodedata.normalize("NFC", _collapsed(name).casefold())


def split_actions_arg(value: str) -> list[str]:
    """Split one ``--actions`` value on commas (blank pieces are ignored later)."""
    return value.split(",")


def read_actions_file(path: str | os.PathLike) -> list[str]:
    """Names listed in an actions file: one per line, ``#`` comment lines, blanks skipped.

    ``InputError`` naming the file when it is missing, a folder or not a regular file (a
    FIFO would block), unreadable, not UTF-8, or lists no action.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"actions file {path} is a folder, not a file")
    if not path.exists():
        raise InputError(f"actions file not found: {path}")
    if not path.is_file():
        raise InputError(f"actions file {path} is not a regular file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"actions file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise InputError(f"cannot read actions file {path}: {err.strerror}") from None
    names = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        names.append(stripped)
    if not names:
        raise InputError(f"actions file {path} lists no actions (only comments or blank lines)")
    return names


def normalise_vocabulary(names: Iterable[str]) -> list[str]:
    """Clean names and drop blanks and case-insensitive duplicates (first spelling kept).

    Raises ``InputError`` when nothing is left.
    """
    seen: set[str] = set()
    vocabulary = []
    for raw in names:
        if not isinstance(raw, str):
            raise InputError(f"action names must be strings, got {type(raw).__name__}: {display_name(repr(raw))}")
        name = clean_name(raw)
        if not name:
            continue
        key = name_key(name)
        if key in seen:
            continue
        seen.add(key)
        vocabulary.append(name)
    if not vocabulary:
        raise InputError(
            'no actions given: pass --actions "diving,pole vault" or --actions-file FILE (one action per line)'
        )
    return vocabulary


def parse_vocabulary(
    actions: str | Sequence[str] | None = None, actions_file: str | os.PathLike | None = None
) -> list[str]:
    """The vocabulary from ``--actions`` value(s) and/or an ``--actions-file``.

    ``actions`` is one comma-separated string or a list of them (a repeated option).
    """
    names: list[str] = []
    if isinstance(actions, str):
        actions = [actions]
    for value in actions or []:
        names.extend(split_actions_arg(value))
    if actions_file is not None:
        names.extend(read_actions_file(actions_file))
    return normalise_vocabulary(names)


def _parse_score(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{what}: {display_name(text)!r} is not a number (expected e.g. 0.3)") from None
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{what}: {value} is outside [0, 1]")
    return value


def parse_thresholds(values: Sequence[str] | None) -> tuple[float | None, dict[str, float]]:
    """Split ``--threshold`` values into (global threshold or None, {action name: threshold}).

    ``"0.3"`` is global; ``"name=0.3"`` is per action. A global value given twice, or one
    action given twice, is an ``InputError``.
    """
    global_threshold: float | None = None
    per_action: dict[str, float] = {}
    first_spelling: dict[str, str] = {}
    for value in values or []:
        name, sep, number = value.rpartition("=")
        if not sep:
            if global_threshold is not None:
                raise InputError(
                    f"--threshold {value}: a global threshold was already given ({global_threshold}); "
                    "use name=value for per-action thresholds"
                )
            global_threshold = _parse_score(value.strip(), "--threshold")
            continue
        name = clean_name(name)
        if not name:
            raise InputError(f"--threshold {value!r}: missing action name before '=' (expected name=0.3)")
        key = name_key(name)
        if key in first_spelling:
            raise InputError(f"--threshold: action {display_name(name)!r} is given twice")
        first_spelling[key] = name
        per_action[name] = _parse_score(number.strip(), f"--threshold {display_name(name)}")
    return global_threshold, per_action


def resolve_thresholds(
    vocabulary: Sequence[str], default: float, per_action: dict[str, float] | None = None
) -> dict[str, float]:
    """Threshold for every vocabulary name; per-action names are matched case-insensitively.

    A per-action name that is not in the vocabulary is an ``InputError`` (likely a typo).
    """
    by_key = {name_key(name): name for name in vocabulary}
    thresholds = {name: float(default) for name in vocabulary}
    for name, value in (per_action or {}).items():
        target = by_key.get(name_key(name))
        if target is None:
            raise InputError(
                f"--threshold {display_name(name)}={value}: {display_name(name)!r} is not one of the actions "
                f"({_preview(vocabulary)})"
            )
        thresholds[target] = float(value)
    return thresholds


def _preview(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(display_name(n)) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
