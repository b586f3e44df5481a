"""Video inputs: collect files and give them ids (decoding: ``decoders``; sampling: ``sampling``).

Collection (``collect_videos``): files, folders (recursive; hidden entries skipped),
glob patterns and ``@list.txt`` files (one entry per line, relative to the list's folder,
``#`` comments). Files without a video extension are skipped with a note, and so are
entries found in folders or globs that are not regular files (named pipes, sockets,
devices: never opened, a pipe would block), broken links and symlink loops. Such an
entry named explicitly is bad input (InputError with the reason), like a missing file.
The same file named twice (by resolved path) is used once; a symlink keeps its own name.

Video ids (``assign_video_ids``): the file stem (of the link, for a symlink). When several
inputs share a stem (compared case-insensitively, so ids stay distinct on
case-insensitive file systems) each of them gets ``<stem>-<first 8 hex digits of
sha1(resolved path)>``. The rule depends only on the input list, so every shard of a run
computes the same ids.

Any name the file system allows gives an id (``video_id_of``): a name that is not valid
UTF-8 keeps its other characters and shows each undecodable byte as ``\\xNN`` (Python's
``backslashreplace``: ``bad\\xffname`` for the bytes ``b"bad\\xffname"``), so the id is
plain text that JSON, CSV and terminals take; newlines and other characters are kept as
they are. An id longer than :data:`MAX_ID_BYTES` bytes of UTF-8 (from names close to
the 255-byte limit) is cut and ends in ``~`` and 8 hex digits of the SHA-1 of the whole
stem, so that ``<id>.json`` still fits in a file name. Per-video file names come from the
id by one rule, ``psftr_core.io.output_dir``.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from psftr_core.errors import InputError
from psftr_core.features.decoders import irregular_file_reason, is_utf8
from psftr_core.io.output_dir import cut_utf8

_log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".qt", ".mpg", ".mpeg", ".mpe",
        ".m2v", ".ts", ".mts", ".m2ts", ".flv", ".f4v", ".wmv", ".asf", ".ogv", ".3gp",
        ".3g2", ".vob", ".dv", ".y4m", ".h264", ".hevc",
    }
)
_GLOB_CHARS = set("*?[")
MAX_ID_BYTES = 250  # "<id>.json" fits the usual 255-byte file-name limit


@dataclass(frozen=True)
class VideoInput:
    path: Path  # absolute path as named (a symlink is not replaced by its target)
    video_id: str


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def resolved(path: Path) -> Path:
    """``path`` with symlinks resolved; the absolute path when that fails (a symlink loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: "Symlink loop" before Python 3.13
        return Path(os.path.abspath(path))


def collect_videos(inputs: Sequence[str], exclude: Sequence[str | os.PathLike] = ()) -> tuple[list[Path], list[str]]:
    """Expand inputs into video files (absolute, input order, duplicates once).

    Returns (videos, notes); notes say which files were skipped and why. Folders in
    ``exclude`` (e.g. the output folder) are not searched. A missing path, a glob
    without matches or an unreadable list -> InputError.
    """
    videos: list[Path] = []
    notes: list[str] = []
    seen: set[Path] = set()
    excluded = {resolved(Path(e)) for e in exclude}

    def add_file(path: Path, walked: bool = False) -> None:
        target = resolved(path)
        if target in seen:
            return
        seen.add(target)
        if not is_video_file(path):
            notes.append(f"skipped {path}: not a video file (extension {path.suffix or 'none'})")
            return
        reason = irregular_file_reason(path) if walked else None
        if reason is not None:
            notes.append(f"skipped {path}: {reason}")
            return
        videos.append(Path(os.path.abspath(path)))

    def add_found(path: Path) -> None:
        """A file found in a folder or by a glob (not named by the user)."""
        if path.is_dir():
            for found in _walk_files(path):
                if not excluded or not any(parent in excluded for parent in resolved(found).parents):
                    add_file(found, walked=True)
        else:
            add_file(path, walked=True)

    def add(entry: str, base: Path | None, origin: str) -> None:
        if entry.startswith("@") and base is None:
            _read_list(Path(entry[1:]), add)
            return
        path = Path(os.path.expanduser(entry))
        if base is not None and not path.is_absolute():
            path = base / path
        if path.is_dir():
            add_found(path)
        elif path.exists() or path.is_symlink():
            reason = irregular_file_reason(path)
            if reason is not None:  # named on purpose: bad input, like a missing file
                raise InputError(f"cannot use {path}{origin}: {reason}")
            add_file(path)
        elif _GLOB_CHARS & set(entry):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise InputError(f"no files match {entry}{origin}")
            for match in matches:
                add_found(Path(match))
        else:
            raise InputError(f"input not found: {path}{origin}")

    for item in inputs:
        add(str(item), None, "")
    return videos, notes


def _read_list(list_path: Path, add: Callable[[str, Path, str], None]) -> None:
    """Feed each entry of a ``@list.txt`` file to ``add``."""
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"list file not found: {list_path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read list file {list_path}: {err}") from None
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            add(entry, list_path.parent, f" (line {number} of {list_path})")


