"""Load a CLIP model through open_clip and encode class prompts (with an on-disk cache).

``load_clip`` resolves three things the user should not have to think about:

* OpenAI weights were trained with QuickGELU. open_clip's plain ``ViT-B-16`` config uses
  GELU and only warns, so we switch to the ``-quickgelu`` architecture (or force
  QuickGELU) whenever the weights are OpenAI's: the ``openai`` tag, a local file whose
  sha256 is the one in OpenAI's download URL (their original TorchScript file), or a
  local file with ``openai`` in its path (the hub's converted state dicts such as
  ``timm/vit_base_patch16_clip_224.openai``) when the model has an ``openai`` tag.
* ``pretrained`` is an open_clip tag (``openai``) or a local weights file (state dict
  ``.pt``/``.bin``/``.pth`` or ``.safetensors``). A local file is identified by its sha256,
  so caches and manifests never confuse two files with the same name.
* Without network, open_clip retries downloads for ~45 s. We look in the local caches
  first and fail at once with a message when the weights cannot be had.

Image features are *not* L2-normalised (``encode_image(normalize=False)``), and neither
are the text embeddings returned by ``encode_texts``: consumers normalise both the same way.
open_clip, torch and huggingface_hub are imported inside functions (import takes ~4 s).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, DEFAULT_PROMPT
from psftr_core.io.atomic import save_npy
from psftr_core.device import resolve_device
from psftr_core.errors import InputError, PsftrError


# Preprocessing keys a pretrained tag may override (see open_clip.pretrained._pcfg).
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@dataclass
class ClipHandle:
    """A loaded CLIP model and everything needed to reproduce its features.

    ``weights_id`` names the weights unambiguously: ``"tag:openai"``,
    ``"sha256:<hex>"`` for a local file, or ``"random"`` for untrained weights.
    ``model_id`` names the architecture: config name plus a hash of the config, so a
    custom config edited in place is a different model.
    """

    model: Any  # open_clip CLIP (torch.nn.Module), eval mode
    preprocess: Callable  # PIL.Image -> FloatTensor [3, H, W] (the model's own transform)
    tokenizer: Callable  # list[str] -> LongTensor [N, context_length]
    model_name: str  # as requested
    architecture: str  # open_clip config actually instantiated (e.g. ViT-B-16-quickgelu)
    pretrained: str | None  # tag, file path, or None for random weights
    weights_id: str
    weights_sha256: str | None
    embed_dim: int
    image_size: tuple[int, int]
    device: Any  # torch.device
    config_sha256: str
    preprocess_cfg: dict = field(default_factory=dict)
    quantized: str | None = None  # "int8" once the image tower is dynamically quantized

    @property
    def model_id(self) -> str:
        return f"{self.architecture}@{self.config_sha256[:12]}"

    def describe(self) -> dict:
        """JSON-ready description for manifests and checkpoints."""
        return {
            "model_name": self.model_name,
            "architecture": self.architecture,
            "config_sha256": self.config_sha256,
            "pretrained": self.pretrained,
            "weights_id": self.weights_id,
            "weights_sha256": self.weights_sha256,
            "embed_dim": self.embed_dim,
            "image_size": list(self.image_size),
            "preprocess": _jsonable(self.preprocess_cfg),
            "transform": repr(self.preprocess),
            "quantized": self.quantized,
        }


def default_cache_dir() -> Path:
    """``$PSFTR_CACHE_DIR``, else ``$XDG_CACHE_HOME/psftr``, else ``~/.cache/psftr``."""
    if os.environ.get("PSFTR_CACHE_DIR"):
        return Path(os.environ["PSFTR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "psftr"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_clip(
    model_name: str = DEFAULT_CLIP_MODEL,
    pretrained: str | None = DEFAULT_CLIP_PRETRAINED,
    config_file: str | os.PathLike | None = None,
    device: str = "cpu",
) -> ClipHandle:
    """Create an open_clip model with its inference transform and tokenizer.

    Args:
        model_name: open_clip architecture name (``ViT-B-16``). With ``config_file``
            the architecture is registered under the file's stem, or under
            ``model_name`` when that is not the default.
        pretrained: open_clip tag (``openai``), a local weights file, or None / "none"
            for random weights.
        config_file: open_clip model-config JSON of a custom architecture.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
    """
    import open_clip  # lazy: slow import
    import torch

    torch_device = torch.device(resolve_device(device))
    architecture = _register_config(model_name, config_file) if config_file else model_name
    if config_file:
        model_name = architecture  # the name the config is registered under, not the --clip-model default
    model_cfg = open_clip.get_model_config(architecture)
    if model_cfg is None:
        raise InputError(
            f"unknown CLIP model {architecture!r}; pick one of open_clip.list_models() "
            "(e.g. ViT-B-16) or pass --clip-config FILE.json"
        )

    weights_file: str | None = None
    weights_sha: str | None = None
    tag_cfg: dict = {}
    weights_only = True
    if pretrained is None or str(pretrained).lower() in ("", "none", "random"):
        pretrained, weights_id = None, "random"
    elif os.path.isfile(pretrained):
        weights_file = str(pretrained)
        weights_sha = file_sha256(weights_file)
        weights_id = f"sha256:{weights_sha}"
        # An official OpenAI download (its URL carries its sha256) is a TorchScript archive
        # trained with QuickGELU: recognise it by hash so it loads like the tag would.
        official_tag = _official_tag_for_hash(architecture, weights_sha)
        if official_tag is not None:
            tag_cfg = open_clip.get_pretrained_cfg(architecture, official_tag)
            weights_only = False  # hash-verified official file, may be TorchScript
        elif "openai" in str(Path(weights_file).resolve()).lower() and open_clip.get_pretrained_cfg(
            architecture, "openai"
        ).get("quick_gelu"):
            # e.g. the hub's timm/vit_base_patch16_clip_224.openai state dict: OpenAI weights
            # converted to open_clip keys (no hash to check against); they need QuickGELU too
            tag_cfg = {"quick_gelu": True}
    elif looks_like_path(pretrained):
        raise InputError(f"CLIP weights file not found: {pretrained}")
    else:
        tag_cfg = open_clip.get_pretrained_cfg(architecture, pretrained)
        if not tag_cfg:
            tags = open_clip.list_pretrained_tags_by_model(architecture)
            raise InputError(
                f"unknown pretrained tag {pretrained!r} for CLIP model {architecture!r} "
                f"(known tags: {', '.join(tags) or 'none'}); give a known tag or a local weights file "
                "with --clip-pretrained"
            )
        weights_id = f"tag:{pretrained}"

    # QuickGELU: the weights decide, not the config name.
    force_quick_gelu = False
    if tag_cfg.get("quick_gelu") and not model_cfg.get("quick_gelu"):
        if f"{architecture}-quickgelu" in open_clip.list_models():
            architecture = f"{architecture}-quickgelu"
            model_cfg = open_clip.get_model_config(architecture)
        else:
            force_quick_gelu = True
            model_cfg["quick_gelu"] = True

    if pretrained is not None and weights_file is None:
        weights_file = _find_or_fail_tag_weights(architecture, pretrained, tag_cfg)
        if _is_torchscript(weights_file):
            # the legacy ~/.cache/clip download of OpenAI weights: load it only if it is genuine
            if _official_tag_for_hash(architecture, file_sha256(weights_file)) is None:
                raise InputError(f"{weights_file} is a TorchScript file that is not the official {pretrained} release")
            weights_only = False

    preprocess_cfg = {k: tag_cfg[k] for k in _PREPROCESS_KEYS if k in tag_cfg}
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            architecture,
            pretrained=weights_file,
            device=torch_device,
            force_quick_gelu=force_quick_gelu,
            image_mean=preprocess_cfg.get("mean"),
            image_std=preprocess_cfg.get("std"),
            image_interpolation=preprocess_cfg.get("interpolation"),
            image_resize_mode=preprocess_cfg.get("resize_mode"),
            weights_only=weights_only,
        )
    except Exception as err:  # torch / safetensors / pickle errors of a bad weights file
        what = f"weights {weights_file}" if weights_file else "random weights"
        raise InputError(
            f"could not load CLIP {architecture} with {what}: {_first_line(err)}; "
            "check that the weights match the architecture (--clip-model / --clip-config)"
        ) from None
    model.eval()
    tokenizer = open_clip.get_tokenizer(architecture)
    image_size = model.visual.image_size
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    return ClipHandle(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        model_name=model_name,
        architecture=architecture,
        pretrained=str(pretrained) if pretrained is not None else None,
        weights_id=weights_id,
        weights_sha256=weights_sha,
        embed_dim=int(model_cfg["embed_dim"]),
        image_size=tuple(int(s) for s in image_size),
        device=torch_device,
        config_sha256=_config_sha256(model_cfg),
        preprocess_cfg=dict(getattr(model.visual, "preprocess_cfg", {}) or {}),
    )


def encode_images(handle: ClipHandle, images: "Any") -> "Any":
    """Image features of preprocessed images. images: [N, 3, H, W] -> FloatTensor [N, D] (cpu)."""
    import torch

    with torch.inference_mode():
        feats = handle.model.encode_image(images.to(handle.device, non_blocking=True))
    return feats.float().cpu()


class FramePreprocess:
    """The model's own transform, split so that batches of frames can be prepared cheaply.

    open_clip's inference transform is ``Compose([Resize, CenterCrop, MaybeConvertMode,
    MaybeToTensor, Normalize])``. ``to_uint8`` runs the PIL steps before ``ToTensor``
    on each frame (uint8 [N, h, w, 3] out, no torch ops, so a decoding thread does not
    compete with the model's threads); ``to_model_input`` does ``ToTensor`` for a whole
    batch (HWC uint8 -> CHW float / 255, the same arithmetic) and then applies the
    transform's remaining steps (``Normalize``) to the batch. The result equals the
    per-frame PIL transform exactly. A transform of another shape falls back to running
    the whole transform per frame.
    """

    def __init__(self, preprocess: Callable) -> None:
        from torchvision.transforms import Compose, ToTensor

        self.preprocess = preprocess
        steps = list(getattr(preprocess, "transforms", []))
        split = next((i for i, t in enumerate(steps) if isinstance(t, ToTensor)), None)
        self.batched = split is not None
        self.pil_steps = Compose(steps[:split]) if self.batched else None
        self.tensor_steps = steps[split + 1 :] if self.batched else []

    def to_uint8(self, frames: np.ndarray) -> "Any":
        """frames uint8 [N, H, W, 3] RGB -> uint8 [N, h, w, 3] (or float [N, 3, h, w] in fallback)."""
        import torch
        from PIL import Image

        if not self.batched:
            return torch.stack([self.preprocess(Image.fromarray(frame)) for frame in frames])
        return np.stack([np.asarray(self.pil_steps(Image.fromarray(frame)), dtype=np.uint8) for frame in frames])

    def to_model_input(self, prepared: "Any", device: "Any" = None) -> "Any":
        """Output of ``to_uint8`` -> float [N, 3, h, w] on ``device``, ready for ``encode_image``.

        On a GPU the uint8 frames are moved first (4x less to copy) and converted there.
        """
        import torch

        if not self.batched:
            return prepared if device is None else prepared.to(device)
        batch = torch.from_numpy(prepared)
        if device is not None:
            batch = batch.to(device)
        batch = batch.permute(0, 3, 1, 2).contiguous()
        batch = batch.to(dtype=torch.get_default_dtype()).div(255)
        for step in self.tensor_steps:
            batch = step(batch)
        return batch


def quantize_image_tower(handle: ClipHandle) -> None:
    """Dynamic int8 quantization of the image tower's Linear layers, in place (CPU only).

    Only the image tower: quantizing the whole model breaks ``encode_text``.
    """
    import torch

    if handle.device.type != "cpu":
        raise InputError("--quantize int8 runs on CPU only; use --device cpu")
    quantize_dynamic = getattr(getattr(torch, "ao", None) and torch.ao.quantization, "quantize_dynamic", None)
    if quantize_dynamic is None:
        raise PsftrError(f"--quantize int8 needs torch.ao.quantization, which torch {torch.__version__} lacks")
    with warnings.catch_warnings():
        # torch marks eager-mode quantization deprecated (in favour of torchao) but ships it
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        handle.model.visual = quantize_dynamic(handle.model.visual, {torch.nn.Linear}, dtype=torch.qint8)
    handle.quantized = "int8"


def encode_texts(
    handle: ClipHandle,
    class_names: Sequence[str],
    prompt: str = DEFAULT_PROMPT,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Text embeddings of ``prompt.format(name)`` for each class. Returns float32 [K, D].

    Not L2-normalised (like the stored image features). With ``cache_dir`` each
    embedding is stored as ``<cache_dir>/text/<key>.npy`` where key hashes model id,
    weights id, prompt and class name; written atomically, so concurrent processes
    can share the cache. Random weights (``weights_id == "random"``) are never cached.
    """
    import torch

    if "{}" not in prompt:
        raise InputError(f"prompt {prompt!r} must contain '{{}}' where the class name goes")
    names = list(class_names)
    out = np.zeros((len(names), handle.embed_dim), dtype=np.float32)
    use_cache = cache_dir is not None and handle.weights_id != "random"
    cache_root = Path(cache_dir) / "text" if use_cache else None

    missing: list[int] = []
    for i, name in enumerate(names):
        if cache_root is not None:
            cached = _read_cached(cache_root / f"{_text_key(handle, prompt, name)}.npy", handle.embed_dim)
            if cached is not None:
                out[i] = cached
                continue
        missing.append(i)

    for start in range(0, len(missing), max(1, batch_size)):
        chunk = missing[start : start + batch_size]
        tokens = handle.tokenizer([prompt.format(names[i]) for i in chunk]).to(handle.device)
        with torch.inference_mode():
            feats = handle.model.encode_text(tokens).float().cpu().numpy()
        for row, i in enumerate(chunk):
            out[i] = feats[row]
            if cache_root is not None:
                save_npy(cache_root / f"{_text_key(handle, prompt, names[i])}.npy", feats[row].copy())
    return out


def looks_like_path(value: str) -> bool:
    """A pretrained value meant as a file (has a separator or a weights suffix)."""
    return os.sep in value or "/" in value or value.lower().endswith(_WEIGHT_SUFFIXES)


# ----------------------------------------------------------------------------- helpers


def _text_key(handle: ClipHandle, prompt: str, name: str) -> str:
    blob = json.dumps([handle.model_id, handle.weights_id, prompt, name], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:40]


def _read_cached(path: Path, dim: int) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # absent or damaged: recompute (and overwrite atomically)
    if arr.shape != (dim,) or not np.all(np.isfinite(arr)):
        return None
    return arr.astype(np.float32)


def _is_torchscript(path: str) -> bool:
    """TorchScript archives (OpenAI's original .pt files) are zips with a constants.pkl."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _register_config(model_name: str, config_file: str | os.PathLike) -> str:
    """Register a model-config JSON with open_clip; return the architecture name."""
    import open_clip

    path = Path(config_file)
    if not path.is_file():
        raise InputError(f"CLIP config file not found: {path}")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"CLIP config {path} is not valid JSON: {_first_line(err)}") from None
    if not isinstance(cfg, dict) or not all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise InputError(f"CLIP config {path} needs the open_clip keys embed_dim, vision_cfg and text_cfg")
    name = model_name if model_name and model_name != DEFAULT_CLIP_MODEL else path.stem
    if name == path.stem:
        open_clip.add_model_config(path)
    else:
        # open_clip names configs by file stem: register a copy under the requested name.
        folder = Path(tempfile.mkdtemp(prefix="psftr-clip-config-"))
        shutil.copyfile(path, folder / f"{name}.json")
        open_clip.add_model_config(folder / f"{name}.json")
    return name


def _official_tag_for_hash(architecture: str, sha256: str) -> str | None:
    """The pretrained tag whose download URL embeds this sha256 (OpenAI releases do)."""
    import open_clip

    for tag in open_clip.list_pretrained_tags_by_model(architecture):
        url = open_clip.get_pretrained_cfg(architecture, tag).get("url", "")
        parts = url.split("/")
        if "openaipublic" in url and len(parts) > 2 and parts[-2] == sha256:
            return tag
    return None


def _find_or_fail_tag_weights(architecture: str, tag: str, tag_cfg: dict) -> str | None:
    """Local file holding the tag's weights; None to let open_clip download; else fail fast.

    Returns the cached file when present (no network touched at all). Otherwise the
    download only goes ahead when the hub is not in offline mode and its host answers
    within a few seconds.
    """
    cached = _cached_tag_file(tag_cfg)
    if cached is not None:
        return cached
    host = "huggingface.co" if tag_cfg.get("hf_hub") else _url_host(tag_cfg.get("url", ""))
    how = (
        f"download them once with network access (they are cached under {_hf_cache_dir()}), "
        "or pass a local weights file with --clip-pretrained PATH (.pt/.bin/.safetensors)"
    )
    if _hub_offline() and tag_cfg.get("hf_hub"):
        raise InputError(f"CLIP weights {architecture}/{tag} are not cached and HF_HUB_OFFLINE is set; {how}")
    if not host or not _host_reachable(host):
        raise InputError(f"CLIP weights {architecture}/{tag} are not cached and {host or 'the server'} cannot be reached; {how}")
    # open_clip itself returns the weights path; we hand it the tag through its own path.
    return _download_tag(architecture, tag, tag_cfg)


def _download_tag(architecture: str, tag: str, tag_cfg: dict) -> str:
    from open_clip.pretrained import download_pretrained

    try:
        path = download_pretrained(tag_cfg)
    except Exception as err:  # network errors come in many types
        raise PsftrError(f"downloading CLIP weights {architecture}/{tag} failed: {_first_line(err)}") from None
    if not path:
        raise PsftrError(f"no download source known for CLIP weights {architecture}/{tag}")
    return str(path)


def _cached_tag_file(tag_cfg: dict) -> str | None:
    hf_hub = tag_cfg.get("hf_hub", "")
    if hf_hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo_id, filename = _split_hub(hf_hub)
            candidates = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            if filename and filename.endswith((".bin", ".pth")):
                candidates.insert(0, filename[:-4] + ".safetensors")
            for name in candidates:
                found = try_to_load_from_cache(repo_id, name, cache_dir=_hf_cache_dir())
                if isinstance(found, str) and os.path.isfile(found):
                    return found
    url = tag_cfg.get("url", "")
    if url:
        legacy = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if legacy.is_file():
            return str(legacy)
    return None


def _split_hub(hf_hub: str) -> tuple[str, str]:
    """'org/repo/' -> ('org/repo', ''); 'org/repo/file.bin' -> ('org/repo', 'file.bin')."""
    repo_id, filename = os.path.split(hf_hub)
    return repo_id, filename


def _hf_cache_dir() -> str:
    """The hub cache, read from the environment at call time (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return os.path.join(home, "hub")


def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants

        return bool(getattr(constants, "HF_HUB_OFFLINE", False))
    except ImportError:
        return False


def _url_host(url: str) -> str:
    from urllib.parse import urlparse

    return urlparse(url).hostname or ""


def _host_reachable(host: str, timeout: float = 3.0) -> bool:
    """TCP connect to host:443 within ``timeout`` (DNS included, via a helper thread)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _config_sha256(model_cfg: dict) -> str:
    blob = json.dumps(model_cfg, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _first_line(err: BaseException, limit: int = 300) -> str:
    """The error as one line (load_state_dict puts the useful part on line 2)."""
    text = " ".join(str(err).split())
    return (text[:limit] + "...") if len(text) > limit else (text or type(err).__name__)
