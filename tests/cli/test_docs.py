"""The README and docs/*.md stay true to the repository and to the CLI.

- every relative link (and image) points to a file in the repository, and an ``#anchor``
  to a heading of the linked page;
- every path of the repository named in inline code (``features/video.py``,
  ``examples/train_override.yaml``, ...) exists;
- every ``psftr [global options] COMMAND --flag`` in a code block or inline code uses a
  command and flags that ``-h`` lists;
- every Python name of the library the docs mention (``from psftr_core.x import y``,
  ``psftr_core.x.y``) can be imported.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`([^`]+)`")  # a code span may run over a line break
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
# `psftr` as a program name: start of a line/snippet, after whitespace, `$ `, `$(which psftr)`.
PSFTR_CALL = re.compile(r"(?:^|(?<=[\s(]))psftr\)?(?=\s)")
CORE_PACKAGES = tuple(p.name for p in (REPO / "psftr_core").iterdir() if (p / "__init__.py").is_file())
REPO_ROOTS = ("psftr_core", "psftr_cli", "examples", "benchmarks", "docs", "tests")


def page_id(path: Path) -> str:
    return str(path.relative_to(REPO))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def without_fences(text: str) -> str:
    return FENCE.sub("", text)


def inline_code(text: str) -> list[str]:
    """Inline code spans outside code blocks, line breaks read as spaces."""
    return [" ".join(span.split()) for span in INLINE_CODE.findall(without_fences(text))]


def fenced_blocks(text: str) -> list[str]:
    return [m.group(0).split("\n", 1)[1].rsplit("\n", 1)[0] for m in FENCE.finditer(text)]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = unicodedata.normalize("NFC", text).strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(without_fences(read(path))):
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(result)


def test_github_slug_matches_github():
    assert github_slug("Built-in datasets: `thumos14` and `anet`") == "built-in-datasets-thumos14-and-anet"
    assert github_slug("Ctrl-C and `--resume`") == "ctrl-c-and---resume"
    assert github_slug("`psftr evaluate --json`") == "psftr-evaluate---json"
    assert github_slug("Several GPUs or processes (DDP)") == "several-gpus-or-processes-ddp"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_point_to_existing_files_and_headings(page):
    broken = []
    for target in LINK.findall(without_fences(read(page))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if REPO not in linked.parents and linked != REPO:
            broken.append(f"{target}: outside the repository")
        elif not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {page_id(linked)}")
    assert not broken, f"{page_id(page)}: " + "; ".join(broken)


def repository_path(code: str) -> Path | None:
    """The file a piece of inline code names, when it looks like a path of this repository."""
    if re.search(r"[\s<>*$~{}|=:,]", code) or not re.search(r"(/|\.py)$|\.(py|yaml|txt|json|md|csv|png)$", code):
        return None
    first = code.split("/", 1)[0]
    if first in REPO_ROOTS:
        return REPO / code
    if first in CORE_PACKAGES or ("/" not in code and code.endswith(".py")):
        return REPO / "psftr_core" / code
    return None


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_repository_paths_named_in_inline_code_exist(page):
    missing = []
    for code in inline_code(read(page)):
        path = repository_path(code)
        if path is not None and not path.exists():
            missing.append(code)
    assert not missing, f"{page_id(page)} names paths that do not exist: {missing}"


def test_repository_path_rule():
    assert repository_path("features/video.py") == REPO / "psftr_core/features/video.py"
    assert repository_path("config.py") == REPO / "psftr_core/config.py"
    assert repository_path("examples/demo/actions.txt") == REPO / "examples/demo/actions.txt"
    assert repository_path("psftr_cli/") == REPO / "psftr_cli/"
    for not_ours in ("features/<id>.npy", "runs/demo/last.pt", "dataset.yaml", "~/.cache/psftr", "RUN_DIR/last.pt"):
        assert repository_path(not_ours) is None


# ----------------------------------------------------------------------------- CLI flags


@functools.lru_cache(maxsize=None)
def help_options(command: str | None) -> frozenset[str]:
    """Options that ``psftr [COMMAND] -h`` lists (first column of its option lines);
    ``command`` may be ``"GROUP SUB"`` (``"checkpoint info"``)."""
    args = [sys.executable, "-m", "psftr_cli", *(command.split() if command else []), "-h"]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    options = set()
    for line in done.stdout.splitlines():
        match = re.match(r"^ {1,4}(-{1,2}[\w-]+(?:,\s*-{1,2}[\w-]+)*)", line)
        if match:
            options.update(re.split(r",\s*", match.group(1)))
    assert options, done.stdout
    return frozenset(options)


@functools.lru_cache(maxsize=None)
def commands(group: str | None = None) -> frozenset[str]:
    """The commands ``psftr -h`` lists, or those of a command group (empty for a command)."""
    done = subprocess.run([sys.executable, "-m", "psftr_cli", *([group] if group else []), "-h"],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
                          timeout=60, cwd=REPO)
    if "Commands:" not in done.stdout:
        return frozenset()
    section = done.stdout.split("Commands:", 1)[1]
    return frozenset(re.findall(r"^ {1,4}([a-z][\w-]*)\s", section, re.M))


SHELL_FENCES = ("bash", "sh", "shell", "console", "")


def command_lines(text: str) -> list[str]:
    """Shell lines: shell code blocks (backslash continuations joined), ``$ ...`` lines of
    other blocks (a transcript), and inline code spans."""
    lines = []
    for match in FENCE.finditer(text):
        info, body = match.group(0).split("\n", 1)
        block = body.rsplit("\n", 1)[0].replace("\\\n", " ").splitlines()
        if info.strip("`~ ").lower() in SHELL_FENCES:
            lines.extend(block)
        else:
            lines.extend(line[2:] for line in block if line.startswith("$ "))
    lines.extend(inline_code(text))
    return lines


def psftr_calls(line: str) -> list[list[str]]:
    """The argument lists after each ``psftr`` program name in one shell line."""
    calls = []
    for match in PSFTR_CALL.finditer(line):
        rest = re.split(r"\s(?:\||&&|;|>|2>|<)\s|\s#", line[match.end():], maxsplit=1)[0]
        try:
            words = shlex.split(rest)
        except ValueError:  # an unbalanced quote in prose-like text
            words = rest.split()
        calls.append([w.strip("[]") for w in words])
    return calls


def check_call(words: list[str]) -> list[str]:
    """Problems of one ``psftr ...`` argument list: unknown command or unknown flags."""
    problems = []
    global_opts, i = [], 0
    while i < len(words) and words[i].startswith("-"):
        global_opts.append(words[i])
        i += 1
        if global_opts[-1] == "--log-file" and i < len(words):
            i += 1  # its FILE
    problems += [f"global option {o}" for o in global_opts if o.split("=")[0] not in help_options(None)]
    if i == len(words):
        return problems
    command = words[i]
    if not re.fullmatch(r"[a-z][\w-]*", command):
        return problems  # `psftr` in prose, e.g. "psftr 0.1.0"
    if command not in commands():
        return problems + [f"command {command!r}"]
    group = commands(command)
    if group:  # psftr checkpoint info ...: the subcommand's flags
        if i + 1 >= len(words) or words[i + 1] not in group:
            return problems + [f"{command}: subcommand {' '.join(words[i + 1:i + 2]) or '(none)'}"]
        command, i = f"{command} {words[i + 1]}", i + 1
    known = help_options(command)
    for word in words[i + 1:]:
        flag = word.split("=", 1)[0]
        if re.fullmatch(r"-{1,2}[A-Za-z][\w-]*", flag) and flag not in known:
            problems.append(f"{command} {flag}")
    return problems


def test_flag_checker_catches_unknown_commands_and_flags():
    assert check_call(["detect", "--features", "DIR", "-q", "--format=csv"]) == []
    assert check_call(["-v", "--log-file", "x.log", "evaluate", "--baseline"]) == []
    assert check_call(["detect", "--no-such-flag"]) == ["detect --no-such-flag"]
    assert check_call(["detcet", "x"]) == ["command 'detcet'"]
    assert check_call(["--nope", "train"]) == ["global option --nope"]
    assert check_call(["checkpoint", "info", "runs/demo", "--json", "--names"]) == []
    assert check_call(["checkpoint", "info", "x", "--nope"]) == ["checkpoint info --nope"]
    assert check_call(["checkpoint", "inf", "x"]) == ["checkpoint: subcommand inf"]
    assert psftr_calls("torchrun --nproc_per_node 4 $(which psftr) train --split 75_25 > log") == [
        ["train", "--split", "75_25"]]
    assert psftr_calls("psftr evaluate --predictions P.json [--per-class]") == [
        ["evaluate", "--predictions", "P.json", "--per-class"]]
    page = ("```bash\npsftr detect a \\\n    --top-k 3\n```\n"
            "```text\n$ psftr train --x\npsftr version 0.1\n```\nSee `psftr evaluate\n--json`.\n")
    assert [words for line in command_lines(page) for words in psftr_calls(line)] == [
        ["detect", "a", "--top-k", "3"], ["train", "--x"], ["evaluate", "--json"]]
    readme_calls = [words for line in command_lines(read(REPO / "README.md")) for words in psftr_calls(line)]
    assert sum(1 for words in readme_calls if "detect" in words) >= 4


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_psftr_commands_in_docs_use_flags_that_help_lists(page):
    problems = []
    for line in command_lines(read(page)):
        for words in psftr_calls(line):
            problems += [f"{p}   (in: {line.strip()})" for p in check_call(words)]
    assert not problems, f"{page_id(page)} uses unknown commands/flags:\n" + "\n".join(problems)


def test_readme_starts_with_the_ci_setup_commands():
    """.ci/run installs and tests with exactly these lines; they stay the README's first commands."""
    setup = ['python3 -m venv .venv && .venv/bin/pip install -e ".[test]"', ".venv/bin/python -m pytest"]
    assert fenced_blocks(read(REPO / "README.md"))[0].splitlines() == setup
    ci = REPO / ".ci" / "run"
    if ci.is_file():
        assert set(setup) <= set(read(ci).splitlines())


