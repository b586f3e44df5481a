"""On-disk cache of per-video CLIP features for ``psftr detect``.

Decoding and encoding a video is the slow part of detection; the action vocabulary is
not part of the features, so a second run with other actions reuses them.

Key = (video content, feature spec):

- video content: :func:`video_fingerprint`, a SHA-256 of the file size and its first and
  last MiB. It does not depend on the path or the modification time, so a copied or
  touched file still hits, and reading it costs at most 2 MiB per video.
- feature spec: :class:`FeatureSpec` (CLIP architecture + config hash, weights id,
  preprocessing, sampling, dtype, cache format version), hashed to a short hex key.
  Random (unsaved) CLIP weights are never cached: they differ on every load.

Layout (``root`` is ``--cache-dir``, default :func:`default_cache_dir`)::

    root/features/<spec_key>/spec.json          # the spec in words, for humans
    root/features/<spec_key>/<fp[:2]>/<fp>.npz  # features [T, D], times [T], meta (JSON:
                                                #   duration, frame count, fps, source name)

Entries are written atomically and checked on read like feature files on disk: readable,
``[T, D]`` with T >= 1 and D the width of the spec's CLIP model, the spec's dtype, finite
values, one increasing time per feature, and T what the recorded sampling gives. A
damaged entry is deleted with one warning naming the video and what is wrong, and counts
as a miss: the caller computes it again. The width comes from the caller
(``feature_dim``) or else from ``spec.json``, which records it with the first entry.
A cache folder that cannot be written (read-only, or a file) turns the cache off with one
warning (``logging``); the run goes on without it. Text embeddings are cached next to it
under ``root/text`` by ``psftr_core.features.clip.encode_texts``. Deleting ``root`` is
always safe.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psftr_core.errors import error_text
from psftr_core.features.decoders import irregular_file_reason
from psftr_core.io.atomic import atomic_open, write_json

_log = logging.getLogger(__name__)

CACHE_FORMAT = 1
_CHUNK = 1 << 20  # 1 MiB read from each end of the file
_unusable_roots: set[str] = set()  # cache roots already warned about in this process


def warn_unusable_cache(root: str | os.PathLike, err: OSError) -> None:
    """Log once per process and cache root that it cannot be written; callers go on without it."""
    key = os.path.abspath(root)
    if key in _unusable_roots:
        return
    _unusable_roots.add(key)
    reason = getattr(err, "strerror", None) or str(err)
    _log.warning("the cache %s cannot be written (%s); continuing without it", root, reason)


def default_cache_dir() -> Path:
    """``$PSFTR_CACHE_DIR``, else ``$XDG_CACHE_HOME/psftr``, else ``~/.cache/psftr``.

    The root of every psftr cache: features here, text embeddings under ``text/``.
    """
    if os.environ.get("PSFTR_CACHE_DIR"):
        return Path(os.environ["PSFTR_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).expanduser() / "psftr"


def video_fingerprint(path: str | os.PathLike) -> str:
    """Content id of a file: SHA-256 of its size, first MiB and last MiB (hex, 32 chars).

    Independent of the path and the modification time. Two files that differ only in
    the middle would collide; video containers put index data at both ends, so in
    practice any re-encode or cut changes the first or last MiB. OSError for anything
    but a regular file (it is never opened).
    """
    path = Path(path)
    reason = irregular_file_reason(path)
    if reason is not None:  # reading a named pipe would block forever
        raise OSError(errno.EINVAL, reason, str(path))
    size = path.stat().st_size
    digest = hashlib.sha256()
    digest.update(f"psftr-video-v1:{size}:".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_CHUNK))
        if size > _CHUNK:
            handle.seek(max(size - _CHUNK, _CHUNK))
            digest.update(handle.read(_CHUNK))
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that changes the features of a video, apart from its content.

    ``clip_model`` is the loaded architecture with a hash of its config
    (``ClipHandle.model_id``), ``weights`` the weights id (``"tag:openai"`` or
    ``"sha256:<hex>"`` of a local file), ``sampling`` ``"stride=8"`` or ``"fps=2"``;
    ``extra`` holds anything else that changes the features (preprocessing, quantization).
    """

    clip_model: str
    weights: str
    sampling: str
    dtype: str = "float16"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"cache_format": CACHE_FORMAT, **asdict(self)}

    def key(self) -> str:
        """Short stable hash of the spec (16 hex chars)."""
        text = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class CachedFeatures:
    """Features of one video: ``features`` [T, D], ``times`` [T] (centre seconds), ``meta``."""

    features: np.ndarray
    times: np.ndarray
    meta: dict[str, Any]


