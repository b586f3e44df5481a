"""Rows of the bad-input matrix (see bad_input_cases for the row format) for the inputs
and outputs added with the editor exports, clips, scores and class descriptions:

- ``--clips DIR`` that cannot be written (read-only, under a file) or that is the videos'
  folder: refused before any work, the path named, the videos untouched;
- ``--clip-padding`` out of range or without ``--clips``, ``--score`` unknown: exit 2;
- ``train --class-texts`` (and ``data.descriptions_file``) missing, empty or not YAML:
  exit 2 naming the file, before RUN_DIR is written.
"""

from __future__ import annotations

from bad_input_cases import Case, Result, Scene, actions_file, check_nothing_cached, readonly_dir, regular_file

D = "detect {videos} -a walking {clip}"
OUT = "-o {tmp}/out.json"
TRAIN = "train --dataset {demo} --split 75_25 --output {tmp}/run {train}"


def check_no_run_dir(scene: Scene, result: Result) -> None:
    assert not (scene.tmp / "run").exists(), "RUN_DIR was written before the descriptions were read"


CASES: list[Case] = [
    Case("detect-clips-readonly", f"{D} {OUT} --clips {{ro}}", 2, says=["--clips", "{ro}"],
         setup=[readonly_dir("ro")], check=check_nothing_cached),
    Case("detect-clips-under-a-file", f"{D} {OUT} --clips {{file}}/clips", 2, says=["{file}"],
         setup=[regular_file("file")], intact=["{file}"], check=check_nothing_cached),
    Case("detect-clips-into-the-videos-folder", f"{D} {OUT} --clips {{videos}}", 2, says=["--clips", "alpha.mp4"],
         intact=["{videos}"], check=check_nothing_cached),
    Case("detect-clip-padding-nan", f"{D} {OUT} --clips {{tmp}}/clips --clip-padding nan", 2,
         says=["--clip-padding must be a number of seconds >= 0"], check=check_nothing_cached),
    Case("detect-clip-padding-without-clips", f"{D} {OUT} --clip-padding 1", 2,
         says=["--clip-padding applies to --clips DIR"], check=check_nothing_cached),
    Case("detect-score-unknown", f"{D} {OUT} --score absolute", 2,
         says=["--score must be relative or independent, got 'absolute'"], check=check_nothing_cached),
    Case("train-class-texts-missing", f"{TRAIN} --class-texts {{tmp}}/nope.yaml", 2,
         says=["--class-texts file not found", "nope.yaml"], check=check_no_run_dir),
    Case("train-class-texts-empty", f"{TRAIN} --class-texts {{empty}}", 2, says=["{empty}", "lists no actions"],
         setup=[actions_file("empty", "")], check=check_no_run_dir),
    Case("train-class-texts-not-yaml", f"{TRAIN} --class-texts {{tmp}}/bad.yaml", 2,
         says=["bad.yaml", "not valid YAML"], setup=[lambda scene: (scene.tmp / "bad.yaml").write_text(
             "diving: [unclosed\n", encoding="utf-8")], check=check_no_run_dir),
    Case("train-descriptions-file-by-set-missing", f"{TRAIN} --set data.descriptions_file=nope.yaml", 2,
         says=["nope.yaml"], check=check_no_run_dir),
]
