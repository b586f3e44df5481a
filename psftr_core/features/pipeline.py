"""Decode videos in a background thread while the calling thread runs the image tower.

``FrameDecoder`` opens each video in a thread, decodes the sampled frames in chunks and
applies the PIL steps of the model's transform; a bounded queue hands the chunks over.
``encode_videos`` takes them in the calling thread, runs ``FeatureEncoder`` on each
chunk and yields each video's features once complete. Decoding of the next chunk (and
the next video) overlaps the model, and memory holds at most ``prefetch`` chunks
whatever the video length.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from psftr_core.errors import PsftrError
from psftr_core.features.clip import ClipHandle, FramePreprocess, encode_images, quantize_image_tower
from psftr_core.features.video import SamplePlan, VideoDecodeError, VideoInput, VideoSource

DRIFT_SAMPLE_FRAMES = 8  # frames of the first batch encoded in fp32 and int8 to report drift


@dataclass
class EncodedVideo:
    """The features of one video as its chunks are encoded.

    features: float32 [T, D], rows ``[:encoded]`` filled; seconds: from the video's
    first chunk to its end, set at the end.
    """

    video: VideoInput
    plan: SamplePlan
    features: np.ndarray
    encoded: int = 0
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0

    def add(self, rows: np.ndarray) -> None:
        self.features[self.encoded : self.encoded + len(rows)] = rows
        self.encoded += len(rows)

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


# ----------------------------------------------------------------------------- decoding thread


class FrameDecoder:
    """A thread that decodes the sampled frames of ``videos``, one video after the other.

    Use as a context manager: entering starts the thread, leaving stops it (the queue is
    drained so that it is not left blocked). ``messages`` yields, per video,
    ``("start", video, SamplePlan)``, ``("frames", video, prepared chunk)`` ...,
    ``("end", video, None)``, or ``("error", video, text)`` when the video cannot be
    decoded; then ``("fatal", None, text)`` if the thread itself broke.
    """

    def __init__(
        self,
        videos: Sequence[VideoInput],
        frame_preprocess: FramePreprocess,
        *,
        stride: int | None,
        fps: float | None,
        chunk: int,
        prefetch: int = 3,
        threads: int = 1,
    ) -> None:
        self.videos = list(videos)
        self.frame_preprocess = frame_preprocess
        self.stride, self.fps, self.chunk, self.threads = stride, fps, chunk, threads
        self._items: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="psftr-decode", daemon=True)

    def __enter__(self) -> FrameDecoder:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._items.get_nowait()
        self._thread.join(timeout=10)

    def messages(self) -> Iterator[tuple[str, VideoInput | None, Any]]:
        while True:
            kind, video, payload = self._items.get()
            if kind == "done":
                return
            yield kind, video, payload

    def _run(self) -> None:
        try:
            for video in self.videos:
                if self._stop.is_set() or not self._decode(video):
                    return
        except BaseException as err:  # a bug here must not leave the consumer waiting forever
            self._put(("fatal", None, f"{type(err).__name__}: {err}"))
        finally:
            self._put(("done", None, None))

    def _decode(self, video: VideoInput) -> bool:
        """Queue one video's frames; False when the consumer has gone away."""
        source = None
        try:
            source = VideoSource(video.path, num_threads=self.threads)
            plan = source.plan(stride=self.stride, fps=self.fps)
            if plan.num_features == 0:
                raise VideoDecodeError(
                    f"{video.path.name}: too short for one feature "
                    f"({plan.frame_length} frames, {plan.duration:.2f} s)"
                )
            if not self._put(("start", video, plan)):
                return False
            for frames in source.iter_frames(plan.indices, chunk=self.chunk):
                prepared = self.frame_preprocess.to_uint8(frames)  # PIL steps, no torch ops
                if self._items.full():
                    source.release_readahead()  # about to wait: do not let decord fill memory
                if not self._put(("frames", video, prepared)):
                    return False
            source.close()
            return self._put(("end", video, None))
        except VideoDecodeError as err:
            return self._put(("error", video, str(err)))
        except Exception as err:  # one bad video must not stop the others
            return self._put(("error", video, f"{type(err).__name__}: {err}"))
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
    """The image tower on chunks of prepared frames, int8-quantized on the first chunk if asked.

    With ``quantize="int8"`` the first chunk's first frames are encoded in fp32 and in
    int8 and the difference is kept in ``drift`` (see ``feature_drift``) and passed to
    ``on_quantized``. ``in_place=False`` quantizes a copy, leaving the caller's model as it was.
    """

    def __init__(
        self,
        handle: ClipHandle,
        quantize: str | None = None,
        in_place: bool = False,
        on_quantized: Callable[[dict], None] | None = None,
    ) -> None:
        self.handle = handle
        self.frame_preprocess = FramePreprocess(handle.preprocess)
        self.drift: dict | None = None
        self._quantize_pending = quantize is not None
        self._in_place = in_place
        self._on_quantized = on_quantized

    def encode(self, prepared: Any) -> np.ndarray:
        """Output of ``FramePreprocess.to_uint8`` [N, ...] -> float32 [N, D] features."""
        batch = self.frame_preprocess.to_model_input(prepared, device=self.handle.device)
        if self._quantize_pending:
            self._quantize(batch)
        return encode_images(self.handle, batch).numpy()

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


# ----------------------------------------------------------------------------- both


def encode_videos(
    decoder: FrameDecoder,
    encoder: FeatureEncoder,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> Iterator[EncodedVideo | FailedVideo]:
    """Each video of ``decoder``, in order: its complete features, or why it failed.

    Runs the decoding thread for as long as the iteration lasts. ``on_progress(video_id,
    encoded, total)`` follows the features of the current video.
    """
    progress = on_progress or (lambda video_id, encoded, total: None)
    with decoder:
        current: EncodedVideo | None = None
        for kind, video, payload in decoder.messages():
            if kind == "fatal":
                raise PsftrError(f"the decoding thread stopped: {payload}")
            if kind == "start":
                features = np.empty((payload.num_features, encoder.handle.embed_dim), dtype=np.float32)
                current = EncodedVideo(video, payload, features)
                progress(video.video_id, 0, payload.num_features)
            elif kind == "frames":
                current.add(encoder.encode(payload))
                progress(video.video_id, current.encoded, current.plan.num_features)
            elif kind == "end":
                current.seconds = time.perf_counter() - current.started
                problem = current.problem()
                yield current if problem is None else FailedVideo(video, problem, current.seconds)
                current = None
            elif kind == "error":
                current = None
                yield FailedVideo(video, payload)