class FeatureCache:
    """Per-video feature store for one :class:`FeatureSpec` under ``root``.

    ``usable`` turns False (with one warning) when the folder cannot be written; from
    then on ``get`` misses and ``put`` does nothing.
    """

    def __init__(self, root: str | os.PathLike | None, spec: FeatureSpec, feature_dim: int | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.spec = spec
        self.folder = self.root / "features" / spec.key()
        self.hits = 0
        self.misses = 0
        self.dropped = 0  # damaged entries deleted (each with one warning)
        self.usable = True
        self._feature_dim = feature_dim  # D of the spec's model; None: read from spec.json when needed
        self._dim_given = feature_dim is not None  # else a fresh put() is the truth about D
        self._warned: set[Path] = set()  # damaged entries already warned about (one warning each)

    def entry_path(self, fingerprint: str) -> Path:
        return self.folder / fingerprint[:2] / f"{fingerprint}.npz"

    def get(self, fingerprint: str, video: str | None = None) -> CachedFeatures | None:
        """The cached features, or None (missing or damaged entry; a damaged one is deleted).

        ``video`` names the video in the warning (default: the file name the entry was made from).
        """
        path = self.entry_path(fingerprint)
        if not self.usable or not path.is_file():
            self.misses += 1
            return None
        try:
            entry = _read_entry(path)
        except Exception as err:  # noqa: BLE001 - any unreadable entry (truncated, not a zip, bad JSON) is damage
            self._drop(path, video, f"it cannot be read ({error_text(err, 120)})")
            return None
        problem = self._entry_problem(entry)
        if problem is not None:
            self._drop(path, video or entry.meta.get("source"), problem)
            return None
        self.hits += 1
        return entry

    def _drop(self, path: Path, video: str | None, problem: str) -> None:
        """Count a damaged entry as a miss, delete it and warn once; the caller computes it again."""
        self.misses += 1
        self.dropped += 1
        try:
            path.unlink()
        except OSError:
            pass  # a read-only cache: the entry stays a miss; put() turns the cache off if it cannot write
        if path in self._warned:
            return
        self._warned.add(path)
        who = f"video {video}" if video else f"the video with fingerprint {path.stem}"
        _log.warning(f"the feature cache entry of {who} is damaged: {problem}; it was dropped and its features "
                     f"are computed again ({path})")

    def _entry_problem(self, entry: CachedFeatures) -> str | None:
        """What is wrong with a cached entry (None: nothing), checked like a feature file on disk."""
        features, times = entry.features, entry.times
        if features.ndim != 2 or features.shape[0] == 0:
            return f"its features have shape {list(features.shape)}, expected [T, D] with T >= 1"
        if features.dtype != np.dtype(self.spec.dtype):
            return f"its features are {features.dtype}, expected {self.spec.dtype}"
        expected_dim = self.expected_dim()
        if expected_dim is not None and features.shape[1] != expected_dim:
            return f"its features are {features.shape[1]}-d, but this CLIP model gives {expected_dim}-d ones"
        if times.shape != (features.shape[0],):
            return f"it has {times.size} feature times for {features.shape[0]} features"
        finite = np.isfinite(features)
        if not finite.all():
            return f"its features hold {features.size - int(np.count_nonzero(finite))} NaN or infinite values"
        if not np.isfinite(times).all() or np.any(np.diff(times) < 0):
            return "its feature times are not finite and increasing"
        lengths = _expected_lengths(self.spec.sampling, entry.meta)
        if lengths and features.shape[0] not in lengths:
            return (f"it has {features.shape[0]} features, but {self.spec.sampling} sampling of its recorded "
                    f"video gives {' or '.join(str(n) for n in sorted(lengths))}")
        return None

    def expected_dim(self) -> int | None:
        """D of the spec's CLIP model: given by the caller, else recorded in ``spec.json``."""
        if self._feature_dim is None:
            self._feature_dim = _recorded_dim(self.folder / "spec.json")
        return self._feature_dim

    def put(self, fingerprint: str, features: np.ndarray, times: np.ndarray, meta: dict[str, Any]) -> Path | None:
        """Store one video's features atomically; returns the entry path (None: cache unusable)."""
        features = np.asarray(features, dtype=np.dtype(self.spec.dtype))
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if features.ndim != 2 or times.shape[0] != features.shape[0]:
            raise ValueError(f"features {features.shape} and times {times.shape} do not match")
        if not self.usable:
            return None
        path = self.entry_path(fingerprint)
        try:
            self._record_dim(int(features.shape[1]))
            with atomic_open(path, "wb") as handle:
                np.savez(handle, features=features, times=times, meta=np.array(json.dumps(meta, ensure_ascii=True)))
        except OSError as err:  # read-only, a file in the way, disk full: go on without the cache
            self.usable = False
            warn_unusable_cache(self.root, err)
            return None
        return path

    def _record_dim(self, dim: int) -> None:
        """Write ``spec.json`` with the width D unless it already says so (entries are checked against it)."""
        spec_file = self.folder / "spec.json"
        if spec_file.is_file() and _recorded_dim(spec_file) == dim:
            return
        write_json(spec_file, {**self.spec.to_dict(), "feature_dim": dim})
        if not self._dim_given:
            self._feature_dim = dim


def _read_entry(path: Path) -> CachedFeatures:
    """The arrays of one entry file as stored (checked by ``FeatureCache._entry_problem``)."""
    with np.load(path, allow_pickle=False) as data:
        features = data["features"]
        times = np.asarray(data["times"], dtype=np.float64).reshape(-1)
        meta = json.loads(str(data["meta"]))
    if not isinstance(meta, dict):
        raise ValueError("its meta is not a JSON object")
    return CachedFeatures(features, times, meta)


def _recorded_dim(spec_file: Path) -> int | None:
    """The ``feature_dim`` that ``spec.json`` records (None: absent, unreadable, or not a width)."""
    try:
        value = json.loads(spec_file.read_text(encoding="utf-8")).get("feature_dim")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _expected_lengths(sampling: str, meta: dict[str, Any]) -> set[int]:
    """The feature counts ``sampling`` gives for the video ``meta`` records (empty: not recorded).

    ``stride=S``: floor(frames / S). ``fps=F``: floor(duration * F), or one per frame when
    F was above the video's own rate (``psftr_core.features.sampling.plan_video``).
    """
    kind, _, value = sampling.partition("=")
    frames, duration = meta.get("frame_length"), meta.get("duration")
    try:
        if kind == "stride" and isinstance(frames, int):
            return {frames // int(value)}
        if kind == "fps" and isinstance(duration, (int, float)) and math.isfinite(duration):
            counts = {int(math.floor(duration * float(value) + 1e-9))}
            return counts | ({frames} if isinstance(frames, int) else set())
    except (ValueError, ZeroDivisionError):
        pass  # a sampling text this version does not know: no check
    return set()
