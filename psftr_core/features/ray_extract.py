"""``--engine ray``: feature extraction on a Ray actor pool (optional extra ``psftr[ray]``).

The driver (the process that runs ``psftr extract``) does what it does on one machine up
to the encoding: expands the inputs, keeps its shard, refuses mixed settings, skips the
videos already complete. The encoding goes to a pool of Ray actors, each holding one
CLIP (loaded once, from the options' paths, so every node must be able to read the
videos, the weights and the output folder). Videos are dealt out one at a time to the
actor that is free; each actor writes that video's files into the output folder through
the same atomic writes as one machine (``extract.extract_videos``). The driver hears
each result, draws the progress, and writes the merged files (feature_info.json,
annotations.json, manifest.json, dataset.yaml) once at the end, or when interrupted.

A worker process that dies is restarted by Ray and its video retried
(``max_restarts``/``max_task_retries``); as every file is renamed into place whole, a
death leaves no half file, and the retry writes the video once more, whole. Nothing
here imports ray at module level: only making a ``RayEngine`` does (``require_ray``).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from psftr_core.errors import PsftrError
from psftr_core.features.ray_pool import (
    Dealer, ExitOnce, RayOptions, common_answer, connect, require_ray, start_actors, stop,
)

if TYPE_CHECKING:
    from psftr_core.features.extract import ExtractListener, ExtractOptions, ExtractSummary, VideoExtractResult
    from psftr_core.features.video import VideoInput


# ----------------------------------------------------------------------------- the worker


class VideoWorker:
    """One CLIP in one Ray actor; ``extract`` encodes and writes one video (made a Ray
    actor by ``ray_pool.start_actors``)."""

    def __init__(self, out: str, options: ExtractOptions, request_hash: str | None, exit_once: ExitOnce) -> None:
        from psftr_core.features.clip import load_clip
        from psftr_core.features.extract import encode_context

        self.out = Path(out)
        self.options = options
        handle = load_clip(options.clip_model, options.clip_pretrained, options.clip_config, options.device)
        self.context = encode_context(handle, options, request_hash)
        self.exit_once = exit_once
        self.drift: dict | None = None

    def settings(self) -> tuple[dict, str, Any, dict]:
        """(settings, settings hash, resolved pipeline, CLIP description) of this worker."""
        context = self.context
        return context.settings, context.settings_hash, context.pipeline, context.handle.describe()

    def extract(self, video: VideoInput) -> tuple[VideoExtractResult, dict | None, dict]:
        """This video's result, the int8 drift (once known) and the CLIP description now."""
        from psftr_core.features.extract import ExtractListener, extract_videos

        self.exit_once.tick()

        def quantized(report: dict) -> None:
            self.drift = report

        # in place: this actor's model is its own, quantized or cast once on its first video
        results = list(extract_videos([video], self.out, self.options, self.context, ExtractListener(),
                                      quantized, in_place=True))
        return results[0], self.drift, self.context.handle.describe()


# ----------------------------------------------------------------------------- the driver


class _ClipDescription:
    """What ``rebuild_dataset_files`` reads of a ClipHandle, from a worker's description."""

    def __init__(self, description: dict) -> None:
        self._description = description
        self.embed_dim = int(description["embed_dim"])

    def describe(self) -> dict:
        return dict(self._description)


class RayEngine:
    """``extract_features(..., engine=RayEngine(options))``: encode on a Ray actor pool.

    Made (and so ray imported, InputError with the install command when it is missing)
    before ``extract_features`` reads anything."""

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        self.options.validate()
        self.ray = require_ray()

    def run(self, videos: Sequence[VideoInput], everything: Sequence[VideoInput], out: Path,
            options: ExtractOptions, summary: ExtractSummary, request_hash: str | None,
            listener: ExtractListener) -> ExtractSummary:
        return _extract_on_ray(self.ray, self.options, videos, everything, out, options, summary,
                               request_hash, listener)


def _extract_on_ray(
    ray: Any,
    ray_options: RayOptions,
    videos: Sequence[VideoInput],
    everything: Sequence[VideoInput],
    out: Path,
    options: ExtractOptions,
    summary: ExtractSummary,
    request_hash: str | None,
    listener: ExtractListener,
) -> ExtractSummary:
    """``extract_features``'s encoding part on a Ray actor pool (module docstring)."""
    from psftr_core.features.extract import VideoExtractResult, prepare_folder
    from psftr_core.features.feature_folder import rebuild_dataset_files

    started_ray = connect(ray, ray_options.address)
    workers: list[Any] = []
    try:
        workers = start_actors(ray, ray_options, VideoWorker, str(out.resolve()), options, request_hash,
                               ExitOnce())
        answers = common_answer(ray, workers, "settings")
        if len({answer[1] for answer in answers}) > 1:
            raise PsftrError("the Ray workers would make features with different settings (e.g. GPU and CPU "
                             "nodes in other dtypes); give --dtype and --gpus-per-worker so they agree")
        settings, settings_hash, pipeline, description = answers[0]
        todo, redo = prepare_folder(out, videos, everything, settings, settings_hash, summary)
        drift: dict | None = None
        start = time.perf_counter()
        try:
            if todo:
                listener.run_started(len(todo))
            for video, value, error in Dealer(ray, workers).run(todo, lambda w, v: w.extract.remote(v)):
                if error is None:
                    result, drift_now, description = value
                    drift = drift_now or drift
                else:
                    result = VideoExtractResult(video.video_id, str(video.path), "failed", error=error)
                result.redone = result.video_id in redo
                listener.video_done(result)
                summary.results.append(result)
        finally:
            # also on Ctrl-C or a lost cluster: the finished videos are complete on disk
            with contextlib.suppress(Exception):
                rebuild_dataset_files(out, settings, settings_hash, _ClipDescription(description),
                                      options, pipeline, drift)
        summary.elapsed = time.perf_counter() - start
        summary.quantize_drift = drift
    finally:
        stop(ray, workers, started_ray)
    summary.results.sort(key=lambda r: r.video_id)
    return summary
