"""Videos in, features out: decoding threads feed batched calls of the image tower.

``encode_videos(videos, handle, options)`` is the one route from video files to CLIP
features (``psftr extract`` writes them to a folder; a caller may cache them instead).
It yields, per video, an ``EncodedVideo`` (features [T, D], the sampling plan with the
timestamps, the decoder used) or a ``FailedVideo`` (why), in input order.
``extract_video_features`` is the same route for a caller that only wants each file's
features and metadata (``psftr detect``, which caches them).

* ``FrameDecoder``: ``decode_workers`` threads each open a video (``decoders``), plan its
  samples and decode them in chunks, running ahead into the next video while the model
  works; a bounded queue hands chunks over, so memory holds at most ``prefetch`` chunks
  per worker whatever the video length.
* The calling thread prepares each chunk for the model in one batched step
  (``preprocess``), gathers ``batch_size`` frames, across video boundaries, and runs
  ``FeatureEncoder``: the image tower in the run's compute dtype (``compute_dtype``:
  cast to bfloat16 on a CPU that computes it natively, float16 autocast on CUDA), or
  int8-quantized on CPU if asked.

On CPU the model already uses every core, so one worker and one codec thread are the
default; with a GPU several workers keep it fed.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from psftr_core.defaults import DEFAULT_STRIDE
from psftr_core.errors import InputError, PsftrError
from psftr_core.features.clip import ClipHandle, cast_image_tower, encode_images, quantize_image_tower
from psftr_core.features.compute_dtype import check_compute_dtype, resolve_compute_dtype
from psftr_core.features.decoders import DECODERS, VideoDecodeError, decord_available, open_video
from psftr_core.features.preprocess import PREPROCESS_MODES, FramePreprocess
from psftr_core.features.sampling import SamplePlan, SamplingError, plan_video
from psftr_core.features.video import VideoInput

_log = logging.getLogger(__name__)

DRIFT_SAMPLE_FRAMES = 8  # frames of the first batch encoded in fp32 and int8 to report drift
GPU_DECODE_WORKERS = 4  # videos decoded at once by default when a GPU runs the model


@dataclass
class PipelineOptions:
    """How videos become features (the sampling, decoding and model flags).

    ``0`` / ``"auto"`` values are filled in by ``for_device``: one decoding worker with
    one codec thread on CPU; on CUDA up to ``GPU_DECODE_WORKERS`` workers with two codec
    threads each; ``dtype`` ``auto``: see ``psftr_core.features.compute_dtype``.
    """

    stride: int | None = DEFAULT_STRIDE  # frames per feature; ignored when fps is set
    fps: float | None = None  # features per second instead of a stride
    batch_size: int = 16  # frames per model call
    decoder: str = "auto"  # auto | decord | pyav
    decode_workers: int = 0  # videos decoded at once; 0: auto
    decode_threads: int = 0  # codec threads per video; 0: auto
    prefetch: int = 3  # decoded chunks waiting per worker (bounds memory)
    dtype: str = "auto"  # compute dtype of the image tower: auto | float32 | bfloat16 | float16
    quantize: str | None = None  # None or "int8" (CPU)
    preprocess: str = "batched"  # batched (torch) | pil (open_clip's PIL steps per frame)

    def validate(self) -> None:
        """InputError naming the flag of a bad value."""
        if self.fps is not None:
            self.stride = None
        if self.stride is None and self.fps is None:
            raise InputError("give --stride FRAMES or --fps F")
        if self.stride is not None and self.stride < 1:
            raise InputError(f"--stride must be at least 1, got {self.stride}")
        if self.fps is not None and not self.fps > 0:
            raise InputError(f"--fps must be positive, got {self.fps}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.decoder not in DECODERS:
            raise InputError(f"--decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if self.decoder == "decord" and not decord_available():
            raise InputError(
                "--decoder decord: decord is not installed (its wheels exist for Linux x86_64 and "
                "Windows only); use --decoder auto or pyav"
            )
        if self.decode_workers < 0:
            raise InputError(f"--decode-workers must be 0 (auto) or more, got {self.decode_workers}")
        if self.decode_threads < 0 or self.prefetch < 1:
            raise InputError("decode_threads must be 0 (auto) or more and prefetch at least 1")
        check_compute_dtype(self.dtype)
        if self.quantize not in (None, "none", "int8"):
            raise InputError(f"--quantize must be int8, got {self.quantize!r}")
        if self.quantize == "none":
            self.quantize = None
        if self.preprocess not in PREPROCESS_MODES:
            raise InputError(f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, got {self.preprocess!r}")

    def for_device(self, device: Any) -> PipelineOptions:
        """A copy with the automatic values decided for ``device`` (a torch.device or its name)."""
        cuda = str(getattr(device, "type", device)).startswith("cuda")
        if self.quantize and cuda:
            raise InputError("--quantize int8 runs on CPU only; add --device cpu")
        if self.quantize and self.dtype not in ("auto", "float32"):
            raise InputError(f"--quantize int8 keeps the tower's other operations in float32: drop --dtype "
                             f"{self.dtype} (or --quantize; bfloat16 alone is the faster one on CPUs that have it)")
        dtype = resolve_compute_dtype(self.dtype, "cuda" if cuda else "cpu", self.quantize)
        workers = self.decode_workers or (min(GPU_DECODE_WORKERS, max(1, (os.cpu_count() or 2) // 2)) if cuda else 1)
        threads = self.decode_threads or (2 if cuda else 1)
        return dataclasses.replace(self, dtype=dtype, decode_workers=workers, decode_threads=threads)


@dataclass
class EncodedVideo:
    """The features of one video as its frames are encoded.

    features: float32 [T, D], rows ``[:encoded]`` filled; decoder: the backend that read
    it; note: a warning about it (e.g. --fps lowered to its frame rate); seconds: from
    its first decoded chunk to its last encoded row.
    """

    video: VideoInput
    plan: SamplePlan
    features: np.ndarray
    decoder: str = ""
    note: str | None = None
    encoded: int = 0
    decoded: int = 0  # rows handed to the encoder so far
    decoded_all: bool = False
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0

    def add(self, rows: np.ndarray) -> None:
        self.features[self.encoded : self.encoded + len(rows)] = rows
        self.encoded += len(rows)

    @property
    def times(self) -> np.ndarray:
        """float64 [T] seconds each feature stands for."""
        return self.plan.times

    def problem(self) -> str | None:
        """Why the features cannot be used (None when they are complete and finite)."""
        if self.encoded != self.plan.num_features:
            return f"decoded {self.encoded} of {self.plan.num_features} frames"
        if not np.all(np.isfinite(self.features)):
            return "model produced non-finite features"
        return None


@dataclass
class FailedVideo:
    video: VideoInput
    error: str
    seconds: float = 0.0


@dataclass
class VideoStart:
    """First message of a video: its plan, the decoder that opened it, a warning."""

    plan: SamplePlan
    decoder: str
    note: str | None


# ----------------------------------------------------------------------------- decoding threads


class FrameDecoder:
    """Threads that decode the sampled frames of ``videos``, ``decode_workers`` videos at a time.

    Use as a context manager: entering starts the threads, leaving stops them (the queue
    is drained so that none is left blocked). ``messages`` yields, per video,
    ``("start", video, VideoStart)``, ``("frames", video, prepared chunk)`` ...,
    ``("end", video, None)``, or ``("error", video, text)`` when the video cannot be
    used; then ``("fatal", None, text)`` if a thread itself broke. With several workers
    the messages of different videos interleave.
    """

    def __init__(self, videos: Sequence[VideoInput], frame_preprocess: FramePreprocess,
                 options: PipelineOptions) -> None:
        self.frame_preprocess = frame_preprocess
        self.options = options
        self.workers = max(1, options.decode_workers)
        self._videos = iter(list(videos))
        self._lock = threading.Lock()
        self._items: queue.Queue = queue.Queue(maxsize=max(1, options.prefetch) * self.workers)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name="psftr-decode", daemon=True) for _ in range(self.workers)
        ]

    def __enter__(self) -> FrameDecoder:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._items.get_nowait()
        for thread in self._threads:
            thread.join(timeout=10)

    def messages(self) -> Iterator[tuple[str, VideoInput | None, Any]]:
        running = self.workers
        while running:
            kind, video, payload = self._items.get()
            if kind == "done":
                running -= 1
                continue
            yield kind, video, payload

    def _next_video(self) -> VideoInput | None:
        with self._lock:
            return next(self._videos, None)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                video = self._next_video()
                if video is None or not self._decode(video):
                    return
        except BaseException as err:  # a bug here must not leave the consumer waiting forever
            self._put(("fatal", None, f"{type(err).__name__}: {err}"))
        finally:
            self._put(("done", None, None))

    def _decode(self, video: VideoInput) -> bool:
        """Queue one video's frames; False when the consumer has gone away."""
        options, source = self.options, None
        try:
            source = open_video(video.path, options.decoder, threads=options.decode_threads,
                                short_side=self.frame_preprocess.decode_short_side,
                                every_frame=options.fps is None and options.stride == 1)
            plan, note = plan_video(source.timestamps, video.path.name, stride=options.stride, fps=options.fps)
            if not self._put(("start", video, VideoStart(plan, source.backend, note))):
                return False
            for frames in source.iter_frames(plan.indices, chunk=options.batch_size):
                prepared = self.frame_preprocess.to_uint8(frames)
                if self._items.full():
                    source.release_readahead()  # about to wait: do not let decord fill memory
                if not self._put(("frames", video, prepared)):
                    return False
            return self._put(("end", video, None))
        except (VideoDecodeError, SamplingError) as err:
            return self._put(("error", video, str(err)))
        except Exception as err:  # one bad video must not stop the others
            _log.debug("decoding %s failed", video.path, exc_info=True)
            return self._put(("error", video, f"cannot decode {video.path.name}: {type(err).__name__}: {err}"))
        finally:
            if source is not None:
                source.close()

    def _put(self, item: tuple) -> bool:
        """Blocking put that gives up when the consumer went away (``__exit__``)."""
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


