"""Per-video output files in one folder: ``DIR/<video>.<ext>`` (one file per extension)
plus a completion manifest.

File names (:func:`safe_stem`, :class:`OutputDir`):

- The video id is kept as it is, Unicode included; only what some file system forbids
  becomes ``_``: ``/``, ``\\``, NUL and other control characters, the Windows-reserved
  ``< > : " | ? *``. Trailing dots and spaces (dropped by Windows) become ``_``; a
  leading dot becomes ``_`` (no hidden files, no clash with the manifest); Windows device
  names (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM1``-``COM9``, ``LPT1``-``LPT9``, any
  case, with or without an extension) get a leading ``_``. Names are cut to
  :data:`MAX_STEM_BYTES` bytes of UTF-8 so ``<stem>~<hash>.<ext>`` fits the usual
  255-byte limit.
- Two ids must never share a file, also on case-insensitive file systems (macOS,
  Windows) and ones that normalise Unicode (macOS): names are compared after NFC
  normalisation and case folding. When an id's name is taken, it gets ``~`` and the
  first 8 hex digits of the SHA-256 of the id (``a:b`` -> ``a_b~1f0e3dad``); ids are
  named in sorted order, so the same set of ids always gets the same names. The manifest
  saves the names (with each finished video), so a later run keeps them even for
  another set of ids or other settings.

Feature dataset folders (``psftr extract``) name per-video files by the dataset format,
``features/<video_id>.npy``, which readers look up by id: :func:`video_file_name` keeps
``<id>.<ext>`` whenever that is a legal file name (no ``/`` or NUL, not ``.``/``..``,
valid UTF-8, at most :data:`NAME_MAX_BYTES` bytes), and otherwise falls back to
:func:`safe_stem` plus ``~`` and the id's hash. Ids made by ``psftr_core.features.video``
are always kept (they are plain text, at most 250 bytes). Both rules live here: one
mapping from id to file name, strict (``safe_stem``, ``OutputDir``) or as the dataset
format fixes it (``video_file_name``).

Completion (the manifest ``DIR/.psftr-detect.json``, written atomically): it records a
hash of the run's settings, the videos finished with them (with their file names and a
little information per video, e.g. the duration). A re-run with the same settings skips
a finished video whose files are all still there; a re-run with other settings starts
afresh (the manifest is reset when the folder is opened, before any file is rewritten,
so an interrupted run never mixes settings). Only one process should write a folder at
a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from psftr_core.errors import InputError
from psftr_core.io.atomic import write_json

DETECT_MANIFEST_NAME = ".psftr-detect.json"
MANIFEST_VERSION = 2
MAX_STEM_BYTES = 200  # + "~" + 8 hex digits + "." + extension stays under 255 bytes
NAME_MAX_BYTES = 255  # the usual file-name limit (ext4, XFS, btrfs, APFS, NTFS in UTF-16 units)
HASH_DIGITS = 8

# Control characters (C0, DEL, C1), path separators and the Windows-reserved characters.
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f-\x9f/\\<>:"|?*]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def id_hash(video: str, digits: int = HASH_DIGITS) -> str:
    """First ``digits`` hex digits of the SHA-256 of ``video`` (UTF-8)."""
    return hashlib.sha256(video.encode("utf-8", "surrogatepass")).hexdigest()[:digits]


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_bytes`` of UTF-8."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


def safe_stem(video: str) -> str:
    """A file-name stem for ``video`` that every common file system accepts.

    Not unique by itself: :meth:`OutputDir.path_for` resolves collisions.
    """
    stem = _FORBIDDEN.sub("_", video)
    stem = "".join("_" if unicodedata.category(ch) == "Cs" else ch for ch in stem)  # lone surrogates
    stem = cut_utf8(stem, MAX_STEM_BYTES)
    if not stem:
        return "_"
    if stem.startswith("."):
        stem = "_" + stem[1:]
    stripped = stem.rstrip(". ")
    stem = stripped + "_" * (len(stem) - len(stripped))
    if stem.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        stem = "_" + stem
    return stem


def video_file_name(video: str, extension: str) -> str:
    """The file name of ``video``'s ``extension`` file in a feature dataset folder:
    ``<video>.<extension>`` when that is a legal name, else a safe stem with the id's hash
    (module docstring)."""
    name = f"{video}.{extension}"
    if _is_legal_name(video, name):
        return name
    return f"{safe_stem(video)}~{id_hash(video)}.{extension}"


def _is_legal_name(video: str, name: str) -> bool:
    if not video or video in (".", "..") or "/" in video or "\x00" in video:
        return False
    try:
        return len(name.encode("utf-8")) <= NAME_MAX_BYTES
    except UnicodeEncodeError:  # lone surrogates
        return False


def stem_key(stem: str) -> str:
    """What two file stems are compared by (one file on case-insensitive, normalising
    file systems): NFC-normalised and case-folded."""
    return unicodedata.normalize("NFC", stem).casefold()


def settings_hash(settings: Mapping[str, Any]) -> str:
    """SHA-256 of ``settings`` as canonical JSON (sorted keys; non-JSON values as ``str``)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class OutputDir:
    """A folder of per-video outputs ``<stem>.<extension>`` with a completion manifest.

    ``extensions``: one extension, or several (one file per video and extension, all
    with the same stem; the first is the default of :meth:`path_for`). ``settings`` is
    everything that changes the outputs (actions, thresholds, model, checkpoint,
    sampling, formats...); only its hash is compared. Typical use::

        out = OutputDir(folder, ["srt", "json"], settings)
        out.assign(video_ids)                 # optional: names in sorted order
        for video in video_ids:
            if out.is_complete(video):
                continue
            for ext in out.extensions:        # here each extension is its format's name
                write_video_file(out.path_for(video, ext), ext, video, segments)
            out.mark_complete(video, {"duration": 12.5})

    (``write_video_file`` of ``psftr_core.io.formats``; this module knows no format.)

    Opening creates the folder and (re)writes the manifest when it is missing, unreadable
    or was written with other settings. Raises InputError when ``directory`` is a file.
    """

    def __init__(
        self, directory: str | os.PathLike, extensions: str | Sequence[str], settings: Mapping[str, Any]
    ) -> None:
        self.directory = Path(directory)
        names = [extensions] if isinstance(extensions, str) else list(extensions)
        self.extensions = tuple(dict.fromkeys(ext.lstrip(".") for ext in names))
        for ext in self.extensions:
            if not ext or _FORBIDDEN.search(ext):
                raise ValueError(f"bad file extension {ext!r}")
        if not self.extensions:
            raise ValueError("no file extension given")
        self.extension = self.extensions[0]
        self.settings_hash = settings_hash(settings)
        if self.directory.exists() and not self.directory.is_dir():
            raise InputError(f"output folder {self.directory} is a file, expected a folder")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.directory / DETECT_MANIFEST_NAME
        stems, finished, info, same_settings = self._read_manifest()
        self._stems: dict[str, str] = stems
        self._taken: dict[str, str] = {stem_key(stem): video for video, stem in stems.items()}
        self._finished: dict[str, list[str]] = finished if same_settings else {}
        self._info: dict[str, dict[str, Any]] = info if same_settings else {}
        if not same_settings:
            self._write_manifest()

    # -- manifest

    def _read_manifest(self) -> tuple[dict[str, str], dict[str, list[str]], dict[str, dict[str, Any]], bool]:
        """``(stems, finished, info, same_settings)``; an unusable manifest counts as none."""
        nothing: tuple[dict, dict, dict, bool] = ({}, {}, {}, False)
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return nothing
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
            return nothing
        stems, finished, info = data.get("stems"), data.get("finished"), data.get("info", {})
        if not (_is_str_map(stems) and _is_names_map(finished) and isinstance(info, dict)):
            return nothing
        stems = {video: stem for video, stem in stems.items() if stem and safe_stem(stem) == stem}
        if len({stem_key(stem) for stem in stems.values()}) != len(stems):
            return nothing  # hand-edited into a collision: rename everything
        finished = {video: names for video, names in finished.items() if video in stems}
        info = {video: value for video, value in info.items() if video in finished and isinstance(value, dict)}
        return stems, finished, info, data.get("settings_hash") == self.settings_hash

    def _write_manifest(self) -> None:
        write_json(
            self.manifest_path,
            {
                "version": MANIFEST_VERSION,
                "settings_hash": self.settings_hash,
                "stems": self._stems,
                "finished": self._finished,
                "info": self._info,
            },
        )

    # -- names

    def assign(self, videos: Iterable[str]) -> dict[str, Path]:
        """Give names to ``videos`` in sorted order (stable); returns ``{video: path}``."""
        return {video: self.path_for(video) for video in sorted(set(videos))}

    def path_for(self, video: str, extension: str | None = None) -> Path:
        """The output file of ``video`` (with ``extension``, default the first one): its
        remembered name, else a new unique one."""
        ext = self.extension if extension is None else extension.lstrip(".")
        if ext not in self.extensions:
            raise ValueError(f"extension {ext!r} is not one of this folder's ({', '.join(self.extensions)})")
        stem = self._stems.get(video)
        if stem is None:
            stem = self._new_stem(video)
            self._stems[video] = stem
            self._taken[stem_key(stem)] = video
        return self.directory / f"{stem}.{ext}"

    def paths_for(self, video: str) -> dict[str, Path]:
        """``{extension: path}`` of ``video``'s files."""
        return {ext: self.path_for(video, ext) for ext in self.extensions}

    def _new_stem(self, video: str) -> str:
        base = safe_stem(video)
        if stem_key(base) not in self._taken:
            return base
        for digits in range(HASH_DIGITS, 65, 4):  # longer only on a clash of hash prefixes
            stem = f"{base}~{id_hash(video, digits)}"
            if stem_key(stem) not in self._taken:
                return stem
        raise RuntimeError(f"no free file name for video {video!r}")  # needs a SHA-256 collision

    # -- completion

    def is_complete(self, video: str) -> bool:
        """Was ``video`` finished with these settings, and are all its files still there?"""
        names = self._finished.get(video)
        return names is not None and all((self.directory / name).is_file() for name in names)

    def mark_complete(self, video: str, info: Mapping[str, Any] | None = None) -> None:
        """Record ``video`` as finished (after its files were written); saves the manifest.

        ``info``: a few JSON values to keep with it (see :meth:`info`).
        """
        paths = list(self.paths_for(video).values())
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"output of video {video!r} was not written: {path}")
        self._finished[video] = [path.name for path in paths]
        if info:
            self._info[video] = dict(info)
        else:
            self._info.pop(video, None)
        self._write_manifest()

    def info(self, video: str) -> dict[str, Any]:
        """The ``info`` saved with a finished video (empty if none)."""
        return dict(self._info.get(video, {}))

    def finished(self) -> list[str]:
        """Videos finished with these settings whose file is still there (sorted)."""
        return sorted(video for video in self._finished if self.is_complete(video))


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _is_names_map(value: Any) -> bool:
    """``{video: [file names]}``."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(n, str) for n in v) for k, v in value.items()
    )
