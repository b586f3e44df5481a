"""Streaming, resumable CLIP feature extraction from videos into a feature dataset folder.

``extract_features`` expands the inputs into videos, keeps this shard's, skips those
already complete in the output folder (same settings, arrays intact), runs the rest
through the decode/encode pipeline (``psftr_core.features.pipeline``) and writes each
video's files as it finishes, then the merged dataset files
(``psftr_core.features.feature_folder``, which also describes the folder). An
interrupted run keeps every finished video; running it again resumes.

Settings: everything that changes the numbers of a feature file (``settings_record``:
CLIP architecture and config, weights, preprocessing, sampling, the dtype the tower
computed in and the files' dtype, quantization) is hashed into every video's record. One folder holds features made one way: a run whose
settings differ from those of videos it does not cover is refused before anything is
written (``InputError`` naming them); videos it covers are redone. How the features were
computed (decoder, batch size, preprocessing implementation) is recorded, not
compared: the results agree to within decoding and rounding noise.

A re-run with nothing to do does not load the model: each record also keeps a hash of
the request (the flags and the weights file's size and time), and when every selected
video is complete under the same request the run stops there.

Nothing is printed: progress and notes go to an ``ExtractListener``; per-video failures
are collected in the returned ``ExtractSummary``. The run's settings, ``ExtractOptions``,
live in ``psftr_core.features.extract_options`` and are importable from here too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from psftr_core.errors import InputError, PartialFailure, PsftrError
from psftr_core.features.clip import ClipHandle, load_clip
from psftr_core.features.extract_options import ExtractOptions
from psftr_core.features.feature_folder import (
    DATASET_FILES,
    SUBFOLDERS,
    make_folders,
    published_ids,
    read_records,
    rebuild_dataset_files,
    video_file,
    video_state,
    write_video_files,
)
from psftr_core.features.pipeline import EncodedVideo, encode_videos
from psftr_core.features.preprocess import FramePreprocess
from psftr_core.features.video import VideoInput, assign_video_ids, collect_videos, parse_shard, shard_videos
from psftr_core.io.paths import prepare_output_dir, refuse_outputs_over_inputs

# "format" of the settings and request records: a new value makes every earlier video be redone
FEATURES_FORMAT_VERSION = 1


@dataclass
class VideoExtractResult:
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
    results: list[VideoExtractResult] = field(default_factory=list)
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

    def video_done(self, result: VideoExtractResult) -> None:
        """A video was extracted ("done") or could not be ("failed")."""


# ----------------------------------------------------------------------------- entry point


def extract_features(
    inputs: Sequence[str],
    output_dir: str | os.PathLike,
    options: ExtractOptions | None = None,
    handle: ClipHandle | None = None,
    listener: ExtractListener | None = None,
    engine: Any = None,
) -> ExtractSummary:
    """Extract features for every video in ``inputs`` into ``output_dir``.

    Missing inputs, or videos in ``output_dir`` made with other settings that this run
    does not cover -> InputError before anything is written. Per-video failures are
    collected in the summary (see ``ExtractSummary.raise_for_failures``). A given
    ``handle`` is used instead of loading ``options``' model (it is not modified).
    ``engine``: None encodes here; ``ray_extract.RayEngine(RayOptions(...))`` on a Ray
    actor pool (its ``run`` takes over after the checks; this process still selects,
    resumes and writes the merged files).
    """
    options = dataclasses.replace(options or ExtractOptions())
    options.validate()
    if engine is not None and handle is not None:
        raise InputError("--engine ray loads CLIP in each worker from the options' paths; "
                         "a loaded model cannot be given")
    listener = listener or ExtractListener()
    out = Path(output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} exists and is not a folder")
    videos, everything, notes, shard = _select_videos(inputs, out, options, listener)
    _refuse_outputs_over_inputs(out, videos, everything, options)
    summary = ExtractSummary(output_dir=out, notes=notes, shard=shard)

    request_hash = _sha256_json(request_record(options)) if handle is None else None
    if request_hash is not None and _all_complete(out, videos, request_hash):
        summary.results = [VideoExtractResult(v.video_id, str(v.path), "skipped") for v in videos]
        return summary  # nothing to do: the model is not even loaded

    prepare_output_dir(out, "--output")  # a folder we cannot write in: exit 2 before the model loads
    if engine is not None:
        return engine.run(videos, everything, out, options, summary, request_hash, listener)
    owns_handle = handle is None
    if handle is None:
        handle = load_clip(options.clip_model, options.clip_pretrained, options.clip_config, options.device)
    context = encode_context(handle, options, request_hash)
    pipeline, settings, settings_hash = context.pipeline, context.settings, context.settings_hash
    todo, redo = prepare_folder(out, videos, everything, settings, settings_hash, summary)
    drift: dict[str, dict] = {}

    def quantized(report: dict) -> None:
        drift["drift"] = report
        listener.quantized(report)

    start = time.perf_counter()
    try:
        for result in extract_videos(todo, out, options, context, listener, quantized, in_place=owns_handle):
            result.redone = result.video_id in redo
            summary.results.append(result)
    except BaseException:
        # Ctrl-C or a crash: finished videos are complete on disk; publish them.
        with contextlib.suppress(Exception):
            rebuild_dataset_files(out, settings, settings_hash, handle, options, pipeline, drift.get("drift"))
        raise
    summary.elapsed = time.perf_counter() - start
    summary.quantize_drift = drift.get("drift")
    rebuild_dataset_files(out, settings, settings_hash, handle, options, pipeline, drift.get("drift"))
    summary.results.sort(key=lambda r: r.video_id)
    return summary


def prepare_folder(
    out: Path, videos: Sequence[VideoInput], everything: Sequence[VideoInput], settings: dict,
    settings_hash: str, summary: ExtractSummary,
) -> tuple[list[VideoInput], set[str]]:
    """Refuse other settings this run does not cover, make the subfolders, and return the
    videos to extract and the ids among them to redo (complete ones go into ``summary``)."""
    _refuse_mixed_settings(out, everything, settings, settings_hash)
    make_folders(out)
    return _resume(out, videos, settings_hash, summary)


@dataclass
class EncodeContext:
    """A loaded model and what every video's record says about how it was made."""

    handle: ClipHandle
    pipeline: Any  # PipelineOptions resolved for the handle's device
    settings: dict
    settings_hash: str
    provenance: dict


