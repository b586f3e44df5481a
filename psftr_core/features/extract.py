"""Streaming, resumable CLIP feature extraction from videos into a feature dataset folder.

``extract_features`` expands the inputs into videos, keeps this shard's, skips those
already complete in the output folder (same settings, arrays intact), runs the rest
through the decode/encode pipeline (``psftr_core.features.pipeline``) and writes each
video's files as it finishes, then the merged dataset files
(``psftr_core.features.feature_folder``, which also describes the folder). An
interrupted run keeps every finished video; running it again resumes.

Nothing is printed: progress and notes go to an ``ExtractListener``; per-video failures
are collected in the returned ``ExtractSummary``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED
from psftr_core.errors import InputError, PartialFailure, PsftrError
from psftr_core.features.clip import ClipHandle, load_clip
from psftr_core.features.feature_folder import (
    make_folders,
    rebuild_dataset_files,
    video_state,
    write_video_files,
)
from psftr_core.features.pipeline import EncodedVideo, FeatureEncoder, FrameDecoder, encode_videos
from psftr_core.features.video import VideoInput, assign_video_ids, collect_videos, parse_shard, shard_videos

FORMAT_VERSION = 1
DTYPES = ("float16", "float32")


@dataclass
class ExtractOptions:
    """Settings of one run (the ``psftr extract`` flags)."""

    clip_model: str = DEFAULT_CLIP_MODEL
    clip_pretrained: str | None = DEFAULT_CLIP_PRETRAINED
    clip_config: str | None = None
    stride: int | None = 8  # frames per feature; ignored when fps is set
    fps: float | None = None  # features per second instead of a stride
    dtype: str = "float16"
    batch_size: int = 16
    device: str = "auto"
    quantize: str | None = None  # None or "int8"
    shard: str | None = None  # "I/N"; None -> RANK/WORLD_SIZE or 0/1
    prefetch: int = 3  # decoded chunks waiting for the model (bounds memory)
    decode_threads: int = 1

    def validate(self) -> None:
        if self.fps is not None:
            self.stride = None
        if self.stride is None and self.fps is None:
            raise InputError("give --stride FRAMES or --fps F")
        if self.stride is not None and self.stride < 1:
            raise InputError(f"--stride must be at least 1, got {self.stride}")
        if self.fps is not None and not self.fps > 0:
            raise InputError(f"--fps must be positive, got {self.fps}")
        if self.dtype not in DTYPES:
            raise InputError(f"--dtype must be float16 or float32, got {self.dtype!r}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.quantize not in (None, "none", "int8"):
            raise InputError(f"--quantize must be int8, got {self.quantize!r}")
        if self.quantize == "none":
            self.quantize = None

    @property
    def sampling(self) -> dict:
        if self.fps is not None:
            return {"fps": float(self.fps), "frame": "nearest to the window centre"}
        return {"stride": int(self.stride), "frame": "centre of each stride window (i*stride + stride//2)"}


@dataclass
class VideoResult:
    """What happened to one video."""

    video_id: str
    path: str
    status: str  # "done" | "skipped" | "failed"
    frames: int = 0  # frames encoded (0 when skipped)
    seconds: float = 0.0
    error: str | None = None
    redone: bool = False  # an earlier output existed with other settings


@dataclass
class ExtractSummary:
    """Every video's result, the notes on skipped inputs, and the run's speed."""

    output_dir: Path
    results: list[VideoResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    shard: tuple[int, int] = (0, 1)
    quantize_drift: dict | None = None

    def ids(self, status: str) -> list[str]:
        return [r.video_id for r in self.results if r.status == status]

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    def raise_for_failures(self) -> None:
        """PartialFailure (exit 3) when some videos failed; PsftrError when all did."""
        failed = [r for r in self.results if r.status == "failed"]
        if not failed:
            return
        first = f"{failed[0].video_id}: {failed[0].error}"
        if len(failed) == len(self.results):
            raise PsftrError(f"all {len(failed)} videos failed (first: {first})")
        raise PartialFailure(
            f"{len(failed)} of {len(self.results)} videos failed (first: {first}); "
            f"the others are in {self.output_dir}"
        )


class ExtractListener:
    """What ``extract_features`` reports as it goes; every hook here does nothing.

    Hooks are called in the calling thread. The CLI's subclass prints notes and draws a
    progress bar (``psftr_cli.extract_render``); a library caller may log instead.
    """

    def inputs_collected(self, notes: list[str]) -> None:
        """The inputs were expanded into video files; ``notes`` say which files were skipped and why."""

    def shard_selected(self, shard: tuple[int, int], selected: int, total: int) -> None:
        """``selected`` of the ``total`` videos are in this shard (I, N)."""

    def quantized(self, drift: dict) -> None:
        """The image tower was quantized to int8; ``drift`` compares it with fp32
        (``pipeline.feature_drift``: frames, cosine_mean, cosine_min, relative_l2)."""

    def run_started(self, videos: int) -> None:
        """``videos`` videos are about to be extracted (complete ones are not counted)."""

    def video_progress(self, video_id: str, encoded: int, total: int) -> None:
        """``encoded`` of the ``total`` features of ``video_id`` are done."""

    def video_done(self, result: VideoResult) -> None:
        """A video was extracted ("done") or could not be ("failed")."""


# ----------------------------------------------------------------------------- entry point


def extract_features(
    inputs: Sequence[str],
    output_dir: str | os.PathLike,
    options: ExtractOptions | None = None,
    handle: ClipHandle | None = None,
    listener: ExtractListener | None = None,
) -> ExtractSummary:
    """Extract features for every video in ``inputs`` into ``output_dir``.

    Missing inputs -> InputError before anything is written. Per-video failures are
    collected in the summary (see ``ExtractSummary.raise_for_failures``). A given
    ``handle`` is used instead of loading ``options``' model (it is not modified).
    """
    options = dataclasses.replace(options or ExtractOptions())
    options.validate()
    listener = listener or ExtractListener()
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} exists and is not a folder")
    videos, notes, shard = _select_videos(inputs, out, options, listener)

    owns_handle = handle is None
    if handle is None:
        handle = load_clip(options.clip_model, options.clip_pretrained, options.clip_config, options.device)
    if options.quantize and handle.device.type != "cpu":
        raise InputError("--quantize int8 runs on CPU only; add --device cpu")
    settings = settings_record(handle, options)
    settings_hash = _sha256_json(settings)
    make_folders(out)

    summary = ExtractSummary(output_dir=out, notes=notes, shard=shard)
    todo, redo = _resume(out, videos, settings_hash, summary)
    encoder = FeatureEncoder(handle, options.quantize, in_place=owns_handle, on_quantized=listener.quantized)
    start = time.perf_counter()
    try:
        for result in _extract(todo, out, options, encoder, settings_hash, listener):
            result.redone = result.video_id in redo
            summary.results.append(result)
    except BaseException:
        # Ctrl-C or a crash: finished videos are complete on disk; publish them.
        with contextlib.suppress(Exception):
            rebuild_dataset_files(out, settings, settings_hash, handle, options, encoder.drift)
        raise
    summary.elapsed = time.perf_counter() - start
    summary.quantize_drift = encoder.drift
    rebuild_dataset_files(out, settings, settings_hash, handle, options, encoder.drift)
    summary.results.sort(key=lambda r: r.video_id)
    return summary


def settings_record(handle: ClipHandle, options: ExtractOptions) -> dict:
    """Everything that changes the numbers in a feature file (hashed for resume checks)."""
    return {
        "format": FORMAT_VERSION,
        "architecture": handle.architecture,
        "config_sha256": handle.config_sha256,
        "weights_id": handle.weights_id,
        "preprocess": handle.describe()["preprocess"],
        "sampling": options.sampling,
        "dtype": options.dtype,
        "quantize": options.quantize,
    }


def _select_videos(
    inputs: Sequence[str], out: Path, options: ExtractOptions, listener: ExtractListener
) -> tuple[list[VideoInput], list[str], tuple[int, int]]:
    """This shard's videos (with their ids), the notes on skipped files, and the shard."""
    paths, notes = collect_videos(inputs, exclude=[out])
    listener.inputs_collected(notes)
    if not paths:
        raise InputError("no video files found in the inputs; give video files, folders, globs or @list.txt")
    videos = assign_video_ids(paths)
    shard = parse_shard(options.shard)
    mine = shard_videos(videos, *shard)
    listener.shard_selected(shard, len(mine), len(videos))
    return mine, notes, shard


