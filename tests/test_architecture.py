"""The package's layering and size rules (docs/architecture.md), read from the source.

Every ``import`` of ``psftr_core`` is counted, the ones inside functions too, so a lazy
import cannot hide a cycle. Each layer may import only the layers below it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "psftr_core"

# Top to bottom. A layer imports only layers after it in this list.
LAYERS = [
    "train",
    "evaluation",
    "infer",
    "runtime",
    "model",
    "features",
    "config",  # psftr_core/config.py: presets from data.builtins, YAML through io.atomic
    "data",
    "io",
    "base",  # __init__, defaults, device, errors, segments
]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(CORE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    if (CORE / parts[1]).is_dir():
        return parts[1]
    return "config" if parts[1] == "config" else "base"


def imported_modules(module: str, path: Path) -> set[str]:
    """Every ``psftr_core`` module ``module`` imports, at any depth of the file."""
    found = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # ``from psftr_core.features import clip`` imports a module, not a name
            found.update(f"{target}.{a.name}" for a in node.names)
    modules = _modules()
    return {name for name in found if name in modules}


def test_layer_of_examples() -> None:
    assert layer_of("psftr_core.infer.detect") == "infer"
    assert layer_of("psftr_core.config") == "config"
    assert layer_of("psftr_core.errors") == "base"
    assert layer_of("psftr_core") == "base"


def test_imports_go_down_the_layers_only() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for module, path in _modules().items():
        for target in imported_modules(module, path):
            src, dst = layer_of(module), layer_of(target)
            assert src in rank and dst in rank, f"{module} or {target} is in no layer of LAYERS"
            if rank[dst] < rank[src]:
                upward.append(f"{module} ({src}) imports {target} ({dst})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_module_import_cycle() -> None:
    graph = {m: imported_modules(m, p) - {m} for m, p in _modules().items()}
    # Package __init__ files import their own children; that is not a cycle of jobs.
    for m in graph:
        graph[m] = {t for t in graph[m] if not t.startswith(m + ".") and not m.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_module_and_function_sizes() -> None:
    too_long = []
    for module, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{module}: {lines} lines (max {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{module}.{node.name}: {length} lines (max {MAX_FUNCTION_LINES})")
    assert not too_long, "\n".join(too_long)


def _public_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


def test_no_public_name_defined_twice() -> None:
    where = defaultdict(list)
    for module, path in _modules().items():
        if path.name != "__init__.py":  # a package may re-export; it defines nothing
            for name in _public_names(path):
                where[name].append(module)
    twice = {name: mods for name, mods in where.items() if len(mods) > 1}
    assert not twice, "\n".join(f"{n}: {', '.join(m)}" for n, m in sorted(twice.items()))