def encode_context(handle: ClipHandle, options: ExtractOptions, request_hash: str | None) -> EncodeContext:
    """The pipeline for ``handle``'s device (InputError for int8 on GPU, fp16 on CPU) and the
    settings and provenance its videos' records carry."""
    pipeline = options.pipeline().for_device(handle.device)
    settings = settings_record(handle, options, pipeline.dtype)
    settings_hash = _sha256_json(settings)
    provenance = {
        "settings_sha256": settings_hash,
        "request_sha256": request_hash,
        "settings": settings,
        "compute_dtype": pipeline.dtype,
        "preprocess": FramePreprocess(handle.preprocess, pipeline.preprocess).describe(),
    }
    return EncodeContext(handle, pipeline, settings, settings_hash, provenance)


def extract_videos(
    todo: Sequence[VideoInput],
    out: Path,
    options: ExtractOptions,
    context: EncodeContext,
    listener: ExtractListener,
    on_quantized: Any = None,
    in_place: bool = False,
) -> Iterator[VideoExtractResult]:
    """Encode ``todo`` and write each video's files as it finishes (one machine, or one Ray worker)."""
    if not todo:
        return iter(())
    outcomes = encode_videos(todo, context.handle, context.pipeline, on_progress=listener.video_progress,
                             on_quantized=on_quantized, in_place=in_place)
    return _write_outcomes(outcomes, len(todo), out, options, context.provenance, listener)


def settings_record(handle: ClipHandle, options: ExtractOptions, compute_dtype: str = "float32") -> dict:
    """Everything that changes the numbers in a feature file (hashed for resume checks).

    ``compute_dtype``: the dtype the image tower ran in (resolved, not ``auto``). It is
    left out when float32, so that folders written before it was recorded (always
    float32 on CPU) keep their settings hash.
    """
    record = {
        "format": FEATURES_FORMAT_VERSION,
        "architecture": handle.architecture,
        "config_sha256": handle.config_sha256,
        "weights_id": handle.weights_id,
        "preprocess": handle.describe()["preprocess"],
        "sampling": options.sampling,
        "dtype": options.storage_dtype,
        "quantize": options.quantize,
    }
    if compute_dtype != "float32":
        record["compute_dtype"] = compute_dtype
    return record


def request_record(options: ExtractOptions) -> dict:
    """What the user asked for, known without loading the model (hashed for the no-op re-run).

    Weights and config files are named by path, size and modification time (hashing a
    weights file would cost seconds); the open_clip version stands for its model configs.
    """
    return {
        "format": FEATURES_FORMAT_VERSION,
        "clip_model": options.clip_model,
        "clip_pretrained": _file_identity(options.clip_pretrained),
        "clip_config": _file_identity(options.clip_config),
        "sampling": options.sampling,
        "dtype": options.dtype,
        "quantize": options.quantize,
        "open_clip": _package_version("open_clip_torch"),
    }


