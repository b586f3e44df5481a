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

Entries are written atomically; an unreadable entry counts as a miss and is replaced.
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
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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

    def __init__(self, root: str | os.PathLike | None, spec: FeatureSpec):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.spec = spec
        self.folder = self.root / "features" / spec.key()
        self.hits = 0
        self.misses = 0
        self.usable = True

    def entry_path(self, fingerprint: str) -> Path:
        return self.folder / fingerprint[:2] / f"{fingerprint}.npz"

    def get(self, fingerprint: str) -> CachedFeatures | None:
        """The cached features, or None (missing or unreadable entry)."""
        path = self.entry_path(fingerprint)
        if not self.usable or not path.is_file():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                features = data["features"]
                times = data["times"].astype(np.float64)
                meta = json.loads(str(data["meta"]))
            if features.ndim != 2 or times.shape != (features.shape[0],):
                raise ValueError("shape mismatch")
        except Exception:  # a truncated/corrupt entry is just a miss; it gets rewritten
            self.misses += 1
            return None
        self.hits += 1
        return CachedFeatures(features, times, meta)

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
            spec_file = self.folder / "spec.json"
            if not spec_file.is_file():
                write_json(spec_file, self.spec.to_dict())
            with atomic_open(path, "wb") as handle:
                np.savez(handle, features=features, times=times, meta=np.array(json.dumps(meta, ensure_ascii=True)))
        except OSError as err:  # read-only, a file in the way, disk full: go on without the cache
            self.usable = False
            warn_unusable_cache(self.root, err)
            return None
        return path
