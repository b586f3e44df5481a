"""Detect actions from Python with ``psftr_core.infer.detect`` (no command line needed).

    python examples/detect_api.py                    # offline: the embedded demo features
    python examples/detect_api.py OUT_DIR            # also choose where files go
    python examples/detect_api.py OUT_DIR videos/    # your own videos (needs CLIP weights)

It prints the segments, then writes ``segments.csv``, ``segments.json`` and one timeline
PNG per video into OUT_DIR (default: ``detect_output``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from psftr_core.infer.detect import detect
from psftr_core.io.export import write_results_csv, write_results_json
from psftr_core.io.timeline import write_timelines

DEMO = Path(__file__).resolve().parent / "demo"


def main(out_dir: str | Path = "detect_output", videos: list[str] | None = None) -> object:
    if videos:
        # Video files, folders, globs or @list.txt. Features are cached (default
        # ~/.cache/psftr), so a second call with other actions does not decode again.
        report = detect(videos, ["diving", "pole vault", "high jump"], threshold=0.3)
    else:
        # A feature dataset: here the synthetic demo, whose text_embeddings stand in for
        # CLIP's text tower, so it runs offline. Inputs restrict it to some video ids.
        report = detect(
            ["synth_test_0000", "synth_test_0001", "synth_test_0002"],
            ["diving", "long jump", "swimming", "pole vault"],
            features_dir=DEMO,
            per_action_thresholds={"pole vault": 0.4},  # stricter for one action
            min_duration=1.0,  # seconds
        )

    print(f"model: {report.details}")
    for seg in report.segments:  # sorted by video, then start time
        print(f"{seg.video:16s} {seg.label:12s} {seg.start:7.2f} {seg.end:7.2f}  {seg.score:.3f}")
    for failure in report.failures:
        print(f"failed: {failure.input}: {failure.reason}", file=sys.stderr)

    out = Path(out_dir)
    results = report.results()  # ActivityNet layout: {video: [{"segment", "label", "score"}]}
    write_results_csv(out / "segments.csv", results)
    write_results_json(out / "segments.json", results, report.details)
    write_timelines(out / "timelines", results, report.actions, report.durations())
    print(f"wrote {out}/segments.csv, segments.json and timelines/ ({report.stats['segments']} segments)")
    return report


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "detect_output", sys.argv[2:] or None)
