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
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from psftr_core.errors import InputError, PsftrError, error_text

if TYPE_CHECKING:
    from psftr_core.features.extract import ExtractListener, ExtractOptions, ExtractSummary, VideoExtractResult
    from psftr_core.features.video import VideoInput

INSTALL_HINT = "pip install 'psftr[ray]'"
# Test hook: a path; the first worker to reach its 2nd video creates that file and exits
# (os._exit), as a node that dies mid-run would. The marker keeps the retry alive.
EXIT_ONCE_ENV = "PSFTR_RAY_TEST_EXIT_ONCE"
CPUS_PER_CPU_WORKER = 4  # without GPUs, the default pool gives each CLIP this many cores


@dataclass
class RayOptions:
    """Where and how wide the pool runs.

    ``address``: an existing cluster (``ray://host:10001``, ``auto``); None joins the Ray
    this process already started, or starts a local one. ``workers``: actors in the pool
    (None: one per GPU at ``gpus_per_worker`` each, else one per ``CPUS_PER_CPU_WORKER``
    cores). ``gpus_per_worker``: GPUs reserved per actor (None: 1 when the cluster has
    GPUs, else 0; fractions share a GPU). ``max_retries``: restarts of a dead worker.
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    max_retries: int = 3

    def validate(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers {self.workers}: give at least 1")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise InputError(f"--gpus-per-worker {self.gpus_per_worker:g}: give 0 or more")
        if self.max_retries < 0:
            raise InputError(f"max_retries {self.max_retries}: give 0 or more")


def require_ray() -> Any:
    """The ``ray`` module; InputError with the install command when it is not installed."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


# ----------------------------------------------------------------------------- the worker