def _walk_files(folder: Path) -> Iterator[Path]:
    """Files under folder, recursively, sorted, skipping hidden files and folders."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def printable_name(name: str) -> str:
    """``name`` as plain text: bytes that are not UTF-8 (lone surrogates) become ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace") if not is_utf8(name) else name


def _sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def video_id_of(path: Path, suffix: str = "") -> str:
    """The id of ``path`` (its stem, as plain text) with ``suffix``, cut to MAX_ID_BYTES."""
    stem = printable_name(path.stem)
    if len((stem + suffix).encode("utf-8")) <= MAX_ID_BYTES:
        return stem + suffix
    tail = f"~{_sha1_hex(stem)}{suffix}"
    return cut_utf8(stem, MAX_ID_BYTES - len(tail.encode("utf-8"))) + tail


def assign_video_ids(paths: Sequence[Path]) -> list[VideoInput]:
    """Stable, unique ids (see module docstring). Order follows ``paths``."""
    by_stem: dict[str, int] = {}
    for path in paths:
        key = printable_name(path.stem).lower()
        by_stem[key] = by_stem.get(key, 0) + 1
    out = []
    for path in paths:
        suffix = ""
        if by_stem[printable_name(path.stem).lower()] > 1:
            suffix = "-" + hashlib.sha1(os.fsencode(resolved(Path(path)))).hexdigest()[:8]
        out.append(VideoInput(Path(os.path.abspath(path)), video_id_of(path, suffix)))
    return out


