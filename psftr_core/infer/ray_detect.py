"""``psftr detect --engine ray``: detection on a Ray actor pool (optional extra ``psftr[ray]``).

The driver (the process that runs ``psftr detect``) prepares the run as on one machine:
checks the arguments and outputs, lists the videos, loads the model and the text
embeddings (so a bad flag or a missing file is refused before any cluster work). Then
:meth:`RayDetectEngine.attach` starts the pool: each actor makes the same detection run
(``start_detection`` with the driver's options, paths made absolute), so it holds one
CLIP, the model and the text embeddings. The workers' settings are the run's settings
(their device decides the dtype the image tower computes in, which is part of them);
workers that disagree are refused.

The videos not already finished are dealt out, one at a time, to the actor that is free.
An actor decodes and encodes its video (features go to the feature cache of its node,
as on one machine), runs the model and the filter stage, and writes the video's
per-video files (``--output-dir``) through the same atomic writes as one machine. The
driver takes the results in id order: it records each finished video in the output
folder's manifest, writes the stream (``--output``/stdout), the report and timelines,
and draws the progress. A worker process that dies is restarted by Ray and its video
retried; as every file is renamed into place whole, a death leaves no half file.

Every node must be able to read the videos, the checkpoint, the CLIP files and the
output folder under the same paths (a shared file system); the inputs may be a list
file (``@list.txt``) of such paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psftr_core.errors import PsftrError, error_text
from psftr_core.features.ray_pool import (
    Dealer, ExitOnce, RayOptions, common_answer, connect, require_ray, start_actors, stop,
)

if TYPE_CHECKING:
    from psftr_core.infer.detect import DetectionRun, FileTargets
    from psftr_core.infer.detect_options import DetectOptions
    from psftr_core.infer.feature_sources import SourceItem
    from psftr_core.infer.results import Failure, VideoResult


class DetectWorker:
    """One detection run in one Ray actor (made one by ``ray_pool.start_actors``)."""

    def __init__(self, first_video: str, vocabulary: list[str], options: DetectOptions,
                 exit_once: ExitOnce) -> None:
        from psftr_core.infer.detect import start_detection

        # Any one video makes the run; the driver then hands over its own items (ids included).
        self.run = start_detection([first_video], vocabulary, options=options)
        self.exit_once = exit_once

    def settings(self) -> tuple[dict[str, Any], str]:
        return self.run.settings, self.run.details

    def detect(self, item: SourceItem, files: list[tuple[str, str]], details: str) -> VideoResult | Failure:
        """One video's result; its per-video files (``files``: format and path) written first."""
        from psftr_core.infer.results import VideoResult
        from psftr_core.io.detect_outputs import write_detection_files

        self.exit_once.tick()
        outcome = self.run.process(item)
        if isinstance(outcome, VideoResult) and files:
            write_detection_files(files, outcome, details)
        return outcome


class RayDetectEngine:
    """``start_detection(..., engine=RayDetectEngine(RayOptions(...)))``: detect on a Ray pool.

    Made (and so ray imported, InputError with the install command when it is missing)
    before the run reads anything."""

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        self.options.validate()
        self.ray = require_ray()
        self.workers: list[Any] = []
        self._connected = False

    def attach(self, run: DetectionRun, options: DetectOptions, vocabulary: list[str]) -> None:
        """Start the pool for ``run`` (its workers' settings become the run's)."""
        items = run.items()
        self._connected = connect(self.ray, self.options.address)
        try:
            self.workers = start_actors(self.ray, self.options, DetectWorker, str(items[0].ref),
                                        vocabulary, _absolute_paths(options), ExitOnce())
            answers = common_answer(self.ray, self.workers, "settings")
        except BaseException:
            self.close()
            raise
        if len({json.dumps(settings, sort_keys=True, default=str) for settings, _ in answers}) > 1:
            self.close()
            raise PsftrError("the Ray workers would detect with different settings (e.g. GPU and CPU nodes "
                             "computing in other dtypes); give --dtype and --gpus-per-worker so they agree")
        run.adopt(*answers[0])

    @contextlib.contextmanager
    def reading(self, run: DetectionRun, planned: Sequence[SourceItem],
                files: FileTargets | None) -> Iterator[Callable[[SourceItem], VideoResult]]:
        """``process(item)`` for the run: the planned videos all run on the pool, several at
        a time; each call waits for its own video's result. Leaving stops the pool."""
        from psftr_core.infer.feature_sources import VideoFailed
        from psftr_core.infer.results import Failure

        def call(worker: Any, item: SourceItem) -> Any:
            return worker.detect.remote(item, files(item.video_id) if files else [], run.details)

        planned_ids = {item.video_id for item in planned}
        finished: dict[str, tuple[Any, str | None]] = {}
        stream = Dealer(self.ray, self.workers).run(list(planned), call)

        def process(item: SourceItem) -> VideoResult:
            if item.video_id in planned_ids:
                while item.video_id not in finished:
                    done, value, error = next(stream)
                    finished[done.video_id] = (value, error)
                value, error = finished.pop(item.video_id)
            else:  # not forecast (its saved output went missing since): one call of its own
                value, error = self._one(call, item)
            if error is not None:
                raise VideoFailed(error)
            if isinstance(value, Failure):
                raise VideoFailed(value.reason)
            return value

        try:
            yield process
        finally:
            stream.close()
            self.close()

    def _one(self, call: Callable[[Any, SourceItem], Any], item: SourceItem) -> tuple[Any, str | None]:
        try:
            return self.ray.get(call(self.workers[0], item)), None
        except Exception as err:
            return None, f"Ray worker failed: {error_text(err)}"

    def close(self) -> None:
        """Stop the pool (and disconnect when this engine connected); idempotent."""
        stop(self.ray, self.workers, self._connected)
        self.workers, self._connected = [], False


def _absolute_paths(options: DetectOptions) -> DetectOptions:
    """``options`` with its file paths absolute: the actors do not run in this directory."""
    def absolute(value: Any) -> Any:
        return None if value is None else str(Path(value).expanduser().resolve())

    pretrained = options.clip_pretrained
    if pretrained is not None and Path(pretrained).expanduser().is_file():
        pretrained = absolute(pretrained)
    return dataclasses.replace(options, checkpoint=absolute(options.checkpoint),
                               clip_config=absolute(options.clip_config), cache_dir=absolute(options.cache_dir),
                               clip_pretrained=pretrained)
