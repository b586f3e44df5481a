"""Rows of the bad-input matrix for issue 27 (rundir): see bad_input_cases for the row format.

Mechanism 4: one ``psftr train`` per run directory (``RUN_DIR/.train.lock``, an
``fcntl.flock``; the row holds it itself, which conflicts even in this process).
Mechanism 7 (part): ``--resume`` with settings other than the run's is refused naming
each key and both values; ``--epochs`` may change and is said. The lock's other cases
(kill -9, held for the whole run, torchrun ranks, ``--split-index all``) are in
``tests/train/test_run_dir_lock.py``.
"""

from __future__ import annotations

import fcntl
import shutil

import torch

from bad_input_cases import Case, Result, Scene, tiny_dataset

HOLDER_PID = 4242  # what the other run wrote into its lock file


def held_run_dir(name: str):
    """A run directory another ``psftr train`` holds (its lock taken, its pid in the file);
    loading the dataset fails the row: the refusal must come before any work."""

    def setup(scene: Scene) -> None:
        folder = scene.new(name, scene.tmp / name)
        folder.mkdir()
        handle = open(folder / ".train.lock", "w")
        handle.write(f"{HOLDER_PID}\n")
        handle.flush()
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        scene.notes["lock_handle"] = handle  # kept open (held) while the row runs

        def no_work(*args, **kwargs):
            raise AssertionError("psftr train loaded the dataset before refusing the held run directory")

        scene.monkeypatch.setattr("psftr_core.train.run.load_dataset", no_work)

    return setup


def finished_run(name: str):
    """A copy of a finished 1-epoch run (seed 0, ``train.lr`` 0.0003, no calibration) of
    the tiny dataset ``tiny_dataset`` makes."""

    def setup(scene: Scene) -> None:
        run_dir = scene.fixture("bad_inputs_checkpoint").parent
        scene.new(name, shutil.copytree(run_dir, scene.tmp / name))

    return setup


def check_only_the_lock_file(scene: Scene, result: Result) -> None:
    assert sorted(p.name for p in scene["run"].iterdir()) == [".train.lock"]
    scene.notes.pop("lock_handle").close()


def check_trained_to_epoch_2(scene: Scene, result: Result) -> None:
    assert torch.load(scene["run"] / "last.pt", weights_only=True)["epoch"] == 2
    assert not (scene["run"] / ".train.lock").exists()


TRAIN = "train --dataset {ds} --split 75_25 --output {run} {train}"
RESUME = f"{TRAIN} --no-calibrate --resume"
DONE = [tiny_dataset("ds"), finished_run("run")]

CASES: list[Case] = [
    Case("train-run-dir-locked", TRAIN, 2, says=["{run} is in use", f"pid {HOLDER_PID}"],
         setup=[tiny_dataset("ds"), held_run_dir("run")], check=check_only_the_lock_file),
    Case("train-resume-other-set", f"{RESUME} --set train.lr=1e-3", 2,
         says=["{run}/config.yaml", "train.lr: the run has 0.0003, this command gives 0.001"],
         setup=DONE, intact=["{run}"]),
    Case("train-resume-other-seed", f"{RESUME} --seed 5", 2, says=["train.seed: the run has 0, this command gives 5"],
         setup=DONE, intact=["{run}"]),
    Case("train-resume-other-model-and-inference", f"{RESUME} --set model.dec_layers=3 --set inference.topk=7", 2,
         says=["model.dec_layers: the run has 2, this command gives 3",
               "inference.topk: the run has 100, this command gives 7"],
         setup=DONE, intact=["{run}"]),
    Case("train-resume-calibrate-differs", f"{TRAIN} --resume", 2, says=["{run}/last.pt", "--no-calibrate"],
         setup=DONE, intact=["{run}"]),
    Case("train-resume-more-epochs-said", f"{RESUME} --epochs 2", 0, says=["warning", "2 epochs instead of its 1"],
         setup=DONE, check=check_trained_to_epoch_2),
]
