"""Reading YAML written by users: the one safe loader of the project.

``yaml.safe_load`` never runs code, but it does follow aliases: a 189-byte file whose
anchors alias each other nine levels deep ("billion laughs") stands for ~10^9 values.
PyYAML shares the aliased nodes, so loading is fast, but anything that walks or prints
the result (a type error echoing the value, a deep copy) expands it. :class:`BoundedSafeLoader`
counts the values the document stands for once composed, before any Python object is
built, and refuses past :data:`MAX_YAML_NODES` or on an alias that contains itself.

:func:`safe_load` is a drop-in for ``yaml.safe_load`` (errors are ``yaml.YAMLError``);
:func:`read_yaml_file` reads a file and turns every problem into one ``InputError`` line
naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from psftr_core.errors import InputError, error_text
from psftr_core.io.text_file import read_input_text

# Values (scalars, lists, mappings) one document may stand for with its aliases expanded.
# A config or dataset.yaml has a few hundred; 100000 leaves room for any hand-written file.
MAX_YAML_NODES = 100_000
# Nesting of [ ] and { } collections: PyYAML's scanner takes time quadratic in it (a
# few KB of "[" would take minutes), and real files nest a handful of levels.
MAX_YAML_FLOW_DEPTH = 100
ERROR_DETAIL_CHARS = 200  # longest parser message echoed in an error line


class YAMLTooLarge(yaml.YAMLError):
    """A document whose aliases expand past the limit, or contain themselves."""


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses documents standing for more than ``max_nodes`` values."""

    max_nodes = MAX_YAML_NODES
    max_flow_depth = MAX_YAML_FLOW_DEPTH

    def fetch_flow_collection_start(self, TokenClass: type) -> None:  # noqa: N803 - PyYAML's name
        if self.flow_level >= self.max_flow_depth:
            raise YAMLTooLarge(f"its [ ] and {{ }} collections nest more than {self.max_flow_depth} levels deep "
                               f"({_where_mark(self.get_mark())})")
        super().fetch_flow_collection_start(TokenClass)

    def construct_document(self, node: yaml.Node) -> Any:
        check_expanded_size(node, self.max_nodes)
        return super().construct_document(node)


def check_expanded_size(root: yaml.Node, limit: int) -> int:
    """Number of values ``root`` stands for with every alias expanded; ``YAMLTooLarge`` past
    ``limit``. Each node is counted once (memoised), so this is linear in the file's size."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise YAMLTooLarge(f"an alias contains itself (at {_where(node)})")
        in_progress.add(key)
        total = 1 + sum(size(child) for child in _children(node))
        in_progress.discard(key)
        if total > limit:
            raise YAMLTooLarge(
                f"its aliases expand to more than {limit} values (from {_where(node)}; "
                "a 'billion laughs' document?)")
        sizes[key] = total
        return total

    return size(root)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _where(node: yaml.Node) -> str:
    return _where_mark(node.start_mark)


def _where_mark(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "in the document"


def safe_load(stream: str | bytes | Any) -> Any:
    """``yaml.safe_load`` with the expansion limit; any problem is a ``yaml.YAMLError``."""
    try:
        return yaml.load(stream, Loader=BoundedSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:  # PyYAML composes nested collections recursively (block ones too)
        raise YAMLTooLarge("it nests too deeply") from None


def read_yaml_file(path: str | os.PathLike, what: str) -> Any:
    """Parse the YAML file at ``path`` (None when empty); ``what`` names it in errors
    (e.g. "config file"). Every problem is one ``InputError`` line naming the file."""
    path = Path(path)
    text = read_input_text(path, what, "YAML")
    try:
        return safe_load(text)
    except YAMLTooLarge as err:
        raise InputError(f"{what} {path} is refused: {error_text(err, ERROR_DETAIL_CHARS)}") from None
    except yaml.YAMLError as err:
        raise InputError(f"{what} {path} is not valid YAML: {_parser_detail(err)}") from None


def _parser_detail(err: yaml.YAMLError) -> str:
    """PyYAML's message on one line, cut, without the name of the string it parsed (the
    message already names the file)."""
    text = " ".join(str(err).replace(' in "<unicode string>"', "").split())
    return text if len(text) <= ERROR_DETAIL_CHARS else text[:ERROR_DETAIL_CHARS] + "..."