# ----------------------------------------------------------------------------- model


class FeatureEncoder:
    """The image tower on batches of model input, int8-quantized on the first batch if asked.

    With ``quantize="int8"`` the first batch's first frames are encoded in fp32 and in
    int8 and the difference is kept in ``drift`` (see ``feature_drift``) and passed to
    ``on_quantized``. ``in_place=False`` quantizes a copy, leaving the caller's model as
    it was. ``dtype``: the compute dtype (resolved, not ``auto``): a CPU tower is cast to
    it on the first batch (a copy unless ``in_place``), a CUDA one autocast.
    """

    def __init__(
        self,
        handle: ClipHandle,
        quantize: str | None = None,
        in_place: bool = False,
        on_quantized: Callable[[dict], None] | None = None,
        dtype: str = "float32",
    ) -> None:
        self.handle = handle
        self.dtype = dtype
        self.drift: dict | None = None
        self._quantize_pending = quantize is not None and not handle.quantized  # a given int8 tower stays
        self._in_place = in_place
        self._on_quantized = on_quantized

    def encode(self, batch: Any) -> np.ndarray:
        """float [N, 3, H, W] model input -> float32 [N, D] features."""
        if self._quantize_pending:
            self._quantize(batch)
        elif self.handle.device.type == "cpu" and self.handle.image_dtype != self.dtype:
            self.handle = cast_image_tower(self.handle, self.dtype, in_place=self._in_place)
        return encode_images(self.handle, batch, self.dtype).numpy()

    def _quantize(self, batch: Any) -> None:
        sample = batch[:DRIFT_SAMPLE_FRAMES]  # small: the fp32 pass is extra work
        reference = encode_images(self.handle, sample)
        if not self._in_place:
            self.handle = dataclasses.replace(self.handle, model=copy.deepcopy(self.handle.model))
        quantize_image_tower(self.handle)
        self.drift = feature_drift(reference, encode_images(self.handle, sample))
        self._quantize_pending = False
        if self._on_quantized is not None:
            self._on_quantized(self.drift)


