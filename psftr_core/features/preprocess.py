"""The CLIP model's image transform, applied to whole batches of decoded frames.

open_clip's inference transform is ``Compose([Resize, CenterCrop, MaybeConvertMode,
MaybeToTensor, Normalize])`` on one PIL image. Per frame in PIL that costs more than
decoding; ``FramePreprocess`` does the same on a batch of uint8 RGB frames [N, H, W, 3]
in two steps, ``to_uint8`` in the decoding thread and ``to_model_input`` just before the
model:

* ``"batched"`` (default): ``to_uint8`` passes the frames through; ``to_model_input``
  resizes the batch with ``torch.nn.functional.interpolate`` (same filter, antialiased
  like PIL; on CPU in uint8, which agrees with PIL's resize within one grey level), crops
  the centre as ``CenterCrop`` does, and normalises. On a GPU the uint8 frames are moved
  first and all of it runs there. ``decode_short_side`` lets the decoder scale large
  frames (above twice the model's size) down while converting them to RGB.
* ``"pil"``: the transform's own PIL steps per frame in ``to_uint8`` (bit-identical to
  open_clip), ``ToTensor`` + ``Normalize`` on the batch in ``to_model_input``.

A transform of another shape (``ResizeKeepRatio``, unknown steps) runs whole, per frame.
Any frame size works, down to 1x1 pixel; a frame more than 4:1 wide or tall is cut to the
part the centre crop keeps before resizing, so that the resized frame stays small.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

PREPROCESS_MODES = ("batched", "pil")
_MAX_RESIZE_BYTES = 64 << 20  # resized frames per interpolate call (bounds memory)
_MAX_ASPECT = 4.0  # beyond this the source is cut to the cropped part before resizing


@dataclass(frozen=True)
class _Geometry:
    """Resize target and centre crop of the transform (torchvision semantics)."""

    size: tuple[int, ...]  # (s,): shorter side -> s; (h, w): exactly h x w
    mode: str  # interpolate mode: "bicubic" or "bilinear"
    crop: tuple[int, int] | None  # (h, w) or None

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) after Resize (``torchvision.transforms.functional.resize``'s arithmetic)."""
        if len(self.size) == 2:
            return self.size[0], self.size[1]
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.size[0], int(self.size[0] * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)


