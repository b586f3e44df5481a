"""The registry of built-in datasets: name -> ``BuiltinDataset`` (``psftr_core.data.dataset_kind``).

Adding a built-in: write ``psftr_core/data/builtins/<name>.py`` defining its descriptor,
then list it here (its import and its entry in ``BUILTINS``). Loading, splits, presets,
evaluation tIoUs and the CLIP convention all read it from here. Lookups read ``BUILTINS``
when called, so a test may add a descriptor with ``monkeypatch.setitem``.
"""

from __future__ import annotations

from psftr_core.data.builtins.anet import ANET
from psftr_core.data.builtins.thumos14 import THUMOS14
from psftr_core.data.dataset_kind import BuiltinDataset

# In the order messages list them.
BUILTINS: dict[str, BuiltinDataset] = {kind.name: kind for kind in (
    THUMOS14,
    ANET,
)}


def builtin_dataset(name: object) -> BuiltinDataset | None:
    """The built-in named exactly ``name`` (lower case), or None; callers that accept any case lower it."""
    return BUILTINS.get(name) if isinstance(name, str) else None


def builtin_names() -> tuple[str, ...]:
    """The names of the built-in datasets (and so of the presets), in registry order."""
    return tuple(BUILTINS)


def builtin_known_as(name: object) -> BuiltinDataset | None:
    """The built-in whose name or alias is ``name`` (any case), or None."""
    key = str(name).lower()
    return next((kind for kind in BUILTINS.values() if key == kind.name or key in kind.aliases), None)


def standard_split_names() -> tuple[str, ...]:
    """The built-ins that ship standard zero-shot splits."""
    return tuple(name for name, kind in BUILTINS.items() if kind.standard_splits is not None)
