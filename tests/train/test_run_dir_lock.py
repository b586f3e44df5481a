"""One ``psftr train`` per run directory (``RUN_DIR/.train.lock``), and ``--resume`` with
the run's own settings (issue 27, mechanisms 4 and 7). The command-line rows (a held run
directory, ``--resume`` with other ``--set``/``--seed``/``--calibrate``/``--epochs``) are
in ``tests/cli/fault_cases_rundir.py``; here what needs a process or the library.

The lock is an ``fcntl.flock``: another open file description conflicts even in the same
process, so a test can hold it itself and run ``psftr train`` in-process.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from psftr_core.errors import InputError
from psftr_core.train import run
from psftr_core.train.run_dir import LOCK_FILE, run_dir_lock
from train_helpers import TINY_OVERRIDES, make_tiny_dataset, one_thread, psftr_main, request

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("lock") / "data", num_splits=1, train_videos=4, test_videos=2)


@pytest.fixture(scope="module")
def trained_run(tiny_data, tmp_path_factory) -> tuple[Path, list[BaseException]]:
    """A finished 1-epoch run (no calibration) and what a second run into it while it
    trained was told; copy the run before changing it."""
    out = tmp_path_factory.mktemp("lock_run") / "run"
    refusals: list[BaseException] = []

    def start_another(event):  # a second run while the first trains
        if event.kind == "epoch_end" and not refusals:
            try:
                run.train(request(tiny_data, out, epochs=1))
            except InputError as err:
                refusals.append(err)

    run.train(request(tiny_data, out, epochs=1), on_progress=start_another)
    return out, refusals


def hold_lock(run_dir: Path, pid: str = "4242"):
    """Hold ``run_dir``'s lock as another run would (a separate open file description;
    the table row ``train-run-dir-locked`` runs ``psftr train`` against one)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / LOCK_FILE, "w")
    handle.write(f"{pid}\n")
    handle.flush()
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def train_argv(dataset: Path, out: Path, *extra: str) -> list[str]:
    argv = ["train", "--dataset", dataset, "--split", "75_25", "--output", out, "--epochs", "1", "--device", "cpu",
            "--seed", "0", "--no-calibrate"]
    for override in TINY_OVERRIDES:
        argv += ["--set", override]
    return [*argv, *extra]


# ----------------------------------------------------------------------------- the lock


def test_lock_is_held_for_the_whole_run_and_removed_after(trained_run):
    out, refusals = trained_run
    assert len(refusals) == 1
    assert f"{out} is in use" in str(refusals[0]) and f"pid {os.getpid()}" in str(refusals[0])
    assert not (out / LOCK_FILE).exists()
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1  # the first run went on


def test_lock_left_by_a_killed_run_does_not_block(tmp_path):
    root = tmp_path / "run"
    killed = ("import os, signal, sys; from pathlib import Path; from psftr_core.io.file_lock import held_lock\n"
              "with held_lock(Path(sys.argv[1]) / '.train.lock'):\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.Popen([sys.executable, "-c", killed, str(root)], cwd=REPO)
    assert proc.wait(timeout=30) == -9
    assert (root / LOCK_FILE).read_text().strip() == str(proc.pid)  # the stale file stays...
    with run_dir_lock(root):  # ...and blocks nobody
        assert (root / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (root / LOCK_FILE).exists()


def test_only_rank_0_locks(tmp_path):
    """Under torchrun every rank runs train(); ranks > 0 write nothing and must not be refused."""
    root = tmp_path / "run"
    handle = hold_lock(root)
    try:
        with run_dir_lock(root, enabled=False):
            pass
        with pytest.raises(InputError, match="in use"), run_dir_lock(root):
            pass
    finally:
        handle.close()


def test_every_split_layout_locks_the_root_once(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    locked: list[Path] = []
    real_lock = run.run_dir_lock

    def recording_lock(root, enabled=True):
        locked.append(Path(root))
        return real_lock(root, enabled)

    def split_sees_locks(split_run, *args, **kwargs):  # which lock files exist while a split trains
        return split_run.run_dir, (out / LOCK_FILE).exists(), (split_run.run_dir / LOCK_FILE).exists()

    monkeypatch.setattr(run, "run_dir_lock", recording_lock)
    monkeypatch.setattr(run, "train_split", split_sees_locks)
    results = run.train(request(tiny_data, out, split_index="all", epochs=1))
    assert locked == [out]
    assert results == [(out / "split_0", True, False)]  # the root is held; split_0 has no lock of its own


# ----------------------------------------------------------------------------- --resume with other settings


@pytest.fixture()
def copied_run(trained_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained_run[0], out)
    return out


def test_resume_without_config_yaml_checks_the_checkpoint(tiny_data, copied_run, capsys):
    (copied_run / "config.yaml").unlink()
    code = psftr_main(train_argv(tiny_data, copied_run, "--resume", "--set", "train.weight_decay=0.5"))
    err = capsys.readouterr().err
    assert code == 2 and f"{copied_run / 'last.pt'}" in err and "train.weight_decay" in err