def _file_identity(value: str | None) -> Any:
    if value is None or not os.path.isfile(value):
        return value
    info = os.stat(value)
    return {"path": os.path.abspath(value), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _all_complete(out: Path, videos: Sequence[VideoInput], request_hash: str) -> bool:
    """Every video is complete under this request and listed in the folder's feature_info.json."""
    if not out.is_dir():
        return False
    listed = published_ids(out)
    return all(
        video.video_id in listed and video_state(out, video, {"request_sha256": request_hash}) == "complete"
        for video in videos
    )


def _refuse_mixed_settings(out: Path, covered: Sequence[VideoInput], settings: dict, settings_hash: str) -> None:
    """InputError when ``out`` holds videos made with other settings that this run does not redo."""
    covered_ids = {video.video_id for video in covered}
    others = {
        vid: record for vid, record in read_records(out).items()
        if vid not in covered_ids and record.get("settings_sha256") != settings_hash
    }
    if not others:
        return
    names = sorted(others)
    listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    differences = _differences(next(iter(others.values())).get("settings"), settings)
    raise InputError(
        f"{out} holds {len(names)} video(s) extracted with other settings ({listed}; {differences}); "
        "a folder holds features made one way, so these would drop out of it: extract into another --output "
        "folder, use the folder's settings, or include those videos to re-extract them too"
    )


_SETTING_NAMES = {
    "architecture": "CLIP model", "config_sha256": "CLIP config", "weights_id": "weights",
    "preprocess": "preprocessing", "sampling": "sampling", "compute_dtype": "--dtype",
    "dtype": "feature file dtype", "quantize": "--quantize",
    "format": "format",
}


def _differences(old: Any, new: dict) -> str:
    """'--dtype float16 there, float32 now' for the settings that differ."""
    if not isinstance(old, dict):
        return "written by another psftr version"
    parts = []
    for key, label in _SETTING_NAMES.items():
        if old.get(key) != new.get(key):
            default = "float32" if key == "compute_dtype" else None  # not recorded: float32
            parts.append(f"{label} {_setting_text(old.get(key, default))} there, "
                         f"{_setting_text(new.get(key, default))} now")
    return "; ".join(parts) or "other settings"


def _setting_text(value: Any) -> str:
    if isinstance(value, dict) and ("stride" in value or "fps" in value):
        return f"stride {value['stride']}" if "stride" in value else f"fps {value['fps']:g}"
    if isinstance(value, str) and len(value) > 24:
        return value[:20] + "..."
    return "none" if value is None else str(value)


def _select_videos(
    inputs: Sequence[str], out: Path, options: ExtractOptions, listener: ExtractListener
) -> tuple[list[VideoInput], list[VideoInput], list[str], tuple[int, int]]:
    """This shard's videos and all of them (with their ids), the notes on skipped files, the shard."""
    paths, notes = collect_videos(inputs, exclude=[out])
    listener.inputs_collected(notes)
    if not paths:
        raise InputError("no video files found in the inputs; give video files, folders, globs or @list.txt")
    videos = assign_video_ids(paths)
    shard = parse_shard(options.shard)
    mine = shard_videos(videos, *shard)
    listener.shard_selected(shard, len(mine), len(videos))
    return mine, videos, notes, shard


def _refuse_outputs_over_inputs(
    out: Path, videos: Sequence[VideoInput], everything: Sequence[VideoInput], options: ExtractOptions
) -> None:
    """InputError naming both when a file this run writes in ``out`` (through a link) is
    one of its videos or CLIP files."""
    written = [out / name for name in DATASET_FILES]
    for video in videos:
        written.extend(video_file(out, sub, video.video_id) for sub in SUBFOLDERS)
    read = [video.path for video in everything]
    read.extend(Path(p) for p in (options.clip_config, options.clip_pretrained) if p is not None)
    refuse_outputs_over_inputs({"--output": written}, read)


def _resume(
    out: Path, videos: Sequence[VideoInput], settings_hash: str, summary: ExtractSummary
) -> tuple[list[VideoInput], set[str]]:
    """Videos to extract, and the ids among them that exist with other settings.

    Complete videos go into ``summary`` as "skipped".
    """
    todo: list[VideoInput] = []
    redo: set[str] = set()
    for video in videos:
        state = video_state(out, video, {"settings_sha256": settings_hash})
        if state == "complete":
            summary.results.append(VideoExtractResult(video.video_id, str(video.path), "skipped"))
            continue
        if state == "other-settings":
            redo.add(video.video_id)
        todo.append(video)
    return todo, redo


def _write_outcomes(
    outcomes: Iterator[Any],
    count: int,
    out: Path,
    options: ExtractOptions,
    provenance: dict,
    listener: ExtractListener,
) -> Iterator[VideoExtractResult]:
    """Write each encoded video's files; yields a VideoExtractResult per video as it finishes."""
    if not count:
        return
    listener.run_started(count)
    with contextlib.closing(outcomes):
        for outcome in outcomes:
            video = outcome.video
            if isinstance(outcome, EncodedVideo):
                record = {**provenance, "decoder": outcome.decoder, "note": outcome.note}
                write_video_files(out, video, outcome.plan, outcome.features, dtype=options.storage_dtype,
                                  seconds=outcome.seconds, provenance=record)
                result = VideoExtractResult(video.video_id, str(video.path), "done", outcome.encoded, outcome.seconds)
            else:
                result = VideoExtractResult(video.video_id, str(video.path), "failed", 0, outcome.seconds, outcome.error)
            listener.video_done(result)
            yield result


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()
