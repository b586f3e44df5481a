"""The feature dataset folder that ``psftr extract`` writes: per-video files, resume checks,
and the merged files that make it a dataset.

Folder (``OUT``)::

    features/<id>.npy      [T, D] float16 (or float32), image features, not L2-normalised
    timestamps/<id>.npy    [T] float64, seconds each feature stands for (decoder timestamps)
    info/<id>.json         per-video record; written last, so it marks the video complete
    feature_info.json      {id: {snippet_length, snippet_duration, video_fps, frame_length,
                                  frame_duration, timestamps_file}}
    annotations.json       {"classes": [], "database": {id: {subset: "test", duration,
                                  fps, annotations: []}}, "generated_by": "psftr extract"}
    manifest.json          model, weights, transform, sampling, dtype, versions, counts
    dataset.yaml           makes the folder a dataset (docs/formats.md)

Every file is written atomically. ``info/<id>.json`` carries the hash of the settings
that determine the features (and the settings themselves, the request hash, the decoder
used): a video is complete when its record has the current hash and its arrays have the
recorded shapes. Several processes may write into one folder:
each writes only its own videos' files, and the merged files are rebuilt from all
``info/*.json`` records under a lock (the last process to finish sees every record). A
``dataset.yaml`` or ``annotations.json`` that was not written by ``psftr extract`` is
never overwritten.

Extracting into an existing dataset folder (one made by other tools, or records since
removed) keeps what its ``feature_info.json`` lists for videos without a record in
``info/``: each such entry stays while ``features/<id>.npy`` is there, complete and
has the entry's ``snippet_length`` features; this run's entries win for its own videos.

Per-video file names come from the id by ``psftr_core.io.output_dir.video_file_name``
(``<id>.npy`` for every id ``psftr_core.features.video`` makes).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from psftr_core import __version__
from psftr_core.errors import InputError
from psftr_core.features.clip import ClipHandle
from psftr_core.features.sampling import SamplePlan
from psftr_core.features.video import VideoInput, printable_name
from psftr_core.io.atomic import save_npy, write_json, write_text
from psftr_core.io.json_file import read_json_file
from psftr_core.io.npy import read_npy_header
from psftr_core.io.output_dir import video_file_name

if TYPE_CHECKING:
    from psftr_core.features.extract_options import ExtractOptions
    from psftr_core.features.pipeline import PipelineOptions

GENERATED_BY = "psftr extract"
DATASET_YAML_MARKER = "# written by psftr extract"
SUBFOLDERS = ("features", "timestamps", "info")
DATASET_FILES = ("feature_info.json", "annotations.json", "manifest.json", "dataset.yaml")  # rebuilt by each run


def video_file(out: Path, subfolder: str, video_id: str) -> Path:
    """``OUT/<subfolder>/<file of video_id>``: ``.json`` in ``info``, else ``.npy``."""
    return out / subfolder / video_file_name(video_id, "json" if subfolder == "info" else "npy")


def make_folders(out: Path) -> None:
    for sub in SUBFOLDERS:
        (out / sub).mkdir(parents=True, exist_ok=True)


def video_state(out: Path, video: VideoInput, expected: dict[str, str]) -> str:
    """"complete", "other-settings" or "missing" for one video's outputs in ``out``.

    ``expected``: record fields that must match, e.g. ``{"settings_sha256": hash}``.
    """
    record = _json_or_none(video_file(out, "info", video.video_id))
    if record is None:
        return "missing"
    if not isinstance(record, dict) or any(record.get(key) != value for key, value in expected.items()):
        return "other-settings"
    try:
        if record.get("source_size") != video.path.stat().st_size:
            return "other-settings"  # the video file itself changed
        num, dim = int(record["num_features"]), int(record["feature_dim"])
    except (OSError, KeyError, TypeError, ValueError):
        return "missing"
    feats = _array_header(video_file(out, "features", video.video_id))
    times = _array_header(video_file(out, "timestamps", video.video_id))
    if feats is None or feats.shape != (num, dim) or feats.dtype != np.dtype(record.get("dtype")):
        return "missing"
    if times is None or times.shape != (num,):
        return "missing"
    return "complete"


def read_records(out: Path) -> dict[str, dict]:
    """Every readable ``info/<id>.json`` record in ``out``, by video id."""
    records = {}
    for info_path in sorted((out / "info").glob("*.json")):
        record = _json_or_none(info_path)
        if isinstance(record, dict) and isinstance(record.get("video_id"), str):
            records[record["video_id"]] = record
    return records


def published_ids(out: Path) -> set[str]:
    """The video ids listed in ``out/feature_info.json`` (empty when absent or damaged)."""
    listed = _json_or_none(out / "feature_info.json")
    return set(listed) if isinstance(listed, dict) else set()


def write_video_files(
    out: Path,
    video: VideoInput,
    plan: SamplePlan,
    features: np.ndarray,
    *,
    dtype: str,
    seconds: float,
    provenance: dict,
) -> None:
    """Features [T, D], timestamps [T], then the info record (the completion marker).

    ``provenance``: settings hash, settings, request hash, decoder... (kept in the record).
    """
    vid = video.video_id
    timestamps = video_file(out, "timestamps", vid)
    save_npy(video_file(out, "features", vid), features.astype(dtype))
    save_npy(timestamps, plan.times.astype(np.float64))
    record = {
        "video_id": vid,
        "source": printable_name(str(video.path)),  # plain text: JSON takes no lone surrogates
        "source_size": video.path.stat().st_size,
        **provenance,
        "num_features": plan.num_features,
        "feature_dim": int(features.shape[1]),
        "dtype": dtype,
        "feature_info": {
            "snippet_length": plan.num_features,
            "snippet_duration": plan.snippet_duration,
            "video_fps": plan.video_fps,
            "frame_length": plan.frame_length,
            "frame_duration": plan.duration,
            "timestamps_file": f"timestamps/{timestamps.name}",
        },
        "duration": plan.duration,
        "fps": plan.video_fps,
        "extract_seconds": round(seconds, 3),
        "psftr_version": __version__,
    }
    write_json(video_file(out, "info", vid), record)


def rebuild_dataset_files(
    out: Path,
    settings: dict,
    settings_hash: str,
    handle: ClipHandle,
    options: ExtractOptions,
    pipeline: PipelineOptions,
    drift: dict | None = None,
) -> dict:
    """Rebuild feature_info.json, annotations.json, manifest.json, dataset.yaml from info/.

    Only records made with the current settings are published; others are listed in the
    manifest as ``other_settings``. The manifest counts the videos read by each decoder.
    Runs under an exclusive lock on ``OUT/.extract.lock`` so concurrent shards do not
    interleave. Returns the feature_info mapping.
    """
    with _locked(out / ".extract.lock"):
        previous_info = _json_or_none(out / "feature_info.json")
        feature_info, database, other, decoders = _collect_records(out, settings_hash)
        feature_info = {**_kept_entries(out, previous_info, read_records(out)), **feature_info}
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
        previous = _json_or_none(manifest_path)
        if drift is None and isinstance(previous, dict) and previous.get("settings_sha256") == settings_hash:
            drift = (previous.get("quantize") or {}).get("drift")
        manifest = {
            "generated_by": GENERATED_BY,
            "psftr_version": __version__,
            "settings_sha256": settings_hash,
            "settings": settings,
            "clip": handle.describe(),
            "sampling": options.sampling,
            "dtype": options.storage_dtype,
            "compute_dtype": pipeline.dtype,
            "feature_dim": handle.embed_dim,
            "features_normalized": False,
            "quantize": {"mode": options.quantize, "drift": drift} if options.quantize else None,
            "num_videos": len(feature_info),
            "decoding": {
                "decoder": pipeline.decoder,
                "videos_by_decoder": decoders,
                "preprocess": pipeline.preprocess,
            },
            "other_settings": other,
            "versions": _versions(),
        }
        manifest["clip"]["quantized"] = options.quantize
        # A custom architecture's config itself, so train/evaluate can rebuild its text
        # tower without the original file.
        custom = options.clip_config
        manifest["clip"]["config"] = read_json_file(Path(custom), "CLIP config") if custom else None
        write_json(manifest_path, manifest)
        return feature_info


def _collect_records(
    out: Path, settings_hash: str
) -> tuple[dict[str, dict], dict[str, dict], list[str], dict[str, int]]:
    """(feature_info, annotations database, ids made with other settings, videos per decoder)."""
    feature_info: dict[str, dict] = {}
    database: dict[str, dict] = {}
    other: list[str] = []
    decoders: dict[str, int] = {}
    for vid, record in read_records(out).items():
        if record.get("settings_sha256") != settings_hash:
            other.append(vid)
            continue
        if not video_file(out, "features", vid).is_file():
            continue
        feature_info[vid] = record["feature_info"]
        database[vid] = {
            "subset": "test",
            "duration": record["duration"],
            "fps": record["fps"],
            "annotations": [],
        }
        decoder = str(record.get("decoder") or "unknown")
        decoders[decoder] = decoders.get(decoder, 0) + 1
    return feature_info, database, other, decoders


def _kept_entries(out: Path, previous: Any, records: dict[str, dict]) -> dict[str, dict]:
    """The entries of the folder's earlier ``feature_info.json`` for videos without an
    ``info/`` record whose feature file is still there and has their length (module
    docstring); a video with a record is published from it, or not at all."""
    if not isinstance(previous, dict):
        return {}
    kept = {}
    for vid, entry in previous.items():
        if vid in records or not isinstance(entry, dict):
            continue
        header = _array_header(video_file(out, "features", vid))
        if header is not None and len(header.shape) == 2 and header.shape[0] == entry.get("snippet_length"):
            kept[vid] = entry
    return kept


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
    """Ours and still unlabelled: once a user adds classes, instances or other subsets, it is theirs."""
    if not path.exists():
        return True
    data = _json_or_none(path)
    if not isinstance(data, dict) or data.get("generated_by") != GENERATED_BY or data.get("classes"):
        return False
    database = data.get("database")
    return isinstance(database, dict) and all(
        isinstance(entry, dict) and entry.get("subset") == "test" and not entry.get("annotations")
        for entry in database.values()
    )


def _generated_by_us_yaml(path: Path) -> bool:
    if not path.exists():
        return True
    try:
        return path.read_text(encoding="utf-8").startswith(DATASET_YAML_MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def _json_or_none(path: Path) -> Any:
    """The parsed file, or None when it is absent or damaged (then it is redone or rewritten)."""
    try:
        return read_json_file(path, "extract record")
    except InputError:
        return None


def _array_header(path: Path) -> Any:
    """The .npy header of a complete file; None when absent, damaged or truncated."""
    try:
        header = read_npy_header(path)
    except (OSError, ValueError):
        return None
    return header if header.complete else None


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


def _versions() -> dict:
    versions = {"psftr": __version__}
    for name, module in (("torch", "torch"), ("open_clip", "open_clip"), ("decord", "decord"), ("av", "av")):
        with contextlib.suppress(Exception):
            versions[name] = __import__(module).__version__
    return versions