def parse_shard(spec: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The shard (I, N) this process works on.

    ``"I/N"`` -> (I, N). ``None`` -> RANK / WORLD_SIZE when both are set, else (0, 1).
    ``"auto"`` -> :func:`auto_shard` (a Slurm array task, RANK / WORLD_SIZE, or both).
    """
    env = os.environ if env is None else env
    if spec is None:
        if env.get("WORLD_SIZE") and env.get("RANK"):
            return _shard_from_text(f"{env['RANK']}/{env['WORLD_SIZE']}", "RANK/WORLD_SIZE")
        return 0, 1
    if str(spec).strip().lower() == "auto":
        return auto_shard(env)
    return _shard_from_text(spec, "--shard")


def auto_shard(env: Mapping[str, str]) -> tuple[int, int]:
    """``--shard auto``: the shard from the launcher's environment.

    A Slurm array task (``SLURM_ARRAY_TASK_ID`` of ``SLURM_ARRAY_TASK_COUNT``, see
    :func:`slurm_array_shard`) and/or a ``torchrun``-style RANK / WORLD_SIZE. Both set
    (several ranks in each array task) compose: task t, rank r -> t * WORLD_SIZE + r of
    COUNT * WORLD_SIZE, so every video is still taken once. Neither set: (0, 1), with a
    warning, since a job meant to be an array that is not gets every video in each task.
    Half-set or inconsistent variables -> InputError naming them.
    """
    array = slurm_array_shard(env)
    ranks = _rank_shard(env)
    if array is None and ranks is None:
        _log.warning("--shard auto: no Slurm array (SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT) or "
                     "RANK/WORLD_SIZE in the environment; this process takes every video (shard 0/1)")
        return 0, 1
    task, tasks = array or (0, 1)
    rank, world = ranks or (0, 1)
    shard = task * world + rank, tasks * world
    _log.info("--shard auto: shard %d/%d (Slurm array task %d of %d, rank %d of %d)", *shard, task, tasks, rank, world)
    return shard


def slurm_array_shard(env: Mapping[str, str]) -> tuple[int, int] | None:
    """(index, count) of this Slurm array task, or None outside an array.

    Array task ids need not be 0..N-1 (``--array=1-15:2``, ``--array=8-15``): the id maps
    to ``(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP`` (MIN 0
    and STEP 1 when not set), which must be a whole number in 0..COUNT-1, and the array
    must be a regular range: ``(MAX - MIN) / STEP + 1 == COUNT`` when MAX is set. A list
    of ids with gaps (``--array=0,2,7``, or a resubmitted subset of tasks) is refused:
    its tasks would not cover the videos; give ``--shard I/N`` to such a task instead.
    """
    task_id, count = env.get("SLURM_ARRAY_TASK_ID"), env.get("SLURM_ARRAY_TASK_COUNT")
    if not task_id and not count:
        return None
    if not task_id or not count:
        raise InputError("--shard auto: SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT must both be set "
                         f"(got SLURM_ARRAY_TASK_ID={task_id or ''}, SLURM_ARRAY_TASK_COUNT={count or ''})")
    values = {name: _env_int(env, name) for name in _SLURM_ARRAY_VARIABLES if env.get(name)}
    total = values["SLURM_ARRAY_TASK_COUNT"]
    lowest = values.get("SLURM_ARRAY_TASK_MIN", 0)
    step = values.get("SLURM_ARRAY_TASK_STEP", 1)
    shown = " ".join(f"{name}={value}" for name, value in values.items())
    if total < 1 or step < 1:
        raise InputError(f"--shard auto: need SLURM_ARRAY_TASK_COUNT >= 1 and SLURM_ARRAY_TASK_STEP >= 1 ({shown})")
    highest = values.get("SLURM_ARRAY_TASK_MAX")
    if highest is not None and ((highest - lowest) % step or (highest - lowest) // step + 1 != total):
        raise InputError(f"--shard auto: the Slurm array is not a regular range MIN-MAX:STEP of COUNT tasks "
                         f"({shown}); give this task --shard I/N instead")
    offset = values["SLURM_ARRAY_TASK_ID"] - lowest
    if offset % step or not 0 <= offset // step < total:
        raise InputError(f"--shard auto: SLURM_ARRAY_TASK_ID is not one of the array's COUNT task ids "
                         f"MIN, MIN+STEP, ... ({shown})")
    return offset // step, total


_SLURM_ARRAY_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                          "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP")


def _rank_shard(env: Mapping[str, str]) -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) for ``--shard auto``, None when neither is set; half-set -> InputError."""
    rank, world = env.get("RANK"), env.get("WORLD_SIZE")
    if not rank and not world:
        return None
    if not rank or not world:
        raise InputError(f"--shard auto: RANK and WORLD_SIZE must both be set (got RANK={rank or ''}, "
                         f"WORLD_SIZE={world or ''})")
    return _shard_from_text(f"{rank}/{world}", "--shard auto: RANK/WORLD_SIZE")


def _env_int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise InputError(f"--shard auto: {name}={env[name]!r} is not a whole number") from None


def _shard_from_text(spec: str, origin: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N); InputError naming ``origin`` (the flag or the variables)."""
    try:
        index_text, count_text = str(spec).split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        also = " or auto" if origin == "--shard" else ""
        raise InputError(f"{origin} {spec!r}: expected I/N (e.g. 0/4){also}") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"{origin} {spec!r}: need 0 <= I < N")
    return index, count


def shard_videos(videos: Sequence[VideoInput], index: int, count: int) -> list[VideoInput]:
    """Round-robin over videos sorted by id: every video lands in exactly one shard."""
    ordered = sorted(videos, key=lambda v: v.video_id)
    return [v for k, v in enumerate(ordered) if k % count == index]
