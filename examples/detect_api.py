"""Detect actions from Python with ``psftr_core.infer.detect`` (no command line needed).

    python examples/detect_api.py                    # offline: the embedded demo features
    python examples/detect_api.py OUT_DIR            # also choose where files go
    python examples/detect_api.py OUT_DIR videos/    # your own videos (needs CLIP weights)

It prints each video's segments as soon as that video is done and writes its
``per_video/<video>.jsonl`` and ``.vtt`` files then; at the end it writes
``segments.csv``, ``segments.json``, one timeline PNG per video and the review page
``report.html`` into OUT_DIR (default: ``detect_output``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from psftr_core.infer.detect import Failure, start_detection
from psftr_core.io.export import write_results_csv, write_results_json
from psftr_core.io.output_dir import OutputDir
from psftr_core.io.report import report_videos, write_report
from psftr_core.io.timeline import write_timelines
from psftr_core.io.formats import write_video_file

DEMO = Path(__file__).resolve().parent / "demo"


def main(out_dir: str | Path = "detect_output", videos: list[str] | None = None) -> object:
    if videos:
        # Video files, folders, globs or @list.txt. Features are cached (default
        # ~/.cache/psftr), so a second call with other actions does not decode again.
        run = start_detection(videos, ["diving", "pole vault", "high jump"], threshold=0.3)
    else:
        # A feature dataset: here the synthetic demo, whose text_embeddings stand in for
        # CLIP's text tower, so it runs offline. Inputs restrict it to some video ids.
        run = start_detection(
            ["synth_test_0000", "synth_test_0001", "synth_test_0002"],
            ["diving", "long jump", "swimming", "pole vault"],
            features_dir=DEMO,
            per_action_thresholds={"pole vault": 0.4},  # stricter for one action
            min_duration=1.0,  # seconds
        )
    print(f"model: {run.details}")

    out = Path(out_dir)
    # One file per video and format, written as each video finishes. The folder's manifest
    # records the settings and the finished videos: run.results(skip=per_video.is_complete)
    # would leave those out on a re-run, as psftr detect --output-dir does.
    per_video = OutputDir(out / "per_video", ["jsonl", "vtt"], {**run.settings, "formats": ["jsonl", "vtt"]})
    for result in run.results():
        if isinstance(result, Failure):
            print(f"failed: {result.input}: {result.reason}", file=sys.stderr)
            continue
        for seg in result.segments:  # sorted by start time
            print(f"{seg.video:16s} {seg.label:12s} {seg.start:7.2f} {seg.end:7.2f}  {seg.score:.3f}")
        for fmt, path in per_video.paths_for(result.video).items():
            write_video_file(path, fmt, result.video, result.segments)
        per_video.mark_complete(result.video, {"duration": result.info.duration})

    report = run.report()  # everything processed in this run
    results = report.results()  # ActivityNet layout: {video: [{"segment", "label", "score"}]}
    write_results_csv(out / "segments.csv", results)
    write_results_json(out / "segments.json", results, report.details)
    write_timelines(out / "timelines", results, report.actions, report.durations())
    files = {item.video: item.file for item in run.inputs}  # the video files (None for features)
    write_report(out / "report.html", report_videos(results, report.durations(), files), report.actions,
                 details=report.details)
    print(f"wrote {out}/segments.csv, segments.json, timelines/, report.html and per_video/ "
          f"({report.stats['segments']} segments)")
    return report


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "detect_output", sys.argv[2:] or None)