class VideoWorker:
    """One CLIP in one Ray actor; ``extract`` encodes and writes one video (made a Ray
    actor by ``_worker_class``)."""

    def __init__(self, out: str, options: ExtractOptions, request_hash: str | None,
                 exit_once_marker: str | None = None) -> None:
        from psftr_core.features.clip import load_clip
        from psftr_core.features.extract import encode_context

        self.out = Path(out)
        self.options = options
        handle = load_clip(options.clip_model, options.clip_pretrained, options.clip_config, options.device)
        self.context = encode_context(handle, options, request_hash)
        self.exit_once_marker = exit_once_marker
        self.videos_seen = 0
        self.drift: dict | None = None

    def settings(self) -> tuple[dict, str, Any, dict]:
        """(settings, settings hash, resolved pipeline, CLIP description) of this worker."""
        context = self.context
        return context.settings, context.settings_hash, context.pipeline, context.handle.describe()

    def extract(self, video: VideoInput) -> tuple[VideoExtractResult, dict | None, dict]:
        """This video's result, the int8 drift (once known) and the CLIP description now."""
        from psftr_core.features.extract import ExtractListener, extract_videos

        self.videos_seen += 1
        self._exit_if_asked()

        def quantized(report: dict) -> None:
            self.drift = report

        # in place: this actor's model is its own, quantized or cast once on its first video
        results = list(extract_videos([video], self.out, self.options, self.context, ExtractListener(),
                                      quantized, in_place=True))
        return results[0], self.drift, self.context.handle.describe()

    def _exit_if_asked(self) -> None:
        if self.exit_once_marker is None or self.videos_seen != 2:
            return
        try:
            os.close(os.open(self.exit_once_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another worker (or this one, before its restart) already died
        os._exit(1)


def _worker_class(ray: Any, options: RayOptions, gpus: float) -> Any:
    """``VideoWorker`` as a Ray actor: restarted and its call retried when its process dies."""
    return ray.remote(VideoWorker).options(
        num_cpus=1,
        num_gpus=gpus,
        max_restarts=options.max_retries,
        max_task_retries=options.max_retries,
    )


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
    from psftr_core.features.extract import prepare_folder
    from psftr_core.features.feature_folder import rebuild_dataset_files

    started_ray = _connect(ray, ray_options.address)
    workers: list[Any] = []
    try:
        workers = _start_workers(ray, ray_options, str(out.resolve()), options, request_hash)
        settings, settings_hash, pipeline, description = _common_settings(ray, workers)
        todo, redo = prepare_folder(out, videos, everything, settings, settings_hash, summary)
        run = _PoolRun(ray, workers, listener, description)
        start = time.perf_counter()
        try:
            for result in run.results(todo):
                result.redone = result.video_id in redo
                summary.results.append(result)
        finally:
            # also on Ctrl-C or a lost cluster: the finished videos are complete on disk
            with contextlib.suppress(Exception):
                rebuild_dataset_files(out, settings, settings_hash, _ClipDescription(run.description),
                                      options, pipeline, run.drift)
        summary.elapsed = time.perf_counter() - start
        summary.quantize_drift = run.drift
    finally:
        for worker in workers:
            with contextlib.suppress(Exception):
                ray.kill(worker)
        if started_ray:
            ray.shutdown()
    summary.results.sort(key=lambda r: r.video_id)
    return summary


def _connect(ray: Any, address: str | None) -> bool:
    """Join ``address`` (or start a local Ray) unless this process is connected; True when
    this call connected (and so disconnects at the end)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"--address {address}" if address else "a local Ray"
        raise PsftrError(f"could not connect to {where}: {error_text(err)}") from None
    return True


def _start_workers(ray: Any, ray_options: RayOptions, out: str, options: ExtractOptions,
                   request_hash: str | None) -> list[Any]:
    gpus, count = _pool_size(ray.cluster_resources(), ray_options)
    actor = _worker_class(ray, ray_options, gpus)
    marker = os.environ.get(EXIT_ONCE_ENV)
    return [actor.remote(out, options, request_hash, marker) for _ in range(count)]


def _pool_size(resources: dict, ray_options: RayOptions) -> tuple[float, int]:
    """(GPUs per worker, workers) from the options and the cluster's resources."""
    cluster_gpus = float(resources.get("GPU", 0))
    gpus = ray_options.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if cluster_gpus >= 1 else 0.0
    if gpus > cluster_gpus:
        raise InputError(f"--gpus-per-worker {gpus:g}: the Ray cluster has {cluster_gpus:g} GPU(s)")
    if ray_options.workers is not None:
        return gpus, ray_options.workers
    if gpus > 0:
        return gpus, max(1, int(cluster_gpus // gpus))
    return gpus, max(1, int(float(resources.get("CPU", 1)) // CPUS_PER_CPU_WORKER))


def _common_settings(ray: Any, workers: list[Any]) -> tuple[dict, str, Any, dict]:
    """The pool's settings once every worker has loaded its CLIP; PsftrError when they
    differ (e.g. nodes with and without a GPU would compute in other dtypes)."""
    try:
        answers = ray.get([worker.settings.remote() for worker in workers])
    except Exception as err:  # a worker's load_clip failed: its InputError comes back wrapped
        cause = getattr(err, "cause", None)
        if isinstance(cause, PsftrError):
            raise cause from None
        raise PsftrError(f"a Ray worker could not start: {error_text(err)}") from None
    hashes = {answer[1] for answer in answers}
    if len(hashes) > 1:
        raise PsftrError("the Ray workers would make features with different settings (e.g. GPU and CPU "
                         "nodes in other dtypes); give --dtype and --gpus-per-worker so they agree")
    return answers[0]


class _PoolRun:
    """Deals the videos out, one at a time, to whichever worker is free."""

    def __init__(self, ray: Any, workers: list[Any], listener: ExtractListener, description: dict) -> None:
        self.ray = ray
        self.free = list(workers)
        self.listener = listener
        self.description = description
        self.drift: dict | None = None

    def results(self, todo: Sequence[VideoInput]):
        from psftr_core.features.extract import VideoExtractResult

        if not todo:
            return
        self.listener.run_started(len(todo))
        waiting = list(todo)
        running: dict[Any, tuple[Any, VideoInput]] = {}
        try:
            while waiting or running:
                while waiting and self.free:
                    worker = self.free.pop()
                    video = waiting.pop(0)
                    running[worker.extract.remote(video)] = (worker, video)
                if not running:  # every worker is gone for good
                    raise PsftrError(f"every Ray worker died; {len(waiting)} video(s) not extracted")
                [ready], _ = self.ray.wait(list(running), num_returns=1)
                worker, video = running.pop(ready)
                result = self._result(ready, worker, video, VideoExtractResult)
                self.listener.video_done(result)
                yield result
        finally:
            for ref in running:
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)

    def _result(self, ref: Any, worker: Any, video: VideoInput, result_type: Any) -> VideoExtractResult:
        """The worker's result; a failed video when its worker died past its retries (that
        worker is not given more)."""
        try:
            result, drift, description = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as err:
            return result_type(video.video_id, str(video.path), "failed", error=f"Ray worker died: {error_text(err)}")
        except self.ray.exceptions.RayTaskError as err:
            self.free.append(worker)
            return result_type(video.video_id, str(video.path), "failed", error=error_text(err))
        self.free.append(worker)
        self.drift = drift or self.drift
        self.description = description
        return result
