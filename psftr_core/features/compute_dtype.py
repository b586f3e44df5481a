"""Which floating-point type the CLIP towers compute in (``--dtype``).

``auto`` is float16 on CUDA (autocast), bfloat16 on a CPU that computes it natively
and float32 on any other CPU. On CPU a tower is *cast* to bfloat16, never autocast:
``torch.autocast("cpu")`` measured slower than float32 here, the cast tower 2-4x faster.

Native bfloat16 is looked up, not guessed or timed:

* x86-64: AVX512-BF16 or AMX, as torch's own CPU feature probe reports them (the same
  probe torch's kernels dispatch on), and oneDNN present (it runs the bfloat16 GEMMs);
  ``/proc/cpuinfo`` flags where that torch has no probe;
* Arm on Linux: the ``bf16`` CPU feature and oneDNN (torch's bfloat16 GEMMs go through
  it); other systems (macOS included) count as not native, since torch's CPU GEMMs there
  run bfloat16 through float32 conversions.

``PSFTR_CPU_BFLOAT16=1`` or ``0`` overrides the look-up (a CPU it gets wrong, or tests).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")
OVERRIDE_ENV = "PSFTR_CPU_BFLOAT16"


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (see the module docstring)."""
    override = os.environ.get(OVERRIDE_ENV, "").strip().lower()
    if override in ("1", "true", "yes"):
        return True
    if override in ("0", "false", "no"):
        return False
    return _detected_bfloat16()


@functools.lru_cache(maxsize=1)
def _detected_bfloat16() -> bool:
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        probes = [probe for probe in probes if callable(probe)]
        if probes:
            return any(bool(probe()) for probe in probes)
        return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    if machine in ("aarch64", "arm64") and platform.system() == "Linux":
        return "bf16" in _cpu_flags()
    return False


def _cpu_flags() -> set[str]:
    """The CPU feature words of /proc/cpuinfo (``flags`` on x86, ``Features`` on Arm)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    words: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            words.update(value.split())
    return words


def check_compute_dtype(value: str) -> None:
    """InputError naming ``--dtype`` unless ``value`` is one of ``COMPUTE_DTYPES``."""
    if value not in COMPUTE_DTYPES:
        from psftr_core.errors import InputError

        raise InputError(f"--dtype must be one of {'|'.join(COMPUTE_DTYPES)}, got {value!r}")


def resolve_compute_dtype(requested: str, device_type: str, quantize: str | None = None) -> str:
    """The dtype ``requested`` (one of ``COMPUTE_DTYPES``) means on ``device_type``
    (``"cpu"`` or ``"cuda"``). With int8 quantization the tower's other operations stay
    float32 (``auto``); asking for a 16-bit type with it is refused by the caller."""
    if requested != "auto":
        return requested
    if device_type == "cuda":
        return "float16"
    if quantize:
        return "float32"
    return "bfloat16" if native_bfloat16() else "float32"


def storage_dtype(requested: str) -> str:
    """The feature files' dtype: float32 when float32 was asked for, float16 otherwise
    (float16 keeps more mantissa than bfloat16, and half the disk of float32)."""
    return "float32" if requested == "float32" else "float16"


def torch_dtype(name: str):
    """``torch.float32`` ... for a ``COMPUTE_DTYPES`` name other than ``auto``."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