def feature_drift(reference: Any, other: Any) -> dict:
    """Cosine similarity and relative L2 error of ``other`` against ``reference`` [N, D]."""
    import torch

    ref = torch.as_tensor(reference, dtype=torch.float32)
    oth = torch.as_tensor(other, dtype=torch.float32)
    cosine = torch.nn.functional.cosine_similarity(ref, oth, dim=-1)
    rel = (ref - oth).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-12)
    return {
        "frames": int(ref.shape[0]),
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
        "relative_l2": float(rel.mean()),
    }


class BatchAssembler:
    """Gathers model input of several videos into batches of ``batch_size`` rows.

    ``add`` takes one video's prepared chunk and runs the encoder on every full batch;
    ``flush`` runs what is left. Each batch's features go back to their videos in order.
    """

    def __init__(self, encoder: FeatureEncoder, batch_size: int,
                 on_rows: Callable[[EncodedVideo], None]) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.on_rows = on_rows
        self._pieces: list[tuple[EncodedVideo, Any]] = []
        self._rows = 0

    def add(self, video: EncodedVideo, model_input: Any) -> None:
        self._pieces.append((video, model_input))
        self._rows += len(model_input)
        while self._rows >= self.batch_size:
            self._run(self.batch_size)

    def flush(self) -> None:
        if self._rows:
            self._run(self._rows)

    def _run(self, rows: int) -> None:
        import torch

        owners, parts, taken = [], [], 0
        while taken < rows:
            video, part = self._pieces[0]
            use = min(len(part), rows - taken)
            if use == len(part):
                self._pieces.pop(0)
            else:
                self._pieces[0] = (video, part[use:])
                part = part[:use]
            owners.append((video, use))
            parts.append(part)
            taken += use
        self._rows -= rows
        features = self.encoder.encode(parts[0] if len(parts) == 1 else torch.cat(parts))
        start = 0
        for video, count in owners:
            video.add(features[start : start + count])
            start += count
            self.on_rows(video)


