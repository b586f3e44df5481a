"""Rows of the bad-input matrix for issue 27 (paths): see bad_input_cases for the row format.

- No output may be an input (mechanism 9): an output that is the same file as one of
  the run's inputs (the path itself, a symlink or a hard link to it) is refused before
  any work, exit 2 naming the output, the input untouched byte for byte.
- Extracting into an existing dataset folder keeps the videos its feature_info.json
  lists (their feature files are still there).
- File names (mechanism 10): a 250-byte name, a name that is not UTF-8 and a name with a
  newline all extract and detect; the id of a non-UTF-8 name shows the bad byte as \\xNN.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from bad_input_cases import (
    DEMO_TEST_VIDEO,
    Case,
    Result,
    Scene,
    check_nothing_cached,
    check_results_videos,
    demo_copy,
    expand_text,
    results_of,
)

LONG_STEM = "l" * 246  # + ".mp4": a 250-byte name, legal (255 is the limit)
NON_UTF8_NAME = os.fsdecode(b"bad\xffname.mp4")
NON_UTF8_ID = "bad\\xffname"  # the documented id: the undecodable byte as \xNN
NEWLINE_NAME = "two\nlines.mp4"


# ----------------------------------------------------------------------------- set-ups


def video_copy(name: str, filename: str = "a.mp4") -> Callable[[Scene], None]:
    """A private copy of ``alpha.mp4`` as ``tmp/in/<filename>`` (the shared videos stay read-only)."""

    def setup(scene: Scene) -> None:
        folder = scene.tmp / "in"
        folder.mkdir(exist_ok=True)
        shutil.copy(scene["videos"] / "alpha.mp4", scene.new(name, folder / filename))

    return setup


def link_to(name: str, target: str, where: str, hard: bool = False) -> Callable[[Scene], None]:
    """The path ``where`` made a symlink (or a hard link) to the file ``target`` (both templates)."""

    def setup(scene: Scene) -> None:
        path = scene.new(name, Path(expand_text(where, scene)))
        path.parent.mkdir(parents=True, exist_ok=True)
        (os.link if hard else os.symlink)(expand_text(target, scene), path)

    return setup


# ----------------------------------------------------------------------------- checks


def check_feature_info_keeps_demo(scene: Scene, result: Result) -> None:
    """The demo's 18 videos are still listed, and the two extracted ones added."""
    demo = results_of(scene["demo"] / "feature_info.json")
    info = results_of(scene["data"] / "feature_info.json")
    assert sorted(info) == sorted([*demo, "alpha", "beta"]), sorted(info)
    assert info[DEMO_TEST_VIDEO] == demo[DEMO_TEST_VIDEO]


def check_extracted(*ids: str, name: str = "feats") -> Callable[[Scene, Result], None]:
    """The feature folder lists exactly ``ids`` and holds their feature files."""

    def check(scene: Scene, result: Result) -> None:
        folder = scene.tmp / name
        info = json.loads((folder / "feature_info.json").read_text(encoding="utf-8"))
        assert sorted(info) == sorted(ids), sorted(info)
        for video in ids:
            assert (folder / "features" / f"{video}.npy").is_file(), video
        assert not [p for p in folder.rglob("*.tmp")], "temporary files left"

    return check


# ----------------------------------------------------------------------------- the rows

V = "detect {a} -a walking {clip}"
REFUSED = ["is an input of this run", "choose another output path"]


def check_report_links_the_bytes(scene: Scene, result: Result) -> None:
    """The report's video link is the file's own bytes, %-quoted (not UTF-8 of an escape)."""
    html = (scene.tmp / "r.html").read_text(encoding="utf-8")
    assert "%FF" in html, "the non-UTF-8 byte is not quoted in the report's video link"


