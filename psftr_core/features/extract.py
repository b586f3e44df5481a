"""Streaming, resumable CLIP feature extraction from videos into a feature dataset folder.

Pipeline: a background thread opens each video, decodes the sampled frames in chunks of
``batch_size`` and applies the model's own open_clip transform (PIL path); a bounded
queue hands the chunks to the main thread, which runs the image tower under
``torch.inference_mode``. Decoding of the next chunk (and the next video) overlaps the
model, and memory holds at most ``prefetch`` chunks whatever the video length.

Folder written (``OUT``)::

    features/<id>.npy      [T, D] float16 (or float32), image features, not L2-normalised
    timestamps/<id>.npy    [T] float64, seconds each feature stands for (decoder timestamps)
    info/<id>.json         per-video record; written last, so it marks the video complete
    feature_info.json      {id: {snippet_length, snippet_duration, video_fps, frame_length,
                                  frame_duration, timestamps_file}}
    annotations.json       {"classes": [], "database": {id: {subset: "test", duration,
                                  fps, annotations: []}}, "generated_by": "psftr extract"}
    manifest.json          model, weights, transform, sampling, dtype, versions, counts
    dataset.yaml           makes the folder a dataset (formats.md)

Every file is written atomically. ``info/<id>.json`` carries a hash of the settings that
determine the features (architecture + config hash, weights id, preprocessing, sampling,
dtype, quantization): a re-run skips a video whose record matches and whose arrays have
the recorded shapes, and redoes it otherwise. Several processes (``--shard I/N``) may
write into one folder: each writes only its own videos' files, and the merged files are
rebuilt from all ``info/*.json`` records under a lock at the end of every process (the
last process to finish sees every record). A ``dataset.yaml`` or ``annotations.json``
that was not written by ``psftr extract`` is never overwritten.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from psftr_core import __version__
from psftr_core.io.atomic import save_npy, write_json, write_text
from psftr_core.features.clip import (
    DEFAULT_CLIP_MODEL,
    DEFAULT_CLIP_PRETRAINED,
    ClipHandle,
    FramePreprocess,
    encode_images,
    load_clip,
    quantize_image_tower,
)
from psftr_core.errors import InputError, PartialFailure, PsftrError
from psftr_core.features.video import (
    SamplePlan,
    VideoDecodeError,
    VideoInput,
    VideoSource,
    assign_video_ids,
    collect_videos,
    parse_shard,
    shard_videos,
)

FORMAT_VERSION = 1
GENERATED_BY = "psftr extract"
DATASET_YAML_MARKER = "# written by psftr extract"
DTYPES = ("float16", "float32")
DRIFT_SAMPLE_FRAMES = 8  # frames of the first batch encoded in fp32 and int8 to report drift


@dataclass
class ExtractOptions:
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
    video_id: str
    path: str
    status: str  # "done" | "skipped" | "failed"
    frames: int = 0  # frames encoded (0 when skipped)
    seconds: float = 0.0
    error: str | None = None
    redone: bool = False  # an earlier output existed with other settings


@dataclass
class ExtractSummary:
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


# ----------------------------------------------------------------------------- entry point


def extract_features(
    inputs: Sequence[str],
    output_dir: str | os.PathLike,
    options: ExtractOptions | None = None,
    handle: ClipHandle | None = None,
    console: Any = None,
    progress: bool = True,
) -> ExtractSummary:
    """Extract features for every video in ``inputs`` into ``output_dir``.

    Missing inputs -> InputError before anything is written. Per-video failures are
    collected in the summary (see ``ExtractSummary.raise_for_failures``). A given
    ``handle`` is used instead of loading ``options``' model (it is not modified).
    """
    options = dataclasses.replace(options or ExtractOptions())
    options.validate()
    console = console or _stderr_console()
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} exists and is not a folder")

    paths, notes = collect_videos(inputs, exclude=[out])
    for note in notes[:10]:
        _say(console, f"note: {note}")
    if len(notes) > 10:
        _say(console, f"note: ... and {len(notes) - 10} more files skipped")
    if not paths:
        raise InputError("no video files found in the inputs; give video files, folders, globs or @list.txt")
    videos = assign_video_ids(paths)
    shard = parse_shard(options.shard)
    mine = shard_videos(videos, *shard)
    if shard[1] > 1:
        _say(console, f"shard {shard[0]}/{shard[1]}: {len(mine)} of {len(videos)} videos")

    if handle is None:
        handle = load_clip(options.clip_model, options.clip_pretrained, options.clip_config, options.device)
        owns_handle = True
    else:
        owns_handle = False
    if options.quantize and handle.device.type != "cpu":
        raise InputError("--quantize int8 runs on CPU only; add --device cpu")

    settings = settings_record(handle, options)
    settings_hash = _hash(settings)
    for sub in ("features", "timestamps", "info"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    summary = ExtractSummary(output_dir=out, notes=notes, shard=shard)
    todo: list[VideoInput] = []
    redo: set[str] = set()
    for video in mine:
        state = _existing_state(out, video, settings_hash)
        if state == "complete":
            summary.results.append(VideoResult(video.video_id, str(video.path), "skipped"))
        else:
            if state == "other-settings":
                redo.add(video.video_id)
            todo.append(video)

    engine = _Engine(handle, options, out, settings_hash, console, progress, quantize_in_place=owns_handle)
    start = time.perf_counter()
    try:
        for result in engine.run(todo):
            result.redone = result.video_id in redo
            summary.results.append(result)
    except BaseException:
        # Ctrl-C or a crash: finished videos are complete on disk; publish them.
        with contextlib.suppress(Exception):
            rebuild_dataset_files(out, settings, settings_hash, handle, options, engine.drift)
        raise
    summary.elapsed = time.perf_counter() - start
    summary.quantize_drift = engine.drift
    rebuild_dataset_files(out, settings, settings_hash, handle, options, engine.drift)
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


# ----------------------------------------------------------------------------- engine


class _Engine:
    """Producer thread (decode + preprocess) feeding the model in the calling thread."""

    def __init__(
        self,
        handle: ClipHandle,
        options: ExtractOptions,
        out: Path,
        settings_hash: str,
        console: Any,
        progress: bool,
        quantize_in_place: bool,
    ) -> None:
        self.handle = handle
        self.options = options
        self.out = out
        self.settings_hash = settings_hash
        self.console = console
        self.show_progress = progress
        self.quantize_in_place = quantize_in_place
        self.drift: dict | None = None
        self._quantized = options.quantize is None  # nothing to do when not asked
        self.frame_preprocess = FramePreprocess(handle.preprocess)

    def run(self, videos: Sequence[VideoInput]) -> Iterator[VideoResult]:
        if not videos:
            return
        items: queue.Queue = queue.Queue(maxsize=max(1, self.options.prefetch))
        stop = threading.Event()
        producer = threading.Thread(
            target=self._produce, args=(videos, items, stop), name="psftr-decode", daemon=True
        )
        producer.start()
        progress = _make_progress(self.console, self.show_progress)
        try:
            with progress:
                task = progress.add_task("extract", total=len(videos))
                yield from self._consume(items, progress, task)
        finally:
            stop.set()
            _drain(items)
            producer.join(timeout=10)

    # -- producer (background thread)

    def _produce(self, videos: Sequence[VideoInput], items: queue.Queue, stop: threading.Event) -> None:
        try:
            for video in videos:
                if stop.is_set() or not self._produce_video(video, items, stop):
                    return
        except BaseException as err:  # a bug here must not leave the consumer waiting forever
            _put(items, ("fatal", None, f"{type(err).__name__}: {err}"), stop)
        finally:
            _put(items, ("done", None, None), stop)

    def _produce_video(self, video: VideoInput, items: queue.Queue, stop: threading.Event) -> bool:
        """Queue one video's frames; False when the consumer has gone away."""
        source = None
        try:
            source = VideoSource(video.path, num_threads=self.options.decode_threads)
            plan = source.plan(stride=self.options.stride, fps=self.options.fps)
            if plan.num_features == 0:
                raise VideoDecodeError(
                    f"{video.path.name}: too short for one feature "
                    f"({plan.frame_length} frames, {plan.duration:.2f} s)"
                )
            if not _put(items, ("start", video, plan), stop):
                return False
            for frames in source.iter_frames(plan.indices, chunk=self.options.batch_size):
                prepared = self.frame_preprocess.to_uint8(frames)  # PIL steps, no torch ops
                if items.full():
                    source.release_readahead()  # about to wait: do not let decord fill memory
                if not _put(items, ("frames", video, prepared), stop):
                    return False
            source.close()
            return _put(items, ("end", video, None), stop)
        except VideoDecodeError as err:
            return _put(items, ("error", video, str(err)), stop)
        except Exception as err:  # one bad video must not stop the others
            return _put(items, ("error", video, f"{type(err).__name__}: {err}"), stop)
        finally:
            if source is not None:
                source.close()

    # -- consumer (calling thread)

    def _consume(self, items: queue.Queue, progress: Any, task: Any) -> Iterator[VideoResult]:
        current: VideoInput | None = None
        plan: SamplePlan | None = None
        feats: np.ndarray | None = None
        filled = 0
        started = 0.0
        while True:
            kind, video, payload = items.get()
            if kind == "done":
                return
            if kind == "fatal":
                raise PsftrError(f"the decoding thread stopped: {payload}")
            if kind == "start":
                current, plan, filled, started = video, payload, 0, time.perf_counter()
                feats = np.empty((plan.num_features, self.handle.embed_dim), dtype=np.float32)
                progress.update(task, description=f"{video.video_id} (0/{plan.num_features})")
            elif kind == "frames":
                batch = self.frame_preprocess.to_model_input(payload, device=self.handle.device)
                encoded = self._encode(batch).numpy()
                feats[filled : filled + len(encoded)] = encoded
                filled += len(encoded)
                progress.update(task, description=f"{video.video_id} ({filled}/{plan.num_features})")
            elif kind == "end":
                elapsed = time.perf_counter() - started
                try:
                    if filled != plan.num_features:
                        raise VideoDecodeError(f"decoded {filled} of {plan.num_features} frames")
                    if not np.all(np.isfinite(feats)):
                        raise PsftrError("model produced non-finite features")
                    self._write(video, plan, feats, elapsed)
                    yield VideoResult(video.video_id, str(video.path), "done", filled, elapsed)
                except PsftrError as err:
                    yield VideoResult(video.video_id, str(video.path), "failed", 0, elapsed, str(err))
                current, plan, feats = None, None, None
                progress.advance(task)
            elif kind == "error":
                if current is not None and current.video_id == video.video_id:
                    current, plan, feats = None, None, None
                _say(self.console, f"failed {video.video_id}: {payload}")
                yield VideoResult(video.video_id, str(video.path), "failed", 0, 0.0, payload)
                progress.advance(task)

    def _encode(self, batch: Any) -> Any:
        """[N, 3, H, W] -> float32 [N, D] on cpu. Quantizes lazily on the first batch."""
        if not self._quantized:
            self._quantize_with_drift(batch)
        return encode_images(self.handle, batch)

    def _quantize_with_drift(self, batch: Any) -> None:
        import copy

        sample = batch[:DRIFT_SAMPLE_FRAMES]  # small: the fp32 pass is extra work
        reference = encode_images(self.handle, sample)
        if not self.quantize_in_place:
            # leave the caller's model untouched: quantize a copy
            self.handle = dataclasses.replace(self.handle, model=copy.deepcopy(self.handle.model))
        quantize_image_tower(self.handle)
        quantized = encode_images(self.handle, sample)
        self.drift = feature_drift(reference, quantized)
        self._quantized = True
        _say(
            self.console,
            "int8 image tower: cosine to fp32 mean {cosine_mean:.4f}, min {cosine_min:.4f}, "
            "relative L2 error {relative_l2:.4f} on {frames} frames".format(**self.drift),
        )

    def _write(self, video: VideoInput, plan: SamplePlan, feats: np.ndarray, elapsed: float) -> None:
        """Features, timestamps, then the info record (the completion marker)."""
        vid = video.video_id
        save_npy(self.out / "features" / f"{vid}.npy", feats.astype(self.options.dtype))
        save_npy(self.out / "timestamps" / f"{vid}.npy", plan.times.astype(np.float64))
        record = {
            "video_id": vid,
            "source": str(video.path),
            "source_size": video.path.stat().st_size,
            "settings_sha256": self.settings_hash,
            "num_features": plan.num_features,
            "feature_dim": int(feats.shape[1]),
            "dtype": self.options.dtype,
            "feature_info": {
                "snippet_length": plan.num_features,
                "snippet_duration": plan.snippet_duration,
                "video_fps": plan.video_fps,
                "frame_length": plan.frame_length,
                "frame_duration": plan.duration,
                "timestamps_file": f"timestamps/{vid}.npy",
            },
            "duration": plan.duration,
            "fps": plan.video_fps,
            "extract_seconds": round(elapsed, 3),
            "psftr_version": __version__,
        }
        write_json(self.out / "info" / f"{vid}.json", record)


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


