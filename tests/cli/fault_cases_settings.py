"""Rows of the bad-input matrix for issue 27 (settings): see bad_input_cases for the row format.

Settings out of range are refused at config load with exit 2, naming the key (or flag)
and the value, before any training or decoding: a train row writes no run folder, a
detect row decodes no video.
"""

from __future__ import annotations

from typing import Callable

from bad_input_cases import Case, Result, Scene, actions_file, check_nothing_cached

TRAIN = "train --dataset {demo} --split 75_25 --output {tmp}/run {train}"
DETECT = "detect {videos} -a walking {clip} -o {tmp}/out.json"
LONGEST_LINE = 300  # characters of one stderr line


def alias_bomb(name: str, levels: int = 9) -> Callable[[Scene], None]:
    """A "billion laughs" config: each anchor a list of nine aliases of the one before
    (9^9 values), used as the value of ``train.lr``."""

    def setup(scene: Scene) -> None:
        lines = ["a0: &a0 [l,l,l,l,l,l,l,l,l]"]
        for level in range(1, levels):
            lines.append(f"a{level}: &a{level} [{','.join([f'*a{level - 1}'] * 9)}]")
        lines.append(f"train: {{lr: *a{levels - 1}}}")
        scene.new(name, scene.tmp / "bomb.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    return setup


def check_no_run_folder(scene: Scene, result: Result) -> None:
    """Refused at config load: nothing was trained, not even the run folder made."""
    assert not (scene.tmp / "run").exists(), "the run started before the setting was refused"


def check_short_lines(scene: Scene, result: Result) -> None:
    longest = max((len(line) for line in result.err.splitlines()), default=0)
    assert longest <= LONGEST_LINE, f"a stderr line of {longest} characters"
    assert len(result.err) < 2000, f"{len(result.err)} characters on stderr"


def train_row(case_id: str, setting: str, *says: str) -> Case:
    return Case(case_id, f"{TRAIN} --set {setting}", 2, says=[*says], check=check_no_run_folder)


def detect_row(case_id: str, flags: str, *says: str) -> Case:
    return Case(case_id, f"{DETECT} {flags}", 2, says=[*says], check=check_nothing_cached)


CASES: list[Case] = [
    train_row("train-lr-inf", "train.lr=inf", "train.lr", "inf"),
    train_row("train-weight-decay-nan", "train.weight_decay=nan", "train.weight_decay", "nan"),
    train_row("train-loss-coef-nan", "train.iou_loss_coef=nan", "train.iou_loss_coef", "nan"),
    train_row("train-logit-scale-inf", "model.logit_scale=inf", "model.logit_scale", "inf"),
    train_row("train-num-queries-huge", "model.num_queries=1000000000", "model.num_queries", "1000000000",
              "10000"),
    train_row("train-lr-negative", "train.lr=-0.001", "train.lr", "-0.001"),
    train_row("train-float-overflows", "train.lr=1e999", "train.lr", "inf"),
    Case("train-config-alias-bomb", "train --dataset {demo} --split 75_25 --output {tmp}/run --config {bomb}", 2,
         says=["{bomb}", "aliases"], setup=[alias_bomb("bomb")],
         check=lambda scene, result: (check_no_run_folder(scene, result), check_short_lines(scene, result))),
    detect_row("detect-min-duration-nan", "--min-duration nan", "--min-duration", "nan"),
    detect_row("detect-min-duration-inf", "--min-duration inf", "--min-duration", "inf"),
    detect_row("detect-nms-iou-nan", "--nms-iou nan", "--nms-iou", "nan"),
    detect_row("detect-fps-inf", "--fps inf", "--fps", "inf"),
    detect_row("detect-threshold-nan", "--threshold nan", "--threshold"),
    Case("detect-zero-width-action", "detect {videos} -a walking,\u200b {clip} -o {tmp}/out.json", 2,
         says=["\\u200b", "invisible"], check=check_nothing_cached),
    Case("detect-invisible-action-in-file", "detect {videos} --actions-file {acts} {clip} -o {tmp}/out.json", 2,
         says=["\\u2060\\ufeff", "invisible"], setup=[actions_file("acts", "walking\n\u2060\ufeff\n")],
         check=check_nothing_cached),
]