CASES: list[Case] = [
    # --- 9. an output may not overwrite an input
    Case("detect-output-over-dataset-annotations", "detect --features {data} -a diving -o {data}/annotations.json",
         2, says=["--output", "{data}/annotations.json", *REFUSED], setup=[demo_copy("data")],
         intact=["{data}/annotations.json"]),
    Case("detect-output-over-dataset-feature-file",
         f"detect --features {{data}} -a diving -o {{data}}/features/{DEMO_TEST_VIDEO}.npy", 2,
         says=["--output", f"{DEMO_TEST_VIDEO}.npy", *REFUSED], setup=[demo_copy("data")],
         intact=["{data}/features"]),
    Case("detect-report-over-input-video", f"{V} --report {{a}}", 2, says=["--report", "{a}", *REFUSED],
         setup=[video_copy("a")], intact=["{a}"], check=check_nothing_cached),
    Case("detect-output-over-input-video", f"{V} -o {{a}}", 2, says=["--output", "{a}"],
         setup=[video_copy("a")], intact=["{a}"], check=check_nothing_cached),
    Case("detect-output-symlink-to-input-video", f"{V} -o {{link}}", 2, says=["--output", "{link}", "the input {a}"],
         setup=[video_copy("a"), link_to("link", "{a}", "{tmp}/out/link.json")], intact=["{a}"],
         check=check_nothing_cached),
    Case("detect-report-hard-link-to-input-video", f"{V} -o {{tmp}}/out.json --report {{hard}}", 2,
         says=["--report", "{hard}", "the input {a}"],
         setup=[video_copy("a"), link_to("hard", "{a}", "{tmp}/page.html", hard=True)], intact=["{a}"],
         check=check_nothing_cached),
    Case("detect-output-dir-is-input-video", f"{V} --output-dir {{a}}", 2, says=["--output-dir", "{a}"],
         setup=[video_copy("a")], intact=["{a}"], check=check_nothing_cached),
    Case("detect-output-dir-file-links-to-input-video", f"{V} --output-dir {{tmp}}/od", 2,
         says=["--output-dir", "{link}", "the input {a}"],
         setup=[video_copy("a"), link_to("link", "{a}", "{tmp}/od/a.json")], intact=["{a}"],
         check=check_nothing_cached),
    Case("detect-timeline-png-links-to-input-video", f"{V} -o {{tmp}}/out.json --timeline {{tmp}}/tl", 2,
         says=["--timeline", "{link}", "the input {a}"],
         setup=[video_copy("a"), link_to("link", "{a}", "{tmp}/tl/a.png")], intact=["{a}"],
         check=check_nothing_cached),
    Case("evaluate-save-predictions-over-ground-truth",
         "evaluate --baseline --dataset {data} --split 75_25 --save-predictions {data}/annotations.json", 2,
         says=["--save-predictions", "{data}/annotations.json", *REFUSED], setup=[demo_copy("data")],
         intact=["{data}/annotations.json"]),
    Case("evaluate-save-predictions-link-to-ground-truth",
         "evaluate --baseline --dataset {data} --split 75_25 --save-predictions {link}", 2,
         says=["--save-predictions", "{link}", "{data}/annotations.json"],
         setup=[demo_copy("data"), link_to("link", "{data}/annotations.json", "{tmp}/preds.json")],
         intact=["{data}/annotations.json"]),
    Case("extract-output-file-links-to-input-video", "extract {a} -o {tmp}/feats {clip}", 2,
         says=["--output", "{link}", "the input {a}"],
         setup=[video_copy("a"), link_to("link", "{a}", "{tmp}/feats/feature_info.json")], intact=["{a}"]),
    Case("extract-feature-file-links-to-input-video", "extract {a} -o {tmp}/feats {clip}", 2,
         says=["--output", "{link}", "the input {a}"],
         setup=[video_copy("a"), link_to("link", "{a}", "{tmp}/feats/features/a.npy")], intact=["{a}"]),
    Case("extract-into-existing-dataset-keeps-its-videos", "extract {videos} -o {data} {clip}", 0,
         setup=[demo_copy("data")], intact=["{data}/annotations.json", "{data}/dataset.yaml"],
         written=["{data}/features/alpha.npy"], check=check_feature_info_keeps_demo),
    # --- 10. file names
    Case("extract-250-byte-name", "extract {long} -o {tmp}/feats {clip}", 0,
         setup=[video_copy("long", LONG_STEM + ".mp4")], check=check_extracted(LONG_STEM)),
    Case("extract-non-utf8-name", "extract {odd} -o {tmp}/feats {clip}", 0,
         setup=[video_copy("odd", NON_UTF8_NAME)], check=check_extracted(NON_UTF8_ID)),
    Case("detect-non-utf8-name", "detect {odd} -a walking {clip} -o {tmp}/out.json", 0,
         setup=[video_copy("odd", NON_UTF8_NAME)], check=check_results_videos(NON_UTF8_ID)),
    Case("detect-non-utf8-name-csv", "detect {odd} -a walking {clip} -o {tmp}/out.csv", 0,
         setup=[video_copy("odd", NON_UTF8_NAME)], written=["{tmp}/out.csv"]),
    Case("extract-newline-name", "extract {nl} -o {tmp}/feats {clip}", 0,
         setup=[video_copy("nl", NEWLINE_NAME)], check=check_extracted("two\nlines")),
    Case("detect-newline-name", "detect {nl} -a walking {clip} -o {tmp}/out.json --output-dir {tmp}/od", 0,
         setup=[video_copy("nl", NEWLINE_NAME)], written=["{tmp}/od/two_lines.json"],
         check=check_results_videos("two\nlines")),
    Case("detect-non-utf8-name-report", "detect {odd} -a walking {clip} -o {tmp}/out.json --report {tmp}/r.html", 0,
         setup=[video_copy("odd", NON_UTF8_NAME)], check=check_report_links_the_bytes),
    Case("detect-newline-name-timeline", "detect {nl} -a walking {clip} -o {tmp}/out.json --timeline {tmp}/tl", 0,
         setup=[video_copy("nl", NEWLINE_NAME)], written=["{tmp}/tl/two_lines.png"]),
]