def _resume(
    out: Path, videos: Sequence[VideoInput], settings_hash: str, summary: ExtractSummary
) -> tuple[list[VideoInput], set[str]]:
    """Videos to extract, and the ids among them that exist with other settings.

    Complete videos go into ``summary`` as "skipped".
    """
    todo: list[VideoInput] = []
    redo: set[str] = set()
    for video in videos:
        state = video_state(out, video, settings_hash)
        if state == "complete":
            summary.results.append(VideoResult(video.video_id, str(video.path), "skipped"))
            continue
        if state == "other-settings":
            redo.add(video.video_id)
        todo.append(video)
    return todo, redo


def _extract(
    videos: Sequence[VideoInput],
    out: Path,
    options: ExtractOptions,
    encoder: FeatureEncoder,
    settings_hash: str,
    listener: ExtractListener,
) -> Iterator[VideoResult]:
    """Decode, encode and write ``videos``; yields a VideoResult per video as it finishes."""
    if not videos:
        return
    listener.run_started(len(videos))
    decoder = FrameDecoder(
        videos,
        encoder.frame_preprocess,
        stride=options.stride,
        fps=options.fps,
        chunk=options.batch_size,
        prefetch=options.prefetch,
        threads=options.decode_threads,
    )
    with contextlib.closing(encode_videos(decoder, encoder, listener.video_progress)) as outcomes:
        for outcome in outcomes:
            video = outcome.video
            if isinstance(outcome, EncodedVideo):
                write_video_files(out, video, outcome.plan, outcome.features, dtype=options.dtype,
                                  settings_hash=settings_hash, seconds=outcome.seconds)
                result = VideoResult(video.video_id, str(video.path), "done", outcome.encoded, outcome.seconds)
            else:
                result = VideoResult(video.video_id, str(video.path), "failed", 0, outcome.seconds, outcome.error)
            listener.video_done(result)
            yield result


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()
