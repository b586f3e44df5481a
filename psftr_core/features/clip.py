"""Load a CLIP model through open_clip and encode images and class prompts.

``load_clip`` builds the model the weights were trained for: where the weights come from
(tag, local file, caches) and whether they are OpenAI's (QuickGELU) is decided in
``psftr_core.features.clip_weights``; a ``ClipHandle`` keeps the model with everything
that names its features (architecture and config hash, weights id, preprocessing).

Image features are *not* L2-normalised (``encode_image(normalize=False)``), and neither
are the text embeddings returned by ``encode_texts``: consumers normalise both the same way.
open_clip and torch are imported inside functions (import takes ~4 s).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, DEFAULT_PROMPT
from psftr_core.device import resolve_device
from psftr_core.errors import InputError, PsftrError, error_text
from psftr_core.features.cache import warn_unusable_cache
from psftr_core.features.compute_dtype import torch_dtype
from psftr_core.features.clip_weights import WeightsSource, identify_weights, locate_tag_weights
from psftr_core.io.atomic import save_npy
from psftr_core.io.json_file import read_json_file
from psftr_core.io.safe_load import damaged_file_message, not_plain_weights_message, refused_by_weights_only

# Preprocessing keys a pretrained tag may override (see open_clip.pretrained._pcfg).
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


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
    image_dtype: str = "float32"  # what the image tower's weights are (cast_image_tower)

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
            "image_dtype": self.image_dtype,
        }


def same_clip_model(a: str, b: str) -> bool:
    """Whether two open_clip model names give the same features (``ViT-B/16`` =
    ``ViT-B-16`` = ``ViT-B-16-quickgelu``: the weights decide the activation)."""

    def norm(name: str) -> str:
        return name.replace("/", "-").lower().removesuffix("-quickgelu")

    return norm(a) == norm(b)


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
    import torch

    torch_device = torch.device(resolve_device(device))
    if config_file:
        # the name the config is registered under, not the --clip-model default
        model_name = _register_config(model_name, config_file)
    model_cfg = _model_config(model_name)
    weights = identify_weights(model_name, pretrained)
    architecture, model_cfg, force_quick_gelu = _architecture_for_weights(model_name, model_cfg, weights)
    locate_tag_weights(weights, architecture)
    model, preprocess = _create_model(architecture, weights, torch_device, force_quick_gelu)
    return _make_handle(model, preprocess, model_name, architecture, model_cfg, weights, torch_device)


def _model_config(architecture: str) -> dict:
    import open_clip

    model_cfg = open_clip.get_model_config(architecture)
    if model_cfg is None:
        raise InputError(
            f"unknown CLIP model {architecture!r}; pick one of open_clip.list_models() "
            "(e.g. ViT-B-16) or pass --clip-config FILE.json"
        )
    return model_cfg


def _architecture_for_weights(architecture: str, model_cfg: dict, weights: WeightsSource) -> tuple[str, dict, bool]:
    """QuickGELU: the weights decide, not the config name.

    Returns (architecture, its config, force_quick_gelu): the ``-quickgelu`` variant of
    the architecture when open_clip has one, else the same one with QuickGELU forced.
    """
    import open_clip

    if not weights.quick_gelu or model_cfg.get("quick_gelu"):
        return architecture, model_cfg, False
    if f"{architecture}-quickgelu" in open_clip.list_models():
        variant = f"{architecture}-quickgelu"
        return variant, open_clip.get_model_config(variant), False
    model_cfg["quick_gelu"] = True
    return architecture, model_cfg, True


def _create_model(architecture: str, weights: WeightsSource, device: Any, force_quick_gelu: bool) -> tuple[Any, Any]:
    """(model in eval mode, its inference transform); InputError when the weights do not fit."""
    import open_clip

    preprocess_cfg = {k: weights.tag_cfg[k] for k in _PREPROCESS_KEYS if k in weights.tag_cfg}
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            architecture,
            pretrained=weights.file,
            device=device,
            force_quick_gelu=force_quick_gelu,
            image_mean=preprocess_cfg.get("mean"),
            image_std=preprocess_cfg.get("std"),
            image_interpolation=preprocess_cfg.get("interpolation"),
            image_resize_mode=preprocess_cfg.get("resize_mode"),
            weights_only=weights.weights_only,
        )
    except Exception as err:  # torch / safetensors / pickle errors of a bad weights file
        if weights.file and "weights_only" in str(err):  # torch's advice to unpickle anything: never passed on
            if refused_by_weights_only(err):
                raise InputError(not_plain_weights_message(weights.file, "CLIP weights file")) from None
            raise InputError(damaged_file_message(weights.file, "CLIP weights file")) from None
        what = f"weights {weights.file}" if weights.file else "random weights"
        raise InputError(
            f"could not load CLIP {architecture} with {what}: {error_text(err)}; "
            "check that the weights match the architecture (--clip-model / --clip-config)"
        ) from None
    model.eval()
    return model, preprocess


def _make_handle(
    model: Any, preprocess: Any, model_name: str, architecture: str, model_cfg: dict, weights: WeightsSource, device: Any
) -> ClipHandle:
    import open_clip

    image_size = model.visual.image_size
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    return ClipHandle(
        model=model,
        preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(architecture),
        model_name=model_name,
        architecture=architecture,
        pretrained=weights.pretrained,
        weights_id=weights.weights_id,
        weights_sha256=weights.sha256,
        embed_dim=int(model_cfg["embed_dim"]),
        image_size=tuple(int(s) for s in image_size),
        device=device,
        config_sha256=_config_sha256(model_cfg),
        preprocess_cfg=dict(getattr(model.visual, "preprocess_cfg", {}) or {}),
    )


def encode_images(handle: ClipHandle, images: "Any", dtype: str = "float32") -> "Any":
    """Image features of preprocessed images. images: [N, 3, H, W] -> FloatTensor [N, D] (cpu).

    ``dtype`` (``float32``, ``bfloat16``, ``float16``): on CUDA the tower runs under
    autocast in that type; on CPU the input takes the type of the tower's weights (see
    ``cast_image_tower``), since CPU autocast is slower than float32.
    """
    import torch

    images = images.to(handle.device, non_blocking=True)
    if handle.device.type != "cuda" and handle.image_dtype != "float32":
        images = images.to(torch_dtype(handle.image_dtype))
    with torch.inference_mode(), _cuda_autocast(handle, dtype):
        feats = handle.model.encode_image(images)
    return feats.float().cpu()


def _cuda_autocast(handle: ClipHandle, dtype: str) -> Any:
    """Autocast in ``dtype`` when the model is on CUDA and ``dtype`` is not float32; else off."""
    import torch

    enabled = handle.device.type == "cuda" and dtype != "float32"
    return torch.autocast("cuda", dtype=torch_dtype(dtype) if enabled else torch.float16, enabled=enabled)


def cast_image_tower(handle: ClipHandle, dtype: str, in_place: bool = False) -> ClipHandle:
    """A handle whose image tower computes in ``dtype`` on CPU (weights cast, not autocast).

    ``in_place`` casts ``handle``'s own tower and returns ``handle``; otherwise the
    returned handle has a model that shares everything with ``handle``'s but a cast copy
    of the image tower, and ``handle`` is left as it was. The text tower stays float32.
    """
    if dtype == handle.image_dtype:
        return handle
    if handle.quantized:
        raise InputError(f"--quantize int8 runs the other operations in float32; it cannot be combined with --dtype {dtype}")
    model = handle.model
    if not in_place:
        visual = copy.deepcopy(model.visual)
        model = copy.copy(model)  # a shallow copy: the same text tower and parameters
        model._modules = dict(model._modules)  # ... but its own table of submodules
        model.visual = visual
        handle = dataclasses.replace(handle, model=model)
    model.visual.to(torch_dtype(dtype))
    handle.image_dtype = dtype
    return handle


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
    dtype: str = "float32",
) -> np.ndarray:
    """Text embeddings of ``prompt.format(name)`` for each class. Returns float32 [K, D].

    ``dtype`` (``auto`` = ``float32``, ``bfloat16``, ``float16``): what the text tower
    computes in (a cast copy on CPU, autocast on CUDA). ``auto`` is float32 everywhere:
    the tower costs milliseconds per name, and float32 keeps a dataset's text embeddings
    the same on every machine. Part of the cache key when not float32.

    Not L2-normalised (like the stored image features). With ``cache_dir`` each
    embedding is stored as ``<cache_dir>/text/<key>.npy`` where key hashes model id,
    weights id, prompt and class name; written atomically, so concurrent processes
    can share the cache. Random weights (``weights_id == "random"``) are never cached;
    a cache folder that cannot be written is skipped with one warning.
    """
    import torch

    if "{}" not in prompt:
        raise InputError(f"prompt {prompt!r} must contain '{{}}' where the class name goes")
    names = list(class_names)
    dtype = "float32" if dtype == "auto" else dtype
    out = np.zeros((len(names), handle.embed_dim), dtype=np.float32)
    use_cache = cache_dir is not None and handle.weights_id != "random"
    cache_root = Path(cache_dir) / "text" if use_cache else None

    missing: list[int] = []
    for i, name in enumerate(names):
        if cache_root is not None:
            cached = _read_cached(cache_root / f"{_text_key(handle, prompt, name, dtype)}.npy", handle.embed_dim)
            if cached is not None:
                out[i] = cached
                continue
        missing.append(i)

    model = handle.model
    if missing and dtype != "float32" and handle.device.type != "cuda":
        model = copy.deepcopy(model).to(torch_dtype(dtype))  # rare: float32 is the default
    for start in range(0, len(missing), max(1, batch_size)):
        chunk = missing[start : start + batch_size]
        tokens = handle.tokenizer([prompt.format(names[i]) for i in chunk]).to(handle.device)
        with torch.inference_mode(), _cuda_autocast(handle, dtype):
            feats = model.encode_text(tokens).float().cpu().numpy()
        for row, i in enumerate(chunk):
            out[i] = feats[row]
            if cache_root is not None:
                cache_root = _store_text(cache_root, _text_key(handle, prompt, names[i], dtype), feats[row], cache_dir)
    return out


def encode_text_lists(
    handle: ClipHandle,
    text_lists: Sequence[Sequence[str]],
    cache_dir: str | os.PathLike | None = None,
    dtype: str = "float32",
) -> np.ndarray:
    """Prompt ensembling: row k is the L2-normalised mean of the unit text embeddings of
    ``text_lists[k]`` (each text encoded as is). Returns float32 [K, D], unit rows.

    With ``cache_dir`` each row is stored as ``<cache_dir>/text/<key>.npy``, the key
    hashing model id, weights id, dtype and the exact list of texts in order
    (:func:`text_list_key`): two different lists never share an entry, and no list
    shares one with :func:`encode_texts`' single prompts. Random weights are never cached.
    """
    lists = [list(texts) for texts in text_lists]
    if any(not texts for texts in lists):
        raise InputError("an action has no text to encode (no prompt template and no description)")
    dtype = "float32" if dtype == "auto" else dtype
    out = np.zeros((len(lists), handle.embed_dim), dtype=np.float32)
    cache_root = Path(cache_dir) / "text" if cache_dir is not None and handle.weights_id != "random" else None
    missing = []
    for k, texts in enumerate(lists):
        cached = None if cache_root is None else _read_cached(
            cache_root / f"{text_list_key(handle, texts, dtype)}.npy", handle.embed_dim)
        if cached is None:
            missing.append(k)
        else:
            out[k] = cached
    flat = [text for k in missing for text in lists[k]]
    vectors = encode_texts(handle, flat, prompt="{}", dtype=dtype) if flat else out[:0]
    start = 0
    for k in missing:
        out[k] = _normalised_mean(vectors[start : start + len(lists[k])])
        start += len(lists[k])
        if cache_root is not None:
            cache_root = _store_text(cache_root, text_list_key(handle, lists[k], dtype), out[k], cache_dir)
    return out


def _store_text(cache_root: Path, key: str, row: np.ndarray, cache_dir: Any) -> Path | None:
    """Store one text embedding; None (go on without the cache) when its folder is unusable."""
    try:
        save_npy(cache_root / f"{key}.npy", row.copy())
    except OSError as err:
        warn_unusable_cache(cache_dir, err)
        return None
    return cache_root


def _normalised_mean(vectors: np.ndarray) -> np.ndarray:
    """The unit-length mean of the unit-length rows of ``vectors`` (float64 sums, float32 out)."""
    rows = vectors.astype(np.float64)
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    mean = rows.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def text_list_key(handle: ClipHandle, texts: Sequence[str], dtype: str = "float32") -> str:
    """Cache key of one ensemble: model id, weights id, dtype and every text, in order."""
    parts = ["ensemble/1", handle.model_id, handle.weights_id, "float32" if dtype == "auto" else dtype, *texts]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()[:40]


# ----------------------------------------------------------------------------- helpers


def _text_key(handle: ClipHandle, prompt: str, name: str, dtype: str = "float32") -> str:
    parts = [handle.model_id, handle.weights_id, prompt, name] + ([dtype] if dtype != "float32" else [])
    blob = json.dumps(parts, ensure_ascii=False)  # float32 keys predate the dtype: they stay valid
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:40]


def _read_cached(path: Path, dim: int) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # absent or damaged: recompute (and overwrite atomically)
    if arr.shape != (dim,) or not np.all(np.isfinite(arr)):
        return None
    return arr.astype(np.float32)


def _register_config(model_name: str, config_file: str | os.PathLike) -> str:
    """Register a model-config JSON with open_clip; return the architecture name."""
    import open_clip

    path = Path(config_file)
    cfg = read_json_file(path, "CLIP config")
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
