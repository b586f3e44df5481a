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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psftr_core import __version__
from psftr_core.config import save_config
from psftr_core.errors import InputError
from psftr_core.io.atomic import write_json


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
