"""Rows of the bad-input matrix for issue 27 (streams): see bad_input_cases for the row format.

A ``--log-file`` that stops taking records (here a full disk: a character device like
``/dev/full``, which answers every write with ENOSPC) ends the run with one line naming
it, never Python's "--- Logging error ---" and its traceback; the command's outputs are
still written. stdout on a full disk, a closed pipe and a closed stdout need a real
process: ``test_signals_and_streams.py``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

import pytest

from bad_input_cases import Case, Scene, demo_copy

FULL_DEVICE = (1, 7)  # Linux's major, minor of /dev/full


def full_device_at(path: Path) -> Path:
    """A device that is always full: our own node at ``path`` (root), else ``/dev/full``.
    Skips where neither gives ENOSPC on write (no such device, a ``nodev`` mount)."""
    with contextlib.suppress(OSError, AttributeError):  # not root, or no os.mknod
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(*FULL_DEVICE))
        if writes_fail_with_enospc(path):
            return path
    if writes_fail_with_enospc(Path("/dev/full")):
        return Path("/dev/full")
    pytest.skip("no device that answers writes with ENOSPC (/dev/full) here")


def writes_fail_with_enospc(path: Path) -> bool:
    try:
        with open(path, "wb", buffering=0) as device:
            device.write(b"x")
    except OSError as err:
        return err.errno == errno.ENOSPC
    return False


def full_device(name: str):
    def setup(scene: Scene) -> None:
        scene.new(name, full_device_at(scene.tmp / name))

    return setup


def unknown_key(folder: Path) -> None:
    """A warning to log on every load: an unknown key in dataset.yaml."""
    with open(folder / "dataset.yaml", "a", encoding="utf-8") as handle:
        handle.write("colour: blue\n")


NOISY = demo_copy("noisy", unknown_key)
LOGGED_DETECT = "--log-file {full} detect --features {noisy} -a diving"

CASES: list[Case] = [
    Case("log-file-on-a-full-disk", f"{LOGGED_DETECT} -o {{tmp}}/out.json", 1,
         says=["cannot write to the log file {full}", "no space left"], never_says=["Logging error"],
         setup=[full_device("full"), NOISY], written=["{tmp}/out.json"]),
    # a run that fails for its own reason keeps its one error line; the log file's is a warning
    Case("log-file-on-a-full-disk-and-bad-input", f"{LOGGED_DETECT} no_such_video -o {{tmp}}/out.json", 2,
         says=["no_such_video", "warning: cannot write to the log file {full}"], never_says=["Logging error"],
         setup=[full_device("full"), NOISY]),
]
