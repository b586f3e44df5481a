"""The action vocabulary of ``psftr detect``: parse, clean and de-duplicate names.

Rules (the same for ``--actions`` and ``--actions-file``):

- ``--actions "a,b"`` splits on commas; it may be given several times.
- ``--actions-file F`` holds one action per line (UTF-8, a BOM is tolerated), so names may
  contain commas. Blank lines are skipped and a line whose first non-blank character is
  ``#`` is a comment. ``#`` elsewhere in a line is part of the name.
- An actions file may also give each action several descriptions (prompt ensembling,
  :func:`read_action_texts`), in one of three forms, chosen by extension or, for another
  extension, by content: YAML (``.yaml``/``.yml``: a mapping ``name: [description, ...]``
  or ``name: description``, or a list of names), TSV (``.tsv``, or any line with a tab:
  ``name<TAB>description<TAB>...``), or GAP's description JSON (``.json``:
  ``{name: {"Elaboration": {"Description": str | [str, ...]}}}``). A problem is an
  ``InputError`` naming the file and, where there is one, the line.
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

import json
import os
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
    """Names listed in an actions file (any form of :func:`read_action_texts`), in order.

    ``InputError`` naming the file when it is missing, a folder or not a regular file (a
    FIFO would block), unreadable, not UTF-8, malformed, or lists no action.
    """
    return [name for name, _ in read_action_texts(path)]


def read_action_texts(path: str | os.PathLike) -> list[tuple[str, list[str]]]:
    """``(name, descriptions)`` pairs of an actions file, in file order (names as written;
    descriptions cleaned like names, blanks dropped; ``[]`` for a bare name).

    The form (see the module docstring) is chosen by extension: ``.yaml``/``.yml``,
    ``.tsv``, ``.json``; for any other, YAML when the first entry looks like YAML
    (``name:`` or ``- name``) or JSON when the text starts with ``{``, TSV when a line has
    a tab, else one name per line.
    """
    path = Path(path)
    text = _read_actions_text(path)
    form = _file_form(path, text)
    pairs = _PARSERS[form](path, text)
    if not pairs:
        raise InputError(f"actions file {path} lists no actions (only comments or blank lines)")
    return pairs


def _read_actions_text(path: Path) -> str:
    """The file's text; ``InputError`` naming it when it cannot be read as UTF-8."""
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
    return text


def _content_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of the lines that are neither blank nor ``#`` comments."""
    return [(n, line) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")]


def _file_form(path: Path, text: str) -> str:
    """``yaml``, ``tsv``, ``json`` or ``lines``: by extension, else by content."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix in (".tsv", ".json"):
        return suffix[1:]
    lines = _content_lines(text)
    if text.lstrip().startswith("{"):
        return "json"
    if lines and (lines[0][1].startswith("- ") or lines[0][1].rstrip().endswith(":")):
        return "yaml"  # a name ending in ':' alone on a line is YAML's "name:" (descriptions follow)
    if any("\t" in line for _, line in lines):
        return "tsv"
    return "lines"


def _parse_lines(path: Path, text: str) -> list[tuple[str, list[str]]]:
    """One name per line: ``#`` comment lines and blank lines skipped; ``#`` elsewhere is part of a name."""
    return [(line.strip(), []) for _, line in _content_lines(text)]


def _parse_tsv(path: Path, text: str) -> list[tuple[str, list[str]]]:
    """``name<TAB>description<TAB>...`` per line; a line with no tab is a bare name."""
    pairs = []
    for number, line in _content_lines(text):
        name, *descriptions = line.split("\t")
        if not name.strip():
            raise InputError(f"actions file {path}, line {number}: no action name before the first tab")
        pairs.append((name.strip(), _descriptions(descriptions, path, number)))
    return pairs


def _parse_yaml(path: Path, text: str) -> list[tuple[str, list[str]]]:
    """A mapping ``name: [description, ...]`` / ``name: description`` / ``name:``, or a list of names."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"actions file {path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") \
            from None
    if data is None:
        return []
    if isinstance(data, list):
        return [(_yaml_name(item, path), []) for item in data]
    if not isinstance(data, dict):
        raise InputError(f"actions file {path}: YAML must be a mapping name: [descriptions] or a list of names, "
                         f"got {type(data).__name__}")
    return [(_yaml_name(name, path), _yaml_descriptions(name, value, path)) for name, value in data.items()]


def _yaml_name(item: object, path: Path) -> str:
    # YAML reads `yes`, `1` or `null` as non-strings: a name must be quoted then.
    if not isinstance(item, str):
        raise InputError(f"actions file {path}: action name {item!r} is not text; quote it")
    return item


def _yaml_descriptions(name: object, value: object, path: Path) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(d, str) for d in items):
        raise InputError(f"actions file {path}: the descriptions of {name!r} must be text or a list of texts")
    return _descriptions(items, path, None)


def _parse_gap_json(path: Path, text: str) -> list[tuple[str, list[str]]]:
    """GAP's ``*_description_v*.json``: ``{name: {"Elaboration": {"Description": str | [str]}}}``
    (v3 has one string, v4/v6 a list); other keys (``idx``, ``Entity``, ``Origin_Chat``) are ignored."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"actions file {path}, line {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"actions file {path}: JSON must map each action to its record, got {type(data).__name__}")
    pairs = []
    for name, record in data.items():
        found = record.get("Elaboration", {}).get("Description") if isinstance(record, dict) else None
        found = record if isinstance(record, (str, list)) else found  # also {name: [descriptions]}
        items = [found] if isinstance(found, str) else found
        if not isinstance(items, list) or not all(isinstance(d, str) for d in items):
            raise InputError(f"actions file {path}: action {name!r} has no Elaboration.Description text "
                             "(expected GAP's description JSON or {name: [descriptions]})")
        pairs.append((name, _descriptions(items, path, None)))
    return pairs


def _descriptions(items: Iterable[str], path: Path, number: int | None) -> list[str]:
    """Descriptions cleaned like names (blanks dropped); ``InputError`` naming file and line."""
    try:
        return [text for text in (clean_name(item) for item in items) if text]
    except InputError as err:
        where = f", line {number}" if number is not None else ""
        raise InputError(f"actions file {path}{where}: {err}") from None


_PARSERS = {"lines": _parse_lines, "tsv": _parse_tsv, "yaml": _parse_yaml, "json": _parse_gap_json}


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


@dataclass(frozen=True)
class TextRecipe:
    """The texts an action's embedding is the mean of (prompt ensembling): each template
    filled with the action's name, then each of its descriptions as written.

    templates: the ``--prompt`` templates (each with ``{}``); empty: the one prompt the
    run would use anyway (``--prompt``, the checkpoint's, the dataset's, the default).
    descriptions: by :func:`name_key`; an action without any gets the templates only.
    """

    templates: tuple[str, ...] = ()
    descriptions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def texts(self, name: str, default_template: str) -> list[str]:
        """Every text of ``name``, in order: templates first, then descriptions (duplicates kept)."""
        templates = self.templates or (default_template,)
        return [t.format(name) for t in templates] + list(self.descriptions.get(name_key(name), ()))

    def describe(self) -> str:
        """In words, for the ``text:`` note of a run's details."""
        counts = [len(d) for d in self.descriptions.values()]
        return (f"{len(self.templates) or 1} prompt template(s)"
                + (f" + {sum(counts)} descriptions of {len(counts)} actions" if counts else "") + ", averaged")


def check_templates(templates: Sequence[str], flag: str = "--prompt") -> tuple[str, ...]:
    """``templates`` as a tuple; ``InputError`` for one without ``{}`` or with other braces."""
    for template in templates:
        try:
            ok = "{}" in template and template.format("x") is not None
        except (IndexError, KeyError, ValueError):
            ok = False
        if not ok:
            raise InputError(f"{flag} {template!r} must contain '{{}}' (once or more) where the action name goes, "
                             "and no other braces")
    return tuple(templates)


def parse_action_texts(
    actions: str | Sequence[str] | None = None,
    actions_file: str | os.PathLike | None = None,
    prompts: str | Sequence[str] | None = None,
) -> tuple[list[str], str | TextRecipe | None]:
    """The vocabulary (as :func:`parse_vocabulary`) and what to encode it with: the one
    prompt (or None) as before when there is at most one template and no description,
    else a :class:`TextRecipe`. Descriptions of a name listed twice are joined."""
    templates = check_templates([prompts] if isinstance(prompts, str) else list(prompts or []))
    names: list[str] = []
    descriptions: dict[str, tuple[str, ...]] = {}
    for value in [actions] if isinstance(actions, str) else (actions or []):
        names.extend(split_actions_arg(value))
    if actions_file is not None:
        for name, texts in read_action_texts(actions_file):
            names.append(name)
            if texts and clean_name(name):
                key = name_key(name)
                descriptions[key] = descriptions.get(key, ()) + tuple(texts)
    vocabulary = normalise_vocabulary(names)
    if len(templates) <= 1 and not descriptions:
        return vocabulary, (templates[0] if templates else None)
    return vocabulary, TextRecipe(templates, descriptions)


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
