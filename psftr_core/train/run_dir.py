"""The run directory of ``psftr train``: its layout, its description, fresh-run checks.

Layout::

    RUN_DIR/                     (one split)         RUN_DIR/            (--split-index all)
      run.json    what was run                         run.json
      config.yaml the resolved config                  config.yaml
      calibration.json  how the inference settings were chosen (psftr_core.train.calibration)
      metrics.jsonl                                    split_0/  (the one-split layout)
      last.pt     checkpoint after the last epoch      ...
      best.pt     best eval mAP (only with eval_every > 0)  split_9/

A resumed run keeps its original ``run.json`` and ``config.yaml``.

One ``psftr train`` at a time writes a run directory: it holds ``RUN_DIR/.train.lock``
(:func:`run_dir_lock`) from its first write to its end, and a second run into the same
directory is refused. With ``--split-index all`` the root holds the one lock for every
``split_K``; under torchrun only rank 0 (the one that writes) takes it.

A resumed run continues with the settings it was trained with (:func:`check_resume_settings`):
a command whose settings differ is refused, naming each key, except the epoch count,
which ``--epochs`` may change.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import yaml

from psftr_core import __version__
from psftr_core.config import PSFTRConfig, config_from_dict, config_to_dict, save_config
from psftr_core.errors import InputError
from psftr_core.io.atomic import write_json
from psftr_core.io import yaml_file
from psftr_core.io.file_lock import LockHeld, check_unlocked, held_lock

LOCK_FILE = ".train.lock"


def split_run_dirs(root: Path, indices: list[int], every_split: bool) -> dict[int, Path]:
    """The run directory of each split: ``root/split_K`` for ``--split-index all``, else ``root``."""
    return {index: (root / f"split_{index}" if every_split else root) for index in indices}


def check_fresh_run(run_dir: Path, resume: bool) -> None:
    """Refuse to overwrite a trained run unless it is resumed."""
    if not resume and (run_dir / "last.pt").exists():
        raise InputError(
            f"{run_dir / 'last.pt'} already exists: pass --resume to continue that run, or choose another --output"
        )


def write_run_info(root: Path, request: Any, preset_name: str, cfg: Any, indices: list[int],
                   every_split: bool) -> None:
    """``run.json`` (what ``request``, a ``TrainRequest``, asked for) and ``config.yaml``."""
    root.mkdir(parents=True, exist_ok=True)
    info = {
        "psftr_version": __version__,
        "dataset": str(request.dataset),
        "data_root": str(request.data_root) if request.data_root else None,
        "split_ratio": request.ratio,
        "split_indices": indices,
        "layout": "split_K/last.pt" if every_split else "last.pt",
        "preset": preset_name,
        "config_file": str(request.config_file) if request.config_file else None,
        "overrides": list(request.overrides),
        "seed": cfg.train.seed,
        "epochs": cfg.train.epochs,
        "eval_every": request.eval_every,
        "clip": {"model": request.clip_model, "pretrained": request.clip_pretrained,
                 "config_file": str(request.clip_config) if request.clip_config else None},
    }
    if not request.resume or not (root / "run.json").exists():
        write_json(root / "run.json", info)
    if not request.resume or not (root / "config.yaml").exists():
        save_config(cfg, root / "config.yaml")


# ------------------------------------------------------------------ one run at a time


def _refusal(err: LockHeld, root: Path) -> InputError:
    holder = f" (pid {err.pid})" if err.pid else ""
    return InputError(f"{root} is in use: another psftr train{holder} holds {err.path}; wait for it to finish, "
                      "or choose another --output")


def check_run_dir_free(root: Path) -> None:
    """Refuse at once (before any work) when another run holds ``root``; takes no lock."""
    try:
        check_unlocked(Path(root) / LOCK_FILE)
    except LockHeld as err:
        raise _refusal(err, Path(root)) from None


@contextlib.contextmanager
def run_dir_lock(root: Path, enabled: bool = True) -> Iterator[None]:
    """Hold ``root/.train.lock`` for the block (creating ``root``), or refuse with exit 2
    naming ``root`` and the holder's pid. ``enabled=False`` (torchrun ranks > 0): no lock."""
    with contextlib.ExitStack() as stack:
        if enabled:
            try:
                stack.enter_context(held_lock(Path(root) / LOCK_FILE))
            except LockHeld as err:
                raise _refusal(err, Path(root)) from None
        yield


# ------------------------------------------------------------------ resuming with the run's settings


def recorded_preset(root: Path) -> str | None:
    """The preset ``run.json`` of a run records (None when there is none to read)."""
    try:
        preset = json.loads((root / "run.json").read_text(encoding="utf-8")).get("preset")
    except (OSError, ValueError, AttributeError):
        return None
    return preset if isinstance(preset, str) else None


def stored_config(root: Path) -> dict | None:
    """``root/config.yaml`` as a config dict (None when absent); a damaged one is refused by name."""
    path = Path(root) / "config.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml_file.safe_load(path.read_text(encoding="utf-8"))
        return config_to_dict(config_from_dict(data))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, InputError, TypeError, AttributeError) as err:
        raise InputError(f"{path} cannot be read back ({' '.join(str(err).split())[:200]}); it records the "
                         "settings of the run to resume") from None


def _flat(config: dict) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in config.items() for key, value in values.items()}


def settings_differences(requested: PSFTRConfig, stored: dict, skip: set[str]) -> list[tuple[str, Any, Any]]:
    """(key, the run's value, this command's value) for each setting that differs, ``skip`` aside."""
    mine, theirs = _flat(config_to_dict(requested)), _flat(stored)
    return [(key, theirs.get(key), value) for key, value in mine.items()
            if key not in skip and theirs.get(key) != value]


def check_resume_settings(requested: PSFTRConfig, stored: dict, where: Path, skip: set[str]) -> None:
    """Refuse to resume the run recorded in ``where`` with other settings (``skip`` aside):
    a resumed run continues with its own, so another value would be ignored without a word."""
    differences = settings_differences(requested, stored, skip)
    if not differences:
        return
    listed = "; ".join(f"{key}: the run has {old!r}, this command gives {new!r}" for key, old, new in differences)
    raise InputError(f"--resume: this command's settings differ from those of the run ({where}): {listed}. "
                     "Resume with the run's settings (only --epochs may change), or train a new run into another "
                     "--output")
