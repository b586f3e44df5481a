"""Run ``psftr`` in-process as the console script does, capturing its output."""

from __future__ import annotations

import sys


def run_cli(args, capsys, monkeypatch, command: str = "detect") -> tuple[int, str, str]:
    """``psftr COMMAND ARGS`` in-process: (exit code, stdout, stderr)."""
    from psftr_cli.main import run

    monkeypatch.setattr(sys, "argv", ["psftr", command, *map(str, args)])
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