# ----------------------------------------------------------------------------- Python names

FROM_IMPORT = re.compile(r"\bfrom[ \t]+(psftr_core(?:\.\w+)*)[ \t]+import[ \t]+(\([^)]*\)|[\w \t,]+)")
DOTTED = re.compile(r"(?<![\w.])psftr_core(?:\.[A-Za-z_]\w*)+")


def python_names(text: str) -> set[str]:
    """Dotted names of the library that a page mentions, e.g. ``psftr_core.infer.detect.detect``."""
    names = set(DOTTED.findall(text))
    for module, imported in FROM_IMPORT.findall(text):
        for item in imported.strip("()").split(","):
            if item.split():
                names.add(f"{module}.{item.split()[0]}")  # `name as alias`: the name
    return names


def resolves(dotted: str) -> bool:
    """The longest importable module prefix of ``dotted`` has the remaining attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if not module.startswith(err.name or ""):
                raise  # the module exists but one of its own imports is missing
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_python_name_rule():
    text = "from psftr_core.infer.detect import detect, Segment\nuse `psftr_core.io.export.write_results_csv(f, r)`."
    assert python_names(text) == {"psftr_core.infer.detect", "psftr_core.infer.detect.detect",
                                  "psftr_core.infer.detect.Segment", "psftr_core.io.export.write_results_csv"}
    assert resolves("psftr_core.segments") and not resolves("psftr_core.segments.no_such_name")
    assert not resolves("psftr_core.no_such_module")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_library_names_in_docs_can_be_imported(page):
    missing = sorted(name for name in python_names(read(page)) if not resolves(name))
    assert not missing, f"{page_id(page)} names what psftr_core does not have: {missing}"
