"""Device names: ``auto`` -> cuda when available, else cpu."""

from __future__ import annotations

from psftr_core.errors import InputError


def resolve_device(device: str | None) -> str:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> a device string torch accepts; InputError otherwise."""
    import torch

    name = (device or "auto").lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available here; use --device cpu or auto")
        return name
    if name == "cpu":
        return name
    raise InputError(f"unknown device {device!r}: use auto, cpu or cuda")
