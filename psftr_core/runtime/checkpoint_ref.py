"""Where a ``--checkpoint`` argument points: a local file, a hub reference or a URL.

* ``PATH``: a local checkpoint file (or a run directory, where the command takes one).
* ``hf:OWNER/REPO/FILE[@REVISION]``: a file of a Hugging Face model repo (FILE may hold
  slashes: ``hf:me/psftr-thumos/split_0/last.pt``; REVISION a branch, tag or commit,
  default ``main``), fetched by ``huggingface_hub.hf_hub_download`` into the hub cache
  (``HF_HUB_CACHE``, ``HF_HOME``). With ``HF_HUB_OFFLINE=1`` only the cache is read.
* ``https://...`` (or ``http://``): downloaded once into
  ``<psftr cache>/checkpoints/<sha256>/<name>`` (:func:`~psftr_core.features.cache.default_cache_dir`),
  with its SHA-256 required up front: the download goes to a temporary file, is hashed on
  the way, and is renamed into the cache only when the hash matches; a mismatch leaves
  nothing behind. A cached copy is hashed again before each use. ``HF_HUB_OFFLINE=1``
  forbids the download here too.

``sha256`` (``--checkpoint-sha256``) is checked for every kind when given, before the
file is loaded; loading stays with :func:`psftr_core.runtime.checkpoint.load_checkpoint`
(``weights_only``). Every failure is one line naming the argument; bad references and
checksum mismatches are ``InputError`` (exit 2), a network failure ``PsftrError`` (1).
huggingface_hub and urllib are imported inside functions (slow imports).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from psftr_core.errors import InputError, PsftrError, error_text
from psftr_core.features.cache import default_cache_dir
from psftr_core.features.clip_weights import file_sha256, hf_cache_dir, hub_offline
from psftr_core.io.atomic import atomic_open

_log = logging.getLogger(__name__)

HUB_PREFIX = "hf:"
URL_SCHEMES = ("https://", "http://")
DOWNLOAD_TIMEOUT_S = 60.0  # per socket operation (connect, each read), not for the whole file
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")  # two letters at least: C:\ is a path
HUB_FORM = "hf:OWNER/REPO/FILE[@REVISION], e.g. hf:me/psftr-thumos14/split_0/last.pt"


@dataclass(frozen=True)
class HubRef:
    """``hf:OWNER/REPO/FILE[@REVISION]`` split into its parts."""

    repo_id: str
    filename: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{HUB_PREFIX}{self.repo_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")


def is_remote(ref: str | os.PathLike) -> bool:
    """Whether ``ref`` names a checkpoint by reference (hub or URL), not a local path."""
    text = os.fspath(ref)
    return text.startswith(HUB_PREFIX) or bool(_SCHEME.match(text))


def check_reference(ref: str | os.PathLike, option: str = "--checkpoint") -> None:
    """Raise InputError for a malformed reference now, before any work (no download)."""
    text = os.fspath(ref)
    if text.startswith(HUB_PREFIX):
        parse_hub_ref(text, option)
    elif _SCHEME.match(text) and not text.lower().startswith(URL_SCHEMES):
        scheme = text.split("://", 1)[0]
        raise InputError(f"{option} {text}: unknown scheme '{scheme}://'; give a local file, {HUB_FORM}, "
                         "or an https:// URL with --checkpoint-sha256")


def parse_hub_ref(text: str, option: str = "--checkpoint") -> HubRef:
    """``hf:OWNER/REPO/FILE[@REVISION]`` (``hf://`` too) -> :class:`HubRef`; InputError when malformed."""
    body = text[len(HUB_PREFIX):].removeprefix("//")
    path, _, revision = body.rpartition("@") if "@" in body else (body, "", "")
    parts = path.split("/")
    if len(parts) < 3 or any(p in ("", ".", "..") for p in parts) or (("@" in body) and not revision):
        raise InputError(f"{option} {text}: a hub reference is {HUB_FORM}")
    return HubRef(f"{parts[0]}/{parts[1]}", "/".join(parts[2:]), revision or None)


def normalise_sha256(value: str | None, option: str = "--checkpoint-sha256") -> str | None:
    """64 hex digits in lower case (a ``sha256:`` prefix allowed), or None; InputError otherwise."""
    if value is None:
        return None
    digest = value.strip().lower().removeprefix("sha256:")
    if not _SHA256.fullmatch(digest):
        raise InputError(f"{option} {value!r} is not a SHA-256 (64 hexadecimal digits)")
    return digest


def resolve_checkpoint_ref(ref: str | os.PathLike, sha256: str | None = None, *, cache_dir: Any = None,
                       option: str = "--checkpoint") -> Path:
    """The local file (or, for a local path, folder) ``ref`` names, fetched if need be and
    checked against ``sha256`` when given (module docstring). ``cache_dir``: the psftr
    cache root for URL downloads (default :func:`default_cache_dir`)."""
    check_reference(ref, option)
    digest = normalise_sha256(sha256)
    text = os.fspath(ref)
    if text.startswith(HUB_PREFIX):
        path = _hub_file(parse_hub_ref(text, option), option)
    elif text.lower().startswith(URL_SCHEMES):
        if digest is None:
            raise InputError(f"{option} {text}: a URL needs --checkpoint-sha256 HEX (the file's SHA-256), "
                             "checked before it is loaded")
        return _url_file(text, digest, _cache_root(cache_dir), option)
    else:
        path = Path(text)
    if digest is not None:
        _check_local_digest(path, digest, text, option)
    return path


# --------------------------------------------------------------------------- hub


def _hub_file(ref: HubRef, option: str) -> Path:
    """The hub file in the local hub cache, downloaded there first unless offline."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    offline = hub_offline()
    try:
        return Path(hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision, cache_dir=hf_cache_dir(),
                                    local_files_only=offline))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        why = "HF_HUB_OFFLINE is set" if offline else \
            f"the hub cannot be reached ({error_text(err.__cause__ or err, limit=160)})"
        raise InputError(f"{option} {ref}: not in the local hub cache ({hf_cache_dir()}) and {why}; run once "
                         "online, or set HF_HUB_CACHE (or HF_HOME) to a cache that holds it") from None
    except RepositoryNotFoundError:
        raise InputError(f"{option} {ref}: the hub has no repo {ref.repo_id} (or it is private or gated: "
                         "log in with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise InputError(f"{option} {ref}: the repo {ref.repo_id} has no revision {ref.revision}") from None
    except EntryNotFoundError:
        raise InputError(f"{option} {ref}: the repo {ref.repo_id} has no file {ref.filename}") from None
    except Exception as err:  # HTTP and network errors come in many types: one line
        raise PsftrError(f"{option} {ref}: downloading from the hub failed: {error_text(err)}") from None


# --------------------------------------------------------------------------- URL


def _cache_root(cache_dir: Any) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def url_cache_path(url: str, sha256: str, cache_root: str | os.PathLike) -> Path:
    """Where a URL's file is kept: keyed by its content (the SHA-256), named as the URL names it."""
    from urllib.parse import unquote, urlsplit

    name = os.path.basename(unquote(urlsplit(url).path))
    if not re.fullmatch(r"[A-Za-z0-9._+-]{1,200}", name) or name.startswith("."):
        name = "checkpoint.pt"  # no usable name in the URL: a plain one
    return Path(cache_root) / "checkpoints" / sha256 / name


def _url_file(url: str, sha256: str, cache_root: Path, option: str) -> Path:
    """The URL's file from the psftr cache, downloaded there first if absent (or damaged)."""
    target = url_cache_path(url, sha256, cache_root)
    if target.is_file():
        if file_sha256(target) == sha256:
            return target
        _log.warning("the cached copy %s of %s is damaged (another SHA-256); downloading it again", target, url)
        with contextlib.suppress(OSError):
            target.unlink()
    if hub_offline():
        raise InputError(f"{option} {url}: not in the psftr cache ({target.parent}) and HF_HUB_OFFLINE is set; "
                         "run once online")
    try:
        _download(url, target, sha256, option)
    except BaseException:
        with contextlib.suppress(OSError):
            target.parent.rmdir()  # only when empty: a failed download leaves no trace
        raise
    return target


class _ReadFailed(Exception):
    """Reading the response failed (kept apart from OSError, which atomic_open calls a write error)."""


def _download(url: str, target: Path, sha256: str, option: str) -> None:
    """Stream ``url`` to a temporary file next to ``target``, hashing it; rename it to
    ``target`` only when the hash is ``sha256`` (atomic_open removes it otherwise)."""
    import urllib.error
    import urllib.request

    from psftr_core import __version__

    _log.info("downloading %s to %s", url, target)
    request = urllib.request.Request(url, headers={"User-Agent": f"psftr/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                atomic_open(target, "wb") as out:
            digest = hashlib.sha256()
            for chunk in _chunks(response):
                digest.update(chunk)
                out.write(chunk)
            if digest.hexdigest() != sha256:
                raise InputError(f"{option} {url}: the downloaded file's SHA-256 is {digest.hexdigest()}, not the "
                                 f"--checkpoint-sha256 {sha256}; nothing was loaded or kept")
    except urllib.error.HTTPError as err:
        raise InputError(f"{option} {url}: the server answered HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise PsftrError(f"{option} {url}: cannot download it ({error_text(err.reason)})") from None
    except (_ReadFailed, TimeoutError) as err:
        raise PsftrError(f"{option} {url}: the download broke off ({error_text(err.__cause__ or err)})") from None


def _chunks(response: Any) -> Iterator[bytes]:
    import http.client

    while True:
        try:
            chunk = response.read(_CHUNK)
        except (OSError, http.client.HTTPException) as err:  # timeout, reset, short body
            raise _ReadFailed(error_text(err)) from err
        if not chunk:
            return
        yield chunk


# --------------------------------------------------------------------------- checksum


def _check_local_digest(path: Path, sha256: str, ref: str, option: str) -> None:
    """The file's SHA-256 is ``sha256``, else InputError (the file is left as it is, not loaded)."""
    if not path.is_file():
        what = "is a folder: --checkpoint-sha256 needs a checkpoint file" if path.is_dir() else "does not exist"
        raise InputError(f"{option} {ref}: {path} {what}")
    try:
        actual = file_sha256(path)
    except OSError as err:
        raise InputError(f"{option} {ref}: cannot read {path} ({error_text(err)})") from None
    if actual != sha256:
        raise InputError(f"{option} {ref}: the file's SHA-256 is {actual}, not the --checkpoint-sha256 {sha256}; "
                         "it was not loaded")