# ----------------------------------------------------------------------------- both


def encode_videos(
    videos: Sequence[VideoInput],
    handle: ClipHandle,
    options: PipelineOptions | None = None,
    *,
    on_progress: Callable[[str, int, int], None] | None = None,
    on_quantized: Callable[[dict], None] | None = None,
    in_place: bool = False,
) -> Iterator[EncodedVideo | FailedVideo]:
    """Each video's features (``EncodedVideo``) or why it failed (``FailedVideo``).

    Results come in input order (with several decoding workers a finished video waits
    for those before it). ``on_progress(video_id, encoded, total)`` follows each
    video's features; ``on_quantized(drift)`` reports the int8 drift.
    ``in_place`` quantizes or casts ``handle``'s own image tower instead of a copy. The
    decoding threads run for as long as the iteration lasts (close it to stop early).
    A caller that caches features (``psftr detect``) keeps ``result.features``
    [T, D], ``result.times`` [T] and ``result.plan`` (duration, frame count, rate).
    """
    options = dataclasses.replace(options or PipelineOptions())
    options.validate()
    options = options.for_device(handle.device)
    progress = on_progress or (lambda video_id, encoded, total: None)
    frame_preprocess = FramePreprocess(handle.preprocess, options.preprocess)
    encoder = FeatureEncoder(handle, options.quantize, in_place=in_place, on_quantized=on_quantized,
                             dtype=options.dtype)
    # by video id in input order; None until the video starts
    started: OrderedDict[str, EncodedVideo | FailedVideo | None] = OrderedDict((v.video_id, None) for v in videos)
    batches = BatchAssembler(encoder, options.batch_size,
                             lambda video: progress(video.video.video_id, video.encoded, video.plan.num_features))

    def finished() -> Iterator[EncodedVideo | FailedVideo]:
        """Pop the videos at the front of ``started`` that are complete."""
        while started:
            first = next(iter(started.values()))
            # complete = the decoder is done and every row it gave is encoded; a decoder that
            # stopped short still completes, and problem() then says so
            if first is None or (
                isinstance(first, EncodedVideo) and not (first.decoded_all and first.encoded == first.decoded)
            ):
                return
            started.popitem(last=False)
            if isinstance(first, EncodedVideo):
                first.seconds = time.perf_counter() - first.started
                problem = first.problem()
                yield first if problem is None else FailedVideo(first.video, problem, first.seconds)
            else:
                yield first

    with FrameDecoder(videos, frame_preprocess, options) as decoder:
        for kind, video, payload in decoder.messages():
            if kind == "fatal":
                raise PsftrError(f"the decoding thread stopped: {payload}")
            if kind == "start":
                features = np.empty((payload.plan.num_features, handle.embed_dim), dtype=np.float32)
                started[video.video_id] = EncodedVideo(video, payload.plan, features, payload.decoder, payload.note)
                if payload.note:
                    _log.warning(payload.note)
                progress(video.video_id, 0, payload.plan.num_features)
            elif kind == "frames":
                current = started.get(video.video_id)
                if isinstance(current, EncodedVideo):
                    current.decoded += len(payload)
                    batches.add(current, frame_preprocess.to_model_input(payload, device=handle.device))
            elif kind == "end":
                current = started.get(video.video_id)
                if isinstance(current, EncodedVideo):
                    current.decoded_all = True  # its last rows may wait for the next video's frames
            elif kind == "error":
                current = started.get(video.video_id)
                seconds = time.perf_counter() - current.started if isinstance(current, EncodedVideo) else 0.0
                started[video.video_id] = FailedVideo(video, payload, seconds)
            yield from finished()
        batches.flush()
        yield from finished()


