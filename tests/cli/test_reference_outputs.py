"""The same commands give the same outputs as before the package was reorganised.

``tests/data/reference_outputs.json`` holds the outputs of the commands in
``reference_outputs.collect`` (localizer detect and baseline evaluation on the demo, a
seeded tiny training run's losses, its checkpoint's evaluation, saved predictions and
detections, and detection on a generated video with the tiny CLIP), written before the
change. Scores, times and losses must agree to 1e-5.
"""

from __future__ import annotations

import json

from reference_outputs import SAVED, collect, compare


def test_commands_reproduce_the_saved_outputs(tmp_path, tiny_clip_files, make_video):
    expected = json.loads(SAVED.read_text(encoding="utf-8"))
    actual = json.loads(json.dumps(collect(tmp_path, tiny_clip_files, make_video(tmp_path / "clip.mp4", 60))))
    problems = compare(expected, actual)
    assert not problems, "\n".join(problems[:20])
