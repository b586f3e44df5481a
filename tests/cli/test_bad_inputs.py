"""Bad input never costs a user their results: one table of bad conditions (issue 13).

Each row of ``bad_input_cases.CASES`` runs one ``psftr`` command in-process on one bad
condition and checks what every command owes the user:

- the documented exit code (0 ok, 2 bad usage or input, 3 some inputs failed, 130 Ctrl-C);
- no traceback and no raw third-party text (decoder errors, native ffmpeg log lines);
- for exit 1-3 exactly one ``psftr: error:`` line, for exit 0 none;
- the culprit named on stderr (the path, file, video or flag);
- nothing already written lost (``intact`` files byte for byte), good videos' outputs
  written, and the row's own known-answer check.

Rows that the current code fails carry a strict xfail with the reason, so each fix turns
its row into a pass (and the stale mark into a failure, to be removed). Read-only
folders use ``chattr +i`` (root ignores permission bits); those rows are skipped where
it is unavailable or has no effect. A row with a FIFO runs the command in a thread and
fails if the command opens the FIFO for reading (which hangs forever without a writer):
the guard then opens the FIFO's write end so the command can finish.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytest

import fault_cases_checkpoints
import fault_cases_data
import fault_cases_new_options
import fault_cases_paths
import fault_cases_rundir
import fault_cases_settings
import fault_cases_streams
from bad_input_cases import CASES as BASE_CASES
from bad_input_cases import FFMPEG_LOG_LINE, RAW_TEXT, Case, Result, Scene, expand_argv, expand_text

# issue 27's rows live in one module per mechanism
CASES = [*BASE_CASES, *(case for module in (fault_cases_streams, fault_cases_settings, fault_cases_rundir,
                                            fault_cases_checkpoints, fault_cases_data, fault_cases_paths,
                                            fault_cases_new_options)
                        for case in module.CASES)]

FIFO_GUARD_SECONDS = 30


@pytest.fixture(scope="session")
def bad_inputs_checkpoint(tmp_path_factory) -> Path:
    """A real ``psftr train`` checkpoint of a tiny model on 32-d synthetic features."""
    from train_helpers import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("bad_inputs_ckpt"))


@pytest.fixture()
def scene(tmp_path, request, make_immutable, monkeypatch, video_folder) -> Scene:
    from bad_input_cases import DEMO

    cache = tmp_path / "cache"
    monkeypatch.setenv("PSFTR_CACHE_DIR", str(cache))
    paths = {"tmp": tmp_path, "videos": video_folder, "demo": DEMO, "cache": cache}
    return Scene(tmp_path, paths, request.getfixturevalue, make_immutable, monkeypatch)


def invoke(argv: list[str]) -> int:
    """``psftr ARGV`` in-process, as the console script runs it: the exit code. An
    exception that escapes prints its traceback and gives 1, as Python would."""
    from psftr_cli.main import run

    sys.argv = ["psftr", *argv]
    with warnings.catch_warnings():
        python_default_warnings()
        try:
            run()
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - reproduce the interpreter's last resort
            traceback.print_exc()
            return 1
    return 0


def python_default_warnings() -> None:
    """Warnings as a plain ``python`` shows them (on stderr), not as pytest records them."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show


def invoke_guarded(argv: list[str], fifos: list[Path]) -> tuple[int, bool]:
    """``invoke`` in a thread; (exit code, whether it opened one of ``fifos`` for reading).

    Opening a FIFO's write end without blocking succeeds only while someone has it open
    for reading; doing so (and closing it) also hands that reader an end of file.
    """
    box: dict[str, int] = {}
    worker = threading.Thread(target=lambda: box.update(code=invoke(argv)), daemon=True)
    worker.start()
    opened = False
    deadline = time.monotonic() + FIFO_GUARD_SECONDS
    while worker.is_alive() and time.monotonic() < deadline:
        for fifo in fifos:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # nobody is reading it
            opened = True
            os.close(fd)
        worker.join(0.05)
    if worker.is_alive():
        pytest.fail(f"psftr {' '.join(argv)[:200]} still running after {FIFO_GUARD_SECONDS} s")
    return box["code"], opened


def snapshot(path: Path) -> Any:
    """File bytes, {relative path: bytes} of a folder, or None when absent."""
    if path.is_file():
        return path.read_bytes()
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return None


def says(err: str, text: str) -> bool:
    """``text`` is on stderr, also when the console wrapped a long line (a path) at 80 columns."""
    return text in err or text in re.sub(r" *\n *", "", err)


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(line[:300] for line in text.splitlines()[-lines:])


def case_params() -> list[Any]:
    params = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=f"issue 13: {case.fails_today}")] if case.fails_today else []
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.parametrize("case", case_params())
def test_bad_input(case: Case, scene: Scene, capfd, monkeypatch, torch_one_thread):
    for setup in case.setup:
        setup(scene)
    for name, value in case.env.items():
        monkeypatch.setenv(name, expand_text(value, scene))
    argv = expand_argv(case.argv, scene)
    intact = {text: snapshot(Path(expand_text(text, scene))) for text in case.intact}
    monkeypatch.setattr(sys, "argv", sys.argv)  # restored after invoke() sets it
    capfd.readouterr()

    if scene.fifos:
        code, opened_fifo = invoke_guarded(argv, scene.fifos)
    else:
        code, opened_fifo = invoke(argv), False
    out, err = capfd.readouterr()
    result = Result(code, out, err, opened_fifo)

    assert not result.opened_fifo, "opened a FIFO for reading: without a writer this hangs forever"
    assert result.code == case.exit, f"exit {result.code}, expected {case.exit}; stderr:\n{tail(err)}"
    for raw in RAW_TEXT:
        assert raw not in err, f"{raw!r} on stderr:\n{tail(err)}"
    assert not re.search(FFMPEG_LOG_LINE, err), f"native decoder log on stderr:\n{tail(err)}"
    error_lines = [line for line in err.splitlines() if line.startswith("psftr: error:")]
    if case.exit in (1, 2, 3):
        assert len(error_lines) == 1, f"expected one 'psftr: error:' line; stderr:\n{tail(err)}"
    elif case.exit == 0:
        assert error_lines == [], error_lines
    for text in case.says:
        assert says(err, expand_text(text, scene)), f"stderr does not say {expand_text(text, scene)!r}:\n{tail(err)}"
    for text in case.never_says:
        assert expand_text(text, scene) not in err, f"stderr says {expand_text(text, scene)!r}:\n{tail(err)}"
    for text, before in intact.items():
        assert snapshot(Path(expand_text(text, scene))) == before, f"{expand_text(text, scene)} changed"
    for text in case.written:
        assert Path(expand_text(text, scene)).is_file(), f"{expand_text(text, scene)} was not written"
    if case.check is not None:
        case.check(scene, result)


def test_matrix_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
