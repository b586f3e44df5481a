"""Where a CLIP model's weights come from: an open_clip tag, a local file, or none.

* ``pretrained`` is an open_clip tag (``openai``) or a local weights file (state dict
  ``.pt``/``.bin``/``.pth`` or ``.safetensors``). A local file is identified by its sha256,
  so caches and manifests never confuse two files with the same name.
* OpenAI weights were trained with QuickGELU. ``identify_weights`` recognises them (the
  ``openai`` tag; a local file whose sha256 is the one in OpenAI's download URL, i.e.
  their original TorchScript file; a local file with ``openai`` in its path, such as
  the hub's converted ``timm/vit_base_patch16_clip_224.openai``, when the model has an
  ``openai`` tag) and marks them so that ``load_clip`` builds the QuickGELU variant.
* ``locate_tag_weights`` looks in the local caches first (no network touched); a download
  goes through the hub client, which honours HF_HUB_OFFLINE, proxy settings
  (``HTTPS_PROXY``, ...) and its own timeouts and retries; its failure becomes one line
  saying how to provide the weights.
* A local torch weights file is loaded with ``weights_only=True``; one that holds other
  Python objects (a pickle that would run code) is refused in psftr's words, naming the
  file (:func:`refuse_unsafe_weights`), never with torch's advice to turn that off.

open_clip and huggingface_hub are imported inside functions (slow imports).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from psftr_core.errors import InputError, PsftrError, error_text
from psftr_core.io.safe_load import check_tensors_only

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_NO_CODE_SUFFIXES = (".safetensors", ".npz", ".npy")  # read by open_clip without unpickling


@dataclass
class WeightsSource:
    """The weights to load into a model, and how to name and load them.

    ``weights_id`` names them unambiguously: ``"tag:openai"``, ``"sha256:<hex>"`` for a
    local file, or ``"random"`` for untrained weights.
    """

    pretrained: str | None  # tag, file path, or None for random weights
    weights_id: str
    file: str | None = None  # the file to load; None for random weights or a tag not located yet
    sha256: str | None = None  # of a local file given by the user
    tag_cfg: dict = field(default_factory=dict)  # open_clip pretrained config (url, hf_hub, quick_gelu, mean, ...)
    weights_only: bool = True  # torch.load(weights_only=...); False only for hash-verified OpenAI TorchScript

    @property
    def quick_gelu(self) -> bool:
        """The weights were trained with QuickGELU (OpenAI's)."""
        return bool(self.tag_cfg.get("quick_gelu"))


def identify_weights(architecture: str, pretrained: str | None) -> WeightsSource:
    """What ``pretrained`` (a tag, a local file, or None / "none" / "random") refers to."""
    import open_clip

    if pretrained is None or str(pretrained).lower() in ("", "none", "random"):
        return WeightsSource(None, "random")
    if os.path.isfile(pretrained):
        sha = file_sha256(pretrained)
        weights = WeightsSource(str(pretrained), f"sha256:{sha}", file=str(pretrained), sha256=sha)
        # An official OpenAI download (its URL carries its sha256) is a TorchScript archive
        # trained with QuickGELU: recognise it by hash so it loads like the tag would.
        official_tag = official_tag_for_hash(architecture, sha)
        if official_tag is not None:
            weights.tag_cfg = open_clip.get_pretrained_cfg(architecture, official_tag)
            weights.weights_only = False  # hash-verified official file, may be TorchScript
        elif "openai" in str(Path(pretrained).resolve()).lower() and open_clip.get_pretrained_cfg(
            architecture, "openai"
        ).get("quick_gelu"):
            # e.g. the hub's timm/vit_base_patch16_clip_224.openai state dict: OpenAI weights
            # converted to open_clip keys (no hash to check against); they need QuickGELU too
            weights.tag_cfg = {"quick_gelu": True}
        refuse_unsafe_weights(weights)
        return weights
    if looks_like_path(pretrained):
        raise InputError(f"CLIP weights file not found: {pretrained}")
    tag_cfg = open_clip.get_pretrained_cfg(architecture, pretrained)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(architecture)
        raise InputError(
            f"unknown pretrained tag {pretrained!r} for CLIP model {architecture!r} "
            f"(known tags: {', '.join(tags) or 'none'}); give a known tag or a local weights file "
            "with --clip-pretrained"
        )
    return WeightsSource(str(pretrained), f"tag:{pretrained}", tag_cfg=tag_cfg)


def locate_tag_weights(weights: WeightsSource, architecture: str) -> None:
    """Set ``weights.file`` for a tag: the cached file, else a download; fail fast without either.

    ``architecture`` is the one that will be built (the ``-quickgelu`` variant for OpenAI
    weights). Does nothing for random weights or a local file.
    """
    if weights.pretrained is None or weights.file is not None:
        return
    weights.file = _find_or_fail_tag_weights(architecture, weights.pretrained, weights.tag_cfg)
    if is_torchscript(weights.file):
        # the legacy ~/.cache/clip download of OpenAI weights: load it only if it is genuine
        if official_tag_for_hash(architecture, file_sha256(weights.file)) is None:
            raise InputError(
                f"{weights.file} is a TorchScript file that is not the official {weights.pretrained} release"
            )
        weights.weights_only = False


def refuse_unsafe_weights(weights: WeightsSource) -> None:
    """InputError naming the file when a local torch weights file holds Python objects (it
    would run code), in psftr's words: open_clip would pass on torch's advice to load it
    with ``weights_only=False``. Safetensors and numpy files hold no code; a hash-verified
    official TorchScript file is trusted."""
    path = weights.file
    if path is None or not weights.weights_only or path.lower().endswith(_NO_CODE_SUFFIXES) or is_torchscript(path):
        return
    check_tensors_only(path, "CLIP weights file")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def looks_like_path(value: str) -> bool:
    """A pretrained value meant as a file (has a separator or a weights suffix)."""
    return os.sep in value or "/" in value or value.lower().endswith(_WEIGHT_SUFFIXES)


def is_torchscript(path: str) -> bool:
    """TorchScript archives (OpenAI's original .pt files) are zips with a constants.pkl."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def official_tag_for_hash(architecture: str, sha256: str) -> str | None:
    """The pretrained tag whose download URL embeds this sha256 (OpenAI releases do)."""
    import open_clip

    for tag in open_clip.list_pretrained_tags_by_model(architecture):
        url = open_clip.get_pretrained_cfg(architecture, tag).get("url", "")
        parts = url.split("/")
        if "openaipublic" in url and len(parts) > 2 and parts[-2] == sha256:
            return tag
    return None


# ----------------------------------------------------------------------------- tag weights


def _find_or_fail_tag_weights(architecture: str, tag: str, tag_cfg: dict) -> str:
    """Local file holding the tag's weights, downloaded if need be; else an InputError.

    Returns the cached file when present (no network touched at all). Otherwise hub
    weights are downloaded with ``hf_hub_download`` (offline mode, proxies, timeouts and
    retries are the hub client's own); other tags with open_clip's downloader.
    """
    cached = cached_tag_file(tag_cfg)
    if cached is not None:
        return cached
    how = (
        f"download them once with network access (they are cached under {hf_cache_dir()}), "
        "or pass a local weights file with --clip-pretrained PATH (.pt/.bin/.safetensors)"
    )
    if tag_cfg.get("hf_hub"):
        if hub_offline():
            raise InputError(f"CLIP weights {architecture}/{tag} are not cached and HF_HUB_OFFLINE is set; {how}")
        return _download_from_hub(f"{architecture}/{tag}", tag_cfg["hf_hub"], how)
    return _download_tag(architecture, tag, tag_cfg)


def _download_from_hub(name: str, hf_hub: str, how: str) -> str:
    """The first of the repo's candidate weights files that the hub serves (now cached)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, OfflineModeIsEnabled

    repo_id, filename = _split_hub(hf_hub)
    for candidate in hub_filenames(filename):
        try:
            return str(hf_hub_download(repo_id, candidate, cache_dir=hf_cache_dir()))
        except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
            # Not cached and the hub did not answer (after the client's own retries); the
            # cause says why, e.g. "[Errno 111] Connection refused" from a proxy.
            reason = error_text(err.__cause__ or err, limit=160)
            raise InputError(f"CLIP weights {name} are not cached and the hub cannot be reached ({reason}); {how}") from None
        except EntryNotFoundError:
            continue  # the repo has no file of this name: try the next
        except Exception as err:  # HTTP errors (gated, missing repo, server): one line
            raise PsftrError(f"downloading CLIP weights {name} failed: {error_text(err)}") from None
    raise PsftrError(f"no weights file ({', '.join(hub_filenames(filename))}) in the hub repo {repo_id} of {name}")


def _download_tag(architecture: str, tag: str, tag_cfg: dict) -> str:
    from open_clip.pretrained import download_pretrained

    try:
        path = download_pretrained(tag_cfg)
    except Exception as err:  # network errors come in many types
        raise PsftrError(f"downloading CLIP weights {architecture}/{tag} failed: {error_text(err)}") from None
    if not path:
        raise PsftrError(f"no download source known for CLIP weights {architecture}/{tag}")
    return str(path)


def cached_tag_file(tag_cfg: dict) -> str | None:
    """The tag's weights file in the hub cache or the legacy ``~/.cache/clip``, if there."""
    hf_hub = tag_cfg.get("hf_hub", "")
    if hf_hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo_id, filename = _split_hub(hf_hub)
            for name in hub_filenames(filename):
                found = try_to_load_from_cache(repo_id, name, cache_dir=hf_cache_dir())
                if isinstance(found, str) and os.path.isfile(found):
                    return found
    url = tag_cfg.get("url", "")
    if url:
        legacy = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if legacy.is_file():
            return str(legacy)
    return None


def hub_filenames(filename: str) -> list[str]:
    """Weights files to look for in a hub repo, preferred first (safetensors before pickles)."""
    if not filename:
        return ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def _split_hub(hf_hub: str) -> tuple[str, str]:
    """'org/repo/' -> ('org/repo', ''); 'org/repo/file.bin' -> ('org/repo', 'file.bin')."""
    repo_id, filename = os.path.split(hf_hub)
    return repo_id, filename


def hf_cache_dir() -> str:
    """The hub cache, read from the environment at call time (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return os.path.join(home, "hub")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set (in the environment or huggingface_hub's constants)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants

        return bool(getattr(constants, "HF_HUB_OFFLINE", False))
    except ImportError:
        return False
