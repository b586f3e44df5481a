"""Rows of the bad-input matrix for issue 27 (data): see bad_input_cases for the row format.

Dataset anomalies (mechanism 8), on copies of the demo dataset (D = 256, 18 videos):

- a video id twice in ``annotations.json`` is refused, naming the file and the id;
- an instance that starts after its video ends is dropped, one that ends after it is
  clipped to the duration, each kind with one warning (count, first ids): the mAP is that
  of the demo without the instance, or with it clipped;
- a truncated feature file, or one of another width, is refused when the dataset loads,
  naming the file (and both widths), by every command.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bad_input_cases import DEMO, DEMO_TEST_VIDEO, DEMO_UNSEEN_VIDEO, Case, Result, Scene, demo_copy

DEMO_WIDTH = 256
FIRST_VIDEO = DEMO_TEST_VIDEO  # the first id: the width a dataset's D was read from before


# ----------------------------------------------------------------------------- set-ups


def _annotations(folder: Path) -> dict:
    return json.loads((folder / "annotations.json").read_text(encoding="utf-8"))


def _add_unseen_instance(folder: Path, start: float, end: float) -> None:
    """One more instance of a class unseen in split 75_25/0, in DEMO_UNSEEN_VIDEO (49.6 s)."""
    data = _annotations(folder)
    annotations = data["database"][DEMO_UNSEEN_VIDEO]["annotations"]
    annotations.append({"segment": [start, end], "label": annotations[0]["label"]})
    (folder / "annotations.json").write_text(json.dumps(data), encoding="utf-8")


def instance_past_end(folder: Path) -> None:
    _add_unseen_instance(folder, 500.0, 900.0)


def instance_ending_past_end(folder: Path) -> None:
    _add_unseen_instance(folder, 47.0, 80.0)


def video_id_twice(folder: Path) -> None:
    """``annotations.json`` with DEMO_UNSEEN_VIDEO's entry written a second time (no instances)."""
    data = _annotations(folder)
    entries = [f"{json.dumps(video)}: {json.dumps(entry)}" for video, entry in data["database"].items()]
    again = dict(data["database"][DEMO_UNSEEN_VIDEO], annotations=[])
    entries.append(f"{json.dumps(DEMO_UNSEEN_VIDEO)}: {json.dumps(again)}")
    text = f'{{"classes": {json.dumps(data["classes"])}, "database": {{{", ".join(entries)}}}}}'
    (folder / "annotations.json").write_text(text, encoding="utf-8")


def truncated_features(folder: Path) -> None:
    """DEMO_UNSEEN_VIDEO's feature file cut in half: its header promises more than it holds."""
    path = folder / "features" / f"{DEMO_UNSEEN_VIDEO}.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def narrow_first_video(folder: Path) -> None:
    """The first video's features 32 wide, the 17 others 256."""
    path = folder / "features" / f"{FIRST_VIDEO}.npy"
    np.save(path, np.load(path)[:, :32])


# ----------------------------------------------------------------------------- checks


def _baseline_map(dataset: Path) -> float:
    from psftr_core.data.datasets import load_dataset
    from psftr_core.evaluation.protocol import evaluate_localizer

    return evaluate_localizer(load_dataset(str(dataset)), "75_25", 0).result.to_dict()["average"]


def check_map_as_without_the_instance(scene: Scene, result: Result) -> None:
    assert json.loads(result.out)["average"] == _baseline_map(DEMO), "the instance after the video's end counted"


def check_map_as_clipped(scene: Scene, result: Result) -> None:
    """The mAP of the demo with the instance given as 47-49.6 s (clipped to the duration)."""
    clipped = scene.tmp / "clipped"
    demo_copy("clipped", lambda folder: _add_unseen_instance(folder, 47.0, 49.6))(scene)
    assert json.loads(result.out)["average"] == _baseline_map(clipped)


def check_no_run_dir(scene: Scene, result: Result) -> None:
    assert not (scene.tmp / "run").exists() or not list((scene.tmp / "run").rglob("*.pt")), "training ran"


# ----------------------------------------------------------------------------- the rows

EVAL = "evaluate --baseline --dataset {data} --split 75_25 --json"
UNSEEN_NPY = f"{DEMO_UNSEEN_VIDEO}.npy"

CASES: list[Case] = [
    Case("data-video-id-twice-in-annotations", EVAL, 2, says=["{data}/annotations.json", DEMO_UNSEEN_VIDEO, "twice"],
         setup=[demo_copy("data", video_id_twice)], intact=["{data}"]),
    Case("data-detect-video-id-twice", "detect --features {data} -a diving", 2,
         says=["{data}/annotations.json", DEMO_UNSEEN_VIDEO, "twice"], setup=[demo_copy("data", video_id_twice)]),
    Case("data-instance-after-video-end-dropped", EVAL, 0,
         says=["warning", "dropped 1 instance", "after their video ends", f"{DEMO_UNSEEN_VIDEO} at 500-900 s",
               "49.6 s video"],
         setup=[demo_copy("data", instance_past_end)], check=check_map_as_without_the_instance),
    Case("data-instance-ending-after-video-end-clipped", EVAL, 0,
         says=["warning", "clipped the end of 1 instance", f"{DEMO_UNSEEN_VIDEO} at 47-80 s"],
         setup=[demo_copy("data", instance_ending_past_end)], check=check_map_as_clipped),
    Case("data-evaluate-truncated-feature-file", EVAL, 2, says=[f"{{data}}/features/{UNSEEN_NPY}", "truncated"],
         setup=[demo_copy("data", truncated_features)]),
    Case("data-train-truncated-feature-file", "train --dataset {data} --split 75_25 --output {tmp}/run {train}", 2,
         says=[f"{{data}}/features/{UNSEEN_NPY}", "truncated"], setup=[demo_copy("data", truncated_features)],
         check=check_no_run_dir),
    Case("data-detect-truncated-feature-file", "detect --features {data} -a diving", 2,
         says=[f"{{data}}/features/{UNSEEN_NPY}", "truncated"], setup=[demo_copy("data", truncated_features)]),
    Case("data-detect-wrong-width-feature-file", "detect --features {data} -a diving", 2,
         says=[f"{{data}}/features/{FIRST_VIDEO}.npy", "D=32", f"D={DEMO_WIDTH}"], never_says=["text embeddings"],
         setup=[demo_copy("data", narrow_first_video)]),
    Case("data-evaluate-wrong-width-feature-file", EVAL, 2,
         says=[f"{{data}}/features/{FIRST_VIDEO}.npy", "D=32", f"D={DEMO_WIDTH}"], never_says=["text embeddings"],
         setup=[demo_copy("data", narrow_first_video)]),
]