# ----------------------------------------------------------------------------- resume


def _existing_state(out: Path, video: VideoInput, settings_hash: str) -> str:
    """"complete", "other-settings" or "missing" for one video's outputs in ``out``."""
    info_path = out / "info" / f"{video.video_id}.json"
    try:
        record = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "missing"
    if not isinstance(record, dict) or record.get("settings_sha256") != settings_hash:
        return "other-settings"
    try:
        if record.get("source_size") != video.path.stat().st_size:
            return "other-settings"  # the video file itself changed
        num, dim = int(record["num_features"]), int(record["feature_dim"])
    except (OSError, KeyError, TypeError, ValueError):
        return "missing"
    feats = _npy_header(out / "features" / f"{video.video_id}.npy")
    times = _npy_header(out / "timestamps" / f"{video.video_id}.npy")
    if feats is None or feats[0] != (num, dim) or feats[1] != np.dtype(record.get("dtype")):
        return "missing"
    if times is None or times[0] != (num,):
        return "missing"
    return "complete"


def _npy_header(path: Path) -> tuple[tuple, np.dtype] | None:
    """(shape, dtype) of a .npy file, reading only its header; None if absent/damaged."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                return None
            size = os.fstat(handle.fileno()).st_size
            if size - handle.tell() < int(np.prod(shape)) * dtype.itemsize:
                return None  # truncated
            return tuple(shape), dtype
    except (OSError, ValueError, TypeError):
        return None


# ----------------------------------------------------------------------------- merged files


def rebuild_dataset_files(
    out: Path,
    settings: dict,
    settings_hash: str,
    handle: ClipHandle,
    options: ExtractOptions,
    drift: dict | None = None,
) -> dict:
    """Rebuild feature_info.json, annotations.json, manifest.json, dataset.yaml from info/.

    Only records made with the current settings are published; others are listed in the
    manifest as ``other_settings``. Runs under an exclusive lock on ``OUT/.extract.lock``
    so concurrent shards do not interleave. Returns the feature_info mapping.
    """
    with _locked(out / ".extract.lock"):
        feature_info: dict[str, dict] = {}
        database: dict[str, dict] = {}
        other: list[str] = []
        for info_path in sorted((out / "info").glob("*.json")):
            try:
                record = json.loads(info_path.read_text(encoding="utf-8"))
                vid = record["video_id"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if record.get("settings_sha256") != settings_hash:
                other.append(vid)
                continue
            if not (out / "features" / f"{vid}.npy").is_file():
                continue
            feature_info[vid] = record["feature_info"]
            database[vid] = {
                "subset": "test",
                "duration": record["duration"],
                "fps": record["fps"],
                "annotations": [],
            }
        write_json(out / "feature_info.json", feature_info)

        annotations_path = out / "annotations.json"
        if _generated_by_us_json(annotations_path):
            write_json(
                annotations_path, {"classes": [], "database": database, "generated_by": GENERATED_BY}
            )
        dataset_yaml = out / "dataset.yaml"
        if _generated_by_us_yaml(dataset_yaml):
            write_text(dataset_yaml, _dataset_yaml_text(out, options))

        manifest_path = out / "manifest.json"
        previous = _read_json(manifest_path)
        if drift is None and isinstance(previous, dict) and previous.get("settings_sha256") == settings_hash:
            drift = (previous.get("quantize") or {}).get("drift")
        manifest = {
            "generated_by": GENERATED_BY,
            "psftr_version": __version__,
            "settings_sha256": settings_hash,
            "settings": settings,
            "clip": handle.describe(),
            "sampling": options.sampling,
            "dtype": options.dtype,
            "feature_dim": handle.embed_dim,
            "features_normalized": False,
            "quantize": {"mode": options.quantize, "drift": drift} if options.quantize else None,
            "num_videos": len(feature_info),
            "other_settings": other,
            "versions": _versions(),
        }
        manifest["clip"]["quantized"] = options.quantize
        write_json(manifest_path, manifest)
        return feature_info


def _dataset_yaml_text(out: Path, options: ExtractOptions) -> str:
    lines = [
        DATASET_YAML_MARKER,
        f"name: {json.dumps(out.resolve().name)}",
        "annotations: annotations.json",
        "features: features",
        "feature_info: feature_info.json",
        "test_subset: test",
    ]
    if options.fps is not None:
        lines.append(f"feature_fps: {float(options.fps)}")
    return "\n".join(lines) + "\n"


def _generated_by_us_json(path: Path) -> bool:
    if not path.exists():
        return True
    data = _read_json(path)
    return isinstance(data, dict) and data.get("generated_by") == GENERATED_BY


def _generated_by_us_yaml(path: Path) -> bool:
    if not path.exists():
        return True
    try:
        return path.read_text(encoding="utf-8").startswith(DATASET_YAML_MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (fcntl) where available; a no-op elsewhere."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- reporting


def print_summary(summary: ExtractSummary, console: Any = None) -> None:
    """Summary table on stderr: done, skipped, failed, frames, time, frames/s."""
    from rich.table import Table

    console = console or _stderr_console()
    table = Table(title=f"psftr extract -> {summary.output_dir}", title_justify="left")
    for column in ("done", "skipped", "failed", "frames", "time", "frames/s"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(summary.ids("done"))),
        str(len(summary.ids("skipped"))),
        str(len(summary.ids("failed"))),
        str(summary.frames),
        f"{summary.elapsed:.1f} s",
        f"{summary.frames_per_second:.1f}",
    )
    console.print(table)
    redone = [r.video_id for r in summary.results if r.redone and r.status == "done"]
    if redone:
        _say(console, f"redone with new settings: {len(redone)} videos")
    for result in summary.results:
        if result.status == "failed":
            _say(console, f"failed {result.video_id} ({result.path}): {result.error}")


def _say(console: Any, text: str) -> None:
    """One plain line on the (stderr) console: no markup, so paths print as they are."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _make_progress(console: Any, enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=True,
    )


def _put(items: queue.Queue, item: tuple, stop: threading.Event) -> bool:
    """Blocking put that gives up when ``stop`` is set (the consumer went away)."""
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _drain(items: queue.Queue) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            items.get_nowait()


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()


def _versions() -> dict:
    versions = {"psftr": __version__}
    for name, module in (("torch", "torch"), ("open_clip", "open_clip"), ("decord", "decord")):
        with contextlib.suppress(Exception):
            versions[name] = __import__(module).__version__
    return versions