# ----------------------------------------------------------------------------- files in, features out


@dataclass
class ExtractedVideo:
    """One video's features from :func:`extract_video_features`, or why it has none.

    ``features``: float32 [T, D]; ``times``: float64 [T] seconds; ``meta``: duration,
    frame_length, video_fps, snippet_duration, decoder and note (e.g. --fps lowered).
    ``error``: one line when the video could not be used (the other fields are None).
    """

    path: Path
    features: np.ndarray | None = None
    times: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


VideoFeatureExtractor = Callable[..., Iterator[ExtractedVideo]]
"""``extractor(handle, paths, sampling, pipeline=None)``: what :func:`extract_video_features`
is; a caller may pass another one (e.g. a fake decoder in tests)."""


def extract_video_features(
    handle: Any, paths: Sequence[str | os.PathLike], sampling: tuple[str, float],
    pipeline: PipelineOptions | None = None,
) -> Iterator[ExtractedVideo]:
    """Decode and CLIP-encode ``paths`` through :func:`encode_videos`: one
    :class:`ExtractedVideo` per path, in order, each as soon as it is done.

    ``sampling``: ("stride", frames) or ("fps", rate); ``pipeline``: batch size, decoder
    and the other pipeline settings (its stride/fps are replaced by ``sampling``). An
    unreadable, corrupt, empty or too short video gives an ``ExtractedVideo`` with
    ``error``; the others go on. Decoding runs ahead while the caller works on a result;
    closing the generator stops it.
    """
    kind, value = sampling
    options = dataclasses.replace(pipeline or PipelineOptions(), stride=int(value) if kind == "stride" else None,
                                  fps=float(value) if kind == "fps" else None)
    videos = [VideoInput(Path(path), str(index)) for index, path in enumerate(paths)]  # ids: unique per call
    with contextlib.closing(encode_videos(videos, handle, options)) as outcomes:
        for outcome in outcomes:
            path = outcome.video.path
            if not isinstance(outcome, EncodedVideo):
                yield ExtractedVideo(path, error=outcome.error)
                continue
            plan = outcome.plan
            meta = {
                "duration": float(plan.duration),
                "frame_length": int(plan.frame_length),
                "video_fps": float(plan.video_fps),
                "snippet_duration": float(plan.snippet_duration),
                "decoder": outcome.decoder,
                "note": outcome.note,
            }
            yield ExtractedVideo(path, outcome.features, outcome.times, meta)
