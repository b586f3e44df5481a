"""Output paths checked before any work starts: one place, one wording.

A command calls these first thing, for every output it was given, so that a path it
cannot write ends the run at once (exit 2, one line naming the path and why) instead
of after minutes of work, and an earlier result at that path stays as it was::

    from psftr_core.io.paths import prepare_output_dir, prepare_output_file

    results = prepare_output_file(output, "-o")                   # a file to (re)place
    timelines = prepare_output_dir(timeline_dir, "--timeline")    # a folder to fill
    ...                                                           # the work
    write_json(results, data)                                     # psftr_core.io.atomic

``what`` names the output in the message: the flag (``"--timeline"``) or a few words
(``"results file"``). Both functions return the path (``~`` expanded), raise
:class:`~psftr_core.errors.OutputError` (an ``InputError``: exit 2) and create nothing:
a run refused later for another reason leaves no empty folders behind. Missing folders
are created by the writers (``atomic_open``, ``OutputDir``).

Writability is probed by creating and removing a temporary file in the folder (or in
its nearest existing ancestor when the folder is yet to be made): ``os.access`` says
yes for root even in a folder marked immutable (``chattr +i``), where nothing can be
created. The probe cannot foresee a disk that fills during the run; the atomic writers
report that as an ``OutputError`` too, and keep the previous file.

``-`` (stdout) is the caller's business: do not pass it here.

No output may be an input (:func:`refuse_outputs_over_inputs`): a command lists the
files it reads and the files it may write, and an output that is the same file as an
input (same device and inode, through symlinks and hard links) ends the run with exit 2
naming both, before any work.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from psftr_core.errors import InputError, OutputError

PROBE_PREFIX = ".psftr-probe-"

# errno -> why, in words (the rest: the system's own text).
_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (read-only or immutable)",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "symlink loop",
    errno.ENOENT: "does not exist",
    errno.EEXIST: "already exists",
    errno.EFBIG: "file too large",
}


def os_error_reason(err: OSError) -> str:
    """Why ``err`` happened, in a few words (``"read-only file system"``, ...)."""
    reason = _REASONS.get(err.errno) if err.errno is not None else None
    if reason is None:
        reason = (err.strerror or str(err) or type(err).__name__).lower()
    return reason


def output_error(path: str | os.PathLike, what: str, err: OSError | str, code: int | None = None) -> OutputError:
    """``OutputError`` "cannot write PATH (WHAT): REASON" from an ``OSError``, or from a
    reason in words and its errno ``code``."""
    if isinstance(err, OSError):
        reason, code = os_error_reason(err), err.errno
    else:
        reason = err
    label = f" ({what})" if what else ""
    return OutputError(f"cannot write {path}{label}: {reason}", code, reason, str(path))


def write_error(path: str | os.PathLike, err: OSError, what: str = "") -> OutputError:
    """The ``OutputError`` for ``err``, raised while writing the file ``path``: says which
    part is in the way when a folder is where the file goes or a file where a folder
    is meant, else why in words (:func:`os_error_reason`)."""
    path = Path(path)
    if path.is_dir():
        return output_error(path, what, "it is a folder, not a file", errno.EISDIR)
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        return output_error(path, what, f"{existing} is a file, not a folder", errno.ENOTDIR)
    return output_error(path, what, err)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``.`` for a relative path with none)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _probe_folder(folder: Path, path: Path, what: str) -> None:
    """Create and remove a temporary file in ``folder``: OutputError for ``path`` if that fails."""
    try:
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folder)
    except OSError as err:
        where = "" if folder == path else f" in {folder}"
        raise output_error(path, what, f"cannot create files{where}: {os_error_reason(err)}", err.errno) from None
    os.close(fd)
    os.unlink(probe)


def _check_folder_to_be(path: Path, what: str, target: Path) -> None:
    """``path`` is, or can become, a folder we can write in; errors name ``target``."""
    existing = _nearest_existing(path)
    try:
        is_dir = existing.is_dir()
    except OSError as err:  # e.g. a symlink loop
        raise output_error(target, what, f"{existing}: {os_error_reason(err)}", err.errno) from None
    if not is_dir:
        name = "it" if existing == target else str(existing)
        if os.path.islink(existing) and not existing.exists():
            raise output_error(target, what, f"{name} is a symlink to nothing (broken or a loop)", errno.ENOENT)
        raise output_error(target, what, f"{name} is a file, not a folder", errno.ENOTDIR)
    _probe_folder(existing, target, what)


def prepare_output_file(path: str | os.PathLike, what: str) -> Path:
    """Check that the file ``path`` can be written (created or atomically replaced).

    Refused: ``path`` is a folder; an ancestor is a file; no file can be created in its
    folder (read-only, immutable, permission denied); an existing ``path`` that is not
    writable (read-only). Returns ``path``; creates nothing.
    """
    path = Path(path).expanduser()
    _check_folder_to_be(path.parent, what, path)
    if path.is_dir():
        raise output_error(path, what, "it is a folder, not a file", errno.EISDIR)
    if path.exists() and not os.access(path, os.W_OK):
        raise output_error(path, what, "the file is read-only", errno.EACCES)
    return path


def prepare_output_dir(path: str | os.PathLike, what: str) -> Path:
    """Check that ``path`` is, or can be made, a folder to write files in.

    Refused: ``path`` (or an ancestor) is a file; no file can be created in it (or,
    while it does not exist, in its nearest existing ancestor). Returns ``path``;
    creates nothing.
    """
    path = Path(path).expanduser()
    _check_folder_to_be(path, what, path)
    return path


# ----------------------------------------------------------------------------- outputs vs inputs


def file_identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the regular file ``path`` is, or links to; None for anything
    else (missing, a folder, a device or FIFO: writing one replaces no file)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def files_in(folder: str | os.PathLike, extensions: Iterable[str] = ()) -> list[Path]:
    """The entries of ``folder`` (not recursive) ending in one of ``extensions`` (all
    entries when none): the files an output folder may overwrite. Empty when it is not a folder."""
    suffixes = tuple(f".{ext.lstrip('.')}".lower() for ext in extensions)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [Path(folder) / name for name in sorted(names) if not suffixes or name.lower().endswith(suffixes)]


def files_under(folder: str | os.PathLike) -> list[Path]:
    """Every file below ``folder`` (recursive, links not followed into folders)."""
    found = []
    for root, _dirs, names in os.walk(folder):
        found.extend(Path(root) / name for name in names)
    return found


def refuse_outputs_over_inputs(
    outputs: Mapping[str, str | os.PathLike | Iterable[str | os.PathLike] | None],
    inputs: Iterable[str | os.PathLike | None],
) -> None:
    """InputError (exit 2) naming both when an output would write over an input file.

    ``outputs``: ``{flag: path or paths}`` (for a folder output, the files in it that the
    run may write: see :func:`files_in`). ``inputs``: every file the run reads. Files are
    compared by device and inode after following symlinks, so a link or a hard link to
    an input counts as the input; outputs that do not exist yet, folders, devices and
    FIFOs never do. Call it once the inputs are listed, before any work.
    """
    by_identity: dict[tuple[int, int], Path] = {}
    for path in inputs:
        identity = None if path is None else file_identity(path)
        if identity is not None:
            by_identity.setdefault(identity, Path(path))
    if not by_identity:
        return
    for flag, paths in outputs.items():
        for output in _as_paths(paths):
            source = by_identity.get(file_identity(output))  # type: ignore[arg-type]
            if source is not None:
                what = "an input" if os.path.abspath(output) == os.path.abspath(source) else f"the input {source}"
                raise InputError(
                    f"{flag} {output} is {what} of this run (the same file): writing it would replace the input; "
                    "choose another output path"
                )


def _as_paths(value: str | os.PathLike | Iterable[str | os.PathLike] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value]