class FramePreprocess:
    """A model's transform for batches of frames (see the module docstring)."""

    def __init__(self, transform: Callable, mode: str = "batched") -> None:
        from torchvision.transforms import Compose, ToTensor

        if mode not in PREPROCESS_MODES:
            raise ValueError(f"preprocess mode must be one of {PREPROCESS_MODES}, got {mode!r}")
        self.transform = transform
        steps = list(getattr(transform, "transforms", []))
        split = next((i for i, t in enumerate(steps) if isinstance(t, ToTensor)), None)
        self.tensor_steps = steps[split + 1 :] if split is not None else []
        self.normalize = _normalize_of(self.tensor_steps)  # (mean, std) when that is all that follows
        geometry = _geometry(steps[:split]) if split is not None else None
        if mode == "batched" and geometry is not None:
            self.mode, self.geometry, self.pil_steps = "batched", geometry, None
        elif split is not None:
            self.mode, self.geometry, self.pil_steps = "pil", None, Compose(steps[:split])
        else:
            self.mode, self.geometry, self.pil_steps = "whole", None, None

    @property
    def decode_short_side(self) -> int | None:
        """Shorter side the decoder may scale larger frames down to (None: keep their size)."""
        if self.geometry is None:
            return None
        return 2 * max(self.geometry.size + (self.geometry.crop or ()))

    def describe(self) -> str:
        return {"batched": "torch (batched)", "pil": "PIL (per frame)", "whole": "transform (per frame)"}[self.mode]

    def to_uint8(self, frames: np.ndarray) -> Any:
        """The decoding thread's part. frames: uint8 [N, H, W, 3] RGB.

        batched: the frames unchanged; pil: uint8 [N, h, w, 3] after the PIL steps;
        whole: float [N, 3, h, w] (the whole transform per frame).
        """
        if self.mode == "batched":
            return frames
        import torch
        from PIL import Image

        if self.mode == "whole":
            return torch.stack([self.transform(Image.fromarray(frame)) for frame in frames])
        return np.stack([np.asarray(self.pil_steps(Image.fromarray(frame)), dtype=np.uint8) for frame in frames])

    def to_model_input(self, prepared: Any, device: Any = None) -> Any:
        """Output of ``to_uint8`` -> float [N, 3, h, w] on ``device``, ready for ``encode_image``."""
        import torch

        if self.mode == "whole":
            return prepared if device is None else prepared.to(device)
        batch = torch.from_numpy(np.ascontiguousarray(prepared))
        if device is not None:
            batch = batch.to(device, non_blocking=True)  # uint8: 4x less to copy than float
        batch = batch.permute(0, 3, 1, 2)
        if self.mode == "batched":
            batch = self._resize_crop(batch)
        batch = batch.contiguous().to(dtype=torch.get_default_dtype())
        if self.mode == "batched" and self.normalize is not None:
            # ToTensor + Normalize folded: (x / 255 - mean) / std == (x - 255 mean) / (255 std)
            mean, std = (torch.tensor(v, dtype=batch.dtype, device=batch.device).view(1, -1, 1, 1)
                         for v in self.normalize)
            return batch.sub_(mean * 255).mul_(1 / (std * 255))
        batch = batch.div(255)
        for step in self.tensor_steps:
            batch = step(batch)
        return batch

    def _resize_crop(self, batch: Any) -> Any:
        """uint8 [N, 3, H, W] -> [N, 3, h, w] resized and centre-cropped (uint8 values)."""
        import torch

        geometry = self.geometry
        height, width = batch.shape[-2:]
        new_h, new_w = geometry.resized(height, width)
        crop = geometry.crop or (new_h, new_w)
        if max(new_h / crop[0], new_w / crop[1]) > _MAX_ASPECT:
            batch, (new_h, new_w) = _cut_to_crop(batch, (new_h, new_w), crop)
        if (new_h, new_w) != (height, width):
            per_call = max(1, _MAX_RESIZE_BYTES // (3 * new_h * new_w))
            batch = torch.cat([_resize(part, (new_h, new_w), geometry.mode) for part in batch.split(per_call)])
        return _center_crop(batch, crop)


def _geometry(pil_steps: list) -> _Geometry | None:
    """Resize [+ CenterCrop] [+ RGB conversion] -> their geometry; None for other steps."""
    from torchvision.transforms import CenterCrop, InterpolationMode, Resize

    modes = {InterpolationMode.BICUBIC: "bicubic", InterpolationMode.BILINEAR: "bilinear"}
    size = crop = mode = None
    for step in pil_steps:
        if isinstance(step, Resize) and size is None and crop is None:
            if step.max_size is not None or step.interpolation not in modes:
                return None  # (PIL always antialiases, whatever ``antialias`` says)
            size = (step.size,) if isinstance(step.size, int) else tuple(int(s) for s in step.size)
            mode = modes[step.interpolation]
        elif isinstance(step, CenterCrop) and size is not None and crop is None:
            crop = tuple(int(s) for s in step.size)
            crop = (crop[0], crop[0]) if len(crop) == 1 else crop
        elif not _is_rgb_conversion(step):
            return None
    if size is None or len(size) not in (1, 2):
        return None
    return _Geometry(size=size, mode=mode, crop=crop)


def _normalize_of(tensor_steps: list) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) when the steps after ToTensor are exactly one Normalize."""
    from torchvision.transforms import Normalize

    if len(tensor_steps) != 1 or not isinstance(tensor_steps[0], Normalize):
        return None
    step = tensor_steps[0]
    return tuple(float(m) for m in step.mean), tuple(float(s) for s in step.std)


def _is_rgb_conversion(step: Any) -> bool:
    """open_clip's ``MaybeConvertMode("RGB")`` or older ``_convert_to_rgb``: no-ops on RGB frames."""
    name = getattr(step, "__name__", type(step).__name__)
    return (name == "MaybeConvertMode" and getattr(step, "mode", "RGB") == "RGB") or name == "_convert_to_rgb"


def _resize(batch: Any, size: tuple[int, int], mode: str) -> Any:
    """Antialiased resize of uint8 [N, 3, H, W]; uint8 out (rounded like PIL)."""
    import torch
    import torch.nn.functional as F

    if batch.device.type == "cpu":  # torch has uint8 kernels on CPU only
        with contextlib.suppress(RuntimeError):  # (not for every mode in every version)
            return F.interpolate(batch, size=size, mode=mode, antialias=True, align_corners=False)
    out = F.interpolate(batch.float(), size=size, mode=mode, antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _center_crop(batch: Any, crop: tuple[int, int]) -> Any:
    """``torchvision`` CenterCrop on [N, C, H, W]: pad with zeros when smaller, then cut."""
    import torch.nn.functional as F

    crop_h, crop_w = crop
    height, width = batch.shape[-2:]
    if crop_h > height or crop_w > width:
        pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
        batch = F.pad(batch, [pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2])
        height, width = batch.shape[-2:]
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return batch[..., top : top + crop_h, left : left + crop_w]


def _cut_to_crop(batch: Any, resized: tuple[int, int], crop: tuple[int, int]) -> tuple[Any, tuple[int, int]]:
    """Cut a very elongated source to what the centre crop keeps (plus filter margin).

    Returns the cut batch and its size once resized at the same scale.
    """
    height, width = batch.shape[-2:]
    new_h, new_w = resized
    cut = []
    for source, target, keep in ((height, new_h, crop[0]), (width, new_w, crop[1])):
        scale = source / target  # source pixels per resized pixel
        if target <= _MAX_ASPECT * keep:
            cut.append((0, source, target))
            continue
        margin = 2 * math.ceil(max(scale, 1.0))  # the filter's reach
        start = max(0, math.floor((target - keep) / 2 * scale) - margin)
        stop = min(source, math.ceil((target + keep) / 2 * scale) + margin)
        cut.append((start, stop, max(keep, round((stop - start) / scale))))
    (top, bottom, out_h), (left, right, out_w) = cut
    return batch[..., top:bottom, left:right], (out_h, out_w)
