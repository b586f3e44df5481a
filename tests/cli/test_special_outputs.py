"""``-o /dev/stdout`` and ``-o /dev/null``: the README idioms write to the stream and leave the device."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


def _detect(output: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "psftr_cli", "detect", "--features", str(DEMO), "--actions-file",
                           str(DEMO / "actions.txt"), "--format", "csv", "-o", output],
                          capture_output=True, text=True, env=env, timeout=120)


def test_output_to_dev_stdout_reaches_stdout():
    done = _detect("/dev/stdout")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "video,label,start,end,score" and len(lines) > 1


def test_output_to_dev_null_keeps_the_device():
    done = _detect("/dev/null")
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
